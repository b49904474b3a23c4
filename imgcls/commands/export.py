"""``imgcls export``: a checkpoint as a torch.export program or an ONNX model, checked before written.

imgcls export --ckpt_path runs/eurosat_sample/version_0 --format onnx
imgcls export --ckpt_path runs/eurosat_sample/version_0/checkpoints/best.ckpt --format torch --output model.pt2

The program takes uint8 images (N, C, H, W) at the model's image size and gives class probabilities; the
class names and the input contract travel in its metadata (``imgcls.contract``). ``Predictor.load`` reads
it back; ``docs/export.md`` shows how to run it without imgcls.
"""

from __future__ import annotations

from typing import Literal

from imgcls.commands.arguments import CommandParser, add_threads_argument, set_threads
from imgcls.commands.command import READING, Command
from imgcls.inference.export import ExportCheck, export_model
from imgcls.models.classifier import TtaMode


def export_parser() -> CommandParser:
    """The parser of ``imgcls export``."""
    parser = CommandParser(
        "imgcls export",
        "Write a checkpoint as a program that takes uint8 images and gives class probabilities (torch.export "
        ".pt2 or ONNX), after checking it against the checkpoint on real images: the run's test images, or "
        "--images. Nothing is written when they disagree.",
    )
    parser.add_argument("--ckpt_path", type=str, required=True, help="A checkpoint or a run folder.")
    parser.add_argument("--format", type=Literal["onnx", "torch"], default="onnx", help="onnx or torch.")
    parser.add_argument(
        "--output",
        type=str | None,
        default=None,
        help="The file; default best.onnx / best.pt2 beside the checkpoint.",
    )
    parser.add_argument(
        "--images",
        type=list[str] | None,
        default=None,
        help="Images to check on (files, folders): [a.jpg,dir].",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="Largest probability difference to the checkpoint that passes.",
    )
    parser.add_argument(
        "--test_time_augmentation", type=TtaMode, default="none", help="Views the program averages over."
    )
    add_threads_argument(parser)
    return parser


def export_command(argv: list[str]) -> ExportCheck:
    """Run ``imgcls export``; return how the export compared with its checkpoint."""
    args = export_parser().parse(argv)
    set_threads(args.threads)
    check = export_model(
        args.ckpt_path, args.output, args.format, args.images, args.tolerance, args.test_time_augmentation
    )
    print(check.line(), flush=True)
    return check


COMMANDS = (
    Command(
        "export",
        READING,
        "a checkpoint as an ONNX model or torch.export program, checked on real images",
        export_command,
    ),
)
