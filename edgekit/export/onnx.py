"""ONNX: torch.onnx.export(dynamo=True) from the program; ORT mobile format and usability check."""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import onnx
import torch

from edgekit.compress.quantize import QuantPlan
from edgekit.console import import_backend, quiet
from edgekit.errors import ExportError
from edgekit.export import onnx_quant
from edgekit.export._files import staged
from edgekit.model.samples import sample_inputs
from edgekit.model.student import Student

_OPSET = 18
_SINGLE_FILE_LIMIT = 1_800_000_000  # protobuf's 2 GB limit, with room for the graph


def lower(program: torch.export.ExportedProgram, student: Student, dest: Path, *,
          plan: QuantPlan | None = None) -> dict[str, Any]:
    """Export `program` to a single ONNX file at `dest` (weights inside, so under 2 GB).

    A quantized plan is emitted with ONNX Runtime's MatMulNBits/GatherBlockQuantized.

    Returns:
        Notes for the report: opset, the plan's operators, and ONNX Runtime's mobile-usability
        result.
    """
    example = sample_inputs(student, 1)[0]
    args = tuple(torch.from_numpy(example[spec.name]) for spec in student.inputs)
    weights = sum(t.numel() * t.element_size() for t in program.state_dict.values())
    if weights > _SINGLE_FILE_LIMIT:
        raise ExportError(f"{student.name}: {weights / 1e9:.1f} GB of weights exceeds ONNX's "
                          "2 GB single-file limit; quantize it or export another format")
    try:
        with quiet(), staged(dest) as partial:
            torch.onnx.export(
                program, args, str(partial), dynamo=True, opset_version=_OPSET,
                input_names=list(student.input_names),
                output_names=list(student.output_names),
                external_data=False, verbose=False,
            )
            model = onnx.load(str(partial))
            for node in model.graph.node:
                # the exporter's per-node stack traces: about 2 KB a node, unused on a phone
                del node.metadata_props[:]
            if plan is not None and plan.quantized:
                quant_notes, substituted = onnx_quant.emit_plan(model, plan)
            onnx.save(model, str(partial))
    except ExportError:
        raise
    except Exception as exc:  # torch.onnx raises many types; the first line names the op
        raise ExportError(f"{student.name}: ONNX export failed ({_cause(exc)})"
                          f"{_attention_hint(student, exc)}") from None
    notes: dict[str, Any] = {"opset": _OPSET}
    if plan is not None and plan.quantized:
        notes["plan"] = quant_notes
        if substituted:  # reported beside ExecuTorch's and Core ML's
            notes["substituted"] = substituted
    notes["mobile_usability"] = mobile_usability(dest)
    return notes


def _cause(exc: BaseException) -> str:
    """The line of a torch.onnx error that names the cause: its exception summary when it
    has one (its first line is a generic 'step 2/3' banner), else its first line."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line] or [type(exc).__name__]
    if "## Exception summary" in lines:
        summary = lines[lines.index("## Exception summary") + 1:]
        if summary:
            return re.sub(r"^<class '(?:\w+\.)*(\w+)'>:", r"\1:", summary[0])[:300]
    return lines[0][:300]


def _attention_hint(student: Student, exc: BaseException) -> str:
    """What to try when torch.onnx cannot decompose a transformers model that runs SDPA
    attention (Swin's windowed attention: a view of a non-contiguous tensor)."""
    attention = getattr(student.hf_config, "_attn_implementation", None)
    if attention != "sdpa" or "decompose the FX graph" not in str(exc):
        return ""
    return ("; torch.onnx could not decompose the graph of this SDPA-attention model: try "
            "eager attention (\"attn_implementation\": \"eager\" in its config.json)")


def to_ort(onnx_path: Path, dest: Path) -> dict[str, Any]:
    """Convert an .onnx file to ONNX Runtime's mobile .ort format at `dest`.

    Returns:
        Notes for the report: the optimization style and the mobile-usability result.
    """
    convert = import_backend("onnxruntime.tools.convert_onnx_models_to_ort")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / f"{dest.stem}.onnx"
        source.symlink_to(onnx_path.resolve())
        try:
            with quiet():
                convert.convert_onnx_models_to_ort(
                    source, output_dir=work / "out",
                    optimization_styles=[convert.OptimizationStyle.Fixed],
                )
        except Exception as exc:  # the converter raises many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ExportError(f"{onnx_path.name}: ORT format conversion failed ({first})"
                              ) from None
        produced = work / "out" / f"{dest.stem}.ort"
        if not produced.is_file():
            raise ExportError(f"{onnx_path.name}: ORT format conversion wrote no .ort file")
        with staged(dest) as partial:
            produced.replace(partial)
    return {"optimization_style": "Fixed"}


def mobile_usability(onnx_path: Path) -> dict[str, Any]:
    """Run ONNX Runtime's mobile-usability check and return its findings as data.

    Returns:
        `suitability` per execution provider (YES/NO/MAYBE as the checker says),
        `try_eps` (whether NNAPI/Core ML EPs may beat the CPU EP) and the checker's log lines.
    """
    checker = import_backend("onnxruntime.tools.mobile_helpers.usability_checker")
    logger = logging.getLogger("edgekit.ort_mobile_usability")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    records = _Collector()
    logger.addHandler(records)
    try:
        with quiet():
            logging.disable(logging.NOTSET)
            try_eps = checker.analyze_model(onnx_path, skip_optimize=False, logger=logger)
    except Exception as exc:  # the checker is advisory; a crash is recorded, not fatal
        return {"ran": False, "error": str(exc).splitlines()[0][:300] if str(exc) else
                type(exc).__name__}
    finally:
        logger.removeHandler(records)
    suitability = {}
    for line in records.lines:
        found = re.match(r"Model should perform well with (.+) as is: (\w+)", line)
        if found:
            suitability[found.group(1)] = found.group(2)
    log = [line.replace(str(onnx_path), onnx_path.name) for line in records.lines if line.strip()]
    return {"ran": True, "try_eps": bool(try_eps), "suitability": suitability, "log": log}


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
