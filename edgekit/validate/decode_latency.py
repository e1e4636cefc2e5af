"""LM speed: decode tokens/s and prefill time, measured on host (a generation in the artifact's
runtime under a device profile's threads and affinity) and projected for a phone (labelled
"estimated").

A decode step reads every weight once at its stored precision and the whole KV cache, and
does about 2 FLOPs per weight: on a phone's CPU it is bound by memory bandwidth. The
projection counts those bytes and FLOPs per step from the student's layers and the
quantization plan, and runs them through the same roofline (and calibration constants) as
every other projection (edgekit.validate.project).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import nn

from edgekit.compress.plan import find_layers
from edgekit.compress.quantize import QuantPlan
from edgekit.devices import DeviceProfile
from edgekit.errors import EdgekitError
from edgekit.llm.decode import DecoderShape, decoder_shape
from edgekit.model.student import Student
from edgekit.validate.artifacts import export_recipe, export_student, loaded_student
from edgekit.validate.project import GraphCost, OpCost, project, stored_weights

PROMPT_TOKENS = 64  # the prompt `edgekit bench` times and projects (fewer when the cache is short)
NEW_TOKENS = 32
ELEMENTWISE_OPS_PER_LAYER = 6


def step_cost(student: Student, plan: QuantPlan | dict[str, Any], tokens: int,
              context: int) -> GraphCost:
    """The work of one forward over `tokens` new tokens with `context` tokens already cached.

    Weights are read once per forward (tokens=1 is a decode step; tokens=T a prefill) at the
    plan's stored precision (codes and group scales), the cache is read for every new token,
    embeddings read one row per token.

    Args:
        student: the decoder LM (its layers' shapes).
        plan: the quantization plan, or its JSON form (a report's compression[].plan).
        tokens: new tokens in this forward.
        context: tokens already in the KV cache.
    """
    stored = stored_weights(plan if isinstance(plan, dict) else plan.to_json())
    shape = decoder_shape(student.hf_config)
    by_name = dict(student.module.named_modules(remove_duplicate=False))
    ops: list[OpCost] = []
    for names, module in find_layers(student.module):
        rows, cols = module.get_parameter("weight").shape
        weight_bytes, bits = stored.get(names[0], (rows * cols * 4, 32))
        for name in names:
            if isinstance(by_name[name], nn.Embedding):
                ops.append(OpCost("other", 0, weight_bytes * tokens // rows, cols * 4 * tokens,
                                  bits))
            else:
                ops.append(OpCost("matmul", 2 * rows * cols * tokens, weight_bytes,
                                  (rows + cols) * 4 * tokens, bits))
    ops.extend(_attention_ops(shape, tokens, context))
    return GraphCost(tuple(ops), f"decoder layers and plan ({tokens} token(s), {context} cached)")


def _attention_ops(shape: DecoderShape, tokens: int, context: int) -> list[OpCost]:
    total = context + tokens
    per_layer_cache = shape.kv_bytes_per_token // shape.layers
    ops = []
    for _ in range(shape.layers):
        flops = 4 * tokens * total * shape.heads * shape.head_dim
        # the cache is read from DRAM like a weight: it is far larger than any on-chip cache
        ops.append(OpCost("attention", flops, total * per_layer_cache,
                          tokens * shape.heads * shape.head_dim * 4 * 2))
        # 2 RMSNorms, 2 residual adds, SiLU*up, RoPE: elementwise, as in
        # bench/latency_model_check.py (each pays the per-op overhead)
        ops.extend(OpCost("other", tokens * shape.hidden, 0, 3 * tokens * shape.hidden * 4)
                   for _ in range(ELEMENTWISE_OPS_PER_LAYER))
    return ops


def project_generation(student: Student, plan: QuantPlan | dict[str, Any],
                       device: DeviceProfile, fmt: str, prompt_tokens: int = PROMPT_TOKENS,
                       context: int = 128) -> dict[str, Any]:
    """Estimated decode tokens/s (at `context` cached tokens) and prefill time for
    `prompt_tokens`, as low/mid/high ranges.

    Args:
        student: the decoder LM the artifact was exported from.
        plan: its quantization plan, or the plan's JSON form.
        device: the phone.
        fmt: the artifact's format (executorch, onnx).
        prompt_tokens: prompt length of the prefill.
        context: tokens in the cache at the decode step.

    Returns:
        JSON-ready, labelled "estimated", with the bytes and FLOPs per decode step.
    """
    step = project(step_cost(student, plan, 1, context), device, fmt)
    prefill = project(step_cost(student, plan, prompt_tokens, 0), device, fmt)
    if "status" in step:
        return step
    return {
        "label": "estimated", "device": device.key, "compute_unit": step["compute_unit"],
        "decode_tok_s": {"low": _rate(step["high_ms"]), "mid": _rate(step["mid_ms"]),
                         "high": _rate(step["low_ms"])},
        "decode_context_tokens": context,
        "bytes_per_token": step["bytes"], "flops_per_token": step["flops"],
        "prefill_tokens": prompt_tokens,
        "prefill_ms": {"low": prefill["low_ms"], "mid": prefill["mid_ms"],
                       "high": prefill["high_ms"]},
    }


def _rate(ms: float) -> float:
    return float(f"{1e3 / ms:.4g}") if ms > 0 else math.inf


def measure_generation(path: Path, device: DeviceProfile, prompt: list[int] | None = None,
                       new_tokens: int = NEW_TOKENS) -> dict[str, Any]:
    """Generate `new_tokens` greedy tokens from the artifact at `path` under `device`'s
    threads and CPU affinity, after one warm-up generation.

    Args:
        path: a decode .pte, or an onnxruntime-genai folder.
        device: the profile whose threads and affinity apply.
        prompt: prompt token ids; None times a synthetic prompt of PROMPT_TOKENS ids (fewer
            when the cache is short): timing needs lengths, not meaning.
        new_tokens: tokens to generate (fewer when the cache is short).

    Returns:
        The Generation's timings (prefill_ms, decode_tok_s, ...), labelled "measured on host".

    Raises:
        EdgekitError: the artifact cannot be opened or run.
    """
    from edgekit.llm.generate import generate
    from edgekit.llm.runners import open_decoder
    from edgekit.runtimes.limits import limits_for, pinned
    from edgekit.validate.latency import host_cpu

    limits = limits_for(device)
    with pinned(limits):
        session = open_decoder(path, limits.threads)
        if prompt is None:
            prompt = _synthetic_prompt(session, new_tokens)
        new_tokens = max(1, min(new_tokens, session.max_seq_len - len(prompt)))
        generate(session, prompt, 4)  # warm-up: first-run allocations and kernel packing
        result = generate(session, prompt, new_tokens)
    return {"label": f"measured on host ({host_cpu()}, {limits.threads} "
                     f"thread{'s' if limits.threads > 1 else ''})",
            "device": device.key, "threads": limits.threads, **result.timings()}


def _synthetic_prompt(session: Any, new_tokens: int) -> list[int]:
    """PROMPT_TOKENS ids spread over the vocabulary (its size read from one step's logits),
    leaving room for `new_tokens` in the cache."""
    vocab = session.feed([0]).size
    session.reset()
    length = max(1, min(PROMPT_TOKENS, session.max_seq_len - new_tokens - 1))
    return [(1 + 7 * i) % vocab for i in range(length)]


def project_decode_artifact(path: Path, devices: list[DeviceProfile], fmt: str,
                            prompt_tokens: int = PROMPT_TOKENS, context: int = 128
                            ) -> dict[str, dict[str, Any]]:
    """project_generation() for a decode artifact of an `edgekit export --decode` folder, from
    the student and plan its report.json names.

    Returns:
        Device key -> projection, or {"status": "not_run", "reason": ...} for every device
        when no export report names the student.
    """
    found = export_student(path)
    if found is None:
        reason = (f"{path}: nothing to count from: no report.json of its export naming the "
                  "student beside it")
        return {d.key: {"status": "not_run", "reason": reason} for d in devices}
    source, model = found
    try:
        student = loaded_student(source, model.get("task"), PROMPT_TOKENS)
    except EdgekitError as exc:
        return {d.key: {"status": "not_run", "reason": f"{source}: {exc}"} for d in devices}
    plan = (export_recipe(path) or {}).get("plan") or {}
    return {d.key: project_generation(student, plan, d, fmt, prompt_tokens, context)
            for d in devices}
