"""Emit a quantization plan in an ONNX graph with ONNX Runtime's native 4/8-bit operators.

The fp32 graph's weight initializers are matched to the plan's layers by value (the exporter
folds `weight.T` into anonymous initializers, so names do not survive), then:

- MatMul(x, W.T)  ->  com.microsoft MatMulNBits(x, codes, scales[, zero_points]),
  block_size = the plan's group size, float activations (accuracy_level unset; 4, int8
  activations, with `[quantize] onnx_int8_activations`); a
  per-channel weight over a width that is not a power of two (int8 over 576 inputs) in
  blocks of a power of two dividing the width, each repeating its row's scale;
- where no such block exists, or for a Gather of such a table, DequantizeLinear of the codes
  replaces the initializer (ORT fuses DequantizeLinear -> MatMul with int8 activations:
  reported as substituted);
- Gather(W, ids)  ->  com.microsoft GatherBlockQuantized(codes, ids, scales[, zero_points]).

Codes and scales are the plan's own, re-packed; nothing is re-quantized. Layers the graph
uses in another way (e.g. Gemm) stay in float and are listed as substituted.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.compress.plan import LayerPlan
from edgekit.compress.weights import QuantizedWeight

if TYPE_CHECKING:
    from edgekit.compress.quantize import QuantPlan

_MS = "com.microsoft"


def _key(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def _pack_nibbles(values: np.ndarray) -> np.ndarray:
    """Two 4-bit values per byte, the first in the low nibble (ONNX and ORT order)."""
    flat = values.astype(np.uint8).reshape(-1)
    if flat.size % 2:
        flat = np.append(flat, np.uint8(0))
    return (flat[0::2] & 0x0F) | ((flat[1::2] & 0x0F) << 4)


def _unsigned(weight: QuantizedWeight) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes and zero points as unsigned integers (symmetric codes shifted by 2^(bits-1))."""
    codes = weight.codes.numpy().astype(np.int32)
    if weight.zeros is None:
        return (codes + 2 ** (weight.bits - 1)).astype(np.uint8), None
    return codes.astype(np.uint8), weight.zeros.numpy().astype(np.uint8)


