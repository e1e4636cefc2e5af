"""Core ML: coremltools.convert from the ExportedProgram to an iOS 18 .mlpackage.

transformers' graphs contain `aten.alias`, which coremltools has no conversion for; it is an
identity, registered here once. The export wrappers already remove `diff`/`new_ones` masking
where the model reads edgekit's 4D mask; a model that builds its own mask (BLOOM, for ALiBi)
keeps transformers' mask functions, whose `new_ones`, `__and__` and scalar `where` are
rewritten into ops coremltools converts (`full`, `bitwise_and`, `where` of tensors).

fp16 compute keeps RMSNorm's statistics in fp32: `pow(x, 2)` and the reduce/add-eps/rsqrt
chain after it. A decoder's residual stream reaches |x| in the hundreds (SmolLM2: ~650), so
x**2 passes fp16's 65504 and the norm becomes inf/0 on GPU and Neural Engine. Everything
else, including the normalised product x * rsqrt(...), stays fp16.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekit.compress.quantize import QuantPlan
from edgekit.console import import_backend, quiet
from edgekit.errors import ExportError
from edgekit.export import coreml_quant
from edgekit.export._files import staged
from edgekit.model.student import Student

_MINIMUM_TARGET = "iOS18"
_COMPUTE_PRECISION = "float16"
_PRECISIONS = {"float16": "FLOAT16", "float32": "FLOAT32"}  # -> ct.precision member


def lower(program: torch.export.ExportedProgram, student: Student, dest: Path,
          precision: str = _COMPUTE_PRECISION, *, plan: QuantPlan | None = None
          ) -> dict[str, Any]:
    """Convert `program` to an ML program .mlpackage at `dest` (iOS 18).

    Args:
        program: the traced student.
        student: the student (output names, for messages).
        dest: the .mlpackage folder to write.
        precision: compute precision, "float16" (the default, what phones run) or "float32".
        plan: a quantization plan, emitted as constexpr_blockwise_shift_scale weights.

    Returns:
        Notes for the report: deployment target and compute precision.
    """
    if precision not in _PRECISIONS:
        raise ExportError(f"Core ML compute precision '{precision}' is not one of "
                          f"{', '.join(_PRECISIONS)}")
    ct = import_backend("coremltools")
    _register_missing_conversions()
    try:
        with quiet():
            decomposed = program.run_decompositions(_decompositions())
            model = ct.convert(
                decomposed,
                minimum_deployment_target=getattr(ct.target, _MINIMUM_TARGET),
                compute_precision=_compute_precision(ct, precision),
                outputs=[ct.TensorType(name=name) for name in student.output_names],
                skip_model_load=True,
            )
    except Exception as exc:  # coremltools raises many types; the first line names the op
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{student.name}: Core ML conversion failed ({first})") from None
    notes: dict[str, Any] = {"minimum_deployment_target": _MINIMUM_TARGET,
                             "compute_precision": precision}
    if precision == "float16":
        notes["fp32_ops"] = _fp32_ops(model._mil_program)
    if plan is not None and plan.quantized:
        weight_dtype = np.float16 if precision == "float16" else np.float32
        with quiet():
            program_mil = model._mil_program
            notes["plan"] = coreml_quant.apply_plan(program_mil, list(plan.layers),
                                                    plan.weights, weight_dtype)
            model = ct.convert(program_mil, minimum_deployment_target=getattr(
                ct.target, _MINIMUM_TARGET), compute_precision=getattr(
                ct.precision, _PRECISIONS[precision]), skip_model_load=True,
                pass_pipeline=ct.PassPipeline.EMPTY)
    sparsity = (student.pruning or {}).get("sparsity")
    if sparsity and not (plan is not None and plan.quantized):
        with quiet():
            model, notes["sparse"] = coreml_quant.sparse_weights(ct, model)
    elif sparsity:
        notes["sparse"] = {"sparse_weights": 0,
                           "rule": "4-bit codes are stored dense: the sparsity gives no bytes"}
    model = _name_inputs(ct, model, student.input_names)
    with staged(dest) as partial, quiet():
        model.save(str(partial))
    return notes


def _name_inputs(ct: Any, model: Any, names: tuple[str, ...]) -> Any:
    """The model with its inputs named as the student's (coremltools names an ExportedProgram's
    inputs after its placeholders, e.g. `inputs_0` for a module's `*inputs`)."""
    spec = model.get_spec()
    current = [feature.name for feature in spec.description.input]
    if current == list(names):
        return model
    for old, new in zip(current, names, strict=True):
        ct.utils.rename_feature(spec, old, new, rename_outputs=False)
    return ct.models.MLModel(spec, weights_dir=model.weights_dir, skip_model_load=True)


