"""Core ML decode export: one stateful ML program (.mlpackage, iOS 18) whose KV cache is Core
ML state, prefilling and decoding with the same function.

The torch wrapper keeps the cache in fp16 buffers written in place; torch.export lifts those
writes as buffer mutations and coremltools 9 turns each mutated buffer into a state (read_state
at the start, slice_update, coreml_update_state at the end), as Apple's stateful-models guide
does for a KV cache. The query length is flexible (a RangeDim from torch.export's Dim, 1 to
max_seq_len - 1), so a prompt is prefilled in one call and each new token is one call: one
function serves both, with no duplicated program or second set of weights. (Multifunction
packages would also share weights, but a fixed-length prefill function pads every prompt and
needs a second entry point in every client.)

Precision: a float plan is written at fp32 compute precision, so the artifact is the student
itself (what the other formats' fp32 artifacts are); a quantized plan at fp16 compute with the
plan's own 4-bit codes (constexpr_blockwise_shift_scale), the form a phone's GPU and Neural
Engine run. The cache is fp16 either way: Core ML states are fp16.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekit.compress.quantize import QuantPlan
from edgekit.console import import_backend, quiet
from edgekit.errors import EdgekitError, ExportError
from edgekit.export import coreml_quant
from edgekit.export._files import staged
from edgekit.export.coreml import (
    _compute_precision,
    _name_inputs,
    _register_missing_conversions,
)
from edgekit.llm.decode import CoreMLDecoder, check_decoder
from edgekit.llm.tokenizer import special_ids
from edgekit.model.student import Student

MINIMUM_TARGET = "iOS18"  # the first with states
INPUTS = ("tokens", "input_pos")
OUTPUT = "logits"
METADATA_KEY = "edgekit.decode"  # user-defined metadata: max_seq_len, special ids, io names
FP16_NOTE = ("fp16 activations (Core ML GPU / Neural Engine) over the plan's 4-bit weights; "
             "run in the emulator's fp16 mode, token agreement reported, not judged")


def decode_precision(plan: QuantPlan) -> str:
    """The compute precision of a Core ML decode package for `plan`."""
    return "float16" if plan.quantized else "float32"


def trace_decoder(student: Student, max_seq_len: int) -> torch.export.ExportedProgram:
    """torch.export the Core ML decode wrapper, query length dynamic in [1, max_seq_len - 1]
    (a full-length prompt would leave no slot to generate into)."""
    module = CoreMLDecoder(student, max_seq_len).eval()
    tokens = torch.zeros((1, 2), dtype=torch.long)
    seq = torch.export.Dim("seq", min=1, max=max_seq_len - 1)
    try:
        with quiet(), torch.no_grad():
            program = torch.export.export(module, (tokens, torch.tensor([0])),
                                          dynamic_shapes=({1: seq}, None), strict=False)
            return program.run_decompositions({})
    except Exception as exc:  # torch.export raises many types; the first line names the cause
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{student.name}: torch.export of the Core ML decoder failed "
                          f"({first})") from None


def lower_decoder(student: Student, plan: QuantPlan, dest: Path, max_seq_len: int
                  ) -> dict[str, Any]:
    """Write the stateful decode .mlpackage at `dest`.

    Args:
        student: a transformers decoder LM student.
        plan: the quantization plan (4-bit/8-bit weights as constexpr_blockwise_shift_scale,
            never re-quantized).
        dest: the .mlpackage path.
        max_seq_len: KV cache length (prompt plus generated tokens).

    Returns:
        Notes for the report: deployment target, compute precision, states, the plan.

    Raises:
        ExportError: the student is not a supported decoder, or conversion failed.
    """
    check_decoder(student, max_seq_len)
    program = trace_decoder(student, max_seq_len)
    ct = import_backend("coremltools")
    _register_missing_conversions()
    precision = decode_precision(plan)
    target = getattr(ct.target, MINIMUM_TARGET)
    try:
        with quiet():
            model = ct.convert(program, minimum_deployment_target=target,
                               compute_precision=_compute_precision(ct, precision),
                               outputs=[ct.TensorType(name=OUTPUT, dtype=np.float32)],
                               skip_model_load=True)
            notes: dict[str, Any] = {"minimum_deployment_target": MINIMUM_TARGET,
                                     "compute_precision": precision}
            if plan.quantized:
                mil = model._mil_program
                notes["plan"] = coreml_quant.apply_plan(mil, list(plan.layers), plan.weights,
                                                        np.float16)
                model = ct.convert(mil, minimum_deployment_target=target,
                                   compute_precision=ct.precision.FLOAT16,
                                   skip_model_load=True, pass_pipeline=ct.PassPipeline.EMPTY)
                notes["substituted"] = [FP16_NOTE]
    except Exception as exc:  # coremltools raises many types; the first line names the op
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{student.name}: Core ML decode conversion failed ({first})"
                          ) from None
    model = _name_inputs(ct, model, INPUTS)  # coremltools names them after the wrapper's args
    spec = model.get_spec()
    notes["states"] = len(spec.description.state)
    notes["inputs"] = [feature.name for feature in spec.description.input]
    model.user_defined_metadata[METADATA_KEY] = json.dumps(
        _metadata(student, max_seq_len, precision), sort_keys=True)
    with staged(dest) as partial, quiet():
        model.save(str(partial))
    return notes


def _metadata(student: Student, max_seq_len: int, precision: str) -> dict[str, Any]:
    ids = special_ids(student)
    return {"max_seq_len": max_seq_len, "inputs": list(INPUTS), "output": OUTPUT,
            "compute_precision": precision, "bos_id": ids.bos, "eos_ids": list(ids.eos)}


def read_metadata(path: Path) -> dict[str, Any]:
    """The decode metadata edgekit wrote into a Core ML package.

    Raises:
        EdgekitError: not a Core ML package, or not one written by `edgekit export --decode`.
    """
    model_file = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
    if not model_file.is_file():
        raise EdgekitError(f"{path}: not a Core ML package (no Data/com.apple.CoreML/"
                           "model.mlmodel)")
    proto = import_backend("coremltools.proto.Model_pb2")
    spec = proto.Model()
    spec.ParseFromString(model_file.read_bytes())
    text = spec.description.metadata.userDefined.get(METADATA_KEY)
    if text is None:
        raise EdgekitError(f"{path}: not a Core ML decode package (no '{METADATA_KEY}' "
                           "metadata; write one with `edgekit export --decode`)")
    return dict(json.loads(text))
