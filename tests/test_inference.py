"""A trained model outside training: self-describing checkpoints, the Predictor, predict without a
config, and exports checked against a real runtime (onnxruntime)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgcls.commands import main
from imgcls.contract import CHECKPOINT_KEY, InputContract, contract_of_checkpoint
from imgcls.errors import ConfigError, DataError
from imgcls.inference import Predictor, export_model
from imgcls.inference.inputs import decode
from tests.test_cli import CONFIG, TINY


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, fixture_roots: dict[str, Path]) -> Path:
    """A tiny EuroSAT run, fit and tested (its predictions.csv), at 32 px."""
    runs_dir = tmp_path_factory.mktemp("runs")
    args = [
        "--config",
        CONFIG,
        f"--runs_dir={runs_dir}",
        f"--data.init_args.root={fixture_roots['eurosat']}",
        *TINY,
    ]
    main(["fit", *args, "--trainer.max_epochs=1"])
    main(["test", *args, "--ckpt_path=best"])
    return runs_dir / "eurosat_sample" / "version_0"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def run_error(args: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("imgcls: error: "), err
    return err[0]


# --- self-describing checkpoints -------------------------------------------------------------------


def test_every_checkpoint_records_what_inference_needs(run: Path) -> None:
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = torch.load(run / "checkpoints" / name, map_location="cpu", weights_only=True)
        contract = InputContract.from_dict(checkpoint[CHECKPOINT_KEY], name)
        assert contract.class_names[:2] == ["AnnualCrop", "Forest"] and len(contract.class_names) == 10
        assert (contract.in_chans, contract.image_size, contract.mode) == (3, 32, "RGB")
        assert contract.mean == pytest.approx([0.3444, 0.3803, 0.4078])  # EuroSAT's statistics
        assert contract.resize == "square-antialias-bilinear" and contract.test_time_augmentation == "none"


def test_an_older_checkpoint_is_described_by_its_run_folder(run: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    recorded = InputContract.from_dict(checkpoint.pop(CHECKPOINT_KEY), "best.ckpt")
    older = run / "checkpoints" / "older.ckpt"
    torch.save(checkpoint, older)
    try:
        assert contract_of_checkpoint(checkpoint, older) == recorded
        alone = tmp_path / "older.ckpt"
        shutil.copy(older, alone)
        with pytest.raises(DataError, match="records no input contract"):
            contract_of_checkpoint(checkpoint, alone)
    finally:
        older.unlink()


# --- the predictor ------------------------------------------------------------------------------------


def test_the_predictor_gives_the_probabilities_of_test(run: Path) -> None:
    """Two lines of Python give what `imgcls test` wrote into predictions.csv for the same images."""
    reported = rows(run / "predictions.csv")
    predictor = Predictor.load(run)  # a run folder: its best.ckpt
    predictions = predictor.predict([row["sample"] for row in reported], top_k=5)
    assert len(predictions) == len(reported) > 0
    for prediction, row in zip(predictions, reported, strict=True):
        assert prediction.name == row["sample"]
        assert prediction.classes == [row[f"top{k}"] for k in range(1, 6)]
        # the report rounds to 6 decimals
        assert prediction.probabilities == pytest.approx(
            [float(row[f"top{k}_prob"]) for k in range(1, 6)], abs=6e-7
        )


def test_images_in_memory_are_prepared_as_files_are(run: Path, tmp_path: Path) -> None:
    sample = Path(rows(run / "predictions.csv")[0]["sample"])
    predictor = Predictor.load(run / "checkpoints" / "best.ckpt")
    _, from_file = predictor.probabilities(sample)
    with Image.open(sample) as image:
        pil = image.convert("RGB")
    array = np.array(pil)
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    _, together = predictor.probabilities([pil, array, tensor, tensor[None].repeat(2, 1, 1, 1)])
    assert together.shape == (5, 10)
    np.testing.assert_allclose(together, np.repeat(from_file, 5, axis=0), atol=1e-6)
    # another size is resized by the recorded rule; grayscale and RGBA are converted as in training
    big = pil.resize((96, 80))
    rgba = big.convert("RGBA")
    names, probabilities = predictor.probabilities([big, rgba, big.convert("L")])
    assert names == ["<input 0>", "<input 1>", "<input 2>"] and probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities[0], probabilities[1], atol=1e-6)  # alpha dropped as PIL does
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_channels_are_converted_as_in_training() -> None:
    gray = InputContract(["a", "b"], in_chans=1, image_size=8, mean=[0.5], std=[0.5])
    rgb = Image.new("RGB", (12, 12), (200, 100, 50))
    expected = np.asarray(rgb.convert("L").resize((8, 8)))  # a flat image: any resize keeps it
    assert decode(rgb, gray).shape == (1, 8, 8)
    assert (decode(rgb, gray)[0].numpy() == expected).all()
    assert (decode(np.asarray(rgb), gray)[0].numpy() == expected).all()
    with pytest.raises(DataError, match="must be uint8"):
        decode(np.zeros((8, 8, 3), dtype=np.float32), gray)


# --- predict without a config ----------------------------------------------------------------------


def test_predict_without_a_config_writes_a_new_csv_each_time(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "new_images"
    folder.mkdir()
    samples = [Path(r["sample"]) for r in rows(run / "predictions.csv")[:3]]
    for sample in samples:
        shutil.copy(sample, folder / sample.name)
    (folder / "notes.txt").write_text("not an image")
    (folder / "cut.jpg").write_bytes(samples[0].read_bytes()[:200])  # a damaged image
    main(["predict", "--ckpt_path", str(run), str(folder), "--top_k", "2"])
    first = rows(run / "predict.csv")
    assert [Path(r["sample"]).name for r in first] == sorted(s.name for s in samples)
    assert set(first[0]) >= {"sample", "predicted", "probability", "top1", "top2_prob"}
    out, err = capsys.readouterr()
    assert "predictions of 3 images" in out and "cut.jpg" in out and "1 inputs were not images" in err
    main(["predict", "--ckpt_path", str(run), str(samples[0])])
    assert len(rows(run / "predict_2.csv")) == 1 and rows(run / "predict.csv") == first  # nothing overwritten


def test_predict_refuses_bad_models_and_inputs_in_one_line(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    image = rows(run / "predictions.csv")[0]["sample"]
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes((run / "checkpoints" / "best.ckpt").read_bytes()[:3000])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    output = tmp_path / "out.csv"
    cases = [
        (["--ckpt_path", str(damaged), image], "is damaged and cannot be read"),
        (["--ckpt_path", str(foreign), image], "is not an imgcls checkpoint"),
        (["--ckpt_path", str(tmp_path / "none.ckpt"), image], "does not exist"),
        (["--ckpt_path", str(run), str(text)], "none of the 1 inputs is an image"),
        (["--ckpt_path", str(run), str(tmp_path / "missing.jpg")], "missing.jpg does not exist"),
    ]
    for args, expected in cases:
        assert expected in run_error(["predict", *args, "--output", str(output)], capsys)
    assert not output.exists() and not list(tmp_path.glob(".*partial*"))  # nothing half-written


# --- export --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["torch", "onnx"])
def test_an_export_matches_its_checkpoint_and_loads_back(run: Path, tmp_path: Path, format: str) -> None:
    if format == "onnx":
        pytest.importorskip("onnxruntime")
    output = tmp_path / ("model.pt2" if format == "torch" else "model.onnx")
    check = export_model(run, output, format)  # checked on the run's test images
    assert check.path == output and output.is_file() and check.images > 0
    assert check.top1_agreement == 1.0 and check.max_probability_difference < 1e-4
    samples = [r["sample"] for r in rows(run / "predictions.csv")]
    checkpoint = Predictor.load(run)
    exported = Predictor.load(output)
    assert exported.contract == checkpoint.contract  # the class names and input contract travel along
    for batch_size in (1, 5):  # any batch size
        _, expected = checkpoint.probabilities(samples, batch_size=batch_size)
        _, got = exported.probabilities(samples, batch_size=batch_size)
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_an_export_that_disagrees_writes_nothing(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "model.pt2"
    with pytest.raises(DataError, match=r"disagrees .* nothing was written"):
        export_model(run, output, "torch", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []
    err = run_error(
        ["export", "--ckpt_path", str(run), "--format", "torch", "--output", str(tmp_path / "m.onnx")], capsys
    )
    assert "ends in .pt2" in err
    with pytest.raises(ConfigError, match="no images to check"):
        export_model(run / "checkpoints" / "last.ckpt", tmp_path / "x.pt2", "torch", images=[])


def test_an_onnx_model_from_elsewhere_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    foreign = tmp_path / "other.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(foreign), dynamo=True)
    err = run_error(["predict", "--ckpt_path", str(foreign), str(foreign)], capsys)
    assert "has no imgcls metadata" in err
