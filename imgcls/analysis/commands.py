"""``imgcls summary`` and ``imgcls compare``: model summaries and run comparisons from the command line.

imgcls summary --model.backbone resnet50 --image-size 64 --model.num_classes 10
imgcls summary --config configs/eurosat_sample.yaml
imgcls summary --run runs/eurosat_sample/version_0
imgcls compare runs/eurosat_sample runs/eurosat_resnet50/version_2 --goal 0.85 --output runs/comparison
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml

from imgcls.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    """argparse whose errors become one-line ``ConfigError`` messages like the rest of imgcls."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _summary_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imgcls summary",
        description="Parameters, GFLOPs per image, parameter and activation memory of a model (not trained).",
    )
    source = parser.add_argument_group("where the architecture comes from (later ones override earlier)")
    source.add_argument("--config", help="a YAML config (configs/*.yaml or a run's config.yaml)")
    source.add_argument("--run", help="a run folder: its hparams.yaml and recorded input size")
    source.add_argument("--model.backbone", dest="backbone", help="timm name or torchvision/<builder>")
    source.add_argument("--model.num_classes", dest="num_classes", type=int, help="classes (default 10)")
    source.add_argument("--model.in_chans", dest="in_chans", type=int, help="input channels (default 3)")
    source.add_argument(
        "--model.head_hidden", dest="head_hidden", type=int, nargs="*", help="MLP head widths"
    )
    size = parser.add_argument_group("input")
    size.add_argument("--image-size", "--data.image_size", dest="image_size", type=int, help="square side")
    size.add_argument(
        "--input-size", dest="input_size", type=int, nargs=3, metavar=("C", "H", "W"), help="full input shape"
    )
    size.add_argument(
        "--batch-size", dest="batch_size", type=int, default=1, help="images for the memory columns"
    )
    output = parser.add_argument_group("output")
    output.add_argument("--depth", type=int, default=1, help="module depth of the layer table (0: none)")
    output.add_argument("--format", choices=("markdown", "json"), default="markdown")
    output.add_argument("--output", help="also write the summary to this file")
    return parser


def _compare_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imgcls compare",
        description="One table (Markdown and CSV) and figures comparing tested runs; seeds grouped with 95%% CIs.",
    )
    parser.add_argument("runs", nargs="+", help="run folders, experiment folders or a runs folder")
    parser.add_argument(
        "--output", default="comparison", help="folder for tables and figures (default: comparison)"
    )
    parser.add_argument("--goal", type=float, help="goal accuracy line of the bar chart, e.g. 0.85")
    parser.add_argument(
        "--allow-mixed", action="store_true", help="compare runs of different datasets anyway"
    )
    parser.add_argument("--skip-untested", action="store_true", help="leave out runs without test results")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")
    return parser


def _architecture(args: argparse.Namespace) -> tuple[dict[str, Any], list[int] | None]:
    """Model arguments and input size from --config, --run and the flags, in that order of precedence."""
    model: dict[str, Any] = {}
    input_size: list[int] | None = None
    image_size: int | None = None
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(
                f"--config {path} does not exist; pass a YAML config such as configs/eurosat_sample.yaml"
            )
        config = yaml.safe_load(path.read_text()) or {}
        model.update(config.get("model") or {})
        data = config.get("data")
        if isinstance(data, str):  # a nested data config file, as configs may do
            nested = path.parent / data
            data = yaml.safe_load(nested.read_text()) if nested.is_file() else {}
        data_args = (data or {}).get("init_args") or {}
        image_size = data_args.get("image_size")
        if data_args.get("in_chans"):
            model.setdefault("in_chans", data_args["in_chans"])
    if args.run:
        from imgcls.analysis.runs import load_run

        run = load_run(args.run)
        model.update({k: v for k, v in run.hparams.items() if not k.startswith("_")})
        input_size = run.info.get("input_size") or input_size
        image_size = run.data_args.get("image_size") or image_size
    for key in ("backbone", "num_classes", "in_chans", "head_hidden"):
        if getattr(args, key) is not None:
            model[key] = getattr(args, key)
    if not model.get("backbone"):
        raise ConfigError(
            "imgcls summary needs a model: pass --model.backbone NAME, --config FILE or --run RUN_DIR"
        )
    in_chans = int(model.get("in_chans") or 3)
    if args.image_size:
        image_size, input_size = args.image_size, None
    if args.input_size:
        input_size = list(args.input_size)
    if input_size is None:
        side = int(image_size or 224)
        input_size = [in_chans, side, side]
    model["in_chans"] = input_size[0]
    return model, input_size


def summary_command(argv: list[str]) -> str:
    """Run ``imgcls summary``; return the text it printed."""
    from imgcls.analysis.summary import build_model, summarize_model

    args = _summary_parser().parse_args(argv)
    model_args, input_size = _architecture(args)
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


def compare_command(argv: list[str]) -> dict[str, Path]:
    """Run ``imgcls compare``; return the files it wrote."""
    from imgcls.analysis.compare import write_comparison

    args = _compare_parser().parse_args(argv)
    written = write_comparison(
        args.runs,
        args.output,
        goal=args.goal,
        allow_mixed=args.allow_mixed,
        skip_untested=args.skip_untested,
        figures=not args.no_figures,
    )
    table = written.get("groups_md", written["comparison_md"])
    print(written["comparison_md"].read_text())
    if table != written["comparison_md"]:
        print("Runs differing only in seed (mean, std, 95% CI):\n")
        print(table.read_text())
    print("wrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr)
    return written


COMMANDS = {"summary": summary_command, "compare": compare_command}


def run_command(name: str, argv: list[str]) -> None:
    """Dispatch ``imgcls summary ...`` and ``imgcls compare ...`` (called by ``imgcls.cli.main``)."""
    if name not in COMMANDS:
        raise ConfigError(f"unknown command {name!r}; choose one of: {', '.join(COMMANDS)}")
    COMMANDS[name](argv)
