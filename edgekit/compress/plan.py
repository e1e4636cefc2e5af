"""Build the canonical quantization plan of a student: which layers, at which precision,
with which codes and scales. Exporters emit the plan; none re-quantizes.

Layers are found by what they are (nn.Linear, nn.Embedding), never by architecture name.
Tied weights (an embedding shared with the LM head) are quantized once and planned once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgekit.compress.weights import (
    QuantizedWeight,
    quantize_gptq,
    quantize_rtn,
    quantize_search,
)

METHODS: dict[str, Callable[..., QuantizedWeight]] = {
    "rtn": quantize_rtn,
    "search": quantize_search,
}
# gptq needs each layer's input Hessian from calibration data; layers without one (embedding
# tables) fall back to search. With calibration data, search weighs errors by that Hessian.
ALL_METHODS = (*METHODS, "gptq")


@dataclass(frozen=True)
class QuantSettings:
    """How to quantize: bits for most layers, group size, symmetry, method, and how far
    sensitive layers may be kept at 8 bits (mixed precision, 4-bit plans only)."""

    bits: int = 4
    group_size: int = 32  # 0 means per output channel
    symmetric: bool = True
    method: str = "search"  # rtn | search | gptq
    embeddings: bool = True  # quantize nn.Embedding tables too
    keep_float: tuple[str, ...] = ()  # module names (or name suffixes) left in float
    mixed_precision: bool = False  # keep the most sensitive layers at int8 (per channel)
    error_budget: float = 0.5  # ... until the 4-bit layers' summed error is this fraction
    max_extra_bytes: float = 0.15  # ... or int8 layers have grown the plan's bytes this much
    onnx_int8_activations: bool = False  # ONNX MatMulNBits with int8 activations (faster on CPU)


@dataclass(frozen=True)
class LayerPlan:
    """One weight's plan: its modules (several when tied), precision and quantized form."""

    names: tuple[str, ...]
    kind: str  # linear | embedding
    shape: tuple[int, ...]
    precision: str  # int4 | int8 | float
    weight: QuantizedWeight | None
    reason: str
    error_sqnr_db: float | None = None
    sensitivity: float | None = None  # output error with only this layer quantized at 4 bits

    def to_json(self) -> dict[str, Any]:
        plan: dict[str, Any] = {"names": list(self.names), "kind": self.kind,
                                "shape": list(self.shape), "precision": self.precision,
                                "reason": self.reason}
        if self.weight is not None:
            plan["group_size"] = self.weight.group_size
            plan["symmetric"] = self.weight.zeros is None
            plan["weight_sqnr_db"] = self.error_sqnr_db
            plan["bytes"] = self.weight.nbytes
        if self.sensitivity is not None:
            plan["sensitivity"] = self.sensitivity
        return plan


def find_layers(module: nn.Module) -> list[tuple[tuple[str, ...], nn.Module]]:
    """(names, module) for each distinct Linear/Embedding weight; tied weights grouped."""
    seen: dict[int, tuple[list[str], nn.Module]] = {}
    for name, child in module.named_modules(remove_duplicate=False):
        if isinstance(child, nn.Linear | nn.Embedding):
            key = id(child.weight)
            if key in seen:
                if name not in seen[key][0]:
                    seen[key][0].append(name)
            else:
                seen[key] = ([name], child)
    return [(tuple(names), child) for names, child in seen.values()]


def plan_layer(names: tuple[str, ...], layer: nn.Module, settings: QuantSettings,
               hessian: torch.Tensor | None = None) -> LayerPlan:
    """Quantize one layer's weight under `settings`. Given the layer's input Hessian, GPTQ
    uses it, and the search weighs each group's error by it (grouped layouts only)."""
    parameter = layer.weight
    assert isinstance(parameter, torch.Tensor)
    weight = parameter.detach().float()
    kind = "embedding" if isinstance(layer, nn.Embedding) else "linear"
    shape = tuple(weight.shape)
    if any(n == k or n.endswith("." + k) for n in names for k in settings.keep_float):
        return LayerPlan(names, kind, shape, "float", None, "kept in float by keep_float")
    if kind == "embedding" and not settings.embeddings:
        return LayerPlan(names, kind, shape, "float", None, "embeddings not quantized")
    bits = settings.bits
    group = settings.group_size or weight.shape[1]
    if weight.shape[1] % group:
        return LayerPlan(names, kind, shape, "float", None,
                         f"in_features {weight.shape[1]} not a multiple of group {group}")
    weighted = ""
    if settings.method == "gptq" and hessian is not None:
        method = "gptq"
        quantized = quantize_gptq(weight, hessian, bits, group, settings.symmetric)
    elif settings.method != "rtn" and hessian is not None and settings.group_size:
        method, weighted = "search", ", activation-weighted"
        quantized = quantize_search(weight, bits, group, settings.symmetric, hessian=hessian)
    else:
        method = "search" if settings.method == "gptq" else settings.method
        quantized = METHODS[method](weight, bits, group, settings.symmetric)
    if bits == 4:
        # XNNPACK stores 4-bit scales in bf16; scales that are bf16 values are stored exactly
        # by every format (ONNX fp32, Core ML fp16, XNNPACK bf16), so all emit the same plan.
        quantized = dataclasses.replace(quantized,
                                        scales=quantized.scales.to(torch.bfloat16).float())
    layout = f"g{group}" if settings.group_size else "per channel"
    return LayerPlan(names, kind, shape, f"int{bits}", quantized, f"{method} {layout}{weighted}",
                     weight_sqnr(weight, quantized.dequantize()))


def weight_sqnr(reference: torch.Tensor, approximation: torch.Tensor) -> float:
    """10 log10(|w|^2 / |w - w_q|^2), capped at 300 dB for exact copies."""
    noise = float(((reference - approximation) ** 2).sum())
    if noise == 0.0:
        return 300.0
    return float(10.0 * torch.log10((reference**2).sum() / noise))


def apply_plan(module: nn.Module, layers: list[LayerPlan]) -> None:
    """Replace each planned weight in `module` by its dequantized value, in place: the eager
    quantized student, against which exports are checked for export/runtime error."""
    by_name = dict(module.named_modules(remove_duplicate=False))
    for layer in layers:
        if layer.weight is None:
            continue
        target = by_name[layer.names[0]]
        with torch.no_grad():
            target.weight.copy_(layer.weight.dequantize().to(target.weight.dtype))
