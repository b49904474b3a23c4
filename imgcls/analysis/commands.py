"""``imgcls summary`` and ``imgcls compare``: model summaries and run comparisons from the command line.

imgcls summary --model.backbone resnet50 --data.image_size 64 --model.num_classes 10
imgcls summary --config configs/eurosat_sample.yaml
imgcls summary --run runs/eurosat_sample/version_0
imgcls compare runs/eurosat_sample runs/eurosat_resnet50/version_2 --goal 0.85 --output runs/comparison

Both parse with jsonargparse like the training commands; ``summary`` takes its model arguments from
``ImageClassifier``'s signature. A parse error is one ``ConfigError`` line, never a usage dump.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonargparse import ArgumentError, ArgumentParser, Namespace

from imgcls.errors import ConfigError
from imgcls.yamlfiles import read_settings


class _Parser(ArgumentParser):
    """jsonargparse's parser with no abbreviations, whose errors are one-line ``ConfigError`` messages
    like the rest of imgcls, suggesting the closest option for an unknown one."""

    def __init__(self, prog: str, description: str) -> None:
        super().__init__(prog=prog, description=description, exit_on_error=False, allow_abbrev=False)

    @property
    def options(self) -> list[str]:
        """Every option name, as the help lists them."""
        return list(dict.fromkeys(re.findall(r"(?<![\w-])--\w[\w.-]*\w", self.format_help())))

    def parse(self, argv: list[str], namespace: Namespace | None = None) -> Namespace:
        """``parse_args``, raising ``ConfigError`` with one line that names the option and the fix."""
        try:
            return self.parse_args(argv, namespace=namespace)
        except ArgumentError as err:
            raise ConfigError(f"{self.explain(str(err))} (see `{self.prog} --help`)") from None

    def explain(self, message: str) -> str:
        """One line out of jsonargparse's multi-line messages."""
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        if lines and lines[0].startswith("unrecognized arguments:"):
            given = [
                token.split("=", 1)[0] for token in lines[0].split(":", 1)[1].split() if token.startswith("-")
            ]
            hints = [
                f"{name} (did you mean {close[0]}?)" if close else name
                for name in given
                for close in [difflib.get_close_matches(name, self.options, n=1, cutoff=0.6)]
            ]
            return "unknown option " + ", ".join(hints) if hints else lines[0]
        key = re.match(r'Parser key "([^"]+)"', lines[0]) if lines else None
        if key is None:
            return " ".join(lines)
        option = next((o for o in self.options if o.lstrip("-").replace("-", "_") == key.group(1)), None)
        option = option or f"--{key.group(1)}"
        text = "\n".join(lines)
        given = re.findall(r"(?:Given|Got) value: (.*)", text)
        subtypes = re.search(r"Subtypes: \[(.*)\]", text)
        expected = re.search(r"Expected a (.*?)\. Got value", text)
        if subtypes:
            kinds = [_type_name(t) for t in re.split(r",\s*(?![^\[]*\])", subtypes.group(1))]
        elif expected:
            kinds = [_type_name(expected.group(1))]
        else:
            return f"{option}: " + " ".join(lines[1:])
        hint = " (a list is written [16,32])" if any(k.startswith("list") for k in kinds) else ""
        got = f", got {given[-1]!r}" if given else ""
        return f"{option} expects {' or '.join(kinds)}{got}{hint}"


def _type_name(text: str) -> str:
    """``<class 'int'>`` -> ``int``, ``NoneType`` -> ``null``, ``Literal['a', 'b']`` -> ``one of 'a', 'b'``."""
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text.strip()).replace("typing.", "")
    if text == "NoneType":
        return "null"
    literal = re.fullmatch(r"Literal\[(.*)\]", text)
    return f"one of {literal.group(1)}" if literal else text


