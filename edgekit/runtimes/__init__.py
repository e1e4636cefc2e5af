"""Emulated phone runtimes behind one small Protocol: open an artifact, run named inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from edgekit.errors import EdgekitError

RUNTIME_FOR_SUFFIX = {".pte": "executorch", ".onnx": "onnxruntime", ".ort": "onnxruntime",
                      ".mlpackage": "coreml"}


class Session(Protocol):
    """A loaded artifact that runs named numpy inputs to named numpy outputs."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class RuntimeUnavailable(EdgekitError):
    """The artifact's runtime cannot run on this machine (Core ML off Apple hardware)."""


def runtime_for(path: Path) -> str:
    """The runtime that runs the artifact at `path`, from its suffix."""
    runtime = RUNTIME_FOR_SUFFIX.get(path.suffix.lower())
    if runtime is None:
        known = ", ".join(RUNTIME_FOR_SUFFIX)
        raise EdgekitError(f"{path}: unknown artifact type '{path.suffix}' (known: {known})")
    return runtime


def open_session(
    path: Path,
    input_names: tuple[str, ...] | None = None,
    output_names: tuple[str, ...] | None = None,
    threads: int | None = None,
) -> Session:
    """Load the artifact at `path` in its runtime.

    Args:
        path: a .pte, .onnx, .ort or .mlpackage artifact.
        input_names: names of the inputs in order (a .pte stores none; ONNX files do).
        output_names: names of the outputs in order (likewise).
        threads: intra-op threads, e.g. from a device profile; None lets the runtime choose.

    Raises:
        RuntimeUnavailable: the runtime cannot run here.
        EdgekitError: the artifact is missing or cannot be loaded.
    """
    if not path.exists():
        raise EdgekitError(f"{path}: no such artifact")
    runtime = runtime_for(path)
    if runtime == "executorch":
        from edgekit.runtimes.executorch import ExecuTorchSession

        return ExecuTorchSession(path, input_names, output_names, threads)
    if runtime == "onnxruntime":
        from edgekit.runtimes.onnxruntime import OnnxRuntimeSession

        return OnnxRuntimeSession(path, threads)
    raise RuntimeUnavailable(f"{path}: Core ML runs only on Apple hardware and edgekit's Core "
                             "ML emulator is not available yet")
