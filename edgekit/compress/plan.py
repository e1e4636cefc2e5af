"""Build the canonical quantization plan of a student: which layers, at which precision,
with which codes and scales. Exporters emit the plan; none re-quantizes.

Layers are found by what they are (nn.Linear, nn.Embedding), never by architecture name.
Tied weights (an embedding shared with the LM head) are quantized once and planned once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgekit.compress.weights import QuantizedWeight, quantize_rtn, quantize_search

METHODS: dict[str, Callable[..., QuantizedWeight]] = {
    "rtn": quantize_rtn,
    "search": quantize_search,
}


@dataclass(frozen=True)
class QuantSettings:
    """How to quantize: bits for most layers, group size, symmetry and method."""

    bits: int = 4
    group_size: int = 32  # 0 means per output channel
    symmetric: bool = True
    method: str = "search"
    embeddings: bool = True  # quantize nn.Embedding tables too
    keep_float: tuple[str, ...] = ()  # module names (or name suffixes) left in float


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

    def to_json(self) -> dict[str, Any]:
        plan: dict[str, Any] = {"names": list(self.names), "kind": self.kind,
                                "shape": list(self.shape), "precision": self.precision,
                                "reason": self.reason}
        if self.weight is not None:
            plan["group_size"] = self.weight.group_size
            plan["symmetric"] = self.weight.zeros is None
            plan["weight_sqnr_db"] = self.error_sqnr_db
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
               bits: int | None = None) -> LayerPlan:
    """Quantize one layer's weight under `settings` (`bits` overrides settings.bits)."""
    parameter = layer.weight
    assert isinstance(parameter, torch.Tensor)
    weight = parameter.detach().float()
    kind = "embedding" if isinstance(layer, nn.Embedding) else "linear"
    shape = tuple(weight.shape)
    if any(n == k or n.endswith("." + k) for n in names for k in settings.keep_float):
        return LayerPlan(names, kind, shape, "float", None, "kept in float by keep_float")
    if kind == "embedding" and not settings.embeddings:
        return LayerPlan(names, kind, shape, "float", None, "embeddings not quantized")
    bits = bits or settings.bits
    group = settings.group_size or weight.shape[1]
    if weight.shape[1] % group:
        return LayerPlan(names, kind, shape, "float", None,
                         f"in_features {weight.shape[1]} not a multiple of group {group}")
    quantized = METHODS[settings.method](weight, bits, group, settings.symmetric)
    return LayerPlan(names, kind, shape, f"int{bits}", quantized, f"{settings.method} g{group}",
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