def _summary_parser() -> _Parser:
    from imgcls.models.classifier import ImageClassifier
    from imgcls.models.summary import ARCHITECTURE_ARGS

    parser = _Parser(
        "imgcls summary",
        "Parameters, GFLOPs per image, parameter and activation memory of a model (not trained). The model "
        "comes from --config, then --run, then the --model.* options, each overriding the ones before.",
    )
    source = parser.add_argument_group("Where the model comes from")
    source.add_argument(
        "--config",
        type=str | None,
        default=None,
        help="A YAML config (configs/*.yaml or a run's config.yaml).",
    )
    source.add_argument(
        "--run", type=str | None, default=None, help="A run folder: its hparams.yaml and recorded input size."
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


def _compare_parser() -> _Parser:
    parser = _Parser(
        "imgcls compare",
        "One table (Markdown and CSV) and figures comparing tested runs; runs differing only in seed grouped "
        "with 95% confidence intervals. train_* and val_* columns are of the tested checkpoint's epoch "
        "(tested_epoch), test_* of metrics.json.",
    )
    parser.add_argument("runs", type=str, nargs="+", help="Run folders, experiment folders or a runs folder.")
    parser.add_argument("--output", type=str, default="comparison", help="Folder for tables and figures.")
    parser.add_argument(
        "--goal", type=float | None, default=None, help="Goal accuracy line of the bar chart, e.g. 0.85."
    )
    parser.add_argument(
        "--allow-mixed", action="store_true", help="Compare runs of different datasets anyway."
    )
    parser.add_argument(
        "--skip-untested",
        action="store_true",
        help="Leave out (with a warning) runs without test results or with damaged files.",
    )
    parser.add_argument("--no-figures", action="store_true", help="Write the tables only.")
    parser.add_argument(
        "--reference",
        type=str | None,
        default=None,
        help="YAML file mapping experiment names to the study's own figure, shown in a 'study' column.",
    )
    return parser


def _read_config(path: Path) -> dict[str, Any]:
    return read_settings(path, f"--config {path}", "a YAML config such as configs/eurosat_sample.yaml")


def _base_architecture(args: Namespace) -> tuple[dict[str, Any], int | None, list[int] | None]:
    """Model arguments, image size and input size of --config, then --run (later ones win)."""
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
            data = yaml.safe_load(nested.read_text()) if nested.is_file() else {}
        data_args = (data.get("init_args") or {}) if isinstance(data, dict) else {}
        image_size = data_args.get("image_size")
        if data_args.get("in_chans"):
            model.setdefault("in_chans", data_args["in_chans"])
    if args.run:
        from imgcls.analysis.runs import load_run

        run = load_run(args.run)
        model.update({k: v for k, v in run.hparams.items() if not k.startswith("_")})
        input_size = run.info.get("input_size") or input_size
        image_size = run.data_args.get("image_size") or image_size
    return model, image_size, input_size


def _architecture(parser: _Parser, argv: list[str]) -> tuple[Namespace, dict[str, Any], list[int]]:
    """Options, model arguments and input size: --config, then --run, then the options given."""
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
            "imgcls summary needs a model: pass --model.backbone NAME, --config FILE or --run RUN_DIR"
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
    from imgcls.models.summary import build_model, summarize_model

    args, model_args, input_size = _architecture(_summary_parser(), argv)
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

    args = _compare_parser().parse(argv)
    reference = None
    if args.reference is not None:
        reference = read_settings(
            Path(args.reference),
            f"--reference {args.reference}",
            "a YAML mapping such as 'model=resnet18: 71.27%'",
        )
    written = write_comparison(
        args.runs,
        args.output,
        goal=args.goal,
        allow_mixed=args.allow_mixed,
        skip_untested=args.skip_untested,
        figures=not args.no_figures,
        reference={str(k): str(v) for k, v in reference.items()} if reference else None,
    )
    titles = {
        "comparison_md": "",
        "groups_md": "Runs differing only in seed (mean, std, 95% CI):\n\n",
        "fewshot_md": "Few-shot runs (mean accuracy ± 95% CI over episodes):\n\n",
    }
    for key, title in titles.items():
        if key in written:
            print(title + written[key].read_text())
    print("wrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr)
    return written


COMMANDS = {"summary": summary_command, "compare": compare_command}


def run_command(name: str, argv: list[str]) -> None:
    """Dispatch ``imgcls summary ...`` and ``imgcls compare ...`` (called by ``imgcls.cli.main``)."""
    if name not in COMMANDS:
        raise ConfigError(f"unknown command {name!r}; choose one of: {', '.join(COMMANDS)}")
    COMMANDS[name](argv)
