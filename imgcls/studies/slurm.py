"""A study on a Slurm cluster: one job array whose tasks each run one run (or one trial) of it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from imgcls.errors import ConfigError
from imgcls.studies.grid import Sweep

ARRAY_TEMPLATE = Path(__file__).resolve().parents[2] / "scripts" / "slurm" / "sweep_array.sbatch"


def submit(sweep: Sweep, count: int, parallel: int | None, sbatch_args: list[str]) -> str:
    """Submit ``count`` runs (the grid, or a search's trials) as one Slurm job array
    (``scripts/slurm/sweep_array.sbatch``), at most ``parallel`` tasks at a time; returns the job id.

    Raises:
        ConfigError: no ``sbatch`` here, no template, or sbatch refused the array.
    """
    sbatch = os.environ.get("SBATCH", "sbatch")
    if shutil.which(sbatch) is None:
        local = f"imgcls sweep --config {sweep.path}" + (f" --parallel {parallel}" if parallel else "")
        raise ConfigError(
            f"sbatch not found: this machine has no Slurm client. Run the sweep on this machine instead: `{local}`"
        )
    if not ARRAY_TEMPLATE.is_file():
        raise ConfigError(
            f"the job array template {ARRAY_TEMPLATE} is missing: --slurm needs imgcls installed from its "
            "repository (pip install -e .), which holds scripts/slurm/"
        )
    logs = sweep.logs.resolve()
    logs.mkdir(parents=True, exist_ok=True)
    array = f"0-{count - 1}" + (f"%{parallel}" if parallel else "")
    command = [
        sbatch,
        "--parsable",
        f"--array={array}",
        f"--job-name=imgcls-{sweep.name}",
        f"--output={logs}/slurm-%A_%a.out",
        *sbatch_args,
        str(ARRAY_TEMPLATE),
        str(sweep.path),
        *sweep.task_args,
    ]
    print("$ " + shlex.join(command), flush=True)
    # the array's tasks run this interpreter (the template's default is .venv/bin/python)
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise ConfigError(
            f"sbatch refused the sweep's job array: {result.stderr.strip() or result.stdout.strip()}"
        )
    job = result.stdout.strip().split(";")[0]
    dashes = ["--", *sweep.task_args] if sweep.task_args else []
    print(f"imgcls: submitted job array {job} ({count} runs); logs in {logs}", flush=True)
    print(
        f"imgcls: when it ends, `{shlex.join(['imgcls', 'sweep', '--config', str(sweep.path), '--report', *dashes])}` "
        "writes the comparison",
        flush=True,
    )
    return job
