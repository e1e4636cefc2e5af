"""Damage one layer's weights (or scales) inside a saved artifact, as a bad export would."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def damage_onnx(path: Path, node_output: str, factor: float = 4.0) -> str:
    """Scale the weights (MatMul/Gemm/Gather) or scales (MatMulNBits, GatherBlockQuantized) of
    the node producing `node_output` by `factor`; returns the initializer's name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if node_output in n.output)
    initializers = {i.name: i for i in model.graph.initializer}
    position = {"MatMulNBits": 2, "GatherBlockQuantized": 2, "Gather": 0}.get(node.op_type, 1)
    name = node.input[position]
    if name not in initializers:  # a transposed weight: follow the Transpose back
        name = next(n.input[0] for n in model.graph.node if name in n.output)
    tensor = initializers[name]
    values = numpy_helper.to_array(tensor)
    damaged = values * np.asarray(factor, values.dtype)
    tensor.CopyFrom(numpy_helper.from_array(damaged, name))
    onnx.save(model, str(path))
    return name


def damage_mlpackage(path: Path, weight: str, factor: float = 4.0) -> None:
    """Scale the stored values of `weight` in the package's weight file: a const's values, or
    a constexpr op's scales (int4/int8 weights)."""
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    model_file = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec.ParseFromString(model_file.read_bytes())
    offset = None
    for block in spec.mlProgram.functions["main"].block_specializations.values():
        for op in block.operations:
            if op.outputs[0].name != weight:
                continue
            if op.type == "const":
                offset = op.attributes["val"].blobFileValue.offset
            else:
                offset = op.inputs["scale"].arguments[0].value.blobFileValue.offset
    assert offset is not None, weight
    weights = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(weights.read_bytes())
    sentinel, dtype, size, start = struct.unpack_from("<IIQQ", data, offset)
    assert sentinel == 0xDEADBEEF
    kind = {1: np.float16, 2: np.float32}[dtype]
    values = np.frombuffer(bytes(data[start:start + size]), dtype=kind) * kind(factor)
    data[start:start + size] = values.astype(kind).tobytes()
    weights.write_bytes(bytes(data))


def damage_pte(path: Path, weight: np.ndarray, factor: float = 4.0) -> None:
    """Scale a float weight stored verbatim in a .pte (XNNPACK keeps fp32 weights as they are)."""
    data = path.read_bytes()
    raw = np.ascontiguousarray(weight, dtype=np.float32).tobytes()
    start = data.find(raw)
    assert start >= 0 and data.find(raw, start + 1) < 0, "weight not stored once in the .pte"
    damaged = (np.frombuffer(raw, dtype=np.float32) * np.float32(factor)).tobytes()
    path.write_bytes(data[:start] + damaged + data[start + len(raw):])
