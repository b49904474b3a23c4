"""What a command module gives the registry: its name, group, one line of help, and how to run it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One ``imgcls`` command.

    Args:
        name: ``imgcls NAME``.
        group: the heading ``imgcls --help`` lists it under.
        summary: one line for ``imgcls --help``.
        run: runs the command on the arguments after its name; what it returns is for callers from
            Python (the files written). A command whose exit status tells more than success (a sweep
            with a failed run) ends with ``sys.exit``.
    """

    name: str
    group: str
    summary: str
    run: Callable[[list[str]], object]


TRAINING = "training and evaluation (LightningCLI; --config FILE, any --section.key VALUE)"
READING = "reading models and run folders"
STUDIES = "studies"
