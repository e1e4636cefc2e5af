"""Projected phone latency (labelled "estimated"): FLOPs and bytes per inference counted from
the exported graph, combined with a device profile's compute and bandwidth into a roofline
range. The model and its constants are described in docs/latency-model.md; the constants live
in targets/devices/_latency_model.toml.

What is counted from where:

- `.onnx`: the file itself (shapes from onnx.shape_inference, weights at their stored dtype).
- `.ort`: the `.onnx` it was converted from (same stem, same or sibling folder); an ORT
  flatbuffer holds the same graph after ORT's fixed optimizations.
- `.pte` and `.mlpackage`: the torch.export program every format was lowered from (the
  pipeline passes it), else the `.onnx` of the same student when one is beside it. XNNPACK
  and Core ML blobs are opaque; the program they were lowered from has the same matmuls.
  The program is the float student's, so the weights the quantization plan stores in low
  precision count the plan's bytes (codes and group scales) and bits, not fp32's.
  Core ML computes in fp16, so float32 tensors count 2 bytes for `.mlpackage`.
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.devices import COMPUTE_UNITS, DeviceProfile, devices_dir
from edgekit.errors import ConfigError, EdgekitError

OP_CLASSES = ("matmul", "conv", "depthwise_conv", "attention", "other")
LABEL = "estimated"


@dataclass(frozen=True)
class OpCost:
    """The work of one graph op: arithmetic, weight bytes read, activation bytes moved."""

    op_class: str
    flops: int
    weight_bytes: int
    activation_bytes: int
    weight_bits: int = 32  # storage precision of the op's weights (32 when it has none)


@dataclass(frozen=True)
class GraphCost:
    """Every op of one inference, and where the counts came from."""

    ops: tuple[OpCost, ...]
    counted_from: str

    @property
    def flops(self) -> int:
        return sum(op.flops for op in self.ops)

    @property
    def bytes(self) -> int:
        return sum(op.weight_bytes + op.activation_bytes for op in self.ops)


@dataclass(frozen=True)
class UnitModel:
    """Calibration constants of one compute unit; each pair is (pessimistic, optimistic)."""

    compute_efficiency: dict[str, tuple[float, float]]
    low_precision_speedup: tuple[float, float]
    half_precision_speedup: tuple[float, float]
    op_overhead_us: tuple[float, float]


@dataclass(frozen=True)
class LatencyModel:
    """All calibration constants (targets/devices/_latency_model.toml)."""

    memory_efficiency: tuple[float, float]
    activation_dram_fraction: tuple[float, float]
    units: dict[str, UnitModel]
    source: Path


@functools.cache
def latency_model(path: Path | None = None) -> LatencyModel:
    """Read the calibration constants; ConfigError naming the file and key on bad data."""
    path = path or devices_dir() / "_latency_model.toml"
    try:
        data = tomllib.loads(path.read_text())
        units = {}
        for unit in COMPUTE_UNITS:
            values = data[unit]
            units[unit] = UnitModel(
                compute_efficiency={c: _pair(values["compute_efficiency"][c]) for c in OP_CLASSES},
                low_precision_speedup=_pair(values["low_precision_speedup"]),
                half_precision_speedup=_pair(values["half_precision_speedup"]),
                op_overhead_us=_pair(values["op_overhead_us"]),
            )
        return LatencyModel(_pair(data["memory_efficiency"]),
                            _pair(data["activation_dram_fraction"]), units, path)
    except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: bad or missing latency model constant ({exc})") from None


def _pair(value: Any) -> tuple[float, float]:
    pessimistic, optimistic = (float(v) for v in value)
    return pessimistic, optimistic


def compute_unit_for(fmt: str, device: DeviceProfile) -> str:
    """The compute unit an artifact of format `fmt` runs on by default on `device`.

    The NPU (or GPU) when the profile lists the format for it and publishes its throughput;
    the CPU otherwise (ExecuTorch XNNPACK and ONNX Runtime's CPU provider always can).
    """
    for unit, accelerator in (("npu", device.npu), ("gpu", device.gpu)):
        if accelerator is None or fmt not in accelerator.formats:
            continue
        if (accelerator.tops if unit == "npu" else accelerator.fp16_tflops):
            return unit
    return "cpu"


def project(cost: GraphCost, device: DeviceProfile, fmt: str,
            model: LatencyModel | None = None) -> dict[str, Any]:
    """The roofline range for one inference of `cost` on `device`, as report.json records it.

    Each op takes max(compute time, DRAM time) plus a fixed per-op overhead; `low_ms` uses
    the optimistic end of every constant, `high_ms` the pessimistic end, `mid_ms` their
    geometric mean.
    """
    if fmt == "coreml" and device.os != "iOS":
        return {"status": "not_run", "reason": f"Core ML does not run on {device.os} "
                f"({device.key}); project the .pte or .onnx for this device"}
    model = model or latency_model()
    unit = compute_unit_for(fmt, device)
    constants = model.units[unit]
    bandwidth = device.memory_bandwidth_gbps * 1e9
    ends = []
    per_class: dict[str, list[float]] = {c: [0.0, 0.0] for c in OP_CLASSES}
    for end in (0, 1):  # 0 pessimistic (high_ms), 1 optimistic (low_ms)
        total = 0.0
        for op in cost.ops:
            peak = _peak_flops(device, unit) * _speedup(op, constants, end)
            compute = op.flops / (peak * constants.compute_efficiency[op.op_class][end])
            dram = op.weight_bytes + op.activation_bytes * model.activation_dram_fraction[end]
            memory = dram / (bandwidth * model.memory_efficiency[end])
            seconds = max(compute, memory) + constants.op_overhead_us[end] * 1e-6
            per_class[op.op_class][end] += seconds
            total += seconds
        ends.append(total * 1e3)
    high_ms, low_ms = ends
    breakdown = {}
    for op_class in OP_CLASSES:
        ops = [op for op in cost.ops if op.op_class == op_class]
        if ops:
            slow, fast = per_class[op_class]
            breakdown[op_class] = {"ops": len(ops), "flops": sum(o.flops for o in ops),
                                   "bytes": sum(o.weight_bytes + o.activation_bytes for o in ops),
                                   "mid_ms": _round(math.sqrt(slow * fast) * 1e3)}
    return {"label": LABEL, "device": device.key, "compute_unit": unit,
            "low_ms": _round(low_ms), "mid_ms": _round(math.sqrt(low_ms * high_ms)),
            "high_ms": _round(high_ms), "flops": cost.flops, "bytes": cost.bytes,
            "counted_from": cost.counted_from, "breakdown": breakdown}


def _round(ms: float) -> float:
    return float(f"{ms:.4g}")


def _peak_flops(device: DeviceProfile, unit: str) -> float:
    if unit == "npu" and device.npu and device.npu.tops:
        return device.npu.tops * 1e12
    if unit == "gpu" and device.gpu and device.gpu.fp16_tflops:
        return device.gpu.fp16_tflops * 1e12
    return device.cpu_gflops() * 1e9


def _speedup(op: OpCost, constants: UnitModel, end: int) -> float:
    if op.weight_bits <= 8:
        return constants.low_precision_speedup[end]
    if op.weight_bits == 16:
        return constants.half_precision_speedup[end]
    return 1.0


# --- counting: ONNX ---------------------------------------------------------------------------

_ONNX_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8,
                  16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1}  # TensorProto dtype -> bytes
_ONNX_BITS = {21: 4, 22: 4}  # UINT4, INT4


def count_onnx(path: Path, half_precision: bool = False) -> GraphCost:
    """FLOPs and bytes of one inference of the ONNX file at `path`.

    Args:
        path: an .onnx file (external data beside it is read too).
        half_precision: count float32 tensors as 2 bytes (a runtime computing in fp16).
    """
    import onnx
    from onnx import shape_inference

    try:
        model = onnx.load(str(path))
        model = shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # onnx raises several types for bad files
        raise EdgekitError(f"{path}: cannot read the ONNX graph ({exc})") from None
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    shapes: dict[str, tuple[tuple[int, ...], int]] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor = info.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim)
        shapes[info.name] = (dims, tensor.elem_type)
    for tensor in graph.initializer:
        shapes[tensor.name] = (tuple(tensor.dims), tensor.data_type)
    constants = {n.output[0] for n in graph.node if n.op_type == "Constant"}
    # A weight stored in low precision and dequantized in the graph keeps its stored size.
    dequantized = {n.output[0]: n.input[0] for n in graph.node
                   if n.op_type == "DequantizeLinear" and n.input[0] in initializers}

    def nbytes(name: str) -> int:
        dims, dtype = shapes.get(name, ((), 0))
        if not dims or 0 in dims:
            return 0
        count = math.prod(dims)
        if dtype in _ONNX_BITS:
            return count * _ONNX_BITS[dtype] // 8
        size = _ONNX_ITEMSIZE.get(dtype, 4)
        return count * (2 if half_precision and dtype == 1 else size)

    seen: set[str] = set()
    ops = []
    for node in graph.node:
        if node.op_type in ("Constant", "DequantizeLinear") and (
                node.op_type == "Constant" or node.input[0] in initializers):
            continue
        weight_names = [i for i in node.input if i and (i in initializers or i in dequantized)]
        stored = [dequantized.get(n, n) for n in weight_names]
        bits = min((_stored_bits(shapes[s][1], half_precision) for s in stored), default=32)
        if node.op_type == "Gather" and stored:
            weight_bytes = nbytes(node.output[0])  # an embedding lookup reads only its rows
        else:
            weight_bytes = sum(nbytes(s) for s in stored if s not in seen)
        seen.update(stored)
        activations = [i for i in node.input if i and i not in weight_names and i not in constants]
        activation_bytes = sum(nbytes(i) for i in activations) + sum(nbytes(o) for o in node.output)
        op_class, flops = _onnx_flops(node, shapes)
        if node.op_type == "MatMulNBits":
            bits = next((a.i for a in node.attribute if a.name == "bits"), 4)
        ops.append(OpCost(op_class, flops, weight_bytes, activation_bytes, bits))
    return GraphCost(tuple(ops), f"onnx graph {path.name}")


def _stored_bits(dtype: int, half_precision: bool) -> int:
    if dtype in _ONNX_BITS:
        return _ONNX_BITS[dtype]
    if dtype == 1 and half_precision:
        return 16
    return _ONNX_ITEMSIZE.get(dtype, 4) * 8


def _onnx_flops(node: Any, shapes: dict[str, tuple[tuple[int, ...], int]]) -> tuple[str, int]:
    def dims(name: str) -> tuple[int, ...]:
        return shapes.get(name, ((), 0))[0]

    out = dims(node.output[0]) if node.output else ()
    out_elems = math.prod(out) if out and 0 not in out else 0
    if node.op_type in ("MatMul", "MatMulInteger", "MatMulNBits", "Gemm", "QLinearMatMul",
                        "DynamicQuantizeMatMul", "FusedMatMul"):
        a = dims(node.input[0])
        k = a[-1] if a else 0
        transposed = any(x.name == "transA" and x.i for x in node.attribute)
        if node.op_type == "Gemm" and transposed and len(a) == 2:
            k = a[0]
        both_activations = node.op_type == "MatMul" and len(dims(node.input[1])) > 2
        return ("attention" if both_activations else "matmul"), 2 * out_elems * k
    if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
        weight = dims(node.input[1] if node.op_type != "QLinearConv" else node.input[3])
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        per_output = math.prod(weight[1:]) if len(weight) > 1 else 0
        depthwise = group > 1 and weight and group == weight[0] and weight[1] == 1
        return ("depthwise_conv" if depthwise else "conv"), 2 * out_elems * per_output
    return "other", out_elems


# --- counting: torch.export program -----------------------------------------------------------

_MATMUL_TARGETS = ("aten.mm.default", "aten.addmm.default", "aten.bmm.default",
                   "aten.matmul.default", "aten.linear.default")
_CONV_TARGETS = ("aten.convolution.default", "aten.conv2d.default", "aten.conv1d.default")
_ATTENTION_TARGETS = ("aten.scaled_dot_product_attention.default",
                      "aten._scaled_dot_product_flash_attention_for_cpu.default")


_PLAN_BITS = {"int4": 4, "int8": 8}  # LayerPlan.precision -> stored bits (float: none)


def stored_weights(plan: dict[str, Any] | None) -> dict[str, tuple[int, int]]:
    """The weights a quantization plan stores in low precision.

    Args:
        plan: the plan's JSON form (QuantPlan.to_json(), or a report's compression[].plan);
            None or an unquantized plan stores nothing in low precision.

    Returns:
        Module name -> (bytes as stored, codes and scales included; bits per code).
    """
    stored = {}
    for layer in (plan or {}).get("layers", []):
        bits = _PLAN_BITS.get(layer.get("precision", ""))
        if bits is not None and "bytes" in layer:
            stored.update({name: (int(layer["bytes"]), bits) for name in layer["names"]})
    return stored


def count_program(program: Any, half_precision: bool = False, name: str = "",
                  stored: dict[str, tuple[int, int]] | None = None) -> GraphCost:
    """FLOPs and bytes of one inference of a torch.export ExportedProgram (shapes from the
    fake tensors torch.export records on every node).

    Args:
        program: the ExportedProgram.
        half_precision: count float32 tensors as 2 bytes (a runtime computing in fp16).
        name: the artifact's name, for `counted_from`.
        stored: module name -> (stored bytes, bits) of weights kept in low precision
            (stored_weights()); their reads count those bytes instead of the program's.
    """
    signature = program.graph_signature
    weights = {**signature.inputs_to_parameters, **signature.inputs_to_buffers,
               **getattr(signature, "inputs_to_lifted_tensor_constants", {})}
    planned = {placeholder: stored[fqn.removesuffix(".weight")]
               for placeholder, fqn in weights.items()
               if stored and fqn.removesuffix(".weight") in stored}
    seen: set[str] = set()
    ops = []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        target = str(node.target)
        if target in ("aten.view.default", "aten._unsafe_view.default", "aten.t.default",
                      "aten.expand.default", "aten.unsqueeze.default", "aten.squeeze.dim",
                      "aten.alias.default", "aten.detach.default", "<built-in function getitem>"):
            continue  # views move no data
        inputs = [a for a in _flat(node.args) if hasattr(a, "op")]
        weight_inputs = [a for a in inputs if a.op == "placeholder" and a.name in weights]
        act_inputs = [a for a in inputs if a not in weight_inputs]
        bits = min((planned[a.name][1] if a.name in planned else _torch_bits(a, half_precision)
                    for a in weight_inputs), default=32)
        if target == "aten.embedding.default":
            weight_bytes = _embedding_read(node, weight_inputs, planned, half_precision)
        else:
            weight_bytes = sum(planned[a.name][0] if a.name in planned
                               else _torch_bytes(a, half_precision)
                               for a in weight_inputs if a.name not in seen)
        seen.update(a.name for a in weight_inputs)
        activation_bytes = (sum(_torch_bytes(a, half_precision) for a in act_inputs)
                            + _torch_bytes(node, half_precision))
        op_class, flops = _torch_flops(node, target)
        ops.append(OpCost(op_class, flops, weight_bytes, activation_bytes, bits))
    return GraphCost(tuple(ops), f"torch.export program{' of ' + name if name else ''}")


def _embedding_read(node: Any, weight_inputs: list[Any], planned: dict[str, tuple[int, int]],
                    half_precision: bool) -> int:
    """Bytes an embedding lookup reads: only its rows, at the table's stored precision."""
    rows = _torch_bytes(node, half_precision)
    table = next((a for a in weight_inputs if a.name in planned), None)
    if table is None:
        return rows
    as_float = _torch_bytes(table, half_precision)
    return round(rows * planned[table.name][0] / as_float) if as_float else rows


