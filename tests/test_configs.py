"""Every config in configs/ runs through the real CLI: fit, then test and predict, on fixture data."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml

from imgcls.commands import main
from tests.conftest import REPO

CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml"))

# datamodule class -> (fixture dataset, extra data arguments); a new datamodule adds a line here.
# Extra values may name the fixture's folder as {root}; a "root" extra replaces the fixture root itself.
FIXTURE_FOR = {
    "imgcls.EuroSATDataModule": ("eurosat", {}),
    "imgcls.ImageFolderDataModule": ("image_folder", {}),
    "imgcls.MNISTDataModule": ("mnist", {}),
    "imgcls.FashionMNISTDataModule": ("fashion_mnist", {}),
    "imgcls.CIFAR10DataModule": ("cifar10", {}),
    "imgcls.EuroSATMSDataModule": ("eurosat_ms", {}),
    "imgcls.CUBDataModule": ("cub", {}),
    "imgcls.MiniImageNetDataModule": ("miniimagenet", {}),
    "imgcls.TinyImageNetDataModule": ("tinyimagenet", {}),
}
# config name -> the same, for a config whose data needs another layout than its class's default fixture
FIXTURE_FOR_CONFIG = {
    "intel_resnet50_mlp": (
        "intel",
        {"root": "{root}/seg_train", "test_root": "{root}/seg_test", "predict_root": "{root}/seg_pred"},
    ),
}
# model overrides that make every config one quick step: a tiny timm backbone at 32 px
FAST = [
    "--model.backbone=test_resnet",
    "--model.backbone_kwargs=null",
    "--model.pretrained=false",
    "--model.compile=false",
    "--model.data_init=0",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.precision=32-true",
    "--data.init_args.num_workers=0",
    "--data.init_args.batch_size=4",
    "--data.init_args.image_size=32",
]


def load_config(path: Path) -> dict:
    config = yaml.safe_load(path.read_text())
    data = config.get("data")
    if isinstance(data, str):  # a nested config file, as in `data: base/eurosat_rgb.yaml`
        config["data"] = yaml.safe_load((path.parent / data).read_text())
    return config


def data_overrides(config_path: Path, fixture_roots: dict[str, Path]) -> list[str]:
    data = load_config(config_path)["data"]
    fixture, extra = FIXTURE_FOR_CONFIG.get(config_path.stem) or FIXTURE_FOR[data["class_path"]]
    root = fixture_roots[fixture]
    values = {"root": str(root), **{key: value.format(root=root) for key, value in extra.items()}}
    return [f"--data.init_args.{key}={value}" for key, value in values.items()]


def test_every_config_has_a_fixture() -> None:
    unknown = {load_config(p)["data"]["class_path"] for p in CONFIGS} - set(FIXTURE_FOR)
    assert not unknown, f"add fixtures for {unknown} to FIXTURE_FOR"


YAML_FILES = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "sweeps" not in p.parts)


def test_no_config_overrides_a_key_of_a_section_it_loads_from_a_file() -> None:
    """`trainer: base/trainer.yaml` then `trainer.max_epochs: 3` in one file: jsonargparse keeps only the
    dotted key and drops the file (its callbacks and precision), silently."""
    offenders = []
    for path in YAML_FILES:
        config = yaml.safe_load(path.read_text())
        if not isinstance(config, dict):
            continue
        from_files = {
            key for key, value in config.items() if isinstance(value, str) and value.endswith(".yaml")
        }
        offenders += [
            f"{path.relative_to(REPO)}: {key}" for key in config if key.split(".")[0] in from_files - {key}
        ]
    assert not offenders, f"list these sections inline instead of loading them from a file: {offenders}"


def test_a_dotted_key_after_a_section_file_drops_the_file(tmp_path: Path) -> None:
    """The jsonargparse behaviour the test above guards against; if it ever merges, the guard can go."""
    (tmp_path / "trainer.yaml").write_text("max_epochs: 30\nprecision: bf16-mixed\n")
    sample = (REPO / "configs" / "eurosat_sample.yaml").read_text()
    (tmp_path / "run.yaml").write_text(
        "trainer: trainer.yaml\ntrainer.max_epochs: 3\n" + sample[sample.index("\ndata:") :]
    )
    out = tmp_path / "printed.yaml"
    with pytest.raises(SystemExit), open(out, "w") as stream, contextlib.redirect_stdout(stream):
        main(["fit", "--config", str(tmp_path / "run.yaml"), "--print_config"])
    trainer = yaml.safe_load(out.read_text())["trainer"]
    assert trainer["max_epochs"] == 3
    assert trainer["precision"] != "bf16-mixed"


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_fits_tests_and_predicts(config: Path, fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    common = [
        "--config",
        str(config),
        f"--runs_dir={tmp_path}",
        *FAST,
        *data_overrides(config, fixture_roots),
    ]
    main(
        [
            "fit",
            *common,
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1",
        ]
    )
    run = tmp_path / config.stem / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "config.yaml").is_file()
    main(["test", *common, "--ckpt_path=best", "--trainer.limit_test_batches=2"])
    assert (run / "metrics.json").is_file()
    main(["predict", *common, "--ckpt_path=last", "--trainer.limit_predict_batches=1"])


def test_the_gpu_eurosat_config_is_the_fast_one_with_the_benchmarks_gpu_variant() -> None:
    """benchmarks/bench_recipes.py measures configs/eurosat_resnet18_gpu.yaml as overrides of the fast
    config: the two must not drift apart."""
    from benchmarks.bench_recipes import VARIANTS

    expected = yaml.safe_load((REPO / "configs" / "eurosat_resnet18_fast.yaml").read_text())
    for option in VARIANTS["gpu"]:
        key, value = option.removeprefix("--").split("=", 1)
        *parents, last = key.split(".")
        node = expected
        for part in parents:
            node = node[part]
        node[last] = yaml.safe_load(value)
    assert yaml.safe_load((REPO / "configs" / "eurosat_resnet18_gpu.yaml").read_text()) == expected