def matmul_nbits(x: str, out: str, name: str, weight: QuantizedWeight,
                 initializers: list[TensorProto], int8_activations: bool = False
                 ) -> onnx.NodeProto:
    """A MatMulNBits node computing x @ W.T from the plan's codes and scales (with
    `int8_activations`, accuracy_level 4: ORT quantizes x per block to int8)."""
    rows, cols = weight.codes.shape  # N (out features), K (in features)
    blocks = cols // weight.group_size
    codes, zeros = _unsigned(weight)
    grouped = codes.reshape(rows, blocks, weight.group_size)
    if weight.bits == 4:
        packed = _pack_nibbles(grouped).reshape(rows, blocks, weight.group_size // 2)
    else:
        packed = grouped
    inputs = [x, f"{name}.qweight", f"{name}.scales"]
    initializers.append(numpy_helper.from_array(packed, inputs[1]))
    initializers.append(numpy_helper.from_array(weight.scales.numpy().reshape(-1), inputs[2]))
    if zeros is not None:
        if weight.bits == 4:
            zero_bytes = np.stack([_pack_nibbles(row) for row in zeros]).reshape(-1)
        else:
            zero_bytes = zeros.reshape(-1)
        inputs.append(f"{name}.zero_points")
        initializers.append(numpy_helper.from_array(zero_bytes, inputs[3]))
    level = {"accuracy_level": INT8_ACCURACY_LEVEL} if int8_activations else {}
    return helper.make_node("MatMulNBits", inputs, [out], name=f"{name}.MatMulNBits",
                            domain=_MS, K=cols, N=rows, bits=weight.bits,
                            block_size=weight.group_size, **level)


def gather_block_quantized(ids: str, out: str, name: str, weight: QuantizedWeight,
                           initializers: list[TensorProto]) -> onnx.NodeProto:
    """A GatherBlockQuantized node reading rows of the plan's quantized table.

    Codes are stored as unsigned bytes (two 4-bit codes per byte), the layout ONNX Runtime's
    mobile .ort format can hold (it has no INT4 tensor type); symmetric codes are shifted by
    2^(bits-1), which is the operator's default zero point.
    """
    rows, cols = weight.codes.shape
    codes, zeros = _unsigned(weight)
    raw = _pack_nibbles(codes).reshape(rows, -1) if weight.bits == 4 else codes
    initializers.append(numpy_helper.from_array(raw, f"{name}.qdata"))
    initializers.append(numpy_helper.from_array(weight.scales.numpy(), f"{name}.scales"))
    inputs = [f"{name}.qdata", ids, f"{name}.scales"]
    if zeros is not None:
        zero_bytes = (np.stack([_pack_nibbles(row) for row in zeros]) if weight.bits == 4
                      else zeros)
        initializers.append(numpy_helper.from_array(zero_bytes, f"{name}.zero_points"))
        inputs.append(f"{name}.zero_points")
    return helper.make_node("GatherBlockQuantized", inputs, [out],
                            name=f"{name}.GatherBlockQuantized", domain=_MS, gather_axis=0,
                            quantize_axis=1, block_size=weight.group_size, bits=weight.bits)


def reblocked(weight: QuantizedWeight) -> QuantizedWeight | None:
    """A per-channel weight whose width has no power-of-two block (e.g. int8 over 576 inputs)
    as the same weight in blocks of the largest power of two of 16-128 dividing the width,
    each block repeating its row's scale: exactly the plan, in MatMulNBits' layout. None when
    no such block exists or the weight is already blockwise."""
    cols = weight.codes.shape[1]
    if weight.group_size != cols or native_block(weight):
        return None
    block = next((b for b in (128, 64, 32, 16) if cols % b == 0), None)
    if block is None:
        return None
    repeat = cols // block
    zeros = weight.zeros.repeat(1, repeat) if weight.zeros is not None else None
    return QuantizedWeight(weight.codes, weight.scales.repeat(1, repeat), zeros, weight.bits,
                           block)


def native_block(weight: QuantizedWeight) -> bool:
    """Whether MatMulNBits/GatherBlockQuantized can hold the layout: their block size must be
    a power of two of at least 16 (so e.g. int8 per channel over 576 inputs cannot)."""
    block = weight.group_size
    return block >= 16 and block & (block - 1) == 0


def dequantize_linear(output: str, weight: QuantizedWeight, transposed: bool,
                      initializers: list[TensorProto]) -> onnx.NodeProto:
    """A DequantizeLinear producing the float weight (or its transpose) named `output` from
    the plan's per-channel codes: int8 codes, one fp32 scale per output row.

    Raises:
        ValueError: the weight is not per channel (DequantizeLinear here has one scale a row).
    """
    rows, cols = weight.codes.shape
    if weight.group_size != cols:
        raise ValueError(f"{output}: blocks of {weight.group_size} need MatMulNBits")
    codes = weight.codes.numpy()
    scales = weight.scales.numpy().reshape(-1)
    zeros = weight.zeros.numpy().reshape(-1) if weight.zeros is not None else None
    dtype = np.int8 if zeros is None else np.uint8
    if weight.bits == 4 and zeros is None:
        dtype = np.int8  # 4-bit codes held in int8 (a plan's int4 per channel)
    data = codes.T if transposed else codes
    inputs = [f"{output}.codes", f"{output}.scale"]
    initializers.append(numpy_helper.from_array(np.ascontiguousarray(data.astype(dtype)),
                                                inputs[0]))
    initializers.append(numpy_helper.from_array(scales.astype(np.float32), inputs[1]))
    if zeros is not None:
        inputs.append(f"{output}.zero_point")
        initializers.append(numpy_helper.from_array(zeros.astype(dtype), inputs[2]))
    return helper.make_node("DequantizeLinear", inputs, [output], name=f"{output}.Dequantize",
                            axis=1 if transposed else 0)


def apply_plan(model: onnx.ModelProto, layers: list[LayerPlan],
               weights: dict[str, np.ndarray], int8_activations: bool = False
               ) -> dict[str, Any]:
    """Rewrite `model` in place so that every planned layer uses its quantized form.

    Args:
        model: the fp32 ONNX model of the student.
        layers: the plan's layers.
        weights: fp32 weight [out, in] of each layer, keyed by the layer's first name.
        int8_activations: MatMulNBits at accuracy_level 4 (ORT's int8 kernels: 2.2-2.3x
            SmolLM2's decode on a 2-core x86 host) instead of float activations; reported
            as substituted.

    Returns:
        Notes: which layers were emitted as which operator, and which stayed in float (why).
    """
    graph = model.graph
    init_by_name = {init.name: init for init in graph.initializer}
    matmul_keys: dict[str, LayerPlan] = {}
    gather_keys: dict[str, LayerPlan] = {}
    for planned in layers:
        if planned.weight is None:
            continue
        weight = weights[planned.names[0]]
        if planned.kind == "embedding":
            gather_keys[_key(weight)] = planned
        matmul_keys[_key(weight.T)] = planned  # also a tied LM head's MatMul
    # A weight shared by a Gather and a MatMul (tied LM head) reaches the MatMul through a
    # Transpose node instead of a folded initializer.
    transposed = {node.output[0]: node.input[0] for node in graph.node
                  if node.op_type == "Transpose" and node.input[0] in init_by_name
                  and list(helper.get_attribute_value(a) for a in node.attribute) == [[1, 0]]}
    emitted: dict[str, list[str]] = {}
    new_inits: list[TensorProto] = []
    nodes = []
    dequantized: dict[str, tuple[LayerPlan, bool]] = {}  # initializer -> layer, transposed
    for index, node in enumerate(graph.node):
        layer = _planned_layer(node, init_by_name, transposed, matmul_keys, gather_keys)
        if layer is None or layer.weight is None:
            nodes.append(node)
            continue
        direct = node.op_type == "MatMul" and node.input[1] not in transposed
        as_blocks = reblocked(layer.weight) if direct else None
        if as_blocks is not None:  # the plan exactly (with float activations)
            name = f"{layer.names[0]}.{index}"
            nodes.append(matmul_nbits(node.input[0], node.output[0], name, as_blocks,
                                      new_inits, int8_activations))
            emitted.setdefault(layer.names[0], []).append("MatMulNBits")
            continue
        if not native_block(layer.weight):
            # No MatMulNBits/GatherBlockQuantized layout: the initializer itself becomes a
            # DequantizeLinear of the plan's codes, and every consumer reads its output.
            source = transposed.get(node.input[1], node.input[1]) if node.op_type == "MatMul" \
                else node.input[0]
            dequantized[source] = (layer, node.op_type == "MatMul"
                                   and node.input[1] not in transposed)
            nodes.append(node)
            emitted.setdefault(layer.names[0], []).append("DequantizeLinear")
            continue
        name = f"{layer.names[0]}.{index}"
        if node.op_type == "MatMul":
            nodes.append(matmul_nbits(node.input[0], node.output[0], name, layer.weight,
                                      new_inits, int8_activations))
        else:
            nodes.append(gather_block_quantized(node.input[1], node.output[0], name,
                                                layer.weight, new_inits))
        emitted.setdefault(layer.names[0], []).append(nodes[-1].op_type)
    for source, (layer, flip) in dequantized.items():
        assert layer.weight is not None
        nodes.insert(0, dequantize_linear(source, layer.weight, flip, new_inits))
    dropped = set(dequantized)
    nodes = _drop_dead(nodes, {o.name for o in graph.output})
    used = {i for n in nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used and i.name not in dropped]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    if not any(op.domain == _MS for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(_MS, 1))
    missed = {layer.names[0]: "no MatMul/Gather on this weight in the ONNX graph"
              for layer in layers if layer.weight is not None and layer.names[0] not in emitted}
    notes: dict[str, Any] = {"quantized_ops": emitted, "kept_float": missed}
    substituted = [INT8_ACTIVATIONS_NOTE] if int8_activations and any(
        "MatMulNBits" in ops for ops in emitted.values()) else []
    if any(flip for _, flip in dequantized.values()):
        substituted.append(DQ_MATMUL_NOTE)
    if substituted:
        notes["substituted"] = substituted
    return notes


def emit_plan(model: onnx.ModelProto, plan: QuantPlan) -> tuple[dict[str, Any], list[str]]:
    """apply_plan with a QuantPlan's layers, weights and settings.

    Returns:
        The plan notes, and the substitutions (reported beside the other formats' own, so that
        parity reports rather than judges token agreement with the eager quantized student).
    """
    int8 = bool(plan.settings is not None and plan.settings.onnx_int8_activations)
    notes = apply_plan(model, list(plan.layers), plan.weights, int8_activations=int8)
    return notes, notes.pop("substituted", [])


INT8_ACCURACY_LEVEL = 4  # MatMulNBits: activations quantized to int8 per block
INT8_ACTIVATIONS_NOTE = ("quantize.onnx_int8_activations: MatMulNBits run with int8 "
                         "activations (accuracy_level 4), not the plan's float activations")


DQ_MATMUL_NOTE = ("int8 per-channel layers are DequantizeLinear -> MatMul, which ONNX Runtime "
                  "fuses into MatMulNBits with int8 activations at its default optimisation "
                  "level: those layers do not run the plan's float activations exactly")


def _planned_layer(node: onnx.NodeProto, inits: dict[str, TensorProto],
                   transposed: dict[str, str], matmul_keys: dict[str, LayerPlan],
                   gather_keys: dict[str, LayerPlan]) -> LayerPlan | None:
    if node.op_type == "MatMul" and node.input[1] in transposed:
        init, keys, flip = inits.get(transposed[node.input[1]]), matmul_keys, True
    elif node.op_type == "MatMul":
        init, keys, flip = inits.get(node.input[1]), matmul_keys, False
    elif node.op_type == "Gather":
        init, keys, flip = inits.get(node.input[0]), gather_keys, False
    else:
        return None
    if init is None or init.data_type != TensorProto.FLOAT:
        return None
    array = numpy_helper.to_array(init)
    return keys.get(_key(array.T if flip else array))


def _drop_dead(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """Remove nodes (e.g. a Transpose of a replaced weight) whose outputs nothing reads."""
    while True:
        used = {i for n in nodes for i in n.input} | outputs
        alive = [n for n in nodes if any(o in used for o in n.output)]
        if len(alive) == len(nodes):
            return nodes
        nodes = alive
