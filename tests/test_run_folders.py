"""Run folders that stay true: evaluations beside the fit's curves, clean failures, plain progress,
compared hyperparameters, one-line errors (issue 10's defects 1, 3, 4, 5, 7, 13, 14, 15)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

from imgcls import runs
from imgcls.callbacks import TensorBoardReports
from imgcls.callbacks.tensorboard import compared_hparams
from imgcls.commands import main
from tests.conftest import REPO
from tests.test_cli import CONFIG, TINY


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def event_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files directly in ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(folder.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    return found


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """One 3-epoch run (best.ckpt earlier than last.ckpt is not required) and the arguments it used."""
    from tests.fixtures import folders

    root = tmp_path_factory.mktemp("run_folders")
    data = folders.make_eurosat(root / "eurosat")
    args = ["--config", CONFIG, f"--runs_dir={root / 'runs'}", f"--data.init_args.root={data}", *TINY]
    main(["fit", *args, "--trainer.max_epochs=3"])
    return args, root / "runs" / "eurosat_sample" / "version_0"


def copy_run(fitted: tuple[list[str], Path], tmp_path: Path) -> tuple[list[str], Path]:
    """A copy of the fitted run under ``tmp_path/runs``, and the arguments that point at it."""
    args, original = fitted
    destination = tmp_path / "runs" / "eurosat_sample" / "version_0"
    shutil.copytree(original, destination)
    return [
        a if not a.startswith("--runs_dir") else f"--runs_dir={tmp_path / 'runs'}" for a in args
    ], destination


def test_validate_and_test_leave_the_fit_curves_alone(
    fitted: tuple[list[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args, run = copy_run(fitted, tmp_path)
    fit_csv = (run / runs.METRICS_CSV).read_text()
    fit_events = event_scalars(run)
    last_step = runs.read_checkpoint_position(run / "checkpoints" / "last.ckpt")["global_step"]
    best = runs.read_checkpoint_position(run / "checkpoints" / "best.ckpt")

    main(["validate", *args, "--ckpt_path=last"])
    main(["test", *args, "--ckpt_path=best"])
    main(["test", *args, "--ckpt_path=last"])
    # each command says where its files are and how to open the experiment's curves
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("imgcls: ")]
    assert said[-2].startswith(f"imgcls: run folder {run / 'test-last'}: metrics.json")
    assert said[-1].endswith(f"--logdir {run.parent}")

    # the fit's CSV and curves are untouched; nothing of either command is at step 0 of the fit
    assert (run / runs.METRICS_CSV).read_text() == fit_csv
    after = event_scalars(run)
    for tag in ("val_acc", "val_loss", "epoch"):
        assert after[tag] == fit_events[tag], tag
    assert "test_acc" not in after and "test_loss" not in after
    # each command logged into a subfolder of its own, at the step and epoch of its checkpoint
    (validate,) = csv_rows(run / "validate-last" / runs.METRICS_CSV)
    assert int(validate["step"]) == last_step - 1 and validate["val_acc"] != ""
    (test,) = csv_rows(run / "test" / runs.METRICS_CSV)
    # at the step where the fit drew that checkpoint's epoch: the points line up in TensorBoard
    best_epoch_step = next(
        int(r["step"])
        for r in csv_rows(run / runs.METRICS_CSV)
        if r["epoch"] == str(best["epoch"]) and r["val_acc"]
    )
    assert int(test["step"]) == best_epoch_step == best["global_step"] - 1
    assert int(test["epoch"]) == best["epoch"]
    assert [step for step, _ in event_scalars(run / "test")["test_acc"]] == [best_epoch_step]
    # and the configs of the commands sit in the run folder, beside config.yaml; they loaded the
    # checkpoints with weights_only (no code unpickled)
    assert (run / "config_validate.yaml").is_file() and (run / "config_test.yaml").is_file()
    assert yaml.safe_load((run / "config_test.yaml").read_text())["weights_only"] is True


def test_run_info_final_figures_are_of_one_epoch(fitted: tuple[list[str], Path]) -> None:
    _, run = fitted
    info = json.loads((run / runs.RUN_INFO).read_text())
    rows = [r for r in csv_rows(run / runs.METRICS_CSV) if r.get("train_epoch_sec")]
    last = rows[-1]
    assert info["final_epoch"] == int(last["epoch"]) == 2
    assert info["final"]["train_epoch_sec"] == pytest.approx(float(last["train_epoch_sec"]))
    assert info["final"]["train_images_per_sec"] == pytest.approx(float(last["train_images_per_sec"]))
    (val,) = [r for r in csv_rows(run / runs.METRICS_CSV) if r.get("val_acc") and r["epoch"] == last["epoch"]]
    assert info["final"]["val_acc"] == pytest.approx(float(val["val_acc"]))


def test_hparams_tab_holds_the_compared_choices(fitted: tuple[list[str], Path]) -> None:
    _, run = fitted
    params = compared_hparams(yaml.safe_load((run / runs.CONFIG).read_text()))
    assert params["model"] == "test_resnet" and params["optimizer"] == "AdamW"
    assert params["lr"] == 0.002 and params["batch_size"] == 8 and params["seed"] == 0
    assert params["data"] == "EuroSATDataModule" and params["lr_scheduler"] == "ReduceLROnPlateau"
    assert len(params) < 25 and not any(
        k.startswith(("checkpoint", "trainer.", "early_stopping")) for k in params
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for events in run.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        content = accumulator.PluginTagToContent("hparams").get("_hparams_/session_start_info")
        if content:
            assert b"test_resnet" in content and b"checkpoint.dirpath" not in content
            return
    pytest.fail("no hparams summary in the run folder")


def test_batch_job_output_gets_one_line_per_epoch(
    eurosat_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # pytest's captured stdout is no terminal, as a Slurm job's log file is not
    main(
        [
            "fit",
            "--config",
            CONFIG,
            f"--runs_dir={tmp_path}",
            f"--data.init_args.root={eurosat_root}",
            *TINY,
            "--trainer.max_epochs=2",
        ]
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2") and "ETA" in lines[0] and "ETA" not in lines[1]
    for part in ("train_loss", "train_acc", "val_loss", "val_acc", "img/s", " s"):
        assert part in lines[1], part


def test_a_failed_fit_leaves_no_run_folder(
    eurosat_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "no_such_dataset"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--config",
                CONFIG,
                f"--runs_dir={tmp_path / 'runs'}",
                f"--data.init_args.root={bad}",
                *TINY,
            ]
        )
    assert exit_info.value.code == 2 and "not found" in capsys.readouterr().err
    assert not list((tmp_path / "runs" / "eurosat_sample").glob("version_*"))
    assert not runs.is_run_dir(tmp_path / "runs" / "eurosat_sample")


def test_a_failed_fit_keeps_earlier_runs(
    fitted: tuple[list[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args, run = copy_run(fitted, tmp_path)
    args = [
        a if not a.startswith("--data.init_args.root") else "--data.init_args.root=/nonexistent" for a in args
    ]
    with pytest.raises(SystemExit):
        main(["fit", *args])
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / runs.METRICS_CSV).is_file()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short"])
def test_a_damaged_checkpoint_is_one_error_line(
    fitted: tuple[list[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture, content: bytes
) -> None:
    args, _ = fitted
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["test", *args, f"--ckpt_path={damaged}"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert err.startswith("imgcls: error:") and len(err.splitlines()) == 1
    assert str(damaged) in err and "damaged" in err


def test_a_truncated_real_checkpoint_is_refused(fitted: tuple[list[str], Path], tmp_path: Path) -> None:
    _, run = fitted
    data = (run / "checkpoints" / "best.ckpt").read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    from imgcls.errors import DataError

    with pytest.raises(DataError, match="damaged"):
        runs.read_checkpoint_position(cut)


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--trainer.max_epoch=3", "trainer.max_epochs"),  # a prefix is no longer taken for the option
        ("--trainer.max_epohcs=3", "trainer.max_epochs"),
        ("--data.init_args.batch_sise=3", "data.init_args.batch_size"),
    ],
)
def test_command_line_typos_are_one_line_with_the_closest_key(
    option: str, expected: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", CONFIG, option])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert len(err.splitlines()) == 1 and err.startswith("imgcls: error:")
    assert f"(did you mean --{expected}?)" in err and "usage" not in err


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for command in ("fit", "validate", "test", "predict", "summary", "compare"):
        assert f"\n  {command} " in out, command


def test_tensorboard_reports_is_configured_in_yaml() -> None:
    config = yaml.safe_load((REPO / "configs" / "base" / "trainer.yaml").read_text())
    paths = [c["class_path"] for c in config["callbacks"]]
    assert "imgcls.callbacks.TensorBoardReports" in paths and "imgcls.callbacks.ImagesPerSecond" in paths
    assert TensorBoardReports().hparams  # switches of what it draws remain; no enabled= switch


def test_two_processes_fit_and_report_what_one_does(eurosat_root: Path, tmp_path: Path) -> None:
    """fit and test with 2 CPU processes (ddp, gloo): only rank zero writes, and the report of the
    checkpoint equals a 1-process test of it (every test image counted once)."""
    import subprocess
    import sys

    def imgcls(command: str, runs_dir: Path, devices: int, *extra: str) -> None:
        args = ["--config", CONFIG, f"--runs_dir={runs_dir}", f"--data.init_args.root={eurosat_root}", *TINY]
        strategy = "ddp" if devices > 1 else "auto"
        # a new process: Lightning starts the second rank by running the same command line again
        options = [f"--trainer.devices={devices}", f"--trainer.strategy={strategy}", *extra]
        subprocess.run(
            [sys.executable, "-m", "imgcls", command, *args, *options],
            check=True,
            capture_output=True,
            timeout=300,
        )

    imgcls("fit", tmp_path / "two", 2, "--trainer.max_epochs=2")
    two = tmp_path / "two" / "eurosat_sample" / "version_0"
    made = sorted(str(p.relative_to(two.parent)) for p in two.parent.parent.rglob("*") if p.is_file())
    assert [p for p in made if "events" not in p] == [
        "version_0/checkpoints/best.ckpt",
        "version_0/checkpoints/last.ckpt",
        "version_0/config.yaml",
        "version_0/hparams.yaml",
        "version_0/metrics.csv",
        "version_0/run_info.json",
    ]
    assert len([p for p in made if "events" in p]) == 1  # one TensorBoard writer, rank zero's
    assert json.loads((two / runs.RUN_INFO).read_text())["world_size"] == 2
    shutil.copytree(two.parent.parent, tmp_path / "one")
    one = tmp_path / "one" / "eurosat_sample" / "version_0"
    imgcls("test", tmp_path / "two", 2, "--ckpt_path=best")
    imgcls("test", tmp_path / "one", 1, "--ckpt_path=best")
    for name in (runs.CLASSIFICATION_REPORT, runs.CONFUSION_MATRIX):
        assert (two / name).read_text() == (one / name).read_text(), name
    metrics = [json.loads((folder / runs.TEST_METRICS).read_text()) for folder in (two, one)]
    for key in ("test_acc", "test_loss", "test_f1_macro", "test_samples", "epoch"):
        assert metrics[0][key] == pytest.approx(metrics[1][key], rel=1e-6), key
    predictions = [csv_rows(folder / runs.PREDICTIONS) for folder in (two, one)]  # both in index order
    assert len(predictions[0]) == len(predictions[1]) == metrics[1]["test_samples"]
    assert [(r["index"], r["predicted"]) for r in predictions[0]] == [
        (r["index"], r["predicted"]) for r in predictions[1]
    ]
    assert sorted(p.name for p in two.parent.iterdir()) == ["version_0"]  # the second rank made no folder


class SeenIndices(Callback):
    """Appends each training batch's sample indices to ``$SEEN_DIR/rank<R>.jsonl``, one line per batch."""

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        path = Path(os.environ["SEEN_DIR"]) / f"rank{trainer.global_rank}.jsonl"
        with path.open("a") as f:
            f.write(json.dumps({"epoch": trainer.current_epoch, "index": batch["index"].tolist()}) + "\n")


