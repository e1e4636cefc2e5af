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


FP32_UNIT_ROUNDOFF = 2.0 ** -24
FP16_UNIT_ROUNDOFF = 2.0 ** -11


def rounding_tolerance(scale: float, reduction: int, unit: float = FP32_UNIT_ROUNDOFF) -> float:
    """The largest difference two runtimes may show computing the same values in floating point
    with their own summation orders: each is within gamma_n * scale of the exact result
    (Higham's bound for a sum of n products, gamma_n = n*u / (1 - n*u)), so the two are within
    twice that of each other.

    Args:
        scale: magnitude of the compared values (e.g. the largest |logit| of the reference).
        reduction: products summed along the longest chain of the computation, e.g. for a
            decoder layers * (hidden + intermediate + cache length) + hidden for the head.
        unit: unit roundoff of the arithmetic (fp32 by default; FP16_UNIT_ROUNDOFF for fp16).
    """
    gamma = reduction * unit / (1 - reduction * unit)
    return 2 * gamma * scale
