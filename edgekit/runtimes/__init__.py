"""Emulated phone runtimes behind one small Protocol: open an artifact, run named inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from edgekit.devices import DeviceProfile
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
    precision: str | None = None,
) -> Session:
    """Load the artifact at `path` in its runtime.

    Args:
        path: a .pte, .onnx, .ort or .mlpackage artifact.
        input_names: names of the inputs in order (a .pte stores none; ONNX files do).
        output_names: names of the outputs in order (likewise).
        threads: intra-op threads, e.g. from a device profile; None lets the runtime choose.
        precision: Core ML only, the emulator's precision: "fp16" (GPU / Neural Engine, the
            default) or "fp32" (the CPU compute unit).

    Raises:
        RuntimeUnavailable: the runtime cannot run here.
        EdgekitError: the artifact is missing or cannot be loaded, or `precision` was given
            for a runtime other than Core ML's.
    """
    if not path.exists():
        raise EdgekitError(f"{path}: no such artifact")
    runtime = runtime_for(path)
    if precision is not None and runtime != "coreml":
        raise EdgekitError(f"{path}: precision applies to Core ML packages only ({runtime} "
                           "runs the precision stored in the artifact)")
    if runtime == "executorch":
        from edgekit.runtimes.executorch import ExecuTorchSession

        return ExecuTorchSession(path, input_names, output_names, threads)
    if runtime == "onnxruntime":
        from edgekit.runtimes.onnxruntime import OnnxRuntimeSession

        return OnnxRuntimeSession(path, threads)
    from edgekit.runtimes.coreml import CoreMLEmulatorSession

    return CoreMLEmulatorSession(path, precision or "fp16")


def run_samples(session: Session, samples: list[dict[str, np.ndarray]]
                ) -> tuple[list[dict[str, np.ndarray]], tuple[str, ...]]:
    """Each sample's outputs, and the ops that overflowed fp16 in any run (only the Core ML
    emulator watches that, op by op: its `overflow_ops`)."""
    outputs, overflow = [], []
    for sample in samples:
        outputs.append(session.run(sample))
        overflow += [op for op in getattr(session, "overflow_ops", ()) if op not in overflow]
    return outputs, tuple(overflow)


def session_runtime(path: Path) -> str:
    """The name of what actually runs the artifact here: Core ML packages run in edgekit's
    emulator ("coreml-emulator"), the others in their own runtime."""
    runtime = runtime_for(path)
    return "coreml-emulator" if runtime == "coreml" else runtime


def coreml_precision(device: DeviceProfile) -> str:
    """The Core ML emulator's precision for `device`: "fp16" when the phone has a GPU or
    Neural Engine that runs Core ML (Core ML's default compute units pick them), else
    "fp32" (the CPU compute unit)."""
    accelerators = (device.gpu, device.npu)
    return "fp16" if any(a is not None and "coreml" in a.formats for a in accelerators) \
        else "fp32"
