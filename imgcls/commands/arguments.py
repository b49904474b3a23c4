"""The argument layer every command shares: one-line errors, run-folder options, threads, run names.

jsonargparse (under LightningCLI, and directly for the other commands) reports a bad argument in many
lines of argparse internals. ``explain`` turns each kind into one line that names the option and the
fix, suggesting the closest valid name, for every command alike.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentError, ArgumentParser, Namespace

from imgcls.errors import ConfigError


def option_strings(parser: Any) -> list[str]:
    """Every ``--option`` a parser (or any of its subcommands) takes, as its help lists them."""
    found = re.findall(r"(?<![\w-])--\w[\w.-]*\w", parser.format_help())
    return [o for o in dict.fromkeys(found) if not o.endswith(".help")]


def _closest(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to ``name``; else one that ends like it (``--lr`` of ``--model.optimizer.init_args.lr``)."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return close[0]
    last = name.lstrip("-").rsplit(".", 1)[-1]
    return next((c for c in candidates if c.endswith("." + last)), None)


def _hint(suggestion: str | None) -> str:
    return f" (did you mean {suggestion}?)" if suggestion else ""


def _type_name(text: str) -> str:
    """``<class 'int'>`` -> ``int``, ``NoneType`` -> ``null``, ``Literal['a', 'b']`` -> ``one of 'a', 'b'``."""
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text.strip()).replace("typing.", "")
    if text == "NoneType":
        return "null"
    literal = re.fullmatch(r"Literal\[(.*)\]", text)
    return f"one of {literal.group(1)}" if literal else text


def _class_arguments(class_path: str) -> list[str]:
    """The arguments jsonargparse accepts for a class (its signature, ``**kwargs`` followed into the
    base classes); empty when the class cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        parser = ArgumentParser()
        parser.add_class_arguments(getattr(importlib.import_module(module), name), "init")
    except Exception:  # only a better message: the caller falls back to jsonargparse's
        return []
    return [o.removeprefix("--init.") for o in option_strings(parser) if o.startswith("--init.")]


def _similar_class(class_path: str) -> str | None:
    """The class of the same module whose name is closest to a mistyped ``class_path``."""
    module, _, name = class_path.rpartition(".")
    try:
        names = [n for n, v in vars(importlib.import_module(module)).items() if inspect.isclass(v)]
    except ImportError:
        return None
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f"{module}.{close[0]}" if close else None


def explain(message: str, options: list[str], example: str | None = None) -> str:
    """One line out of one of jsonargparse's error messages, naming the option and the fix.

    Args:
        message: jsonargparse's message (many lines).
        options: the ``--options`` of the parser that failed, for suggestions.
        example: a config file to name where a required argument or the config itself is missing.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = "\n".join(lines)
    if not lines:
        return message
    # an option on the command line
    if lines[0].startswith("unrecognized arguments:"):
        given = [
            token.split("=", 1)[0] for token in lines[0].split(":", 1)[1].split() if token.startswith("-")
        ]
        unknown = [name + _hint(_closest(name, options)) for name in given]
        return "unknown option " + ", ".join(unknown) if unknown else lines[0]
    # a key of a config file
    setting = re.search(r"does not accept option '([\w.]+)'|Option '([\w.]+)' is not accepted", lines[0])
    if setting and "class_path" not in text:
        key = setting.group(1) or setting.group(2)
        keys = [o.removeprefix("--") for o in options]
        return f"unknown setting {key!r}" + _hint(_closest(key, keys))
    required = re.match(r"the following arguments are required: (.*)", lines[0])
    if required:
        names = ", ".join(f"--{n.strip()}" for n in required.group(1).split(","))
        where = f" (e.g. --config {example})" if example else ""
        return f"missing {names}: give it on the command line or in a --config file{where}"
    key = re.match(r'Parser key "([\w.]+)"', lines[0])
    if key is None:
        return " ".join(lines)
    section = key.group(1)
    class_problem = re.search(r"class_path '([\w.]+)':\s*(.*)", text, flags=re.DOTALL)
    if class_problem:
        class_path, problem = class_problem.groups()
        # jsonargparse's words, or ours when its parser of the class has explained them already
        option = re.match(r"(?:Option|unknown setting) '(\w+)'", problem)
        if option:
            accepted = _class_arguments(class_path)
            if accepted:
                hint = _closest(option.group(1), accepted)
                return f"--{section}.init_args.{option.group(1)} is not an argument of {class_path}" + _hint(
                    f"--{section}.init_args.{hint}" if hint else None
                )
        if re.match(r"module '[\w.]+' has no attribute", problem) or "No module named" in problem:
            return f"--{section}: unknown class {class_path}" + _hint(_similar_class(class_path))
        inner = re.match(
            r'Parser key "(\w+)":(.*?)(?:\n- Expected a <class \'NoneType\'>|$)', problem, re.DOTALL
        )
        if inner:  # a value of one of the class's arguments
            nested = f'Parser key "{section}.init_args.{inner.group(1)}":{inner.group(2)}'
            return explain(nested, options, example)
    if section == "config":
        where = f"; pass a config such as {example}" if example else ""
        return f"--config: {' '.join(lines)[len(key.group(0)) + 1 :].strip()}{where}"
    option = next((o for o in options if o.lstrip("-").replace("-", "_") == section), f"--{section}")
    given = re.findall(r"(?:Given|Got) value: (.*)", text)
    import_path = re.search(r"Expected a dot import path string: (.*)", text)
    if import_path:
        return (
            f"{option}: {import_path.group(1)!r} is neither a config file nor a class; name the class in full "
            "(e.g. torch.optim.SGD) or give the path of a YAML piece"
        )
    subtypes = re.search(r"Subtypes: \[(.*)\]", text)
    expected = re.search(r"Expected a (.*?)\. Got value", text)
    if subtypes:
        kinds = [_type_name(t) for t in re.split(r",\s*(?![^\[]*\])", subtypes.group(1))]
    elif expected:
        kinds = [_type_name(expected.group(1))]
    else:
        return f"{option}: " + " ".join(lines[1:] or [lines[0][len(key.group(0)) :].lstrip(": ")])
    hint = " (a list is written [16,32])" if any(k.startswith("list") for k in kinds) else ""
    got = f", got {given[-1]!r}" if given else ""
    return f"{option} expects {' or '.join(kinds)}{got}{hint}"


def error_line(err: BaseException) -> str:
    """The message of an error as one line, without the worker traceback a DataLoader wraps around it."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[-1] if ": " in last else last
    return " ".join(text.split())


