"""ONNX Runtime with mobile-like settings: the CPU execution provider, fixed thread count."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.console import import_backend, quiet
from edgekit.errors import EdgekitError


class OnnxRuntimeSession:
    """Runs an .onnx or .ort file on ONNX Runtime's CPU execution provider."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ort = import_backend("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            with quiet():
                self._session = ort.InferenceSession(
                    str(path), sess_options=options, providers=["CPUExecutionProvider"]
                )
        except Exception as exc:  # ORT raises its own exception types for bad files
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise EdgekitError(f"{path}: ONNX Runtime could not load it ({first})") from None
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self.path = path

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on inputs keyed by name; outputs keyed by name."""
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise EdgekitError(f"{self.path}: missing input '{missing[0]}' "
                               f"(expects {', '.join(self.input_names)})")
        feed = {n: np.ascontiguousarray(inputs[n]) for n in self.input_names}
        try:
            outputs = self._session.run(None, feed)
        except Exception as exc:  # ORT raises its own exception types (shape, dtype)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise EdgekitError(f"{self.path}: ONNX Runtime run failed ({first})") from None
        return dict(zip(self.output_names, outputs, strict=True))
