"""The README and docs/*.md name only configs, commands, options, make targets and files that exist.

Nothing here trains or reaches the network: the shell blocks are parsed, not run. Each check reads what
it checks from the source of truth (the config files, the command registry, the constructors'
signatures, the Makefile, the file tree), so a page goes stale the moment the code moves away from it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import itertools
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from imgcls.models.networks import network_names

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "README.md"]
TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
# the LightningCLI's own keys and the sections imgcls adds (imgcls.commands.lightning)
TOP_LEVEL_KEYS = {
    "trainer", "model", "data", "ckpt_path", "config", "seed_everything", "experiment", "runs_dir",
    "threads", "checkpoint", "last_checkpoint", "early_stopping", "ema", "progressive_resizing",
    "report", "predictions", "print_config", "help",
}  # fmt: skip
FEWSHOT_KEYS = {"config", "experiment", "runs_dir", "threads", "help"}
# top-level folders whose paths a page may name in a shell line or an inline code span
REPO_FOLDERS = ("configs", "scripts", "tests", "benchmarks", "samples", "notebooks", "docs", "imgcls")

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CONFIG_PATH = re.compile(r"configs/[\w./{},-]*\.yaml")
SECTION_OPTION = re.compile(r"--((?:model|data|trainer)\.[\w.]+)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


@functools.cache
def command_names() -> frozenset[str]:
    """The commands of ``imgcls.commands.COMMANDS``, the registry every entry point dispatches through."""
    from imgcls.commands import COMMANDS

    return frozenset(COMMANDS)


def parameters(cls: type) -> set[str]:
    """Constructor arguments of ``cls``, following ``**kwargs`` up to the base classes that take them."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        signature = inspect.signature(klass.__init__)
        for name, parameter in signature.parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                names.add(name)
        if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return names