def _flat(args: Iterable[Any]) -> list[Any]:
    flat: list[Any] = []
    for arg in args:
        if isinstance(arg, list | tuple):
            flat.extend(_flat(arg))
        else:
            flat.append(arg)
    return flat


def _shape(node: Any) -> tuple[int, ...]:
    value = node.meta.get("val")
    shape = getattr(value, "shape", None)
    try:
        return tuple(int(d) for d in shape) if shape is not None else ()
    except TypeError:  # symbolic dims
        return ()


def _torch_bytes(node: Any, half_precision: bool) -> int:
    value = node.meta.get("val")
    if value is None or not hasattr(value, "dtype"):
        return 0
    size = value.element_size()
    if half_precision and str(value.dtype) == "torch.float32":
        size = 2
    shape = _shape(node)
    return math.prod(shape) * size if shape else size


def _torch_bits(node: Any, half_precision: bool) -> int:
    value = node.meta.get("val")
    if value is None or not hasattr(value, "dtype"):
        return 32
    if half_precision and str(value.dtype) == "torch.float32":
        return 16
    return int(value.element_size() * 8)


def _torch_flops(node: Any, target: str) -> tuple[str, int]:
    out = _shape(node)
    out_elems = math.prod(out) if out else 0
    if target in _MATMUL_TARGETS:
        first = node.args[1] if target == "aten.addmm.default" else node.args[0]
        k = _shape(first)[-1] if _shape(first) else 0
        if target == "aten.bmm.default" or (target == "aten.matmul.default"
                                              and len(_shape(node.args[1])) > 2):
            second = node.args[1]
            is_weight = second.op == "placeholder"
            return ("matmul" if is_weight else "attention"), 2 * out_elems * k
        return "matmul", 2 * out_elems * k
    if target in _CONV_TARGETS:
        weight = _shape(node.args[1])
        groups = int(node.args[8]) if target == "aten.convolution.default" else (
            int(node.args[6]) if len(node.args) > 6 else 1)
        per_output = math.prod(weight[1:]) if len(weight) > 1 else 0
        depthwise = groups > 1 and weight and groups == weight[0] and weight[1] == 1
        return ("depthwise_conv" if depthwise else "conv"), 2 * out_elems * per_output
    if target in _ATTENTION_TARGETS:
        query, key = _shape(node.args[0]), _shape(node.args[1])
        if query and key:
            return "attention", 4 * math.prod(query) * key[-2]
    return "other", out_elems