def test_two_ranks_build_the_cache_once_and_share_each_epoch(eurosat_root: Path, tmp_path: Path) -> None:
    """A cold cache under 2 processes: one decodes it while the other waits, and each epoch every
    training sample goes to exactly one rank (DistributedSampler pads an odd count by one)."""
    import subprocess
    import sys

    seen = tmp_path / "seen"
    seen.mkdir()
    args = ["--config", CONFIG, f"--runs_dir={tmp_path}", f"--data.init_args.root={eurosat_root}", *TINY]
    cache = ["--data.init_args.cache=always", f"--data.init_args.cache_dir={tmp_path / 'cache'}"]
    options = ["--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.limit_train_batches=null"]
    options += ["--trainer.max_epochs=2", "--trainer.callbacks+=tests.test_run_folders.SeenIndices"]
    # 50 training images: 25 per rank, in batches of 10 (a last batch of 1 would be dropped)
    options += ["--data.init_args.batch_size=10"]
    fit = subprocess.run(
        [sys.executable, "-m", "imgcls", "fit", *args, *cache, *options],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SEEN_DIR": str(seen)},
        cwd=REPO,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    builds = fit.stderr.count("decoding ")
    assert builds == len(list((tmp_path / "cache").glob("*.npy"))) >= 1, fit.stderr[-3000:]
    batches = [
        json.loads(line) for rank in (0, 1) for line in (seen / f"rank{rank}.jsonl").read_text().splitlines()
    ]
    train_size = json.loads((tmp_path / "eurosat_sample" / "version_0" / runs.RUN_INFO).read_text())[
        "split_sizes"
    ]["train"]
    for epoch in (0, 1):
        indices = sorted(i for b in batches if b["epoch"] == epoch for i in b["index"])
        assert len(set(indices)) == train_size  # every sample of the split, on one rank or the other
        assert len(indices) - train_size == train_size % 2  # padding, if any, is one sample


def test_a_resumed_fit_logs_each_step_once(eurosat_root: Path, tmp_path: Path) -> None:
    """Resuming from an earlier checkpoint after epochs were logged past it (a run killed in a later
    epoch) leaves one value per step in metrics.csv and TensorBoard, the resumed run's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["--config", CONFIG, f"--runs_dir={tmp_path}", f"--data.init_args.root={eurosat_root}", *TINY]
    run = tmp_path / "eurosat_sample" / "version_0"
    main(["fit", *args, "--trainer.max_epochs=2"])
    shutil.copy(run / "checkpoints" / "last.ckpt", run / "checkpoints" / "epoch1.ckpt")
    main(["fit", *args, "--trainer.max_epochs=3", "--ckpt_path=last"])  # logs epoch 2, as a killed run had
    main(["fit", *args, "--trainer.max_epochs=3", f"--ckpt_path={run / 'checkpoints' / 'epoch1.ckpt'}"])

    rows = [r for r in csv_rows(run / runs.METRICS_CSV) if r["val_loss"]]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    steps = [int(r["step"]) for r in csv_rows(run / runs.METRICS_CSV)]
    lr_steps = [int(r["step"]) for r in csv_rows(run / runs.METRICS_CSV) if r.get("lr-AdamW/backbone")]
    assert len(lr_steps) == len(set(lr_steps)) == 3 and max(steps) == int(rows[-1]["step"])
    accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0})  # every event file, in order
    accumulator.Reload()
    val_steps = [event.step for event in accumulator.Scalars("val_loss")]
    assert val_steps == sorted(set(val_steps)) and len(val_steps) == 3
    values = [event.value for event in accumulator.Scalars("val_loss")]
    assert values[-1] == pytest.approx(float(rows[-1]["val_loss"]), rel=1e-6)  # the resumed run's value


def test_runs_started_at_once_never_share_a_version_folder(tmp_path: Path) -> None:
    import threading

    barrier, claimed = threading.Barrier(8), []

    def claim() -> None:
        barrier.wait()  # all look for the next free number at the same moment
        claimed.append(runs.claim_version_dir(tmp_path / "exp").name)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(claimed, key=lambda name: runs.version_number(Path(name))) == [
        f"version_{i}" for i in range(8)
    ]


def test_a_checkpoint_write_cut_short_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from imgcls.checkpoint_io import AtomicCheckpointIO

    io, target = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1}, target)
    real_save = torch.save

    def killed_midway(obj: object, f: object) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2}, target)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(target, weights_only=True) == {"epoch": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]
    # a process killed outright leaves its partial file; the next save of the same file removes it
    (target.parent / "last.ckpt.partial-99999").write_bytes(b"cut short")
    io.save_checkpoint({"epoch": 3}, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]
    assert torch.load(target, weights_only=True) == {"epoch": 3}


def test_fit_writes_checkpoints_through_the_atomic_writer(fitted: tuple[list[str], Path]) -> None:
    from imgcls.checkpoint_io import AtomicCheckpointIO
    from imgcls.commands.lightning import ImgclsCLI

    args, _ = fitted
    cli = ImgclsCLI(args=[*args, "--trainer.fast_dev_run=true"], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_a_resumed_fit_keeps_the_plateau_schedule(eurosat_root: Path, tmp_path: Path) -> None:
    """last.ckpt holds ReduceLROnPlateau after it has seen the epoch's metric: resuming from it gives
    the learning rates of a run that was never interrupted."""
    probe = [
        "--model.monitor=val_err_probe",  # worse every epoch: patience 0 cuts the rate after epoch 1
        "--trainer.callbacks+=tests.test_cli.RisingErrorProbe",
        "--model.lr_scheduler.init_args.patience=0",
    ]

    def rates(runs_dir: Path) -> list[float]:
        rows = csv_rows(runs_dir / "eurosat_sample" / "version_0" / runs.METRICS_CSV)
        return [float(r["lr-AdamW/backbone"]) for r in rows if r.get("lr-AdamW/backbone")]

    common = ["--config", CONFIG, f"--data.init_args.root={eurosat_root}", *TINY, *probe]
    main(["fit", *common, f"--runs_dir={tmp_path / 'whole'}", "--trainer.max_epochs=3"])
    main(["fit", *common, f"--runs_dir={tmp_path / 'resumed'}", "--trainer.max_epochs=2"])
    main(["fit", *common, f"--runs_dir={tmp_path / 'resumed'}", "--trainer.max_epochs=3", "--ckpt_path=last"])
    whole = rates(tmp_path / "whole")
    assert whole[2] < whole[1] == whole[0]  # the schedule did cut the rate for epoch 2
    assert rates(tmp_path / "resumed") == pytest.approx(whole)


class KillAt(Callback):
    """Kills its own process outright (SIGKILL, as ``kill -9``) at one batch of one epoch."""

    signum = signal.SIGKILL

    def __init__(self, epoch: int = 1, batch: int = 1) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            self.send()

    def send(self) -> None:
        os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("cache", ["always", "never"])
def test_a_fit_killed_mid_epoch_resumes_to_the_uninterrupted_result(
    eurosat_root: Path, tmp_path: Path, cache: str
) -> None:
    """``kill -9`` in epoch 1, then ``fit --ckpt_path last``: the same weights and validation losses
    as a run never interrupted (data order, flips and dropout drawn alike), cached or streamed."""
    import subprocess
    import sys

    import torch

    common = [
        "--config",
        CONFIG,
        f"--data.init_args.root={eurosat_root}",
        f"--data.init_args.cache={cache}",
        f"--data.init_args.cache_dir={tmp_path / 'cache'}",
        *TINY,
        "--model.head_dropout=0.3",
        "--trainer.deterministic=true",
        "--trainer.max_epochs=3",
    ]
    main(["fit", *common, f"--runs_dir={tmp_path / 'whole'}"])
    killed = [sys.executable, "-m", "imgcls", "fit", *common, f"--runs_dir={tmp_path / 'killed'}"]
    finished = subprocess.run(
        [*killed, "--trainer.callbacks+=tests.test_run_folders.KillAt"],
        cwd=REPO,
        capture_output=True,
        timeout=300,
    )
    assert finished.returncode == -signal.SIGKILL
    run = tmp_path / "killed" / "eurosat_sample" / "version_0"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    main(["fit", *common, f"--runs_dir={tmp_path / 'killed'}", "--ckpt_path=last"])

    whole = tmp_path / "whole" / "eurosat_sample" / "version_0"
    states = [
        torch.load(r / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"] for r in (whole, run)
    ]
    assert states[0].keys() == states[1].keys()
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name
    losses = [[r["val_loss"] for r in csv_rows(r / runs.METRICS_CSV) if r["val_loss"]] for r in (whole, run)]
    assert len(losses[0]) == 3 and losses[0] == losses[1]


class TerminateAt(KillAt):
    """Sends itself SIGTERM (as ``kill``, Kubernetes, ``timeout`` or a cancelled job do) at one batch."""

    signum = signal.SIGTERM


@pytest.mark.parametrize("cache", ["always", "never"])
def test_a_fit_stopped_by_sigterm_mid_epoch_resumes_with_the_next_batch(
    eurosat_root: Path, tmp_path: Path, cache: str
) -> None:
    """SIGTERM at the second of four batches of epoch 2: exit 143 without a traceback, last.ckpt written
    then (2 batches into the epoch), a last line that names it and the command that resumes, and that
    command skips the batches trained and ends with the weights and validation losses of a run never
    stopped, cached or streamed."""
    import shlex
    import subprocess
    import sys

    import torch

    common = [
        "--config",
        CONFIG,
        f"--data.init_args.root={eurosat_root}",
        f"--data.init_args.cache={cache}",
        f"--data.init_args.cache_dir={tmp_path / 'cache'}",
        *TINY,
        "--trainer.limit_train_batches=4",
        "--model.head_dropout=0.3",
        "--trainer.deterministic=true",
        "--trainer.max_epochs=3",
    ]
    main(["fit", *common, f"--runs_dir={tmp_path / 'whole'}"])
    stopped = subprocess.run(
        [sys.executable, "-m", "imgcls", "fit", *common, f"--runs_dir={tmp_path / 'stopped'}",
         "--trainer.callbacks+=tests.test_run_folders.TerminateAt"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stdout + stopped.stderr
    run = tmp_path / "stopped" / "eurosat_sample" / "version_0"
    last = stopped.stdout.strip().splitlines()[-1]
    assert last.startswith("imgcls: stopped by SIGTERM;") and "holds epoch 2 up to its batch 2" in last, last
    assert runs.read_checkpoint_position(run / "checkpoints" / "last.ckpt")["batches_in_epoch"] == 2
    command = shlex.split(last.split("Resume: ", 1)[1])
    assert command[:2] == ["imgcls", "fit"] and command[-2:] == [
        "--ckpt_path",
        str(run / "checkpoints" / "last.ckpt"),
    ]
    assert "tests.test_run_folders.TerminateAt" in " ".join(command)  # the very command, callbacks and all
    main([arg for arg in command[1:] if "TerminateAt" not in arg])  # resumed without the signal
    whole = tmp_path / "whole" / "eurosat_sample" / "version_0"
    states = [
        torch.load(r / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"] for r in (whole, run)
    ]
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name
    losses = [[r["val_loss"] for r in csv_rows(r / runs.METRICS_CSV) if r["val_loss"]] for r in (whole, run)]
    assert len(losses[0]) == 3 and losses[0] == losses[1]
    # an end-of-epoch checkpoint says so
    assert runs.read_checkpoint_position(whole / "checkpoints" / "last.ckpt")["batches_in_epoch"] == 0


class InterruptAt(KillAt):
    """Sends itself SIGINT (Ctrl-C) at one batch."""

    signum = signal.SIGINT


def test_ctrl_c_stops_the_fit_after_the_batch_in_hand_with_the_command_that_resumes(
    eurosat_root: Path, tmp_path: Path
) -> None:
    """A first Ctrl-C stops as SIGTERM does: the batch in hand finishes, last.ckpt holds the place."""
    import subprocess
    import sys

    stopped = subprocess.run(
        [sys.executable, "-m", "imgcls", "fit", "--config", CONFIG, f"--data.init_args.root={eurosat_root}",
         *TINY, "--trainer.limit_train_batches=4", "--trainer.max_epochs=3", f"--runs_dir={tmp_path}",
         "--trainer.callbacks+=tests.test_run_folders.InterruptAt"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stdout + stopped.stderr
    assert "imgcls: Ctrl-C: stopping after the batch in hand" in stopped.stderr
    last = stopped.stdout.strip().splitlines()[-1]
    checkpoint = tmp_path / "eurosat_sample" / "version_0" / "checkpoints" / "last.ckpt"
    assert (
        last.startswith("imgcls: stopped by Ctrl-C (SIGINT);") and "holds epoch 2 up to its batch 2" in last
    )
    assert last.endswith(f"--ckpt_path {checkpoint}")
    assert runs.read_checkpoint_position(checkpoint)["batches_in_epoch"] == 2


class TerminateGroupAt(KillAt):
    """Sends SIGTERM to its whole process group, loader workers included (a cancelled Slurm step)."""

    def send(self) -> None:
        os.killpg(os.getpgrp(), signal.SIGTERM)


@pytest.mark.parametrize("cache", ["always", "never"])
def test_sigterm_to_the_process_group_stops_workers_without_a_traceback(
    eurosat_root: Path, tmp_path: Path, cache: str
) -> None:
    """Two loader workers get the signal too: they ignore it, the main process finishes the batch,
    saves its place, shuts them down and ends in one line; no process of the group is left."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "imgcls", "fit", "--config", CONFIG, f"--data.init_args.root={eurosat_root}",
         *TINY, "--data.init_args.num_workers=2", f"--data.init_args.cache={cache}",
         f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--trainer.limit_train_batches=4",
         "--trainer.max_epochs=3", f"--runs_dir={tmp_path}",
         "--trainer.callbacks+=tests.test_run_folders.TerminateGroupAt"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stdout + stderr and "killed by signal" not in stderr
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("imgcls: stopped by SIGTERM;") and "holds epoch 2 up to its batch 2" in last, last
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and _session_of(pid) == process.pid]
    assert not left, f"processes of the stopped run still running: {left}"


