"""CoreMLEmulatorSession: run a saved .mlpackage with numpy, op by op, in fp32 or fp16.

Precision modes, after the compute units Core ML picks on a phone:

- fp32 (the CPU compute unit): every op computes in float32, also where the program declares
  fp16 tensors; casts to fp16 keep float32 values. Weights stored as fp16 keep their stored
  (already rounded) values.
- fp16 (GPU / Neural Engine): every value the program declares fp16 (op outputs, inputs,
  weights) is rounded to float16 (round to nearest even), so values above 65504 become inf and
  tiny ones flush as fp16 does. Ops the program declares fp32 (those an export kept in fp32,
  between casts) compute and stay in float32, as Core ML runs them in fp32 on the device.
  Each fp16 op computes from fp16 values in float32 (float64 for normalisation statistics)
  and rounds its result: it models fp16 storage between ops, not fp16 accumulation inside one.

After each run `overflow_ops` names where inf or NaN first appeared from finite values: ops
("linear_3 (linear)"), and in fp16 mode fp16 inputs ("x (input)") or weights ("w (const)")
that exceed the fp16 range once rounded. States (KV caches) start at zero, as a fresh MLState,
and persist across runs until `reset_states()`. A state is memory of its declared dtype on
every compute unit (Core ML states are fp16), so a value written to an fp16 state is rounded
to fp16 in both modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtimes.coreml import constexpr, elementwise, nn, scatter, tensor
from edgekit.runtimes.coreml.elementwise import Args, OpFn
from edgekit.runtimes.coreml.program import (
    FLOAT_DTYPES,
    NUMPY_DTYPE,
    Operation,
    TensorType,
    load_program,
)

PRECISIONS = ("fp32", "fp16")


@dataclass
class StateSlot:
    """The current value of one state (e.g. a KV cache) of a stateful program."""

    value: np.ndarray
    dtype: str  # the declared MIL dtype: what the state's memory holds


def _read_state(a: Args) -> np.ndarray:
    slot: StateSlot = a["input"]
    return slot.value.copy()


def _update_state(a: Args) -> np.ndarray:
    slot: StateSlot = a["state"]
    value = np.asarray(a["value"], dtype=slot.value.dtype)
    if value.shape != slot.value.shape:
        raise ValueError(f"value of shape {list(value.shape)} does not fit the state's shape "
                         f"{list(slot.value.shape)}")
    if slot.dtype == "fp16":  # the state's memory is fp16, whatever the compute precision
        with np.errstate(over="ignore"):
            value = value.astype(np.float16).astype(slot.value.dtype)
    slot.value = value.copy()
    return value


OPS: dict[str, OpFn] = {
    **elementwise.OPS, **tensor.OPS, **scatter.OPS, **nn.OPS, **constexpr.OPS,
    "read_state": _read_state,
    "coreml_update_state": _update_state,  # the milproto loader reads write_state as this
}


class CoreMLEmulatorSession:
    """Runs a Core ML ML program (.mlpackage) with numpy, in fp32 or fp16 precision."""

    def __init__(self, path: Path, precision: str = "fp32") -> None:
        """Load the package and decompress its constexpr weights.

        Args:
            path: a saved .mlpackage holding an ML program.
            precision: "fp32" (Core ML's CPU compute unit) or "fp16" (GPU / Neural Engine).

        Raises:
            EdgekitError: the package cannot be read, or uses an op the emulator lacks.
        """
        if precision not in PRECISIONS:
            raise EdgekitError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
        self.path = path
        self.precision = precision
        self._program = load_program(path)
        self._check_supported()
        self.input_names = tuple(self._program.inputs)
        self.output_names = self._program.outputs
        self.overflow_ops: tuple[str, ...] = ()
        self.intermediates: dict[str, np.ndarray] = {}
        self._constants = {name: self._constant(value)
                           for name, value in self._program.constants.items()}
        self._nonfinite_constants = {name for name, value in self._constants.items()
                                     if _has_nonfinite(value)}
        self._operations: list[Operation] = []
        decompressed_overflow: list[str] = []  # fp16 weights decompressed above 65504
        for op in self._program.operations:  # decompress weights once, as Core ML at load
            if op.op_type.startswith("constexpr_"):
                self._execute(op, self._constants, self._nonfinite_constants,
                              decompressed_overflow)
            else:
                self._operations.append(op)
        self._overflowing_constants = tuple(decompressed_overflow)
        self._states: dict[str, StateSlot] = {}
        self.reset_states()

    @property
    def states(self) -> dict[str, np.ndarray]:
        """A copy of each state's current value, by state name."""
        return {name: slot.value.copy() for name, slot in self._states.items()}

    def reset_states(self) -> None:
        """Set every state to zeros, as a newly made MLState."""
        self._states = {name: StateSlot(np.zeros(t.shape, dtype=self._holding_dtype(t.dtype)),
                                        t.dtype)
                        for name, t in self._program.states.items()}

    def run(self, inputs: dict[str, np.ndarray], keep_intermediates: bool = False
            ) -> dict[str, np.ndarray]:
        """Run the program on inputs keyed by name; outputs keyed by name.

        Args:
            inputs: one array per input name (cast to the declared dtype, shape checked).
            keep_intermediates: keep every variable's value in `self.intermediates`.

        Returns:
            The outputs: float32 in fp32 mode, the declared dtype (fp16 or fp32) in fp16 mode.
        """
        env: dict[str, Any] = dict(self._constants)
        env.update(self._states)
        overflow: list[str] = list(self._overflowing_constants)
        nonfinite = set(self._nonfinite_constants)
        for name, declared in self._program.inputs.items():
            if name not in inputs:
                raise EdgekitError(f"{self.path}: missing input '{name}' "
                                   f"(expects {', '.join(self.input_names)})")
            given = np.asarray(inputs[name])
            env[name] = self._input(name, given, declared)
            if _has_nonfinite(env[name]):
                nonfinite.add(name)
                if not _has_nonfinite(given):  # finite, but not once rounded to fp16
                    overflow.append(f"{name} (input)")
        with np.errstate(all="ignore"):
            for op in self._operations:
                self._execute(op, env, nonfinite, overflow)
        self.overflow_ops = tuple(overflow)
        self.intermediates = {k: v for k, v in env.items() if isinstance(v, np.ndarray)
                              and k not in self._constants} if keep_intermediates else {}
        return {name: self._output(env[name], self._program.output_types[name])
                for name in self.output_names}

    def _execute(self, op: Operation, env: dict[str, Any], nonfinite: set[str],
                 overflow: list[str]) -> None:
        args = {param: tuple(env[n] for n in ref) if isinstance(ref, tuple) else env[ref]
                for param, ref in op.args.items()}
        try:
            result = OPS[op.op_type](args)
        except Exception as exc:  # a numpy error inside one op: name the op, not a traceback
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise EdgekitError(f"{self.path}: Core ML op '{op.op_type}' at {op.location} "
                               f"failed in the emulator ({first})") from None
        values = result if isinstance(result, tuple) else (() if result is None else (result,))
        if len(values) != len(op.outputs):
            raise EdgekitError(f"{self.path}: Core ML op '{op.op_type}' at {op.location} gave "
                               f"{len(values)} outputs, the program declares {len(op.outputs)}")
        inputs_finite = not any(
            n in nonfinite for ref in op.args.values()
            for n in (ref if isinstance(ref, tuple) else (ref,)))
        for name, declared, value in zip(op.outputs, op.output_types, values, strict=True):
            held = self._hold(np.asarray(value), declared)
            if declared.shape and -1 not in declared.shape and held.shape != declared.shape:
                raise EdgekitError(
                    f"{self.path}: Core ML op '{op.op_type}' at {op.location} produced shape "
                    f"{list(held.shape)}, the program declares {list(declared.shape)}")
            env[name] = held
            if declared.dtype in FLOAT_DTYPES and _has_nonfinite(held):
                if inputs_finite:
                    overflow.append(f"{op.name} ({op.op_type})")
                nonfinite.add(name)

    def _holding_dtype(self, dtype: str) -> type:
        return np.float32 if dtype in FLOAT_DTYPES else NUMPY_DTYPE[dtype]

    def _hold(self, value: np.ndarray, declared: TensorType) -> np.ndarray:
        """A value as the emulator holds it: floats as float32, fp16-rounded in fp16 mode."""
        if declared.dtype not in FLOAT_DTYPES:
            return value.astype(NUMPY_DTYPE[declared.dtype], copy=False)
        if self.precision == "fp16" and declared.dtype == "fp16":
            with np.errstate(over="ignore"):
                return value.astype(np.float16).astype(np.float32)
        return value.astype(np.float32, copy=False)

    def _constant(self, value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            dtype = "fp16" if value.dtype == np.float16 else "fp32"
            return self._hold(value, TensorType(dtype, value.shape))
        return value

    def _input(self, name: str, value: np.ndarray, declared: TensorType) -> np.ndarray:
        shape_ok = len(value.shape) == len(declared.shape) and all(
            d in (-1, v) for v, d in zip(value.shape, declared.shape, strict=True))
        if not shape_ok:
            raise EdgekitError(f"{self.path}: input '{name}' has shape {list(value.shape)}, "
                               f"the program expects {list(declared.shape)}")
        return self._hold(value, declared)

    def _output(self, value: np.ndarray, declared: TensorType) -> np.ndarray:
        if self.precision == "fp16" and declared.dtype in FLOAT_DTYPES:
            return value.astype(NUMPY_DTYPE[declared.dtype])
        return value.copy()

    def _check_supported(self) -> None:
        missing = [op for op in self._program.operations if op.op_type not in OPS]
        if missing:
            others = sorted({op.op_type for op in missing[1:]} - {missing[0].op_type})
            also = f"; also unsupported: {', '.join(others)}" if others else ""
            raise EdgekitError(f"{self.path}: Core ML op '{missing[0].op_type}' at "
                               f"{missing[0].location} is not supported by edgekit's Core ML "
                               f"emulator{also}")


def _has_nonfinite(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" \
        and not bool(np.isfinite(value).all())
