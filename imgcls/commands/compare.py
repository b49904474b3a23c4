"""``imgcls compare``: one table and figures comparing tested runs, seeds grouped with 95% CIs.

imgcls compare runs/eurosat_sample runs/eurosat_resnet50/version_2 --goal 0.85 --output runs/comparison
"""

from __future__ import annotations

import sys
from pathlib import Path

from imgcls.analysis.compare import write_comparison
from imgcls.commands.arguments import CommandParser
from imgcls.commands.command import READING, Command
from imgcls.yamlfiles import read_settings

DEFAULT_OUTPUT = "runs/comparison"  # beside the runs, which .gitignore leaves out, not in the working folder


def compare_parser() -> CommandParser:
    """The parser of ``imgcls compare``."""
    parser = CommandParser(
        "imgcls compare",
        "One table (Markdown and CSV) and figures comparing tested runs; runs differing only in seed grouped "
        "with 95% confidence intervals. train_* and val_* columns are of the tested checkpoint's epoch "
        "(tested_epoch), test_* of metrics.json.",
    )
    parser.add_argument("runs", type=str, nargs="+", help="Run folders, experiment folders or a runs folder.")
    parser.add_argument("--output", type=str, default=DEFAULT_OUTPUT, help="Folder for tables and figures.")
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


def compare_command(argv: list[str]) -> dict[str, Path]:
    """Run ``imgcls compare``; return the files it wrote."""
    args = compare_parser().parse(argv)
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


COMMANDS = (
    Command(
        "compare",
        READING,
        "one table and figures comparing tested runs, seeds grouped with 95% CIs",
        compare_command,
    ),
)
