"""torch.export of a student (or of a variant of its module) on in-distribution inputs."""

from __future__ import annotations

import torch

from edgekit.console import quiet
from edgekit.errors import ExportError
from edgekit.model.samples import sample_inputs
from edgekit.model.student import Student


def trace(student: Student, module: torch.nn.Module | None = None) -> torch.export.ExportedProgram:
    """torch.export `module` (default: the student's own) with the student's example inputs.

    A student loaded from a .pt2 returns its own program.
    """
    if module is None and student.program is not None:
        return student.program
    example = sample_inputs(student, 1)[0]
    args = tuple(torch.from_numpy(example[spec.name]) for spec in student.inputs)
    try:
        with quiet(), torch.no_grad():
            return torch.export.export(module or student.module, args, strict=False)
    except Exception as exc:  # torch.export raises many types; the first line names the cause
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{student.name}: torch.export failed ({first})") from None
