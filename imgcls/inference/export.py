"""``export_model``: a checkpoint as a program that takes uint8 images and gives class probabilities.

Two formats: ``torch`` (a ``torch.export`` program, ``.pt2``, loaded with ``torch.export.load``) and
``onnx`` (run by onnxruntime or any ONNX runtime). Both hold the preprocessing (scaling, normalization,
test-time augmentation), take a batch of any size, and carry the input contract (class names, channels,
size, mean/std, resize rule). Before the file is written, the program runs on real images beside the
checkpoint: the top-1 classes must agree and the probabilities differ by at most a tolerance, else
nothing is written.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from imgcls import runs
from imgcls.contract import InputContract
from imgcls.errors import ConfigError, DataError
from imgcls.inference.inputs import Skipped, batches
from imgcls.inference.predictor import resolve_source
from imgcls.inference.programs import (
    CONTRACT_FILE,
    CONTRACT_KEY,
    INPUT_NAME,
    OUTPUT_NAME,
    EagerRuntime,
    ExportedProgramRuntime,
    OnnxRuntime,
    ProbabilityModel,
    Runtime,
    load_checkpoint_model,
)

Format = Literal["torch", "onnx"]
SUFFIXES = {"torch": ".pt2", "onnx": ".onnx"}
CHECK_IMAGES = 64  # test images of the run checked when none are given


@dataclass(frozen=True)
class ExportCheck:
    """How an exported program compared with its checkpoint on real images."""

    path: Path
    format: str
    images: int
    top1_agreement: float
    max_probability_difference: float
    seconds: float

    def line(self) -> str:
        return (
            f"imgcls: exported {self.path} ({self.format}, {self.path.stat().st_size / 1e6:.1f} MB) in "
            f"{self.seconds:.1f} s; on {self.images} images it agrees with the checkpoint on "
            f"{self.top1_agreement:.1%} of top-1 classes, max probability difference {self.max_probability_difference:.2e}"
        )


def default_check_images(checkpoint: Path, limit: int = CHECK_IMAGES) -> list[Path]:
    """The first ``limit`` test images of the checkpoint's run that still exist (its ``predictions.csv``)."""
    run_dir = runs.run_dir_of_checkpoint(checkpoint)
    table = run_dir / runs.PREDICTIONS if run_dir is not None else None
    if table is None or not table.is_file():
        return []
    with table.open(newline="") as handle:
        samples = [Path(row["sample"]) for row in csv.DictReader(handle) if row.get("sample")]
    return [path for path in samples if path.is_file()][:limit]


def export_model(
    checkpoint: str | Path,
    output: str | Path | None = None,
    format: Format = "onnx",
    images: Any = None,
    tolerance: float = 1e-4,
    test_time_augmentation: str = "none",
) -> ExportCheck:
    """Export a checkpoint (or a run folder's ``best.ckpt``) and check it on real images.

    Args:
        checkpoint: the ``.ckpt`` file or run folder.
        output: the file to write; default beside the checkpoint, ``best.onnx`` or ``best.pt2``.
        format: ``torch`` (``torch.export``) or ``onnx``.
        images: images to check on (files, folders...); default the run's test images (its
            ``predictions.csv``).
        tolerance: the largest difference in any class probability that passes.
        test_time_augmentation: views the program averages over (``none``, ``hflip``, ``dihedral``,
            ``flip_translate``).

    Raises:
        ConfigError: a wrong format or output, a model that takes no fixed image size, no images to check.
        DataError: the program disagrees with the checkpoint; nothing is written then.
    """
    started = time.perf_counter()
    if format not in SUFFIXES:
        raise ConfigError(f"--format is torch or onnx, not {format!r}")
    path = resolve_source(checkpoint)
    if path.suffix != ".ckpt":
        raise ConfigError(f"{path} is not a checkpoint: export takes a .ckpt file or a run folder")
    output = Path(output) if output is not None else path.with_suffix(SUFFIXES[format])
    if output.suffix != SUFFIXES[format]:
        raise ConfigError(f"--output of a {format} export ends in {SUFFIXES[format]}, got {output.name}")
    check_images = images if images is not None else default_check_images(path)
    if not check_images:
        raise ConfigError(
            f"no images to check the export on: {path}'s run has no predictions.csv of existing test images; "
            "pass --images FOLDER (a few of the model's own kind of images)"
        )
    classifier, contract = load_checkpoint_model(path)
    if contract.image_size is None or not contract.image_files:
        raise ConfigError(
            f"{path} was trained on images of their native size or on band stacks: an exported program takes "
            "one fixed size of ordinary images; train with data.image_size set"
        )
    contract = dataclasses.replace(contract, test_time_augmentation=test_time_augmentation)
    model = ProbabilityModel(classifier, contract, test_time_augmentation).eval()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(
        f".{output.stem}.{os.getpid()}.partial{output.suffix}"
    )  # torch.export wants .pt2
    try:
        write = _write_program if format == "torch" else _write_onnx
        write(model, contract, partial)
        runtime_class = ExportedProgramRuntime if format == "torch" else OnnxRuntime
        exported = runtime_class(partial, torch.device("cpu"))
        count, agreement, difference = compare(
            EagerRuntime(model, torch.device("cpu")), exported, check_images, contract
        )
        if agreement < 1 or difference > tolerance:
            raise DataError(
                f"the {format} export disagrees with {path}: top-1 agreement {agreement:.1%} on {count} images, "
                f"max probability difference {difference:.2e} (tolerance {tolerance:g}); nothing was written"
            )
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return ExportCheck(output, format, count, agreement, difference, time.perf_counter() - started)


def compare(
    reference: Runtime, other: Runtime, images: Any, contract: InputContract
) -> tuple[int, float, float]:
    """Images compared, the share whose top-1 classes agree, and the largest probability difference."""
    skipped: list[Skipped] = []
    same, count, difference = 0, 0, 0.0
    for _, batch in batches(images, contract, 64, skipped):
        expected, got = reference(batch), other(batch)
        same += int((expected.argmax(axis=1) == got.argmax(axis=1)).sum())
        count += len(batch)
        difference = max(difference, float(np.abs(expected - got).max()))
    if count == 0:
        raise ConfigError(f"none of the {len(skipped)} images to check the export on could be read")
    return count, same / count, difference


def _example(contract: InputContract) -> torch.Tensor:
    side = int(contract.image_size or 0)
    return torch.zeros(2, contract.in_chans, side, side, dtype=torch.uint8)


def _write_program(model: ProbabilityModel, contract: InputContract, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=65536)
    with torch.no_grad():
        program = torch.export.export(model, (_example(contract),), dynamic_shapes={"images": {0: batch}})
    torch.export.save(program, str(path), extra_files={CONTRACT_FILE: contract.to_json()})


def _write_onnx(model: ProbabilityModel, contract: InputContract, path: Path) -> None:
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs onnx and onnxscript: pip install 'imgcls[export]'") from None
    # the exporter narrates its passes on standard output: a batch job's log keeps the one line of export
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            model,
            (_example(contract),),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"images": {0: "batch"}},
            dynamo=True,
            verbose=False,
        )
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = CONTRACT_KEY, contract.to_json()
    onnx.save_model(proto, str(path))
