"""Core ML: coremltools.convert from the ExportedProgram to an iOS 18 .mlpackage.

transformers' graphs contain `aten.alias`, which coremltools has no conversion for; it is an
identity, registered here once. The export wrappers already remove `diff`/`new_ones` masking.
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
            decomposed = program.run_decompositions({})
            model = ct.convert(
                decomposed,
                minimum_deployment_target=getattr(ct.target, _MINIMUM_TARGET),
                compute_precision=getattr(ct.precision, _PRECISIONS[precision]),
                outputs=[ct.TensorType(name=name) for name in student.output_names],
                skip_model_load=True,
            )
    except Exception as exc:  # coremltools raises many types; the first line names the op
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{student.name}: Core ML conversion failed ({first})") from None
    notes: dict[str, Any] = {"minimum_deployment_target": _MINIMUM_TARGET,
                             "compute_precision": precision}
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
    with staged(dest) as partial, quiet():
        model.save(str(partial))
    return notes


@functools.cache
def _register_missing_conversions() -> None:
    registry = import_backend("coremltools.converters.mil.frontend.torch.torch_op_registry")
    ops = import_backend("coremltools.converters.mil.frontend.torch.ops")
    if registry._TORCH_OPS_REGISTRY.get_func("alias") is not None:
        return

    def alias(context: Any, node: Any) -> None:
        context.add(ops._get_inputs(context, node, expected=1)[0], node.name)

    registry.register_torch_op(alias)
