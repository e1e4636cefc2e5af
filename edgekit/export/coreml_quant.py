"""Emit a quantization plan in a Core ML ML program: constexpr_blockwise_shift_scale (iOS 18).

After conversion, each weight const of the MIL program is matched to the plan by value (the
fp16 rounding of the layer's weight, as coremltools stores it) and replaced by a
constexpr_blockwise_shift_scale of the plan's own codes, scales (fp16, the program's weight
precision) and zero points. coremltools' own quantizer is not used: nothing is re-quantized.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from edgekit.compress.plan import LayerPlan
from edgekit.console import import_backend

SPARSE_MIN_FRACTION = 0.3  # a weight this sparse is stored as mask + nonzero values
SPARSE_MIN_SIZE = 2048  # ... when it holds at least this many values


def _key(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def apply_plan(program: Any, layers: list[LayerPlan], weights: dict[str, np.ndarray],
               weight_dtype: type = np.float16) -> dict[str, Any]:
    """Rewrite the MIL `program` in place so that planned weights are constexpr ops.

    Args:
        program: a coremltools MIL Program (e.g. `MLModel._mil_program` after conversion).
        layers: the plan's layers.
        weights: fp32 weight [out, in] of each layer, keyed by the layer's first name.
        weight_dtype: the dtype coremltools stored the weights in (fp16 for fp16 compute).

    Returns:
        Notes: const ops replaced per layer, and layers found in no const (kept float).
    """
    mb = import_backend("coremltools.converters.mil").Builder
    helper = import_backend("coremltools.converters.mil.mil.passes.helper")
    scope = import_backend("coremltools.converters.mil.mil.scope")
    type_int = import_backend("coremltools.converters.mil.mil.types.type_int")
    planned = {}
    for layer in layers:
        if layer.weight is not None:
            planned[_key(weights[layer.names[0]].astype(weight_dtype))] = layer
    emitted: dict[str, list[str]] = {}

    def data_dtype(bits: int, signed: bool) -> np.dtype:
        name = f"np_{'' if signed else 'u'}int{bits}_dtype"
        return getattr(type_int, name) if bits == 4 else np.dtype(np.int8 if signed else np.uint8)

    @helper.block_context_manager
    def rewrite(block: Any) -> None:
        for op in list(block.operations):
            if op.op_type != "const":
                continue
            value = op.outputs[0].val
            if not isinstance(value, np.ndarray) or value.ndim != 2 or value.dtype != weight_dtype:
                continue
            layer = planned.get(_key(value))
            if layer is None or layer.weight is None:
                continue
            weight = layer.weight
            signed = weight.zeros is None
            kwargs: dict[str, Any] = {
                "data": weight.codes.numpy().astype(data_dtype(weight.bits, signed)),
                "scale": weight.scales.numpy().astype(weight_dtype),
            }
            if weight.zeros is not None:
                kwargs["offset"] = weight.zeros.numpy().astype(data_dtype(weight.bits, False))
            kept = [scope.ScopeInfo(source=source, data=data) for source, data in op.scopes.items()
                    if source != scope.ScopeSource.COREMLTOOLS_GRAPH_PASS]
            with mb.scope(*kept):
                new = mb.constexpr_blockwise_shift_scale(
                    before_op=op, name=f"{op.name}_q{weight.bits}", **kwargs)
            block.replace_uses_of_var_after_op(anchor_op=op, old_var=op.outputs[0], new_var=new,
                                               no_check_var_types=True)
            block.remove_ops([op])
            emitted.setdefault(layer.names[0], []).append("constexpr_blockwise_shift_scale")

    for function in program.functions.values():
        rewrite(function)
    missed = {layer.names[0]: "no weight const with this layer's values in the ML program"
              for layer in layers if layer.weight is not None and layer.names[0] not in emitted}
    return {"quantized_ops": emitted, "kept_float": missed}


def sparse_weights(ct: Any, model: Any) -> tuple[Any, dict[str, Any]]:
    """Store weights that pruning made mostly zero as Core ML sparse weights
    (constexpr_sparse_to_dense: a bit mask plus the nonzero values), the one format here that
    turns unstructured or N:M sparsity into fewer bytes.

    Returns:
        The model and notes: how many weight constants became sparse.
    """
    optimize = ct.optimize.coreml
    config = optimize.OptimizationConfig(global_config=optimize.OpThresholdPrunerConfig(
        threshold=1e-12, minimum_sparsity_percentile=SPARSE_MIN_FRACTION,
        weight_threshold=SPARSE_MIN_SIZE))
    sparse = optimize.prune_weights(model, config)
    count = sum(1 for op in sparse._mil_program.functions["main"].operations
                if op.op_type == "constexpr_sparse_to_dense")
    return sparse, {"sparse_weights": count,
                    "rule": f"weights with at least {SPARSE_MIN_FRACTION:.0%} zeros and "
                            f"{SPARSE_MIN_SIZE} values stored as bit mask + nonzero values"}
