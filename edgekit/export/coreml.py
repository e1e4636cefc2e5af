"""Core ML: coremltools.convert from the ExportedProgram to an iOS 18 .mlpackage.

transformers' graphs contain `aten.alias`, which coremltools has no conversion for; it is an
identity, registered here once. The export wrappers already remove `diff`/`new_ones` masking.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from edgekit.console import import_backend, quiet
from edgekit.errors import ExportError
from edgekit.export._files import staged
from edgekit.model.student import Student

_MINIMUM_TARGET = "iOS18"
_COMPUTE_PRECISION = "float16"


def lower(program: torch.export.ExportedProgram, student: Student, dest: Path) -> dict[str, Any]:
    """Convert `program` to an ML program .mlpackage at `dest` (fp16 compute, iOS 18).

    Returns:
        Notes for the report: deployment target and compute precision.
    """
    ct = import_backend("coremltools")
    _register_missing_conversions()
    try:
        with quiet():
            decomposed = program.run_decompositions({})
            model = ct.convert(
                decomposed,
                minimum_deployment_target=getattr(ct.target, _MINIMUM_TARGET),
                compute_precision=ct.precision.FLOAT16,
                outputs=[ct.TensorType(name=name) for name in student.output_names],
                skip_model_load=True,
            )
    except Exception as exc:  # coremltools raises many types; the first line names the op
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{student.name}: Core ML conversion failed ({first})") from None
    with staged(dest) as partial, quiet():
        model.save(str(partial))
    return {"minimum_deployment_target": _MINIMUM_TARGET,
            "compute_precision": _COMPUTE_PRECISION}


@functools.cache
def _register_missing_conversions() -> None:
    registry = import_backend("coremltools.converters.mil.frontend.torch.torch_op_registry")
    ops = import_backend("coremltools.converters.mil.frontend.torch.ops")
    if registry._TORCH_OPS_REGISTRY.get_func("alias") is not None:
        return

    def alias(context: Any, node: Any) -> None:
        context.add(ops._get_inputs(context, node, expected=1)[0], node.name)

    registry.register_torch_op(alias)
