"""What a run folder holds after fit, test and predict: report files, run_info.json, TensorBoard reports.

``tiny_runs`` trains two tiny runs (two seeds of one experiment) once per test session through the
real CLI, tests them, and predicts with one; test_analysis and test_notebooks read the same runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from imgcls import runs
from imgcls.callbacks.reports import TopKPredictions, prediction_rows
from imgcls.commands import main
from imgcls.runs import dataset_name
from tests.conftest import REPO
from tests.fixtures import folders

# a tiny timm backbone at 32 px, two short epochs: a run takes seconds on a CPU
FAST = [
    "--config",
    str(REPO / "configs" / "eurosat_sample.yaml"),
    "--model.backbone=test_resnet",
    "--model.pretrained=false",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    '--trainer.callbacks=[{"class_path": "imgcls.callbacks.ImagesPerSecond"}, '
    '{"class_path": "imgcls.callbacks.TensorBoardReports"}]',
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--data.init_args.num_workers=0",
    "--data.init_args.batch_size=8",
    "--data.init_args.image_size=32",
]
FIT = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
# experiment name -> extra arguments per run; the two runs differ only in seed
RUNS = {"tiny": [["--seed_everything=0"], ["--seed_everything=1"]]}
_MADE: dict[str, dict[str, list[Path]]] = {}
# the copy of a run loads a checkpoint saved in another folder, which Lightning remarks on
COPIED_RUN = pytest.mark.filterwarnings("ignore:The dirpath has changed")


def make_tiny_runs(root: Path) -> dict[str, list[Path]]:
    """Fit and test every run of ``RUNS`` under ``root/runs``; predict with the first. Made once per process."""
    if "runs" in _MADE:
        return _MADE["runs"]
    data = folders.make_eurosat(root / "eurosat")
    runs_dir = root / "runs"
    made: dict[str, list[Path]] = {}
    for experiment, variants in RUNS.items():
        for version, extra in enumerate(variants):
            common = [
                *FAST,
                f"--data.init_args.root={data}",
                f"--runs_dir={runs_dir}",
                f"--experiment={experiment}",
            ]
            main(["fit", *common, *FIT, *extra])
            main(
                [
                    "test",
                    *common,
                    *extra,
                    f"--ckpt_path={runs_dir / experiment / f'version_{version}' / 'checkpoints' / 'best.ckpt'}",
                ]
            )
            made.setdefault(experiment, []).append(runs_dir / experiment / f"version_{version}")
    first = made["tiny"][0]
    unlabeled = root / "unlabeled"
    unlabeled.mkdir()
    for i in range(3):
        src = next((data / folders.EUROSAT_CLASSES[i]).iterdir())
        (unlabeled / f"image_{i}.jpg").write_bytes(src.read_bytes())
    predict(first, unlabeled, data)
    _MADE["runs"] = made
    return made


def predict(run_dir: Path, predict_root: Path, data: Path) -> None:
    """``imgcls predict`` with the best checkpoint of a tiny run (``runs_dir/tiny/version_N``)."""
    main(
        [
            "predict",
            *FAST,
            f"--data.init_args.root={data}",
            f"--runs_dir={run_dir.parents[1]}",
            "--experiment=tiny",
            f"--ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}",
            f"--data.init_args.predict_root={predict_root}",
        ]
    )


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of a tiny run, for a test that adds files to a run: the shared runs stay as made."""
    copy = tmp_path / "runs" / "tiny" / "version_0"
    shutil.copytree(run_dir, copy)
    return copy


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    return make_tiny_runs(tmp_path_factory.mktemp("tiny_runs"))


@pytest.fixture
def run(tiny_runs: dict[str, list[Path]]) -> Path:
    return tiny_runs["tiny"][0]


