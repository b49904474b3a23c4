"""The Slurm templates, run by a real Slurm: a one-node cluster on this machine.

``tests/slurm/setup_cluster.sh`` installs Debian's slurm-wlm and munge and starts them (``.ci/run``
calls it). Where Slurm is not running, the tests marked ``slurm`` are skipped with the reason. The
templates ask for GPUs; here each job asks for none (``--gpus-per-node=0``) and trains on the CPU
(``--trainer.accelerator cpu``), one CPU per task.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch import Callback, LightningModule, Trainer

from imgcls import runs
from imgcls.analysis.runs import read_scalars
from tests.test_cli import CONFIG, REPO, TINY
from tests.test_sweep import tiny_fixed, write_sweep

TEMPLATES = REPO / "scripts" / "slurm"
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}
ON_THIS_CLUSTER = ["--gpus-per-node=0", "--cpus-per-task=1", "--time=15"]


def slurm_is_running() -> str | None:
    """None when a Slurm controller answers here; else why not."""
    if shutil.which("sinfo") is None:
        return (
            "Slurm is not installed here; tests/slurm/setup_cluster.sh installs and starts it (root, apt-get)"
        )
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo got no answer from slurmctld in 20 s; start it with tests/slurm/setup_cluster.sh"
    states = answer.stdout.split()
    if answer.returncode != 0 or not any(s.rstrip("*") in ("idle", "mixed", "allocated") for s in states):
        return f"no Slurm node is up ({answer.stderr.strip() or states}); start it with tests/slurm/setup_cluster.sh"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    """Skip, saying why, where no Slurm answers (asked once, only by the tests that need it)."""
    reason = slurm_is_running()
    if reason is not None:
        pytest.skip(reason)


def slurm(test: Any) -> Any:
    """A test of jobs on the real cluster: marked ``slurm`` (``make test-slurm``), skipped without one."""
    return pytest.mark.slurm(pytest.mark.usefixtures("cluster")(test))


def sbatch(*args: str) -> str:
    """Submit from the repository root, as the templates ask; returns the job id."""
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["sbatch", "--parsable", *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def job_records(job: str) -> list[dict[str, str]]:
    """``scontrol show job`` of a job (one record per task of an array), as key -> value."""
    shown = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in shown.stdout.splitlines() if line.strip()]


def wait_for(job: str, timeout: float = 600, tasks: int = 1) -> list[dict[str, str]]:
    """Poll until every task of the job has ended; its records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = [r for r in job_records(job) if r.get("ArrayTaskId", "").isdigit() or tasks == 1]
        if len(records) >= tasks and all(r["JobState"] in FINAL_STATES for r in records):
            return records
        time.sleep(2)
    subprocess.run(["scancel", job], check=False)
    pytest.fail(f"job {job} did not end in {timeout} s: {job_records(job)}")


def output_of(record: dict[str, str]) -> str:
    path = Path(record["StdOut"])
    return path.read_text() if path.is_file() else f"(no output file {path})"