class CommandParser(ArgumentParser):
    """jsonargparse's parser for a command: no abbreviated options, errors as one ``ConfigError`` line.

    Takes jsonargparse's own keyword arguments too, which it passes when it builds parsers for a
    ``class_path`` option such as ``--data``.

    Args:
        prog: ``imgcls COMMAND``.
        description: what the command does, for ``--help``.
        example: a config file to name in the errors that concern the config.
    """

    def __init__(
        self, prog: str = "imgcls", description: str | None = None, example: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("exit_on_error", False)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(prog=prog, description=description, **kwargs)
        self.example = example

    def parse(self, argv: list[str], namespace: Namespace | None = None) -> Namespace:
        """``parse_args``, raising ``ConfigError`` with one line that names the option and the fix."""
        try:
            return self.parse_args(argv, namespace=namespace)
        except ArgumentError as err:
            line = explain(str(err), option_strings(self), self.example)
            raise ConfigError(f"{line} (see `{self.prog} --help`)") from None


def add_run_folder_arguments(parser: Any) -> None:
    """``--experiment``, ``--runs_dir`` and ``--threads``, as every command that makes a run folder has them."""
    parser.add_argument(
        "--experiment",
        type=str | None,
        default=None,
        help="Run folder name: runs go to <runs_dir>/<experiment>/version_N. Default: the last config file's name.",
    )
    parser.add_argument(
        "--runs_dir", type=str, default="runs", help="Folder that holds every experiment's runs."
    )
    add_threads_argument(parser)


def add_threads_argument(parser: Any) -> None:
    """``--threads``, as every command that computes has it (applied by ``set_threads``)."""
    parser.add_argument(
        "--threads",
        type=int | None,
        default=None,
        help="CPU threads of torch's operators (torch.set_num_threads). Default: PyTorch's, one per core. "
        "On a machine shared with other jobs set it to the cores this run may use; too many threads "
        "for the free cores make every step wait on the slowest.",
    )


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (None: PyTorch's default, one per core).

    Raises:
        ConfigError: fewer than one thread.
    """
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads must be 1 or more, got {threads}; leave it out for one per core")
    torch.set_num_threads(threads)


def experiment_name(config: Namespace, default: str) -> str:
    """``--experiment``, else the last config file's name (``default`` without one), followed by the
    names of the model and optimizer pieces added to it (``eurosat_resnet50-resnet18-adam``)."""
    if config.get("experiment"):
        return str(config["experiment"])
    files = [f for f in (config.get("config") or []) if f is not None]
    name = Path(str(files[-1])).stem if files else default
    return "-".join([name, *_piece_names(config)])


def _string_values(node: Any) -> str:
    if isinstance(node, dict):
        return " ".join(_string_values(v) for v in node.values())
    if isinstance(node, list):
        return " ".join(_string_values(v) for v in node)
    return node if isinstance(node, str) else ""


def _piece_names(config: Namespace) -> list[str]:
    """Names of the model and optimizer pieces (``configs/base/{models,optim}/*.yaml``) added to a run.

    Variants of one study (``--model configs/base/models/resnet50.yaml``) then get run folders of their
    own. Pieces that the config files name themselves are part of the study, not a variant.
    """
    files = [Path(str(f)) for f in (config.get("config") or []) if f is not None]
    own = " ".join(_string_values(yaml.safe_load(f.read_text())) for f in files if f.is_file())
    model = config.get("model")
    candidates = [model, model.get("optimizer")] if model is not None else []
    names = []
    for group in candidates:
        path = group.get("__path__") if hasattr(group, "get") else None
        if path is None:
            continue
        path = Path(str(path))
        if path.parent.name in ("models", "optim") and f"{path.parent.name}/{path.name}" not in own:
            names.append(path.stem)
    return names