def test_test_writes_every_report(run: Path) -> None:
    for name in (
        "metrics.json",
        "classification_report.csv",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "predictions.csv",
        "examples.png",
        "class_distribution.csv",
        "class_distribution.png",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    predictions = pd.read_csv(run / "predictions.csv")
    assert len(predictions) == metrics["test_samples"] == 20  # 2 of 8 images per class, 10 classes
    assert predictions["index"].is_unique
    assert predictions["sample"].str.endswith(".jpg").all()
    assert {"true", "predicted", "probability", "correct", "top5", "top5_prob"} <= set(predictions.columns)
    top = predictions[[f"top{k}_prob" for k in range(1, 6)]].to_numpy()
    assert (top[:, :-1] >= top[:, 1:]).all() and (top <= 1).all()
    assert (predictions["predicted"] == predictions["top1"]).all()
    assert predictions["correct"].mean() == pytest.approx(metrics["test_acc"], abs=1e-6)
    confusion = pd.read_csv(run / "confusion_matrix.csv", index_col=0)
    assert confusion.to_numpy().sum() == 20
    distribution = pd.read_csv(run / "class_distribution.csv", index_col=0)
    assert list(distribution.columns) == ["train", "val", "test"]
    assert distribution.to_numpy().sum() == 80 and distribution["test"].sum() == 20


def test_predict_writes_top_k_csv_for_a_folder_of_images(run: Path) -> None:
    predictions = pd.read_csv(run / "predict.csv", keep_default_na=False)
    assert len(predictions) == 3
    assert predictions["sample"].str.contains("image_").all()
    assert (predictions["true"] == "").all()  # unlabeled images
    assert predictions["top1_prob"].between(0, 1).all()


@COPIED_RUN
def test_a_second_predict_numbers_its_csv_and_keeps_the_first(run: Path, tmp_path: Path) -> None:
    """A user's second ``predict`` of a run overwrote its first predict.csv (the config was numbered)."""
    root = run.parents[2]  # make_tiny_runs's folder: eurosat/, unlabeled/, runs/
    copy = copy_run(run, tmp_path)
    first = (copy / "predict.csv").read_bytes()
    predict(copy, root / "unlabeled", root / "eurosat")
    assert (copy / "predict.csv").read_bytes() == first
    assert len(pd.read_csv(copy / "predict_2.csv")) == 3
    assert (copy / "config_predict_2.yaml").is_file()
    assert runs.predict_csvs(copy) == [copy / "predict.csv", copy / "predict_2.csv"]


@COPIED_RUN
def test_predict_on_one_image_file(run: Path, tmp_path: Path) -> None:
    """``--data.init_args.predict_root path/to/image.jpg`` was refused as "does not exist"."""
    root = run.parents[2]
    copy = copy_run(run, tmp_path)
    image = root / "unlabeled" / "image_1.jpg"
    predict(copy, image, root / "eurosat")
    predictions = pd.read_csv(copy / "predict_2.csv", keep_default_na=False)
    assert predictions["sample"].tolist() == [str(image)]
    assert predictions["top1_prob"].between(0, 1).all()


def test_predict_csv_names_count_up_like_config_names(tmp_path: Path) -> None:
    assert runs.free_predict_filename(tmp_path) == "predict.csv"
    for name in ("predict.csv", "predict_2.csv", "predict-tta-dihedral.csv", "predict_notes.csv"):
        (tmp_path / name).touch()
    assert runs.free_predict_filename(tmp_path) == "predict_3.csv"
    assert runs.free_predict_filename(tmp_path, "dihedral") == "predict-tta-dihedral_2.csv"
    assert runs.free_predict_filename(tmp_path, "hflip") == "predict-tta-hflip.csv"
    (tmp_path / "predict_10.csv").touch()
    assert runs.predict_csvs(tmp_path) == [
        tmp_path / n for n in ("predict.csv", "predict_2.csv", "predict_10.csv")
    ]
    assert runs.predict_csvs(tmp_path, "dihedral") == [tmp_path / "predict-tta-dihedral.csv"]


@pytest.mark.parametrize(
    ("root", "name"),
    [
        ("../shared/data/eurosat_rgb", "eurosat_rgb"),
        ("../shared/data/fashion_mnist/raw", "fashion_mnist"),
        ("/data/FashionMNIST/raw", "FashionMNIST"),
        ("/data/intel/images", "intel"),
    ],
)
def test_dataset_name_skips_layout_folders(root: str, name: str) -> None:
    assert dataset_name(root) == name


def test_fit_records_run_info(run: Path) -> None:
    info = json.loads((run / "run_info.json").read_text())
    assert info["backbone"] == "test_resnet"
    assert info["dataset"] == "eurosat" and info["datamodule"] == "EuroSATDataModule"
    assert info["split_sizes"]["test"] == 20
    assert info["input_size"] == [3, 32, 32]
    assert info["gflops"] > 0 and info["total_params"] > 0
    assert info["epochs"] == 2 and info["seconds_per_epoch"] > 0
    assert "val_loss" in info["final"]


def test_tensorboard_holds_validation_reports_batch_grid_and_hparams(run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: dict[str, set[str]] = {"scalars": set(), "images": set(), "tensors": set()}
    for events in run.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
        accumulator.Reload()
        for kind, names in accumulator.Tags().items():
            if kind in tags:
                tags[kind].update(names)
    for metric in ("precision", "recall", "f1"):
        assert f"val_{metric}/Forest" in tags["scalars"]
    assert {"val_confusion_matrix", "train_batch"} <= tags["images"]
    assert {"hparams/val_loss", "hparams/test_acc"} <= tags["scalars"]
    plugin_tags = set()
    for events in run.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        try:
            plugin_tags.update(accumulator.PluginTagToContent("hparams"))
        except KeyError:  # this events file (of `test`) holds no hparams summary
            continue
    assert "_hparams_/experiment" in plugin_tags and "_hparams_/session_start_info" in plugin_tags


def test_prediction_collector_keeps_each_sample_once() -> None:
    collector = TopKPredictions(top_k=2)
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.7, 0.2, 0.1]])
    # the third row repeats sample 4, as a distributed sampler's padding does
    collector.update(probs, torch.tensor([0, 1, 0]), torch.tensor([4, 9, 4]))
    gathered = collector.compute()
    assert gathered["index"].tolist() == [4, 9]
    rows = prediction_rows(gathered, ["a", "b", "c"], ["x.jpg", "y.jpg"])
    assert rows[0]["predicted"] == "a" and rows[0]["correct"] is True
    assert rows[1]["predicted"] == "c" and rows[1]["correct"] is False and rows[1]["top2"] == "b"
