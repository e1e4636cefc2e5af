"""Shared fixtures: tiny real-architecture students saved as Hugging Face folders, and a CLI
runner that calls `edgekit` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import students  # noqa: E402


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory: pytest.TempPathFactory):
    """A function building (once per session) a tiny student folder by kind."""
    built: dict[str, Path] = {}
    makers = {"llama": students.tiny_llama, "qwen2": students.tiny_qwen2,
              "bert": students.tiny_bert, "resnet": students.tiny_resnet}

    def make(kind: str) -> Path:
        if kind not in built:
            built[kind] = makers[kind](tmp_path_factory.mktemp("students") / f"tiny-{kind}")
        return built[kind]

    return make


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run `python -m edgekit ARGS` and return the completed process (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )


def read_report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())