@functools.cache
def section_parameters() -> dict[str, set[str]]:
    """The arguments under each section of ``fit``'s config that is one class."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from imgcls import ImageClassifier
    from imgcls.callbacks import EMA, PredictionWriter, ProgressiveResizing, TestReportWriter

    return {
        "model": parameters(ImageClassifier),
        "trainer": parameters(Trainer),
        "checkpoint": parameters(ModelCheckpoint),
        "last_checkpoint": parameters(ModelCheckpoint),
        "early_stopping": parameters(EarlyStopping),
        "ema": parameters(EMA),
        "progressive_resizing": parameters(ProgressiveResizing),
        "report": parameters(TestReportWriter),
        "predictions": parameters(PredictionWriter),
    }


@functools.cache
def datamodule_parameters(class_path: str | None) -> set[str]:
    """Arguments of a datamodule by class path; None: those of every datamodule imgcls exports."""
    import imgcls
    from imgcls.data.base import ImageDataModule

    if class_path is None:
        classes = [getattr(imgcls, n) for n in imgcls.__all__]
        datamodules = [c for c in classes if isinstance(c, type) and issubclass(c, ImageDataModule)]
        return set().union(*(parameters(c) for c in datamodules))
    module, _, name = class_path.rpartition(".")
    return parameters(getattr(importlib.import_module(module), name))


def read_yaml(path: Path) -> dict:
    try:
        settings = yaml.safe_load(path.read_text())
    except OSError:
        return {}
    return settings if isinstance(settings, dict) else {}


def data_class_path(config: Path) -> str | None:
    """The datamodule ``config`` sets: inline, or in the data piece its ``data:`` names."""
    data = read_yaml(config).get("data")
    if isinstance(data, str):
        return read_yaml(config.parent / data).get("class_path")
    return data.get("class_path") if isinstance(data, dict) else None


def sweep_base_config(sweep: Path) -> Path | None:
    base = read_yaml(sweep).get("config")
    return sweep.parent / base if isinstance(base, str) else None


def shell_commands(block: str) -> Iterator[list[str]]:
    """The simple commands of a shell block: continuations joined, comments dropped, split at ; & |."""
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in lexer:
            if set(token) <= set(";&|()"):
                if command:
                    yield command
                command = []
            elif command or token not in ("do", "then", "else", "exec", "time"):
                command.append(token)
        if command:
            yield command


def option_problems(options: list[str], data_class: str | None) -> list[str]:
    """Problems with the ``--key`` options of a ``fit``/``validate``/``test``/``predict`` line."""
    problems = []
    sections = section_parameters()
    for token in options:
        if not token.startswith("--") or token == "--":
            continue
        parts = token[2:].split("=", 1)[0].split(".")
        if parts[0] not in TOP_LEVEL_KEYS:
            problems.append(f"{token}: no such key (known: {', '.join(sorted(TOP_LEVEL_KEYS))})")
        elif parts[0] == "data" and len(parts) > 1:
            key = parts[2] if parts[1] == "init_args" and len(parts) > 2 else parts[1]
            if key not in datamodule_parameters(data_class) | {"class_path", "init_args"}:
                problems.append(f"{token}: {data_class or 'no imgcls datamodule'} takes no argument {key!r}")
        elif parts[0] in sections and len(parts) > 1 and parts[1] not in sections[parts[0]]:
            problems.append(f"{token}: {parts[0]} takes no argument {parts[1]!r}")
    return problems


def cli_problems(args: list[str], base: Path) -> list[str]:
    """Problems with one ``imgcls`` command line (``args`` after ``imgcls``)."""
    if not args or args[0].startswith("-"):
        return []
    command, options = args[0], args[1:]
    if command.isupper():  # a placeholder: imgcls COMMAND --help
        return []
    if command not in command_names():
        return [f"imgcls {command}: no such command (imgcls.commands.COMMANDS: {sorted(command_names())})"]
    if command == "sweep" and "--" in options:
        sweep = options[options.index("--config") + 1] if "--config" in options else None
        config = sweep_base_config(base / sweep) if sweep else None
        data_class = data_class_path(config) if config else None
        return option_problems(options[options.index("--") + 1 :], data_class)
    if command == "fewshot":
        from imgcls.fewshot import FewShotStudy

        known = parameters(FewShotStudy) | FEWSHOT_KEYS
        names = [o[2:].split("=", 1)[0] for o in options if o.startswith("--")]
        return [f"imgcls fewshot --{n}: no such option" for n in names if n.split(".")[0] not in known]
    if command in PARSED_COMMANDS and not (command == "predict" and "--config" in options):
        from imgcls.commands.arguments import option_strings

        known = set(option_strings(PARSED_COMMANDS[command]()))
        names = [o.split("=", 1)[0] for o in options if o.startswith("--")]
        return [f"imgcls {command} {n}: no such option" for n in names if n not in known]
    if command not in TRAINER_COMMANDS:
        return []
    return option_problems(options, line_data_class(options, base))


def _parser_of(module: str, name: str):
    return lambda: getattr(importlib.import_module(f"imgcls.commands.{module}"), name)()


# commands with a parser of their own (not LightningCLI's): their options are checked against it
PARSED_COMMANDS = {
    "predict": _parser_of("predict", "predict_parser"),
    "export": _parser_of("export", "export_parser"),
    "summary": _parser_of("summary", "summary_parser"),
    "compare": _parser_of("compare", "compare_parser"),
}


def line_data_class(options: list[str], base: Path) -> str | None:
    """The datamodule a command line ends up with: its ``--config`` files and ``--data`` pieces in order."""
    data_class = None
    for flag, value in itertools.pairwise(options):
        if flag == "--config":
            data_class = data_class_path(base / value) or data_class
        elif flag == "--data" and value.endswith(".yaml"):
            data_class = read_yaml(base / value).get("class_path") or data_class
    return data_class


def make_targets() -> set[str]:
    targets = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        rule = re.match(r"^([\w.$()/ -]+?)\s*:(?!=)", line)
        if rule and not line.startswith("\t"):
            targets |= {t for t in rule.group(1).split() if not t.startswith(".")}
    return targets


def path_problems(token: str, base: Path) -> list[str]:
    """A token that names a file of the repository (``scripts/slurm/gpu.sbatch``) must exist; a backbone
    of imgcls's own (``imgcls/airbench``) is a name, not a path."""
    if token in network_names():
        return []
    if not token.startswith(tuple(f"{f}/" for f in REPO_FOLDERS)) or re.search(r"[<*{$]", token):
        return []
    return [] if (base / token).exists() else [f"{token}: no such file or folder"]


