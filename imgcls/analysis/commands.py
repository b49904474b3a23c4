"""``imgcls summary`` and ``imgcls compare`` (filled in by the evaluation work)."""

from __future__ import annotations

from imgcls.errors import ConfigError


def run_command(name: str, argv: list[str]) -> None:
    raise ConfigError(f"`imgcls {name}` is not available yet")
