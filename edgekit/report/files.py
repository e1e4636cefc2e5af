"""Write the report files of an output folder, each complete before it appears."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edgekit.report.html import render_html
from edgekit.report.junit import render_junit
from edgekit.report.markdown import render_markdown

# Format name -> file name in the output folder.
FILES = {"json": "report.json", "md": "report.md", "junit": "report.junit.xml",
         "html": "report.html"}


def render_json(report: dict[str, Any]) -> str:
    """report.json text: the report without the API-only `out` field."""
    return json.dumps({k: v for k, v in report.items() if k != "out"}, indent=2) + "\n"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "json": render_json, "md": render_markdown, "junit": render_junit, "html": render_html,
}


def write_reports(report: dict[str, Any], out: Path, formats: Iterable[str]) -> list[Path]:
    """Render `report` in each format and write it into `out`; returns the paths written.

    Every format is rendered before any file is written, and each file is written to a
    hidden temporary name and renamed, so a reader never sees half a file.
    """
    texts = {fmt: RENDERERS[fmt](report) for fmt in formats}
    written = []
    for fmt, text in texts.items():
        path = out / FILES[fmt]
        partial = out / f".{path.name}.partial-{os.getpid()}"
        try:
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        written.append(path)
    return written
