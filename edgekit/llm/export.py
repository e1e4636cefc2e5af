"""Decode-ready exports of a decoder LM, and their generation parity.

Layout of one decode folder (the tokenizer sits beside every artifact, so each can be
copied to an app as it is):

    <name>.pte                  ExecuTorch: KV cache as mutable state, LLM runner metadata
    <name>-genai/               ONNX: model.onnx, genai_config.json, tokenizer files
    <name>.mlpackage            Core ML (iOS 18): KV cache as fp16 state, flexible length
    tokenizer.json, tokenizer_config.json, special_tokens.json
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from edgekit.compress.quantize import QuantPlan
from edgekit.console import stage
from edgekit.errors import ConfigError, EdgekitError
from edgekit.export import RUNTIME, Artifact
from edgekit.llm import coreml as coreml_decode
from edgekit.llm import executorch as et_decode
from edgekit.llm import onnx as onnx_decode
from edgekit.llm.decode import check_decoder, hf_model
from edgekit.llm.parity import generation_parity
from edgekit.llm.runners import DecodeSession, EagerDecodeSession, open_decoder
from edgekit.llm.tokenizer import special_ids, write_tokenizer
from edgekit.model.samples import corpus_text
from edgekit.model.student import Student

DECODE_FORMATS = ("executorch", "onnx", "coreml")
_SUFFIX = {"executorch": ".pte", "onnx": "-genai", "coreml": ".mlpackage"}
DEFAULT_MAX_SEQ_LEN = 512
PARITY_TOKENS = 32


def decode_path(student: Student, fmt: str, folder: Path) -> Path:
    """Where the decode artifact of `fmt` goes inside `folder`."""
    return folder / f"{student.name}{_SUFFIX[fmt]}"


def export_decode(student: Student, plan: QuantPlan, formats: tuple[str, ...], folder: Path,
                  max_seq_len: int = DEFAULT_MAX_SEQ_LEN) -> list[Artifact]:
    """Export `student` decode-ready to each of `formats` inside `folder`.

    Args:
        student: a transformers decoder LM.
        plan: the quantization plan every format emits.
        formats: a subset of DECODE_FORMATS, in order.
        folder: output folder (created).
        max_seq_len: KV cache length: prompt plus generated tokens.

    Returns:
        One Artifact per format (notes hold export_s and the max_seq_len).

    Raises:
        ConfigError: an unknown format.
        ExportError: an unsupported student or a failed export.
    """
    unknown = [f for f in formats if f not in DECODE_FORMATS]
    if unknown:
        raise ConfigError(f"decode export: unknown format '{unknown[0]}' "
                          f"(known: {', '.join(DECODE_FORMATS)})")
    check_decoder(student, max_seq_len)
    folder.mkdir(parents=True, exist_ok=True)
    write_tokenizer(student, folder)
    artifacts = []
    for fmt in formats:
        path = decode_path(student, fmt, folder)
        start = time.perf_counter()
        with stage(f"decode export {fmt} -> {path.name} (max_seq_len {max_seq_len})"):
            if fmt == "executorch":
                notes = et_decode.lower_decoder(student, plan, path, max_seq_len)
            elif fmt == "coreml":
                notes = coreml_decode.lower_decoder(student, plan, path, max_seq_len)
            else:
                partial = folder / f".partial-{path.name}"
                shutil.rmtree(partial, ignore_errors=True)
                notes = onnx_decode.lower_decoder(student, plan, partial, max_seq_len)
                write_tokenizer(student, partial)
                shutil.rmtree(path, ignore_errors=True)
                partial.rename(path)
        notes.update(export_s=round(time.perf_counter() - start, 2), max_seq_len=max_seq_len)
        artifacts.append(Artifact(format=fmt, path=path, runtime=RUNTIME[fmt], quant=plan.scheme,
                                  inputs=(), outputs=("logits",), notes=notes))
    return artifacts


def parity_prompt(student: Student, length: int = 16) -> list[int]:
    """An in-distribution prompt: the start of edgekit's corpus through the student's
    tokenizer (or its bytes, modulo the vocabulary, without one)."""
    text = corpus_text()
    vocab = int(student.hf_config.vocab_size)
    if student.tokenizer is not None:
        ids = list(student.tokenizer(text[:400])["input_ids"])
    else:
        ids = list(text[:400].encode())
    bos = special_ids(student).bos
    prompt = ([bos] if bos is not None and (not ids or ids[0] != bos) else []) + ids
    return [int(t) % vocab for t in prompt[:length]]


def decode_parity(artifact: Artifact, student: Student, plan: QuantPlan,
                  max_seq_len: int, new_tokens: int = PARITY_TOKENS,
                  threads: int | None = None) -> dict[str, Any]:
    """Generation parity of one decode artifact against the eager fp32 student (and the eager
    quantized student when the plan quantizes), plus its measured generation timings.

    A Core ML package runs in edgekit's Core ML emulator (`emulated: true`). Its KV cache is
    fp16 state, so it is also compared with the eager student whose keys/values of earlier
    calls are rounded to fp16 (`fp32_fp16_state`), and an fp32 package is held to that one.

    Returns:
        JSON-ready parity (see edgekit.llm.parity.generation_parity), with `verdict` pass when
        an fp32 artifact reproduces the fp32 student token for token (a quantized one: the
        quantized student; Core ML fp32: the fp32 student with fp16 state).
    """
    hf = hf_model(student)
    references: dict[str, DecodeSession] = {"fp32": EagerDecodeSession(hf, max_seq_len)}
    if plan.quantized:
        quantized = plan.eager_module(student.module)
        references["quantized"] = EagerDecodeSession(quantized.get_submodule("model"),
                                                     max_seq_len)
    elif artifact.format == "coreml":
        references["fp32_fp16_state"] = EagerDecodeSession(hf, max_seq_len, fp16_state=True)
    expected = ("quantized" if plan.quantized else
                "fp32_fp16_state" if artifact.format == "coreml" else "fp32")
    try:
        session = open_decoder(artifact.path, threads)
        result = generation_parity(session, references, parity_prompt(student), new_tokens,
                                   max_seq_len_reference=expected)
    except EdgekitError as exc:
        return {"verdict": "fail", "reason": str(exc)}
    if session.emulated:
        result.update(emulated=True, precision=getattr(session, "precision", None))
    agreement = result["against"][expected]
    consistent = result["prefill_vs_decode"]["same_top1"]
    at_limit = result.get("max_seq_len", {})
    reasons = []
    # a runtime that substitutes part of the plan (XNNPACK's int8 activations, Core ML's fp16
    # activations) cannot be held to the eager quantized student token for token: its
    # agreement is reported, not judged
    exact = not artifact.notes.get("substituted")
    result["tokens_judged"] = exact
    if exact and not agreement["identical"]:
        reasons.append(f"greedy tokens diverge from the eager {expected} student at position "
                       f"{agreement['first_divergence']}")
    if not consistent:
        reasons.append("prefill and token-by-token decode disagree on the next token")
    if at_limit and not at_limit["overflow_refused"]:
        reasons.append("a token past max_seq_len was not refused")
    result["expected_reference"] = expected
    result["verdict"] = "fail" if reasons else "pass"
    result["reason"] = "; ".join(reasons)
    return result
