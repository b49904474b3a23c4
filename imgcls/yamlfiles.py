"""Reading a YAML file that must hold settings, with one-line errors that name the file and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from imgcls.errors import ConfigError


def read_settings(path: str | Path, what: str, example: str) -> dict[str, Any]:
    """The mapping in the YAML file ``path``.

    Args:
        path: the file.
        what: how errors name it (``--config x.yaml``, ``sweep file x.yaml``).
        example: what to pass instead, for the error messages.

    Raises:
        ConfigError: the file is missing, is not YAML, or holds no mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} does not exist; pass {example}")
    try:
        settings = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{what} holds no settings; pass {example}")
    return settings
