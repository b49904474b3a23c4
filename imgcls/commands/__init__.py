"""The ``imgcls`` command line: one registry of commands, one argument layer (``arguments``).

Every command is a module here that gives ``COMMANDS``, and is listed once below; ``imgcls --help``
lists them from this registry. This package is the top floor: it imports the rest of imgcls, and
nothing else in imgcls imports it.
"""

from __future__ import annotations

import difflib
import logging
import sys

from imgcls.commands import compare, export, fewshot, predict, summary, sweep, train
from imgcls.commands.arguments import error_line
from imgcls.commands.command import Command
from imgcls.errors import ConfigError, ImgclsError
from imgcls.quiet import silence_library_noise

COMMANDS: dict[str, Command] = {
    command.name: command
    for module in (train, predict, summary, compare, export, sweep, fewshot)
    for command in module.COMMANDS
}


def top_level_help() -> str:
    """What ``imgcls --help`` prints: every command of the registry, by group."""
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: imgcls COMMAND [options]   (imgcls COMMAND --help for the options of one)"]
    groups: dict[str, list[Command]] = {}
    for command in COMMANDS.values():
        groups.setdefault(command.group, []).append(command)
    for group, commands in groups.items():
        lines += ["", f"{group}:"]
        lines += [f"  {command.name:<{width}}  {command.summary}" for command in commands]
    lines += ["", "example: imgcls fit --config configs/eurosat_sample.yaml"]
    return "\n".join(lines)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``imgcls``, ``python -m imgcls`` and ``lightning_cli.py``: runs one command.

    A problem with the user's input (``ImgclsError``) ends in one line and exit status 2; a full disk in
    3, memory running out in 4 (``imgcls.errors``).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    silence_library_noise()
    argv = sys.argv[1:] if args is None else list(args)
    if not argv or argv[0] in ("-h", "--help"):
        print(top_level_help())
        sys.exit(0 if argv else 2)
    try:
        if argv[0].startswith("-"):  # options before the command (`--config BASE fit`): LightningCLI's
            train.run_lightning(argv)
        elif argv[0] in COMMANDS:
            COMMANDS[argv[0]].run(argv[1:])
        else:
            close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown command {argv[0]!r}{hint}; see `imgcls --help`")
    except ImgclsError as err:
        print(f"imgcls: error: {error_line(err)}", file=sys.stderr)
        sys.exit(err.exit_code)