def _compute_precision(ct: Any, precision: str) -> Any:
    if precision == "float32":
        return ct.precision.FLOAT32
    return ct.transform.FP16ComputePrecision(op_selector=lambda op: not keeps_fp32(op))


_NORM_STATISTICS = frozenset({"reduce_mean", "reduce_sum", "add", "sqrt", "rsqrt"})


def keeps_fp32(op: Any) -> bool:
    """Whether a MIL op computes a norm's mean of squares (or its eps/root after), which
    overflows in fp16: `pow(x, 2)` or `mul(x, x)`, then reduce_mean/sum, add, (r)sqrt."""
    if op.op_type == "pow":
        exponent = op.inputs["y"].val
        return exponent is not None and bool(np.all(np.asarray(exponent) == 2))
    if op.op_type == "mul":
        return op.inputs["x"] is op.inputs["y"]
    if op.op_type in _NORM_STATISTICS:
        producers = (v.op for v in op.inputs.values() if not isinstance(v, (list, tuple)))
        return any(p is not None and p.op_type != "const" and keeps_fp32(p) for p in producers)
    return False


def _fp32_ops(program: Any) -> dict[str, int]:
    """Op type -> how many ops compute in fp32 in an fp16 program (casts not counted)."""
    types = import_backend("coremltools.converters.mil.mil.types")
    counts: dict[str, int] = {}
    for op in program.functions["main"].operations:
        fp32 = any(v.dtype is not None and types.builtin_to_string(v.dtype) == "fp32"
                   for v in op.outputs)
        if fp32 and op.op_type not in ("const", "cast"):
            counts[op.op_type] = counts.get(op.op_type, 0) + 1
    return counts


def _decompositions() -> dict[Any, Any]:
    """The ops rewritten before conversion: those coremltools lacks (everything else is
    kept as the program has it). Its EXIR frontend does not find `aten.__and__`/`__or__`
    under their names, though it converts the same ops as bitwise_and/bitwise_or, nor
    `where` with a scalar branch."""
    from torch._decomp import get_decompositions

    aten = torch.ops.aten
    return {**get_decompositions([aten.new_ones]),
            aten.__and__.Tensor: aten.bitwise_and.Tensor,
            aten.__or__.Tensor: aten.bitwise_or.Tensor,
            aten.where.ScalarOther: _where_scalar_other,
            aten.where.ScalarSelf: _where_scalar_self}


def _where_scalar_other(condition: torch.Tensor, x: torch.Tensor, y: float) -> torch.Tensor:
    return torch.where(condition, x, torch.full_like(x, y))


def _where_scalar_self(condition: torch.Tensor, x: float, y: torch.Tensor) -> torch.Tensor:
    return torch.where(condition, torch.full_like(y, x), y)


@functools.cache
def _register_missing_conversions() -> None:
    registry = import_backend("coremltools.converters.mil.frontend.torch.torch_op_registry")
    ops = import_backend("coremltools.converters.mil.frontend.torch.ops")
    if registry._TORCH_OPS_REGISTRY.get_func("alias") is not None:
        return

    def alias(context: Any, node: Any) -> None:
        context.add(ops._get_inputs(context, node, expected=1)[0], node.name)

    registry.register_torch_op(alias)
