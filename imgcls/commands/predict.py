"""``imgcls predict``: the top-k classes of images, with or without the training config.

imgcls predict --ckpt_path runs/eurosat_sample/version_0 tile.jpg more_tiles/ --top_k 3
imgcls predict --ckpt_path model.onnx tile.jpg --output tiles.csv
imgcls predict --config configs/eurosat_sample.yaml --ckpt_path best --data.init_args.predict_root tiles/

Without ``--config`` the model is a checkpoint, a run folder (its ``best.ckpt``) or a file of
``imgcls export``, and the images are files or folders given after the options; each image is decoded
and resized as ``test`` does it (``imgcls.inference.Predictor``). A file that is not an image is named
in a warning and skipped; the others are predicted. The CSV has the columns of the config path's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from imgcls import runs
from imgcls.callbacks.reports import prediction_rows, write_rows
from imgcls.commands.arguments import CommandParser, add_threads_argument, set_threads
from imgcls.commands.command import TRAINING, Command
from imgcls.commands.train import run_lightning
from imgcls.errors import ConfigError
from imgcls.inference.predictor import Predictor, resolve_source, top_classes
from imgcls.models.classifier import TtaMode

DESCRIPTION = (
    "The top-k classes of image files and folders from a checkpoint, a run folder or an exported .pt2/.onnx "
    "file, into a CSV (the run folder's predict.csv, numbered so that none is overwritten, or --output). With "
    "--config instead, LightningCLI's predict on the config's data (data.init_args.predict_root or the test split)."
)


def predict_parser() -> CommandParser:
    """The parser of ``imgcls predict`` without a config."""
    parser = CommandParser("imgcls predict", DESCRIPTION)
    parser.add_argument("images", type=str, nargs="+", help="Image files and folders of images.")
    parser.add_argument(
        "--ckpt_path",
        type=str,
        required=True,
        help="A checkpoint, a run folder, or a .pt2/.onnx file of export.",
    )
    parser.add_argument("--top_k", type=int, default=5, help="Classes (with probabilities) per image.")
    parser.add_argument("--batch_size", type=int, default=64, help="Images per batch.")
    parser.add_argument("--device", type=str, default="cpu", help="cpu, cuda, cuda:1 or auto.")
    parser.add_argument(
        "--test_time_augmentation",
        type=TtaMode,
        default="none",
        help="Average over flipped (hflip) or flipped and turned (dihedral) views; checkpoints only.",
    )
    parser.add_argument("--output", type=str | None, default=None, help="The CSV to write.")
    add_threads_argument(parser)
    return parser


def _uses_config(argv: list[str]) -> bool:
    return any(arg in ("--config", "-c") or arg.startswith("--config=") for arg in argv)


def output_path(given: str | None, checkpoint: Path, test_time_augmentation: str) -> Path:
    """``--output``, else a new ``predict[_N].csv`` in the checkpoint's run folder (or here)."""
    if given is not None:
        return Path(given)
    folder = runs.run_dir_of_checkpoint(checkpoint) or Path.cwd()
    return folder / runs.free_predict_filename(folder, test_time_augmentation)


def predict_command(argv: list[str]) -> Path | None:
    """Run ``imgcls predict``; return the CSV written (None for the config path, whose writer says)."""
    if _uses_config(argv):
        run_lightning(["predict", *argv])
        return None
    args = predict_parser().parse(argv)
    set_threads(args.threads)
    if args.top_k < 1:
        raise ConfigError(f"--top_k must be 1 or more, got {args.top_k}")
    predictor = Predictor.load(args.ckpt_path, args.device, args.test_time_augmentation)
    names, probabilities = predictor.probabilities(args.images, args.batch_size)
    classes, top = top_classes(probabilities, args.top_k)
    table = {"label": np.full(len(names), -1), "class": classes, "prob": top, "index": np.arange(len(names))}
    rows = prediction_rows(table, predictor.class_names, names)
    path = output_path(args.output, resolve_source(args.ckpt_path), args.test_time_augmentation)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write_rows(partial, rows)
        partial.replace(path)  # whole or not at all
    finally:
        partial.unlink(missing_ok=True)
    skipped = predictor.skipped
    note = (
        f"; {len(skipped)} skipped, not images: {', '.join(s.name for s in skipped[:5])}" if skipped else ""
    )
    print(f"imgcls: predictions of {len(rows)} images in {path}{note}", flush=True)
    if skipped:
        print(f"imgcls: warning: {len(skipped)} inputs were not images and were skipped", file=sys.stderr)
    return path


COMMANDS = (
    Command(
        "predict",
        TRAINING,
        "the top-k classes of images: files and folders with --ckpt_path, or a config's data",
        predict_command,
    ),
)
