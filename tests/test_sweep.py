"""``imgcls sweep``: grids from YAML, their run folders, restarts, bad axes, and the comparison."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imgcls import runs
from imgcls.commands import main
from imgcls.studies.grid import axis_labels, expand, load_sweep
from tests.test_cli import CONFIG, REPO, TINY


def write_sweep(folder: Path, axes: dict, fixed: dict | None = None, **fields: object) -> Path:
    path = folder / "study.yaml"
    spec = {"config": CONFIG, "name": "study", "runs_dir": str(folder / "runs"), "fixed": fixed or {}}
    path.write_text(yaml.safe_dump({**spec, "axes": axes, **fields}))
    return path


def tiny_fixed(eurosat_root: Path) -> dict[str, object]:
    fixed = dict(arg.removeprefix("--").split("=", 1) for arg in TINY)
    return {**fixed, "data.init_args.root": str(eurosat_root), "trainer.max_epochs": 3}


def test_a_grid_expands_to_named_runs_in_the_order_written(tmp_path: Path) -> None:
    path = write_sweep(
        tmp_path,
        axes={
            "model": ["../configs/base/models/resnet18.yaml", "../configs/base/models/vgg16.yaml"],
            "model.optimizer.init_args.lr": [0.1, 1.0e-3],
            "seed_everything": [0, 1],
        },
        fixed={"trainer.max_epochs": 2},
    )
    # pieces are relative to the sweep file
    path = path.rename(REPO / "tests" / f"study-{tmp_path.name}.yaml")
    try:
        sweep = load_sweep(path, ["--trainer.limit_train_batches=2"])
        grid = expand(sweep)
    finally:
        path.unlink()
    assert [run.name for run in grid[:3]] == [
        "model=resnet18,lr=0.1,seed=0",
        "model=resnet18,lr=0.1,seed=1",
        "model=resnet18,lr=0.001,seed=0",
    ]
    assert len(grid) == 8 and grid[-1].name == "model=vgg16,lr=0.001,seed=1"
    args = grid[-1].args
    # base config, fixed settings, axes in order, extra arguments, then the run's own folder
    assert args[0] == "--config" and Path(args[1]).resolve() == Path(CONFIG)
    assert args[2:4] == ["--trainer.max_epochs", "2"]
    model = args.index("--model")
    assert Path(args[model + 1]).resolve() == REPO / "configs" / "base" / "models" / "vgg16.yaml"
    assert args[model + 2 :] == [
        "--model.optimizer.init_args.lr",
        "0.001",
        "--seed_everything",
        "1",
        "--trainer.limit_train_batches=2",
        "--runs_dir",
        str(tmp_path / "runs" / "study"),
        "--experiment",
        "model=vgg16,lr=0.001,seed=1",
    ]
    assert sweep.seed_axes == ["seed_everything"]


def test_axis_labels_stay_apart() -> None:
    labels = axis_labels(["model.optimizer.init_args.lr", "model.lr", "data.init_args.seed", "model"])
    assert labels == {
        "model.optimizer.init_args.lr": "optimizer.lr",
        "model.lr": "model.lr",
        "data.init_args.seed": "seed",
        "model": "model",
    }


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"model.optimiser.init_args.lr": [0.1]}, "(did you mean --model.optimizer?)"),
        ({"trainer.max_epoch": [1, 2]}, "(did you mean --trainer.max_epochs?)"),
        ({"model": ["missing_piece.yaml"]}, "axis 'model': config piece"),
        ({"model.optimizer.init_args.lr": ["fast"]}, "axis 'model.optimizer.init_args.lr' = fast"),
        ({"model.backbone": ["resnet_nope"]}, "axis 'model.backbone' = resnet_nope: unknown backbone"),
    ],
)
def test_a_bad_axis_fails_before_any_run_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture, axes: dict, message: str
) -> None:
    path = write_sweep(tmp_path, axes=axes)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("imgcls: error: sweep file") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_without_sbatch_the_sweep_says_how_to_run_here(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SBATCH", "sbatch-not-installed")
    path = write_sweep(tmp_path, axes={"seed_everything": [0, 1]})
    with pytest.raises(SystemExit):
        main(["sweep", "--config", str(path), "--slurm", "--parallel", "2", "--no-check"])
    err = capsys.readouterr().err
    assert "sbatch not found" in err and f"imgcls sweep --config {path} --parallel 2" in err


@pytest.mark.parametrize("form", [["--runs_dir", "{moved}"], ["--runs_dir={moved}"]])
def test_runs_dir_after_the_dashes_moves_the_whole_sweep(tmp_path: Path, form: list[str]) -> None:
    moved = tmp_path / "moved"
    extra = [arg.format(moved=moved) for arg in form]
    sweep = load_sweep(
        write_sweep(tmp_path, axes={"seed_everything": [0, 1]}), [*extra, "--trainer.max_epochs=1"]
    )
    assert sweep.folder == moved / "study"
    for run in expand(sweep):
        assert run.args.count("--runs_dir") == 1
        assert run.args[-4:-2] == ["--runs_dir", str(moved / "study")]
    assert sweep.task_args == ["--trainer.max_epochs=1", "--runs_dir", str(moved.resolve())]


def test_a_job_array_gets_the_moved_runs_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sbatch = tmp_path / "sbatch"
    sbatch.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "argv"}\necho 42\n')
    sbatch.chmod(0o755)
    monkeypatch.setenv("SBATCH", str(sbatch))
    path = write_sweep(tmp_path, axes={"seed_everything": [0, 1]})
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "sweep",
                "--config",
                str(path),
                "--slurm",
                "--no-check",
                "--",
                "--runs_dir",
                str(tmp_path / "moved"),
            ]
        )
    assert exit_info.value.code == 0
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[-3:] == [str(path), "--runs_dir", str(tmp_path / "moved")]
    assert (tmp_path / "moved" / "study" / "logs").is_dir() and not (tmp_path / "runs").exists()
    out = capsys.readouterr().out
    assert "submitted job array 42 (2 runs)" in out
    assert f"--report -- --runs_dir {tmp_path / 'moved'}` writes the comparison" in out


def test_experiment_after_the_dashes_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_sweep(tmp_path, axes={"seed_everything": [0, 1]})
    with pytest.raises(SystemExit):
        main(["sweep", "--config", str(path), "--", "--experiment", "mine"])
    err = capsys.readouterr().err
    assert "the sweep names each run after its values; drop --experiment" in err
    assert not (tmp_path / "runs").exists()


def sweep_process(path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "imgcls", "sweep", "--config", str(path), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_a_killed_sweep_resumes_its_runs_and_compares_them(eurosat_root: Path, tmp_path: Path) -> None:
    """Both runs killed (kill -9) in epoch 1; the restarted sweep resumes each in its version_0 from
    last.ckpt, tests it, and writes the comparison and the axes table."""
    path = write_sweep(tmp_path, axes={"seed_everything": [0, 1]}, fixed=tiny_fixed(eurosat_root))
    killed = sweep_process(
        path, "--parallel", "2", "--", "--trainer.callbacks+=tests.test_run_folders.KillAt"
    )
    assert killed.returncode == 1, killed.stderr
    assert "2 runs failed" in killed.stderr and "exited with -9" in killed.stdout
    folder = tmp_path / "runs" / "study"
    for seed in (0, 1):
        run = folder / f"seed={seed}" / "version_0"
        assert not runs.fit_finished(run) and runs.resume_checkpoint(run) == run / "checkpoints" / "last.ckpt"

    resumed = sweep_process(path, "--parallel", "2")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.count(": resume ") == 2 and "2 of 2 runs done" in resumed.stdout
    for seed in (0, 1):
        experiment = folder / f"seed={seed}"
        assert [p.name for p in experiment.iterdir()] == ["version_0"]
        run = experiment / "version_0"
        info = json.loads((run / runs.RUN_INFO).read_text())
        assert info["fit_finished"] is True and sorted(info["epoch_seconds"]) == ["0", "1", "2"]
        assert (run / runs.TEST_METRICS).is_file()
    axes = (folder / "axes.csv").read_text().splitlines()
    assert axes[0].startswith("runs,test_acc,test_acc_ci95") and axes[1].startswith("2/2,")
    groups = (folder / "comparison" / "groups.csv").read_text().splitlines()
    assert len(groups) == 2 and groups[1].startswith("seed=") is False  # one group of the two seeds

    again = sweep_process(path, "--no-check")
    assert again.returncode == 0 and again.stdout.count("already done") == 2


class PruneSecondTrial:
    """An optuna pruner (the BasePruner interface) that gives up on trial 1 at its first report."""

    def prune(self, study: object, trial: object) -> bool:
        return trial.number == 1


def search_sweep(folder: Path, eurosat_root: Path, space: dict) -> Path:
    search = {
        "trials": 2,
        "metric": "val_acc",
        "sampler": {"class_path": "optuna.samplers.RandomSampler", "init_args": {"seed": 0}},
        "pruner": {"class_path": "tests.test_sweep.PruneSecondTrial"},
        "space": space,
    }
    return write_sweep(folder, axes={}, fixed=tiny_fixed(eurosat_root), search=search)


def test_a_search_runs_its_trials_prunes_and_reports(eurosat_root: Path, tmp_path: Path) -> None:
    """Two optuna trials: the first completes and is tested, the pruner stops the second after its
    first epoch (in the fit's process, through the study's journal file); a restart runs nothing more."""
    pytest.importorskip("optuna")
    space = {
        "model.optimizer.init_args.lr": {"low": 1.0e-3, "high": 0.1, "log": True},
        "model.head_dropout": [0.0, 0.25],
    }
    path = search_sweep(tmp_path, eurosat_root, space)
    first = sweep_process(path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 trials done, 1 pruned, 0 failed" in first.stdout
    assert "[2/2] trial=1: pruned after epoch 0, not tested" in first.stdout
    folder = tmp_path / "runs" / "study"
    assert (folder / "optuna.journal").is_file()
    trials = {row["trial"]: row for row in csv_dicts(folder / "trials.csv")}
    assert trials["0"]["state"] == "complete" and float(trials["0"]["test_acc"]) >= 0
    assert trials["1"]["state"] == "pruned" and trials["1"]["pruned_at_epoch"] in ("0", "0.0")
    assert trials["1"]["test_acc"] == ""
    complete = folder / "trial=0" / "version_0"
    best_val = max(float(r["val_acc"]) for r in csv_dicts(complete / runs.METRICS_CSV) if r["val_acc"])
    assert float(trials["0"]["val_acc"]) == pytest.approx(best_val)
    pruned = folder / "trial=1" / "version_0"
    info = json.loads((pruned / runs.RUN_INFO).read_text())
    assert info["epochs"] == 1 and not (pruned / runs.TEST_METRICS).exists()
    config = yaml.safe_load((pruned / runs.CONFIG).read_text())
    assert config["model"]["head_dropout"] in (0.0, 0.25)

    again = sweep_process(path, "--no-check")
    assert again.returncode == 0 and "0 trials done, 0 pruned, 0 failed" in again.stdout


def test_a_bad_search_space_key_fails_before_any_trial(
    eurosat_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("optuna")
    path = search_sweep(
        tmp_path, eurosat_root, {"model.optimizer.init_args.lrate": {"low": 0.1, "high": 1.0}}
    )
    with pytest.raises(SystemExit):
        main(["sweep", "--config", str(path)])
    err = capsys.readouterr().err
    assert "search.space 'model.optimizer.init_args.lrate' = 0.1" in err and not (tmp_path / "runs").exists()


def csv_dicts(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", ["cifar10_study", "cnn64_study", "cifar10_search"])
def test_the_shipped_sweeps_parse(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every axis value (or search choice and bound) of the sweep files parses as a config."""
    from imgcls.commands.sweep import parse_run
    from imgcls.studies.grid import check_sweep

    monkeypatch.chdir(REPO)
    sweep = load_sweep(REPO / "configs" / "sweeps" / f"{name}.yaml")
    if sweep.search is None:
        check_sweep(sweep, parse_run)
        assert len(expand(sweep)) == {"cifar10_study": 27, "cnn64_study": 9}[name]
    else:
        pytest.importorskip("optuna")
        from imgcls.studies.search import Search

        Search(sweep).check(parse_run)
