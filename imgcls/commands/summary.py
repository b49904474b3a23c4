"""``imgcls summary``: parameters, GFLOPs and memory of a model, nothing trained.

imgcls summary --model.backbone resnet50 --data.image_size 64 --model.num_classes 10
imgcls summary --config configs/eurosat_sample.yaml
imgcls summary runs/eurosat_sample/version_0

The model arguments come from ``ImageClassifier``'s signature, as ``fit`` takes them.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Literal

from jsonargparse import Namespace

from imgcls.analysis.runs import load_run
from imgcls.commands.arguments import CommandParser
from imgcls.commands.command import READING, Command
from imgcls.errors import ConfigError
from imgcls.models.classifier import ImageClassifier
from imgcls.models.summary import ARCHITECTURE_ARGS, build_model, summarize_model
from imgcls.yamlfiles import read_settings


def summary_parser() -> CommandParser:
    """The parser of ``imgcls summary``."""
    parser = CommandParser(
        "imgcls summary",
        "Parameters, GFLOPs per image, parameter and activation memory of a model (not trained). The model "
        "comes from --config, then the run folder, then the --model.* options, each overriding the ones before.",
    )
    source = parser.add_argument_group("Where the model comes from")
    source.add_argument(
        "run_folder",
        type=str | None,
        nargs="?",
        default=None,
        help="A run folder (runs/<experiment>/version_N): its hparams.yaml and recorded input size.",
    )
    source.add_argument(
        "--config",
        type=str | None,
        default=None,
        help="A YAML config (configs/*.yaml or a run's config.yaml).",
    )
    source.add_argument(
        "--run", type=str | None, default=None, help="A run folder, as the positional argument."
    )
    # the arguments that change the architecture, as fit takes them; training-only ones are left out
    training_only = set(inspect.signature(ImageClassifier).parameters) - set(ARCHITECTURE_ARGS)
    parser.add_class_arguments(
        ImageClassifier, "model", skip=training_only, help="Model (ImageClassifier's architecture arguments)"
    )
    # no default backbone: a summary of resnet18 nobody asked for would hide a forgotten option
    parser.set_defaults({"model.backbone": None})
    size = parser.add_argument_group("Input")
    size.add_argument(
        "--data.image_size",
        "--image-size",
        dest="image_size",
        type=int | None,
        default=None,
        help="Side of square images (default: the config's, else 224).",
    )
    size.add_argument(
        "--input-size",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        default=None,
        help="Full input shape (overrides --data.image_size and --model.in_chans).",
    )
    size.add_argument("--batch-size", type=int, default=1, help="Images per batch of the memory columns.")
    output = parser.add_argument_group("Output")
    output.add_argument("--depth", type=int, default=1, help="Module depth of the layer table (0: none).")
    output.add_argument(
        "--format", type=Literal["markdown", "json"], default="markdown", help="Output format."
    )
    output.add_argument(
        "--output", type=str | None, default=None, help="Also write the summary to this file."
    )
    return parser


def _read_config(path: Path) -> dict[str, Any]:
    return read_settings(path, f"--config {path}", "a YAML config such as configs/eurosat_sample.yaml")


def _run_folder(args: Namespace) -> str | None:
    if args.run and args.run_folder and Path(args.run) != Path(args.run_folder):
        raise ConfigError(f"two run folders given ({args.run_folder} and --run {args.run}); give one")
    return args.run or args.run_folder


def _base_architecture(args: Namespace) -> tuple[dict[str, Any], int | None, list[int] | None]:
    """Model arguments, image size and input size of --config, then the run folder (later ones win)."""
    model: dict[str, Any] = {}
    image_size: int | None = None
    input_size: list[int] | None = None
    if args.config:
        path = Path(args.config)
        config = _read_config(path)
        section = config.get("model") or {}
        model.update(section.get("init_args", section) if isinstance(section, dict) else {})
        data = config.get("data")
        if isinstance(data, str):  # a nested data config file, as configs may do
            nested = path.parent / data
            data = _read_config(nested) if nested.is_file() else {}
        data_args = (data.get("init_args") or {}) if isinstance(data, dict) else {}
        image_size = data_args.get("image_size")
        if data_args.get("in_chans"):
            model.setdefault("in_chans", data_args["in_chans"])
    folder = _run_folder(args)
    if folder:
        run = load_run(folder)
        model.update({k: v for k, v in run.hparams.items() if not k.startswith("_")})
        input_size = run.info.get("input_size") or input_size
        image_size = run.data_args.get("image_size") or image_size
    return model, image_size, input_size


def _architecture(parser: CommandParser, argv: list[str]) -> tuple[Namespace, dict[str, Any], list[int]]:
    """Options, model arguments and input size: --config, then the run folder, then the options given."""
    args = parser.parse(argv)
    base, image_size, input_size = _base_architecture(args)
    # parse again on top of the config's values: only options given on the command line override them
    start = Namespace()
    for key, value in base.items():
        if key in args.model and value is not None:
            start[f"model.{key}"] = value
    args = parser.parse(argv, namespace=start)
    model = {key: value for key, value in args.model.as_dict().items() if value is not None}
    if not model.get("backbone"):
        raise ConfigError(
            "imgcls summary needs a model: pass --model.backbone NAME, --config FILE or a run folder"
        )
    if args.image_size:
        image_size, input_size = args.image_size, None
    if args.input_size:
        input_size = list(args.input_size)
    if input_size is None:
        side = int(image_size or 224)
        input_size = [int(model.get("in_chans") or 3), side, side]
    model["in_chans"] = input_size[0]
    return args, model, input_size


def summary_command(argv: list[str]) -> str:
    """Run ``imgcls summary``; return the text it printed."""
    args, model_args, input_size = _architecture(summary_parser(), argv)
    model = build_model(**model_args)
    summary = summarize_model(model, input_size, batch_size=args.batch_size, depth=args.depth)
    if args.format == "json":
        text = json.dumps(
            {"backbone": model_args["backbone"], **summary.as_dict(layers=args.depth > 0)}, indent=2
        )
    else:
        text = f"## {model_args['backbone']}\n\n" + summary.to_markdown(layers=args.depth > 0)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return text


COMMANDS = (
    Command(
        "summary", READING, "parameters, GFLOPs and memory of a model (nothing trained)", summary_command
    ),
)
