"""report.json: the one machine-readable record of a run (schema in docs/report-schema.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError

SCHEMA_VERSION = 1


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write `report` as indented JSON at `path`."""
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")


def read_report(path: Path) -> dict[str, Any]:
    """Read a report.json, checking its schema version."""
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgekitError(f"{path}: no such report") from None
    except json.JSONDecodeError as exc:
        raise EdgekitError(f"{path}: not valid JSON ({exc})") from None
    if report.get("schema_version") != SCHEMA_VERSION:
        raise EdgekitError(f"{path}: schema_version {report.get('schema_version')!r}, "
                           f"this edgekit reads {SCHEMA_VERSION}")
    return report
