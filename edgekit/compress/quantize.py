"""The canonical quantization plan, computed once and emitted natively by every format.

`quantize(student, scheme)` decides, per Linear/Embedding weight, int4 or int8 codes with
group scales, or float, and returns a QuantPlan. Exporters re-pack the plan's codes and
scales into their native operators (MatMulNBits, constexpr_blockwise_shift_scale, torchao
tensors for XNNPACK); none re-quantizes, so differences between formats are runtime
differences, never different quantization.

4-bit plans use the error-minimising scale search; with calibration data they keep the
layers whose 4-bit error moves the output most at int8 per channel (mixed precision): layers are
promoted in order of measured sensitivity per extra byte until the 4-bit layers' summed
sensitivity falls to `error_budget` of its all-4-bit value, within `max_extra_bytes`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from edgekit.compress.plan import (
    ALL_METHODS,
    LayerPlan,
    QuantSettings,
    apply_plan,
    find_layers,
    plan_layer,
)
from edgekit.console import stage
from edgekit.errors import ConfigError
from edgekit.model.student import Student

QUANT_SCHEMES = ("none", "int8", "int4")
# Short scheme names -> default settings, in one place. int8 is per output channel: the
# layout XNNPACK (8da8w), ONNX (DequantizeLinear) and Core ML all run natively.
# int4 uses `search`, not `gptq`: on SmolLM2-135M, GPTQ fitted to the built-in ~2k-token
# corpus overfits it (calibration-text KL 0.14 vs 0.38 for search, held-out KL 0.72 vs 0.69;
# docs/benchmarks.md). GPTQ stays available for users with a large --calib set.
SCHEMES = {
    "int4": QuantSettings(bits=4, group_size=32, symmetric=True, method="search",
                          mixed_precision=True),
    "int8": QuantSettings(bits=8, group_size=0, symmetric=True, method="search"),
}
SENSITIVITY_SAMPLES = 2  # calibration input sets per layer in the sensitivity pass
MEASURED_FRACTION = 0.25  # layers measured on the whole model, the top by own output noise


@dataclass(frozen=True)
class QuantPlan:
    """Which precision each layer is stored at; `scheme` 'none' keeps every layer in fp32."""

    scheme: str
    layers: tuple[LayerPlan, ...] = ()
    settings: QuantSettings | None = None
    weights: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    mixed: dict[str, Any] | None = None  # what mixed precision measured and chose

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
            plan["settings"] = dataclasses.asdict(self.settings)
            plan["settings"]["keep_float"] = list(self.settings.keep_float)
            plan["layers"] = [layer.to_json() for layer in self.layers]
            plan["weight_bytes"] = plan_bytes(self.layers)
            plan["bits_per_weight"] = bits_per_weight(self.layers)
        if self.mixed is not None:
            plan["mixed_precision"] = self.mixed
        return plan


def check_scheme(scheme: str) -> None:
    """Reject an unknown scheme before any work starts."""
    if scheme not in QUANT_SCHEMES:
        raise ConfigError(f"unknown quant '{scheme}' (known: {', '.join(QUANT_SCHEMES)})")


def settings_for(scheme: str, **changes: Any) -> QuantSettings:
    """The scheme's default settings with `changes` (unset values, None, are ignored)."""
    check_scheme(scheme)
    if scheme == "none":
        raise ConfigError("quant 'none' has no settings")
    changes = {k: v for k, v in changes.items() if v is not None}
    settings = dataclasses.replace(SCHEMES[scheme], **changes)
    if settings.method not in ALL_METHODS:
        raise ConfigError(f"quantize.method '{settings.method}' is not known "
                          f"(known: {', '.join(ALL_METHODS)})")
    if settings.group_size < 0 or settings.group_size % 8:
        raise ConfigError(f"quantize.group_size {settings.group_size}: use 0 (per channel) "
                          "or a multiple of 8 such as 32, 64 or 128")
    return settings


def quantize(student: Student, scheme: str, settings: QuantSettings | None = None,
             calibration: list[dict[str, np.ndarray]] | None = None,
             sensitivity: dict[str, float] | None = None) -> QuantPlan:
    """Compute the quantization plan for `student`.

    Args:
        student: the (possibly pruned) fp32 student.
        scheme: one of QUANT_SCHEMES.
        settings: how to quantize; default: the scheme's settings (SCHEMES).
        calibration: input sets for GPTQ and the sensitivity pass; without them the plan
            uses the search method and no mixed precision.
        sensitivity: per-layer sensitivities an earlier plan of the same student and
            settings measured (its layers' `sensitivity`): mixed precision re-chooses under
            this plan's budgets without measuring again.

    Returns:
        The plan every exporter emits; its `weights` hold each planned layer's fp32 weight,
        which exporters use to find the layer in their own graphs.
    """
    check_scheme(scheme)
    if scheme == "none":
        return QuantPlan(scheme=scheme)
    settings = settings or SCHEMES[scheme]
    found = find_layers(student.module)
    hessians = {}
    # GPTQ and the grouped search use each layer's input Hessian; per-channel plans do not
    if calibration and (settings.method == "gptq"
                        or (settings.method == "search" and settings.group_size)):
        from edgekit.compress.sensitivity import collect_hessians

        hessians = collect_hessians(student, found, calibration)
    layers = [plan_layer(names, module, settings, hessians.get(names[0]))
              for names, module in found]
    mixed = None
    if settings.mixed_precision and settings.bits < 8 and calibration:
        with stage("mixed precision: sensitivity of each layer at 4 bits"):
            layers, mixed = _mixed_precision(student, found, layers, settings,
                                             calibration[:SENSITIVITY_SAMPLES], hessians,
                                             sensitivity)
    weights = {names[0]: module.get_parameter("weight").detach().float().numpy()
               for names, module in found}
    return QuantPlan(scheme=scheme, layers=tuple(layers), settings=settings, weights=weights,
                     mixed=mixed)


