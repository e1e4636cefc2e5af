"""The plan emitted natively in ExecuTorch: read back from the written .pte, every quantized
weight (XNNPACK 8da4w/8da8w linears, embedding_4bit tables) holds the plan's own codes; its
scales are the plan's exactly where the .pte stores fp32, and the plan's rounded to nearest
bf16 where XNNPACK stores bf16 (blockwise 4-bit), so it dequantizes to the plan's weights
within bf16 rounding (relative 2^-8)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from students import tiny_llama
from torch import nn

from edgekit.compress import quantize
from edgekit.compress.plan import QuantSettings, plan_layer
from edgekit.compress.quantize import QuantPlan
from edgekit.errors import EdgekitError
from edgekit.export import export
from edgekit.export.pte_weights import PteWeight, read_pte_weights
from edgekit.model import load

# Mixed precision keeps sensitive layers at int8 per channel (8da8w); per-channel int4 is
# allowed too. Everything else stays at the plan's int4 g32 (8da4w, embedding_4bit).
INT8_PER_CHANNEL = ("self_attn.q_proj", "mlp.down_proj")
INT4_PER_CHANNEL = ("self_attn.v_proj",)
UNIT_ROUNDOFF = {"fp32": 0.0, "fp16": 2.0**-11, "bf16": 2.0**-8}


def _mixed_plan(module: nn.Module, plan: QuantPlan) -> QuantPlan:
    layers = []
    for layer in plan.layers:
        changed = [(INT8_PER_CHANNEL, QuantSettings(bits=8, group_size=0)),
                   (INT4_PER_CHANNEL, QuantSettings(bits=4, group_size=0))]
        for suffixes, settings in changed:
            if layer.names[0].endswith(suffixes):
                layer = plan_layer(layer.names, module.get_submodule(layer.names[0]), settings)
        layers.append(layer)
    return dataclasses.replace(plan, layers=tuple(layers))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[nn.Module, QuantPlan, list[PteWeight]]:
    folder = tmp_path_factory.mktemp("pte_weights")
    student = load(str(tiny_llama(folder / "llama-1layer", layers=1)))
    plan = _mixed_plan(student.module, quantize(student, "int4"))
    (artifact,) = export(student, plan, ("executorch",), folder)
    return student.module, plan, read_pte_weights(artifact.path)


def _rounded(scales: torch.Tensor, dtype: str) -> np.ndarray:
    """The plan's fp32 scales as a format storing `dtype` holds them (round to nearest)."""
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    return scales.to(torch_dtype).float().numpy()


def _assert_stored_as_planned(module: nn.Module, plan: QuantPlan,
                              stored: list[PteWeight]) -> None:
    """Each planned module's weight is in `stored` once, with the plan's codes, group size
    and scales (rounded to the stored dtype); nothing else is stored."""
    checked = 0
    for layer in plan.layers:
        assert layer.weight is not None, layer.names
        for name in layer.names:  # a tied embedding/lm_head is stored once per use
            kind = "embedding" if isinstance(module.get_submodule(name), nn.Embedding) \
                else "linear"
            codes = layer.weight.codes.numpy()
            found = [w for w in stored if w.kind == kind and w.codes.shape == codes.shape
                     and np.array_equal(w.codes, codes)]
            assert len(found) == 1, f"{name}: {len(found)} {kind} weights in the .pte hold " \
                                    "its codes (expected 1)"
            (weight,) = found
            assert weight.bits == layer.weight.bits, name
            assert weight.group_size == layer.weight.group_size, name
            assert weight.zeros is None, name  # symmetric plan: no zero points stored
            np.testing.assert_array_equal(
                weight.scales, _rounded(layer.weight.scales, weight.scale_dtype), err_msg=name)
            np.testing.assert_allclose(weight.dequantize(), layer.weight.dequantize().numpy(),
                                       rtol=UNIT_ROUNDOFF[weight.scale_dtype], atol=0,
                                       err_msg=name)
            checked += 1
    assert checked == len(stored)


def test_every_planned_llama_weight_is_stored_with_the_plans_codes_and_scales(exported):
    module, plan, stored = exported
    precisions = {(layer.precision, layer.weight.group_size == layer.shape[1])
                  for layer in plan.layers if layer.weight is not None}
    assert precisions == {("int4", False), ("int4", True), ("int8", True)}
    _assert_stored_as_planned(module, plan, stored)
    assert len(stored) == 9  # 7 linears, the embedding and its tied lm_head


def test_xnnpack_stores_4bit_scales_in_bf16_and_8bit_scales_in_fp32(exported):
    _, _, stored = exported
    layouts = sorted({(w.kind, w.bits, w.group_size, w.scale_dtype) for w in stored})
    # int4 per channel is lowered blockwise too (one block per row), so its scales are bf16
    assert layouts == [("embedding", 4, 32, "fp32"), ("linear", 4, 32, "bf16"),
                       ("linear", 4, 64, "bf16"), ("linear", 8, 64, "fp32"),
                       ("linear", 8, 128, "fp32")]


class _EmbedAndProject(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(64, 32)
        self.proj = nn.Linear(32, 16)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.embed(ids))


def test_int8_scheme_stores_the_plans_codes_in_embedding_byte_and_8da8w(tmp_path: Path):
    torch.manual_seed(0)
    student = load(_EmbedAndProject(), example_inputs=(torch.randint(0, 64, (1, 8)),))
    plan = quantize(student, "int8")
    (artifact,) = export(student, plan, ("executorch",), tmp_path)
    stored = read_pte_weights(artifact.path)
    assert sorted((w.kind, w.bits, w.scale_dtype) for w in stored) == \
        [("embedding", 8, "fp32"), ("linear", 8, "fp32")]
    _assert_stored_as_planned(student.module, plan, stored)


def test_a_missing_or_foreign_file_is_a_one_line_error(tmp_path: Path):
    with pytest.raises(EdgekitError, match="missing.pte: cannot read"):
        read_pte_weights(tmp_path / "missing.pte")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")
    with pytest.raises(EdgekitError, match="model.onnx: not an ExecuTorch .pte"):
        read_pte_weights(tmp_path / "model.onnx")
