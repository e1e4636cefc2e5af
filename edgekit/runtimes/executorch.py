"""ExecuTorch through its Python bindings, with the XNNPACK delegate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgekit.console import import_backend, quiet
from edgekit.errors import EdgekitError


class ExecuTorchSession:
    """Runs the `forward` method of a .pte file."""

    def __init__(
        self,
        path: Path,
        input_names: tuple[str, ...] | None = None,
        output_names: tuple[str, ...] | None = None,
        threads: int | None = None,
    ) -> None:
        runtime = import_backend("executorch.runtime")
        # 4-bit and 8-bit embeddings run as quantized_decomposed::embedding_{4bit,byte}
        # outside the delegate: without their kernels the method fails to load (0x14)
        import_backend("executorch.kernels.quantized")
        if threads:
            # XNNPACK's threadpool is process-wide in the bindings.
            bindings = import_backend("executorch.extension.pybindings.portable_lib")
            bindings._unsafe_reset_threadpool(threads)
        try:
            with quiet():
                program = runtime.Runtime.get().load_program(str(path))
                self._method = program.load_method("forward")
        except Exception as exc:  # the bindings raise RuntimeError/ValueError for bad files
            raise EdgekitError(f"{path}: ExecuTorch could not load it ({exc})") from None
        meta = self._method.metadata
        count_in, count_out = meta.num_inputs(), meta.num_outputs()
        self.input_names = input_names or tuple(f"input_{i}" for i in range(count_in))
        self.output_names = output_names or tuple(f"output_{i}" for i in range(count_out))
        if len(self.input_names) != count_in:
            raise EdgekitError(f"{path}: the program takes {count_in} inputs, "
                               f"got names {list(self.input_names)}")
        self.path = path

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run forward on inputs keyed by name; outputs keyed by name."""
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise EdgekitError(f"{self.path}: missing input '{missing[0]}' "
                               f"(expects {', '.join(self.input_names)})")
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names]
        try:
            with quiet():
                outputs = self._method.execute(args)
        except Exception as exc:  # the bindings raise RuntimeError with an error code
            raise EdgekitError(f"{self.path}: ExecuTorch run failed ({exc})") from None
        return {name: out.numpy().copy() for name, out in zip(self.output_names, outputs,
                                                                strict=True)}