def plan_bytes(layers: tuple[LayerPlan, ...] | list[LayerPlan]) -> int:
    """Bytes of the planned weights as stored (float layers at 4 bytes a value)."""
    return sum(layer.weight.nbytes if layer.weight is not None
               else int(np.prod(layer.shape)) * 4 for layer in layers)


def bits_per_weight(layers: tuple[LayerPlan, ...] | list[LayerPlan]) -> float:
    """Stored bits per weight value over the planned layers, scales included."""
    values = sum(int(np.prod(layer.shape)) for layer in layers)
    return 8 * plan_bytes(layers) / max(values, 1)


def _mixed_precision(student: Student, found: list[tuple[tuple[str, ...], nn.Module]],
                     layers: list[LayerPlan], settings: QuantSettings,
                     calibration: list[dict[str, np.ndarray]], hessians: dict[str, Any],
                     known: dict[str, float] | None = None
                     ) -> tuple[list[LayerPlan], dict[str, Any]]:
    """Promote the most sensitive 4-bit layers to int8 per channel within the budgets.

    Every planned layer is ranked by its own output noise on calibration activations; the
    top quarter (at least 8) is then measured on the whole model, which decides. `known`
    sensitivities skip both steps."""
    modules = {names[0]: module for names, module in found}
    planned = [layer for layer in layers if layer.weight is not None]
    if known:
        names = {layer.names[0] for layer in planned}
        sensitivity = {name: value for name, value in known.items() if name in names}
    else:
        sensitivity = _measure(student, planned, modules, calibration, hessians)
    int8 = dataclasses.replace(settings, bits=8, group_size=0, method="search")
    base = plan_bytes(layers)
    total = sum(sensitivity.values())
    ranked = sorted(sensitivity, key=sensitivity.get, reverse=True)  # type: ignore[arg-type]
    rank = {name: index + 1 for index, name in enumerate(ranked)}
    by_name = {layer.names[0]: index for index, layer in enumerate(layers)}
    candidates = {name: plan_layer(layers[by_name[name]].names, modules[name], int8)
                  for name in ranked}

    def cost(name: str) -> int:
        old, new = layers[by_name[name]].weight, candidates[name].weight
        assert old is not None and new is not None
        return new.nbytes - old.nbytes

    remaining, extra, promoted = total, 0, []
    stop = "every sensitive layer is at int8"
    for name in sorted(candidates, key=lambda n: sensitivity[n] / max(cost(n), 1),
                       reverse=True):
        if remaining <= settings.error_budget * total:
            stop = f"error budget met ({settings.error_budget:g} of the all-4-bit error)"
            break
        if extra + cost(name) > settings.max_extra_bytes * base:
            stop = f"byte budget reached (+{settings.max_extra_bytes:.0%} of the 4-bit plan)"
            continue
        remaining -= sensitivity[name]
        extra += cost(name)
        promoted.append(name)
    measure = "KL" if student.task == "text-generation" else "noise/signal"
    out = []
    for layer in layers:
        name = layer.names[0]
        if name in promoted:
            chosen = candidates[name]
            reason = (f"int8 per channel: {measure} {sensitivity[name]:.3g} when 4-bit alone, "
                      f"rank {rank[name]} of the {len(ranked)} measured")
            layer = dataclasses.replace(chosen, reason=reason)
        out.append(dataclasses.replace(layer, sensitivity=sensitivity.get(name)))
    summary = {"measure": measure, "calibration_samples": len(calibration),
               "measured_layers": len(ranked), "planned_layers": len(planned),
               "all_4bit_error": total, "estimated_error": remaining,
               "promoted": promoted, "extra_bytes": extra, "stop": stop,
               "error_budget": settings.error_budget,
               "max_extra_bytes": settings.max_extra_bytes}
    return out, summary


def _measure(student: Student, planned: list[LayerPlan], modules: dict[str, nn.Module],
             calibration: list[dict[str, np.ndarray]], hessians: dict[str, Any]
             ) -> dict[str, float]:
    """Whole-model sensitivity of the layers whose own output noise ranks in the top
    MEASURED_FRACTION (at least 8)."""
    from edgekit.compress.sensitivity import layer_sensitivity, output_noise

    noise = {layer.names[0]: output_noise(layer, modules[layer.names[0]].get_parameter(
        "weight"), hessians.get(layer.names[0])) for layer in planned}
    count = max(8, int(len(planned) * MEASURED_FRACTION))
    chosen = set(sorted(noise, key=noise.get, reverse=True)[:count])  # type: ignore[arg-type]
    return layer_sensitivity(student, [p for p in planned if p.names[0] in chosen],
                             calibration)
