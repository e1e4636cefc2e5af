"""Shared fixtures: tiny real-architecture students saved as Hugging Face folders.
(Importable helpers such as run_cli live in helpers.py.)"""

from __future__ import annotations

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
