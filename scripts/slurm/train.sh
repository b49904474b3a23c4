#!/bin/bash
# The body of gpu.sbatch, multi_gpu.sbatch and multi_node.sbatch: imgcls fit, then test of the best
# checkpoint, each one Slurm job step with one task per GPU. Lightning takes the ranks, the nodes and
# the requeue signal from Slurm (SLURMEnvironment); imgcls finds a requeued job's run folder by its
# job id, so `fit` resumes there and `test --ckpt_path best` tests that run.
set -euo pipefail
template=${IMGCLS_TEMPLATE:-scripts/slurm/gpu.sbatch}
if [ $# -lt 1 ]; then
  echo "usage: sbatch $template CONFIG [imgcls options...]" >&2
  echo "       (from the repository root, or with PYTHON=/path/to/venv/bin/python exported)" >&2
  exit 2
fi
CONFIG=$1
shift
PYTHON=${PYTHON:-.venv/bin/python}
tasks=${SLURM_NTASKS_PER_NODE:-1}
tasks=${tasks%%"("*}  # "4(x2)" when nodes differ: the first node's count
nodes=${SLURM_NNODES:-1}
strategy=auto
if [ $((tasks * nodes)) -gt 1 ]; then strategy=ddp; fi
# device counts are passed so that the saved config records them; each task keeps torch's threads
# to the cores Slurm gave it; options after CONFIG come last and win (--trainer.accelerator cpu...)
common=(--config "$CONFIG" --threads "${SLURM_CPUS_PER_TASK:-1}" --trainer.accelerator gpu
  --trainer.devices "$tasks" --trainer.num_nodes "$nodes" --trainer.strategy "$strategy"
  --trainer.precision bf16-mixed)
srun "$PYTHON" -m imgcls fit "${common[@]}" "$@"
srun "$PYTHON" -m imgcls test "${common[@]}" --ckpt_path best "$@"
