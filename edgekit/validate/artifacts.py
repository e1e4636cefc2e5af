"""Which graph to count for an exported artifact, and the export it came from.

`cost_for_artifact` picks what `edgekit bench` and the pipeline project latency from (see
edgekit.validate.project for the rules); the report lookups find an artifact's export
folder, its compression recipe and the student it was built from.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.validate.project import GraphCost, count_onnx, count_program, stored_weights


def cost_for_artifact(path: Path, program: Any | None = None,
                      plan: dict[str, Any] | None = None) -> GraphCost:
    """The graph cost of one inference of the artifact at `path` (see the module docstring).

    Args:
        path: a .pte, .onnx, .ort or .mlpackage artifact.
        program: the torch.export program the artifact was lowered from, when at hand.
        plan: the JSON form of the quantization plan the artifact stores (with `program`;
            without it, the plan is read from the export's report.json).

    Raises:
        EdgekitError: no graph to count (names the artifact and what would help).
    """
    half = path.suffix == ".mlpackage"
    if path.suffix == ".onnx":
        return count_onnx(path)
    if program is not None and path.suffix in (".pte", ".mlpackage"):
        return count_program(program, half, path.stem, stored_weights(plan))
    onnx_path = _sibling_onnx(path)
    if onnx_path is not None:
        cost = count_onnx(onnx_path, half)
        return GraphCost(cost.ops, f"{cost.counted_from} (the same student's ONNX export)")
    if program is None:
        program, plan = _program_from_report(path)
    if program is not None:
        return count_program(program, half, path.stem, stored_weights(plan))
    raise EdgekitError(f"{path}: nothing to count FLOPs from: no .onnx of the same student "
                       "beside it and no report.json naming the student")


def _sibling_onnx(path: Path) -> Path | None:
    """The .onnx of the same name beside the artifact, or in another target folder of the
    same export (an export folder holds report.json) built with the same recipe."""
    folders = [path.parent]
    root = path.parent.parent
    if (root / "report.json").is_file():
        recipe = export_recipe(path)
        folders += sorted(p for p in root.iterdir() if p.is_dir()
                          and (recipe is None or p.name in recipe.get("targets", ())))
    for folder in folders:
        candidate = folder / f"{path.stem}.onnx"
        if candidate.is_file():
            return candidate
    return None


def export_report(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """The export folder holding the artifact at `path` (in a target folder, or in a
    target's decode folder) and its report.json, or None outside an export."""
    for root in (path.parent, path.parent.parent, path.parent.parent.parent):
        if (root / "report.json").is_file():
            try:
                return root, json.loads((root / "report.json").read_text())
            except (OSError, ValueError):
                return None
    return None


def export_recipe(path: Path) -> dict[str, Any] | None:
    """The compression recipe (report.json `compression[]`) the artifact at `path` was built
    with: the one whose targets include the artifact's target folder."""
    found = export_report(path)
    if found is None:
        return None
    root, report = found
    target = path.resolve().relative_to(root.resolve()).parts[0]
    return next((r for r in report.get("compression", []) if target in r.get("targets", ())),
                None)


def export_student(path: Path) -> tuple[str, dict[str, Any]] | None:
    """Where to load the student an exported artifact was built from, with the report's
    `model` object: the pruned student saved in the export when its recipe pruned, else the
    report's model source. None outside an export or when the source is gone."""
    found = export_report(path)
    if found is None:
        return None
    root, report = found
    model = report.get("model", {})
    saved = ((export_recipe(path) or {}).get("pruning") or {}).get("saved_student")
    source = str(root / saved) if saved else model.get("source", "")
    return (source, model) if source and Path(source).exists() else None


def _program_from_report(path: Path) -> tuple[Any | None, dict[str, Any] | None]:
    """Re-trace the student named by the report.json of the artifact's output folder, and
    return it with the plan the artifact stores."""
    found = export_student(path)
    if found is None:
        return None, None
    source, model = found
    shapes = [spec.get("shape", []) for spec in model.get("inputs", [])]
    seq_len = int(shapes[0][-1]) if shapes and len(shapes[0]) == 2 else 64
    return _traced(source, model.get("task"), seq_len), (export_recipe(path) or {}).get("plan")


@functools.cache
def loaded_student(source: str, task: str | None, seq_len: int) -> Any:
    """The student at `source`, loaded once per process (backend noise kept quiet)."""
    from edgekit.console import quiet
    from edgekit.model import load

    with quiet():
        return load(source, task=task, seq_len=seq_len)


@functools.cache
def _traced(source: str, task: str | None, seq_len: int) -> Any:
    from edgekit.console import quiet
    from edgekit.export import trace

    with quiet():
        return trace(loaded_student(source, task, seq_len))
