"""LM prefill and decode projections: orderings only (more bits, longer caches and slower
phones give fewer tokens/s), never absolute times."""

from __future__ import annotations

import pytest

from edgekit.compress import quantize
from edgekit.compress.quantize import settings_for
from edgekit.devices import all_devices, get_device
from edgekit.model import load
from edgekit.validate.decode_latency import project_generation, step_cost


@pytest.fixture(scope="module")
def llama(student_dir):
    student = load(student_dir("llama"))
    int4 = quantize(student, "int4", settings_for("int4", method="rtn", mixed_precision=False))
    return student, quantize(student, "none"), int4


def test_a_decode_step_reads_the_plans_bytes_and_the_cache(llama):
    student, fp32, int4 = llama
    full, packed = step_cost(student, fp32, 1, 64), step_cost(student, int4, 1, 64)
    assert packed.bytes < full.bytes and packed.flops == full.flops
    longer = step_cost(student, int4, 1, 120)
    cache = [op for op in longer.ops if op.op_class == "attention"]
    assert longer.bytes > packed.bytes and len(cache) == student.hf_config.num_hidden_layers
    # the plan's JSON form (a report's compression[].plan) counts the same bytes
    assert step_cost(student, int4.to_json(), 1, 64).bytes == packed.bytes


def test_decode_and_prefill_projections_order(llama):
    student, fp32, int4 = llama
    for device in all_devices().values():
        full = project_generation(student, fp32, device, "executorch", 32, 48)
        packed = project_generation(student, int4, device, "executorch", 32, 48)
        assert full["label"] == "estimated" and full["prefill_tokens"] == 32
        assert packed["decode_tok_s"]["mid"] > full["decode_tok_s"]["mid"], device.key
        assert packed["prefill_ms"]["mid"] <= full["prefill_ms"]["mid"], device.key
        rate = packed["decode_tok_s"]
        assert rate["low"] <= rate["mid"] <= rate["high"]
    fast, slow = (project_generation(student, int4, get_device(key), "onnx")
                  for key in ("galaxy-s24", "tecno-pova-6"))
    assert fast["decode_tok_s"]["mid"] > slow["decode_tok_s"]["mid"]
    assert fast["prefill_ms"]["mid"] < slow["prefill_ms"]["mid"]
