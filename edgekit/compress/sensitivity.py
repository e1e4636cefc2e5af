"""What calibration data tells the quantizer: input Hessians for GPTQ, and how much each
layer's quantization alone changes the student's output (its sensitivity).

Sensitivity is measured on the whole student, one layer at a time: the layer gets its
quantized weight, everything else stays fp32, and the output is compared with the fp32
output on the calibration inputs. For language models (logits) the measure is the mean
KL(fp32 || quantized) per token; otherwise it is the noise-to-signal power ratio of the
outputs (1 / SQNR, linear). Both add up roughly across layers, which is what the
mixed-precision choice relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from edgekit.compress.plan import LayerPlan
from edgekit.console import progress, quiet
from edgekit.model.student import Student

Batch = dict[str, np.ndarray]


def collect_hessians(student: Student, found: list[tuple[tuple[str, ...], nn.Module]],
                     calibration: list[Batch]) -> dict[str, torch.Tensor]:
    """X^T X of the inputs of every Linear among `found`, keyed by the layer's first name.

    A weight tied to an embedding and a Linear (an LM head) gets the Linear's inputs.
    """
    modules = dict(student.module.named_modules(remove_duplicate=False))
    hessians: dict[str, torch.Tensor] = {}
    # q/k/v (and gate/up) read one input tensor: its X^T X is computed once per forward.
    # The cache holds the tensor itself, so its memory cannot be reused by another input.
    shared: dict[tuple[int, tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for names, _ in found:
        linear = next((modules[n] for n in names if isinstance(modules[n], nn.Linear)), None)
        if linear is None:
            continue

        def accumulate(_: nn.Module, args: tuple[torch.Tensor, ...], key: str = names[0]
                       ) -> None:
            x = args[0].detach()
            cache_key = (x.data_ptr(), tuple(x.shape))
            if cache_key not in shared:
                flat = x.reshape(-1, x.shape[-1]).float()
                shared[cache_key] = (x, flat.T @ flat)
            hessians[key] = hessians.get(key, 0) + shared[cache_key][1]

        hooks.append(linear.register_forward_pre_hook(accumulate))
    try:
        for _ in forward_all(student, calibration):
            shared.clear()
    finally:
        for hook in hooks:
            hook.remove()
    return hessians


def output_noise(layer: LayerPlan, weight: torch.Tensor, hessian: torch.Tensor | None) -> float:
    """The layer's own relative output error on calibration activations,
    tr(D H D^T) / tr(W H W^T) with D = W - W_q and H = X^T X: a cheap ranking of which
    layers are worth the whole-model measurement. Without H, the weight's relative error."""
    assert layer.weight is not None
    w = weight.detach().float()
    d = w - layer.weight.dequantize()
    if hessian is None:
        return float((d * d).sum() / (w * w).sum().clamp(min=1e-30))
    return float(((d @ hessian) * d).sum() / ((w @ hessian) * w).sum().clamp(min=1e-30))


def layer_sensitivity(student: Student, layers: list[LayerPlan],
                      calibration: list[Batch]) -> dict[str, float]:
    """Output error when only that layer is quantized, keyed by the layer's first name."""
    logits = student.task == "text-generation"
    reference = list(forward_all(student, calibration))
    measure = _mean_kl if logits else _noise_ratio
    modules = dict(student.module.named_modules(remove_duplicate=False))
    planned = [layer for layer in layers if layer.weight is not None]
    result = {}
    for layer in progress(planned, "sensitivity per layer"):
        weight = modules[layer.names[0]].weight
        with _swapped(weight, layer.weight.dequantize()):  # type: ignore[union-attr]
            outputs = list(forward_all(student, calibration))
        result[layer.names[0]] = float(np.mean([measure(r, o) for r, o in
                                                zip(reference, outputs, strict=True)]))
    return result


def forward_all(student: Student, calibration: list[Batch], module: nn.Module | None = None
                ) -> Iterator[list[torch.Tensor]]:
    """The outputs of `module` (default: the student's) for each input set, without grad."""
    module = module or student.module
    with torch.no_grad(), quiet():
        for sample in calibration:
            out = module(*[torch.from_numpy(sample[n]) for n in student.input_names])
            yield [out] if isinstance(out, torch.Tensor) else list(out)


@contextmanager
def _swapped(weight: torch.Tensor, value: torch.Tensor) -> Iterator[None]:
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.copy_(value.to(weight.dtype))
    try:
        yield
    finally:
        with torch.no_grad():
            weight.copy_(saved)


def _mean_kl(reference: list[torch.Tensor], actual: list[torch.Tensor]) -> float:
    ref = torch.log_softmax(reference[0].double(), -1)
    act = torch.log_softmax(actual[0].double(), -1)
    return float((ref.exp() * (ref - act)).sum(-1).mean())


def _noise_ratio(reference: list[torch.Tensor], actual: list[torch.Tensor]) -> float:
    signal = sum(float((r.double() ** 2).sum()) for r in reference)
    noise = sum(float(((r.double() - a.double()) ** 2).sum())
                for r, a in zip(reference, actual, strict=True))
    return noise / max(signal, 1e-30)


