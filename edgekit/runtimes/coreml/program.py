"""Read a saved .mlpackage into a flat list of MIL operations the emulator can interpret.

coremltools' milproto loader turns the package's protobuf and weight file back into a MIL
Program (this works off Apple hardware). From it edgekit keeps only plain data: each
operation's type, name, argument names and declared output types, and the values of `const`
operations. Nothing of coremltools is held after loading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.console import import_backend, quiet
from edgekit.errors import EdgekitError

# MIL dtype name -> numpy dtype of the values the emulator holds (sub-byte ints widen to 8 bits).
NUMPY_DTYPE: dict[str, type] = {
    "fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "bool": np.bool_,
    "int4": np.int8, "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint1": np.uint8, "uint2": np.uint8, "uint3": np.uint8, "uint4": np.uint8, "uint6": np.uint8,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
}
FLOAT_DTYPES = frozenset({"fp16", "fp32", "fp64"})

Arg = str | tuple[str, ...]  # a variable name, or a tuple of names (concat's `values`)


@dataclass(frozen=True)
class TensorType:
    """The declared type of one variable: MIL dtype name and static shape."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Operation:
    """One MIL operation: `outputs = op_type(**args)`, args naming variables."""

    op_type: str
    name: str
    index: int  # position in the function body, for error messages
    args: dict[str, Arg]
    outputs: tuple[str, ...]
    output_types: tuple[TensorType, ...]

    @property
    def location(self) -> str:
        return f"op '{self.name}' (#{self.index} of function main)"


@dataclass
class MilProgram:
    """The `main` function of an ML program, ready to interpret."""

    path: Path
    inputs: dict[str, TensorType]
    states: dict[str, TensorType]
    outputs: tuple[str, ...]
    output_types: dict[str, TensorType]
    constants: dict[str, Any]
    operations: list[Operation] = field(default_factory=list)


def load_program(path: Path) -> MilProgram:
    """Load the ML program of the .mlpackage at `path`.

    Raises:
        EdgekitError: the package is missing, is not an ML program, or uses control flow.
    """
    model_file = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
    if not model_file.is_file():
        raise EdgekitError(f"{path}: not a Core ML package (no Data/com.apple.CoreML/"
                           "model.mlmodel)")
    proto = import_backend("coremltools.proto.Model_pb2")
    milproto = import_backend("coremltools.converters.mil.frontend.milproto.load")
    spec = proto.Model()
    spec.ParseFromString(model_file.read_bytes())
    if spec.WhichOneof("Type") != "mlProgram":
        raise EdgekitError(f"{path}: a neural-network Core ML model; the emulator runs ML "
                           "programs (convert with convert_to='mlprogram')")
    try:
        with quiet():
            program = milproto.load(spec, spec.specificationVersion,
                                    str(model_file.parent / "weights"))
    except Exception as exc:  # the loader raises many types; the first line names the cause
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise EdgekitError(f"{path}: coremltools could not read the ML program ({first})") \
            from None
    function_name = spec.description.defaultFunctionName or "main"
    return _from_function(path, program.functions[function_name])


def _from_function(path: Path, function: Any) -> MilProgram:
    types = import_backend("coremltools.converters.mil.mil.types")
    inputs: dict[str, TensorType] = {}
    states: dict[str, TensorType] = {}
    for name, var in function.inputs.items():
        if types.is_state(var.sym_type):
            wrapped = var.sym_type.wrapped_type()
            states[name] = TensorType(types.builtin_to_string(wrapped.get_primitive()),
                                      tuple(int(d) for d in wrapped.get_shape()))
        else:
            inputs[name] = _tensor_type(types, var)
    result = MilProgram(path=path, inputs=inputs, states=states,
                        outputs=tuple(v.name for v in function.outputs),
                        output_types={v.name: _tensor_type(types, v) for v in function.outputs},
                        constants={})
    for index, op in enumerate(function.operations):
        if op.blocks:
            raise EdgekitError(f"{path}: Core ML op '{op.op_type}' at op '{op.name}' "
                               f"(#{index} of function main) has nested blocks (control flow), "
                               "which edgekit's Core ML emulator does not run")
        if op.op_type == "const":
            result.constants[op.outputs[0].name] = _const_value(types, op.outputs[0])
            continue
        args: dict[str, Arg] = {}
        for param, var in op.inputs.items():
            args[param] = tuple(v.name for v in var) if isinstance(var, (list, tuple)) \
                else var.name
        result.operations.append(Operation(
            op_type=op.op_type, name=op.name, index=index, args=args,
            outputs=tuple(v.name for v in op.outputs),
            output_types=tuple(_tensor_type(types, v) for v in op.outputs)))
    return result


def _tensor_type(types: Any, var: Any) -> TensorType:
    # a flexible dim is a sympy symbol or an expression of one (2*is0 after a concat): -1
    shape = tuple(int(d) if isinstance(d, (int, np.integer)) else -1 for d in (var.shape or ()))
    return TensorType(types.builtin_to_string(var.dtype), shape)


def _const_value(types: Any, var: Any) -> Any:
    """A const's value: numpy array of the declared dtype, or a str/bool/list attribute."""
    value = var.val
    dtype = types.builtin_to_string(var.dtype)
    if isinstance(value, str) or dtype == "str":
        return str(value)
    if dtype in NUMPY_DTYPE:
        return np.asarray(value).astype(NUMPY_DTYPE[dtype], copy=False)
    return value