def _session_of(pid: str) -> int | None:
    try:
        stat = Path("/proc", pid, "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[4])  # state ppid pgrp session


def test_a_fit_that_diverges_says_it_stopped_and_why(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Early stopping ends a NaN run after its first epoch; Lightning says so on a logger nobody sees."""
    from tests.fixtures import folders

    data = folders.make_eurosat(tmp_path / "eurosat")
    args = ["--config", CONFIG, f"--runs_dir={tmp_path / 'runs'}", f"--data.init_args.root={data}", *TINY]
    main(["fit", *args, "--trainer.max_epochs=3", "--model.optimizer.init_args.lr=1e30"])
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("imgcls: ")]
    assert said[0].startswith("imgcls: training stopped after epoch 1 of 3: Monitored metric val_loss = nan")
    assert "the run diverged: lower model.optimizer's lr" in said[1]
    assert said[2].startswith("imgcls: run folder")  # and the run folder is still reported, with its files
    assert (tmp_path / "runs" / "eurosat_sample" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_a_fit_that_runs_its_course_says_nothing_about_stopping(
    fitted: tuple[list[str], Path], capsys: pytest.CaptureFixture
) -> None:
    args, _ = fitted
    capsys.readouterr()
    main(["fit", *args, "--trainer.max_epochs=1", "--experiment=course"])
    assert "stopped after" not in capsys.readouterr().out


def test_the_training_loader_saves_its_place_and_skips_only_within_that_epoch() -> None:
    import torch
    from torch.utils.data import TensorDataset

    from imgcls.data.samplers import EpochBatches, ResumableLoader

    def loader() -> ResumableLoader:
        order = EpochBatches(20, batch_size=4, shuffle=True, drop_last=False)
        return ResumableLoader(TensorDataset(torch.arange(20)), batch_sampler=order)

    first = loader()
    first.epoch_batches.set_epoch(3)
    whole = [batch[0].tolist() for batch in first]
    served = iter(first)
    for _ in range(2):
        next(served)
    state = first.state_dict()
    assert state == {"epoch": 3, "batches_served": 2}

    resumed = loader()
    resumed.load_state_dict(state)
    resumed.epoch_batches.set_epoch(3)
    assert [batch[0].tolist() for batch in resumed] == whole[2:]  # the same epoch, from its third batch
    assert resumed.state_dict() == {"epoch": 3, "batches_served": 0}  # served to its end: nothing to skip
    later = loader()
    later.load_state_dict(state)
    later.epoch_batches.set_epoch(4)  # a checkpoint of an earlier epoch: the next epoch is whole
    assert len(list(later)) == 5