class SlowBatches(Callback):
    """Sleeps after every training batch, so that a job is still training when the test signals it."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        time.sleep(self.seconds)


def tiny_args(eurosat_root: Path, runs_dir: Path) -> list[str]:
    return [
        f"--runs_dir={runs_dir}",
        f"--data.init_args.root={eurosat_root}",
        *TINY,
        "--trainer.accelerator=cpu",
    ]


def test_templates_without_a_config_say_their_usage() -> None:
    for template in ("gpu", "multi_gpu", "multi_node", "sweep_array"):
        ran = subprocess.run(
            ["bash", str(TEMPLATES / f"{template}.sbatch")], cwd=REPO, capture_output=True, text=True
        )
        assert ran.returncode == 2 and ran.stderr.startswith("usage: sbatch "), ran.stderr
        assert f"scripts/slurm/{template}.sbatch" in ran.stderr


def test_the_templates_command_lines_are_valid_configs(tmp_path: Path) -> None:
    """What the templates run, with the variables of a 2-node, 4-GPU job: srun and the interpreter
    replaced by scripts that print their arguments, which then parse as an imgcls config."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        '#!/bin/bash\nshift 3\nprintf "%s\\n" "$@" >> "$CALLS"\necho --- >> "$CALLS"\n'
    )
    (bin_dir / "srun").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls"),
        "PYTHON": "python",
        "SLURM_SUBMIT_DIR": str(REPO),
        "SLURM_CPUS_PER_TASK": "8",
        "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_NNODES": "2",
    }
    ran = subprocess.run(
        [
            "bash",
            str(TEMPLATES / "multi_node.sbatch"),
            "configs/eurosat_resnet50.yaml",
            "--trainer.max_epochs=1",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    calls = [c.strip().splitlines() for c in (tmp_path / "calls").read_text().split("---") if c.strip()]
    assert [c[0] for c in calls] == ["fit", "test"] and calls[1][-3:-1] == ["--ckpt_path", "best"]
    printed = subprocess.run(
        [sys.executable, "-m", "imgcls", *calls[1], "--print_config"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert printed.returncode == 0, printed.stderr
    for line in ("threads: 8", "  devices: '4'", "  num_nodes: 2", "  strategy: ddp", "  max_epochs: 1"):
        assert line in printed.stdout.splitlines(), line


@slurm
@pytest.mark.parametrize(
    ("template", "shape", "world_size"),
    [
        ("gpu", [], 1),
        ("multi_gpu", ["--ntasks-per-node=2"], 2),
        ("multi_node", ["--nodes=1", "--ntasks-per-node=2"], 2),  # one node is all this cluster has
    ],
)
def test_each_template_trains_and_tests_on_slurm(
    template: str, shape: list[str], world_size: int, eurosat_root: Path, tmp_path: Path
) -> None:
    output = tmp_path / "slurm-%j.out"
    job = sbatch(
        *ON_THIS_CLUSTER,
        *shape,
        f"--output={output}",
        str(TEMPLATES / f"{template}.sbatch"),
        CONFIG,
        *tiny_args(eurosat_root, tmp_path),
        "--trainer.max_epochs=2",
    )
    (record,) = wait_for(job)
    log = output_of(record)
    assert record["JobState"] == "COMPLETED", log[-3000:]
    run = tmp_path / "eurosat_sample" / "version_0"
    assert [p.name for p in run.parent.iterdir()] == ["version_0"]
    info = json.loads((run / runs.RUN_INFO).read_text())
    assert info["fit_finished"] is True and info["world_size"] == world_size and info["slurm_jobs"] == [job]
    assert info["epochs"] == 2 and (run / "checkpoints" / "best.ckpt").is_file()
    metrics = json.loads((run / runs.TEST_METRICS).read_text())
    assert metrics["test_samples"] == 20 and metrics["checkpoint"] == str(run / "checkpoints" / "best.ckpt")
    assert "imgcls: run folder" in log
    print(
        f"{template}: job {job} {record['JobState']} in {record['RunTime']}, world size {world_size}, {run}"
    )


@slurm
def test_the_requeue_signal_resumes_the_job_in_its_run_folder(eurosat_root: Path, tmp_path: Path) -> None:
    """SIGUSR1 (Slurm's warning before the time limit) in epoch 2: Lightning saves a checkpoint and
    requeues the job; the restarted job resumes in the same version_0, every epoch logged once."""
    output = tmp_path / "slurm-%j.out"
    job = sbatch(
        *ON_THIS_CLUSTER,
        f"--output={output}",
        "--open-mode=append",
        str(TEMPLATES / "gpu.sbatch"),
        CONFIG,
        *tiny_args(eurosat_root, tmp_path),
        "--trainer.max_epochs=5",
        "--trainer.callbacks+=tests.test_slurm.SlowBatches",
    )
    run = tmp_path / "eurosat_sample" / "version_0"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        last = run / "checkpoints" / "last.ckpt"
        if last.is_file() and runs.read_checkpoint_position(last)["epoch"] >= 1:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"job {job} saved no checkpoint of epoch 1 in time: {job_records(job)}")
    # to the job's steps (srun), as Slurm's --signal=SIGUSR1@90 sends it
    signalled = subprocess.run(["scancel", "--signal=USR1", job], capture_output=True, text=True)
    assert signalled.returncode == 0, signalled.stderr
    deadline = time.monotonic() + 120
    while (record := job_records(job)[0])["Restarts"] == "0" and time.monotonic() < deadline:
        time.sleep(1)
    assert record["Restarts"] == "1", record
    # a requeued job waits about 2 minutes (BeginTime) before it may start again
    subprocess.run(["scontrol", "update", f"jobid={job}", "starttime=now"], check=False, capture_output=True)
    (record,) = wait_for(job)
    log = output_of(record)
    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "1", log[-3000:]
    # Lightning saved its mid-epoch checkpoint; the job resumed from the end of the last whole epoch
    assert len(list(run.glob(runs.HPC_CHECKPOINT_GLOB))) == 1, log[-3000:]
    assert f"imgcls: Slurm job {job} restart 1: resuming {run} from last.ckpt" in log
    assert re.search(r"Restored all states from the checkpoint at \S+/checkpoints/last.ckpt", log)
    assert [p.name for p in run.parent.iterdir()] == ["version_0"]
    info = json.loads((run / runs.RUN_INFO).read_text())
    assert info["fit_finished"] is True and sorted(info["epoch_seconds"]) == ["0", "1", "2", "3", "4"]
    epochs = [int(float(row["epoch"])) for row in csv_rows(run / runs.METRICS_CSV) if row.get("val_loss")]
    assert epochs == [0, 1, 2, 3, 4], epochs
    # TensorBoard: the steps the interrupted epoch logged were purged, one value per step
    scalars = read_scalars(run)
    steps = scalars.loc[scalars.tag == "val_loss", "step"].tolist()
    assert len(steps) == 5 and steps == sorted(set(steps)), steps
    assert (run / runs.TEST_METRICS).is_file()
    print(f"job {job}: Restarts={record['Restarts']}, val_loss epochs {epochs} at steps {steps}")


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


@slurm
def test_a_sweep_runs_as_a_job_array(eurosat_root: Path, tmp_path: Path) -> None:
    path = write_sweep(tmp_path, axes={"seed_everything": [0, 1]}, fixed=tiny_fixed(eurosat_root))
    submitted = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgcls",
            "sweep",
            "--config",
            str(path),
            "--slurm",
            "--no-check",
            "--sbatch",
            json.dumps(ON_THIS_CLUSTER),
            "--",
            "--runs_dir",
            str(tmp_path / "moved"),  # the tasks must get it too
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submitted.returncode == 0, submitted.stderr
    job = re.search(r"submitted job array (\d+) \(2 runs\)", submitted.stdout).group(1)
    records = wait_for(job, tasks=2)
    assert [r["JobState"] for r in records] == ["COMPLETED", "COMPLETED"], [
        output_of(r)[-2000:] for r in records
    ]
    folder = tmp_path / "moved" / "study"
    assert not (tmp_path / "runs").exists()
    for seed in (0, 1):
        run = folder / f"seed={seed}" / "version_0"
        info = json.loads((run / runs.RUN_INFO).read_text())
        assert info["slurm_jobs"][0].startswith(f"{job}_") and (run / runs.TEST_METRICS).is_file()
    assert (folder / "axes.md").read_text().startswith("# Sweep study: 2 of 2 runs tested")
    assert (folder / "comparison" / "groups.csv").is_file()
    for record in records:
        print(
            f"array job {record['ArrayJobId']} task {record['ArrayTaskId']}: {record['JobState']} in {record['RunTime']}"
        )
