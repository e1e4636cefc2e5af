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
from typing import Any

from torch import nn

from edgekit.compress.plan import find_layers
from edgekit.compress.quantize import QuantPlan
from edgekit.llm.decode import DecoderShape, decoder_shape
from edgekit.model.student import Student
from edgekit.targets import DeviceProfile
from edgekit.validate.project import GraphCost, OpCost, project


def stored_bytes(numel: int, bits: int, group_size: int) -> int:
    """Bytes of a weight at `bits` per value plus one fp32 scale per group (fp32: 4/value)."""
    if bits >= 32:
        return numel * 4
    return numel * bits // 8 + (numel // group_size) * 4


def step_cost(student: Student, plan: QuantPlan, tokens: int, context: int) -> GraphCost:
    """The work of one forward over `tokens` new tokens with `context` tokens already cached.

    Weights are read once per forward (tokens=1 is a decode step; tokens=T a prefill), the
    cache is read for every new token, embeddings read one row per token.
    """
    precision = {name: layer for layer in plan.layers for name in layer.names}
    shape = decoder_shape(student.hf_config)
    by_name = dict(student.module.named_modules(remove_duplicate=False))
    ops: list[OpCost] = []
    for names, module in find_layers(student.module):
        weight = module.get_parameter("weight")
        rows, cols = weight.shape
        planned = precision.get(names[0])
        quantized = planned.weight if planned is not None else None
        bits = quantized.bits if quantized is not None else 32
        group = quantized.group_size if quantized is not None else cols
        for name in names:
            if isinstance(by_name[name], nn.Embedding):
                row = stored_bytes(cols, bits, group)
                ops.append(OpCost("other", 0, row * tokens, cols * 4 * tokens, bits))
            else:
                ops.append(OpCost("matmul", 2 * rows * cols * tokens,
                                  stored_bytes(rows * cols, bits, group),
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
    return ops


def project_generation(student: Student, plan: QuantPlan, device: DeviceProfile, fmt: str,
                       prompt_tokens: int = 64, context: int = 128) -> dict[str, Any]:
    """Estimated decode tokens/s (at `context` cached tokens) and prefill time for
    `prompt_tokens`, as low/mid/high ranges.

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


def measure_generation(path: Any, device: DeviceProfile, prompt: list[int],
                       new_tokens: int = 32) -> dict[str, Any]:
    """Generate `new_tokens` greedy tokens from the artifact at `path` under `device`'s
    threads and CPU affinity, after one warm-up generation.

    Returns:
        The Generation's timings (prefill_ms, decode_tok_s, ...), labelled "measured on host".
    """
    from edgekit.llm.generate import generate
    from edgekit.llm.runners import open_decoder
    from edgekit.runtimes.limits import limits_for, pinned
    from edgekit.validate.latency import host_cpu

    limits = limits_for(device)
    with pinned(limits):
        session = open_decoder(path, limits.threads)
        generate(session, prompt, 4)  # warm-up: first-run allocations and kernel packing
        result = generate(session, prompt, new_tokens)
    return {"label": f"measured on host ({host_cpu()}, {limits.threads} threads)",
            "device": device.key, "threads": limits.threads, **result.timings()}
