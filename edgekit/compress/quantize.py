"""The canonical quantization plan, computed once and emitted natively by every format.

`quantize(student, scheme)` decides, per Linear/Embedding weight, int4 or int8 codes with
group scales, or float, and returns a QuantPlan. Exporters re-pack the plan's codes and
scales into their native operators (MatMulNBits, constexpr_blockwise_shift_scale, torchao
tensors for XNNPACK); none re-quantizes, so differences between formats are runtime
differences, never different quantization.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from edgekit.compress.plan import LayerPlan, QuantSettings, apply_plan, find_layers, plan_layer
from edgekit.errors import ConfigError
from edgekit.model.student import Student

QUANT_SCHEMES = ("none", "int8", "int4")
# Short scheme names -> settings, in one place.
SCHEMES = {
    "int4": QuantSettings(bits=4, group_size=32, symmetric=True, method="search"),
    "int8": QuantSettings(bits=8, group_size=32, symmetric=True, method="search"),
}


@dataclass(frozen=True)
class QuantPlan:
    """Which precision each layer is stored at; `scheme` 'none' keeps every layer in fp32."""

    scheme: str
    layers: tuple[LayerPlan, ...] = ()
    settings: QuantSettings | None = None
    weights: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def quantized(self) -> bool:
        return any(layer.weight is not None for layer in self.layers)

    def eager_module(self, module: nn.Module) -> nn.Module:
        """A copy of `module` holding the plan's dequantized weights (the quantized student)."""
        copied = copy.deepcopy(module)
        apply_plan(copied, list(self.layers))
        return copied.eval()

    def to_json(self) -> dict[str, Any]:
        plan: dict[str, Any] = {"scheme": self.scheme}
        if self.settings is not None:
            plan["settings"] = {"bits": self.settings.bits,
                                "group_size": self.settings.group_size,
                                "symmetric": self.settings.symmetric,
                                "method": self.settings.method}
            plan["layers"] = [layer.to_json() for layer in self.layers]
        return plan


def check_scheme(scheme: str) -> None:
    """Reject an unknown scheme before any work starts."""
    if scheme not in QUANT_SCHEMES:
        raise ConfigError(f"unknown quant '{scheme}' (known: {', '.join(QUANT_SCHEMES)})")


def quantize(student: Student, scheme: str) -> QuantPlan:
    """Compute the quantization plan for `student`.

    Args:
        student: the (possibly pruned) fp32 student.
        scheme: one of QUANT_SCHEMES.

    Returns:
        The plan every exporter emits; its `weights` hold each planned layer's fp32 weight,
        which exporters use to find the layer in their own graphs.
    """
    check_scheme(scheme)
    if scheme == "none":
        return QuantPlan(scheme=scheme)
    settings = SCHEMES[scheme]
    found = find_layers(student.module)
    layers = tuple(plan_layer(names, module, settings) for names, module in found)
    weights = {names[0]: module.get_parameter("weight").detach().float().numpy()
               for names, module in found}
    return QuantPlan(scheme=scheme, layers=layers, settings=settings, weights=weights)
