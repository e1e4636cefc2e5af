"""Helpers the tests import by name (a conftest cannot be imported reliably: pytest loads
several files called conftest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run `python -m edgekit ARGS` and return the completed process (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )


def read_report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())