def command_problems(command: list[str], base: Path) -> list[str]:
    """Problems with one simple shell command of a page."""
    while command and re.match(r"^\w+=", command[0]):  # VAR=value before the program
        command = command[1:]
    if not command:
        return []
    program, args = Path(command[0]).name, command[1:]
    problems = [p for token in command for p in path_problems(token, base)]
    if program == "imgcls":
        problems += cli_problems(args, base)
    elif program.startswith("python") and args[:2] == ["-m", "imgcls"]:
        problems += cli_problems(args[2:], base)
    elif program.startswith("python") and args[:1] == ["lightning_cli.py"]:
        problems += [] if (base / "lightning_cli.py").exists() else ["lightning_cli.py: missing"]
        problems += cli_problems(args[1:], base)
    elif program.startswith("python") and args[:1] == ["-m"] and args[1].startswith("benchmarks."):
        module = base / (args[1].replace(".", "/") + ".py")
        problems += [] if module.exists() else [f"python -m {args[1]}: no {module.relative_to(base)}"]
        if "--" in args:  # the rest goes to every imgcls fit the benchmark runs
            problems += option_problems(args[args.index("--") + 1 :], None)
    elif program == "make":
        targets = make_targets()
        for target in args:
            if "=" not in target and not target.startswith("-") and target not in targets:
                problems.append(f"make {target}: no such target in the Makefile")
    elif program == "sbatch" and len(args) >= 2:  # template, config, then options of its fit and test
        problems += option_problems(args[2:], data_class_path(base / args[1]))
    return problems


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings."""
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in HEADING.findall(text)}


def page_problems(text: str, page: Path, base: Path = REPO) -> list[str]:
    """Everything a page names that does not exist; empty when the page is true."""
    problems = []
    # (a) every config named anywhere, braces expanded: configs/base/models/{resnet18,vgg16}.yaml
    for path in CONFIG_PATH.findall(text):
        choices = re.search(r"\{([^}]*)\}", path)
        expanded = (
            [path.replace(choices.group(0), c) for c in choices.group(1).split(",")] if choices else [path]
        )
        problems += [f"{p}: no such config" for p in expanded if not (base / p).is_file()]
    # (b)-(d) the shell blocks' commands
    for language, block in FENCE.findall(text):
        if language in ("bash", "sh", "shell", "console"):
            for command in shell_commands(block):
                problems += command_problems(command, base)
    prose = FENCE.sub("", text)
    # inline code: commands, options of the three sections, importable names, repository paths
    for span in INLINE.findall(prose):
        if re.match(r"^(imgcls|make|python -m imgcls) ", span):
            with_commands = list(shell_commands(span))
            problems += command_problems(with_commands[0], base) if with_commands else []
        for option in SECTION_OPTION.findall(span):
            problems += option_problems([f"--{option}"], None)
        if re.fullmatch(r"imgcls(\.\w+)+", span) and not importable(span):
            problems.append(f"{span}: neither a module nor a name in one")
        if " " not in span:
            problems += path_problems(span.rstrip("/"), base)
    # (e) relative links, and their anchors
    for target in LINK.findall(prose):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists():
            problems.append(f"link {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text()):
            problems.append(f"link {target}: no heading with that anchor")
    return problems


def importable(dotted: str) -> bool:
    """``imgcls.data.samplers.SeededShuffle``: a module, or a name defined in one."""
    module, _, name = dotted.rpartition(".")
    try:
        importlib.import_module(dotted)
        return True
    except ImportError:
        pass
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_page_names_only_what_exists(page: Path) -> None:
    assert page_problems(page.read_text(), page) == []


def test_readme_links_every_docs_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert [p.name for p in (REPO / "docs").glob("*.md") if f"docs/{p.name}" not in readme] == []


def test_checker_catches_what_does_not_exist() -> None:
    page = REPO / "docs" / "example.md"
    text = """
```bash
imgcls fit --config configs/eurosat_sample.yaml --model.no_such_argument 1 --data.init_args.batch_size 8
imgcls test --config configs/no_such_config.yaml --trainer.no_such_flag true --data.init_args.no_such 2
imgcls train --config configs/eurosat_sample.yaml
make no-such-target
```

See [the missing page](no_such_page.md) and `--model.backbone resnet18` and `--model.colour red`.
"""
    problems = "\n".join(page_problems(text, page))
    assert "--model.no_such_argument" in problems
    assert "configs/no_such_config.yaml: no such config" in problems
    assert "--trainer.no_such_flag" in problems
    assert "--data.init_args.no_such" in problems
    assert "imgcls train: no such command" in problems
    assert "make no-such-target" in problems
    assert "link no_such_page.md" in problems
    assert "--model.colour" in problems
    assert "batch_size" not in problems and "--model.backbone" not in problems
