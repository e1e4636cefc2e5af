"""Reading TOML files (configs, targets, devices) with one error for a malformed file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file at `path` as a dict; ConfigError naming the file when it is malformed."""
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
