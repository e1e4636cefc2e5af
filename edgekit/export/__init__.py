"""Export: trace the student once, lower the one ExportedProgram to each format."""

from __future__ import annotations

import copy
import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgekit.compress.quantize import QuantPlan
from edgekit.console import quiet, stage
from edgekit.errors import ExportError
from edgekit.export import coreml, executorch, onnx
from edgekit.export._trace import trace
from edgekit.model.student import Student, TensorSpec

# format -> (file suffix, runtime that runs it)
SUFFIX = {"executorch": ".pte", "onnx": ".onnx", "ort": ".ort", "coreml": ".mlpackage"}
RUNTIME = {"executorch": "executorch", "onnx": "onnxruntime", "ort": "onnxruntime",
           "coreml": "coreml"}


@dataclass(frozen=True)
class Artifact:
    """One exported file (or .mlpackage folder) and what it was made from."""

    format: str
    path: Path
    runtime: str
    quant: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self.path.stat().st_size

    def sha256(self) -> str:
        """Digest of the file, or of a folder's files in path order (names included)."""
        digest = hashlib.sha256()
        files = sorted(p for p in self.path.rglob("*") if p.is_file()) if self.path.is_dir() \
            else [self.path]
        for file in files:
            if self.path.is_dir():
                digest.update(str(file.relative_to(self.path)).encode())
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        return digest.hexdigest()


Lowerer = Callable[..., dict[str, Any]]  # (program, student, dest, *, plan) -> notes

# ort is converted from the .onnx file rather than lowered from the program.
LOWERERS: dict[str, Lowerer] = {
    "executorch": executorch.lower,
    "onnx": onnx.lower,
    "coreml": coreml.lower,
}


def export(
    student: Student, plan: QuantPlan, formats: tuple[str, ...], dest: Path,
    program: torch.export.ExportedProgram | None = None,
) -> list[Artifact]:
    """Export `student` under `plan` to each format in `formats`, into folder `dest`.

    Args:
        student: the student to export.
        plan: the quantization plan every format emits.
        formats: format names (executorch, onnx, ort, coreml); ort needs onnx.
        dest: folder for the artifacts, named `<student.name><suffix>`.
        program: an already traced program of the student (traced here when None).

    Returns:
        One Artifact per format, in the order given.
    """
    dest.mkdir(parents=True, exist_ok=True)
    program = program if program is not None else trace(student)
    artifacts: dict[str, Artifact] = {}
    for fmt in formats:
        path = dest / f"{student.name}{SUFFIX[fmt]}"
        with stage(f"export {fmt} -> {path.name}"):
            if fmt == "ort":
                if "onnx" not in artifacts:
                    raise ExportError("format 'ort' is converted from 'onnx'; list 'onnx' first")
                notes = onnx.to_ort(artifacts["onnx"].path, path)
            else:
                # Lowering passes annotate and rewrite the graph they get (XNNPACK's dim-order
                # pass broke Core ML's conversion after it): each format gets its own copy.
                with quiet():  # deepcopy of a program warns through torch's pytree
                    own_copy = copy.deepcopy(program)
                notes = LOWERERS[fmt](own_copy, student, path, plan=plan)
        artifacts[fmt] = Artifact(format=fmt, path=path, runtime=RUNTIME[fmt], quant=plan.scheme,
                                  inputs=student.inputs, outputs=student.output_names,
                                  notes=notes)
    return [artifacts[f] for f in formats]


def place(path: Path, dest: Path) -> None:
    """Put a copy of an artifact (file or folder) at `dest`, hard-linking files when possible."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        shutil.copytree(path, dest, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(path), str(dest))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        Path(dst).hardlink_to(src)
    except OSError:
        shutil.copy2(src, dst)
