"""Build small MIL programs with coremltools' Builder and save them as real .mlpackages."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgekit.console import import_backend, quiet


@pytest.fixture
def save_program(tmp_path: Path) -> Callable[..., Path]:
    """A function converting a MIL program (iOS 18) and saving it; returns the package path."""
    ct = import_backend("coremltools")
    counter = itertools.count()

    def save(program: Any, precision: str = "fp32") -> Path:
        path = tmp_path / f"program{next(counter)}.mlpackage"
        with quiet():
            model = ct.convert(program, minimum_deployment_target=ct.target.iOS18,
                               compute_precision=ct.precision.FLOAT16 if precision == "fp16"
                               else ct.precision.FLOAT32, skip_model_load=True)
            model.save(str(path))
        return path

    return save
