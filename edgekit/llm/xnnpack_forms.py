"""XNNPACK-friendly forms of two decoder pieces, for the ExecuTorch decode program.

XNNPACK cannot take RMSNorm's `mean` over the last dimension of a 3-D tensor, nor the
slices and concat of RoPE's `rotate_half`; each such op stays in ExecuTorch's portable
kernels and splits the layer into separate XNNPACK subgraphs, and every subgraph is a
delegate call per token. Both have exact matrix forms that XNNPACK runs as fully-connected
layers, so the layer stays in fewer, larger subgraphs:

- mean(x², -1) = linear(x², (1/n)·1), a [1, n] constant weight;
- rotate_half(x) = cat(-x₂, x₁) = linear(x, W), W the [d, d] signed permutation.

An RMSNorm module is rewritten only when its output on a probe input matches its own forward
(so variants such as Gemma's (1 + weight) are left alone); RoPE's `rotate_half` is replaced
in the transformers modeling module that defines the attention, while the decoder runs.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def rmsnorm_by_matmul(model: nn.Module) -> None:
    """Rewrite each RMSNorm of `model` in place whose matmul form matches it."""
    for module in model.modules():
        weight = getattr(module, "weight", None)
        eps = getattr(module, "variance_epsilon", None)
        if (not type(module).__name__.endswith("RMSNorm") or not isinstance(eps, float)
                or not isinstance(weight, torch.Tensor) or weight.dim() != 1):
            continue
        width = weight.shape[0]
        module.register_buffer("mean_vector", torch.full((1, width), 1.0 / width),
                               persistent=False)
        probe = torch.randn(2, 3, width, generator=torch.Generator().manual_seed(0)) * 3
        with torch.no_grad():
            expected = module(probe)
            actual = _rmsnorm(module, probe)
        if torch.allclose(actual, expected, rtol=1e-5, atol=1e-5):
            module.forward = types.MethodType(_rmsnorm, module)  # type: ignore[method-assign]
        else:
            del module.mean_vector


def _rmsnorm(self: Any, hidden: torch.Tensor) -> torch.Tensor:
    dtype = hidden.dtype
    hidden = hidden.to(torch.float32)
    variance = nn.functional.linear(hidden * hidden, self.mean_vector)
    return self.weight * (hidden * torch.rsqrt(variance + self.variance_epsilon)).to(dtype)


def rotation_matrix(head_dim: int) -> torch.Tensor:
    """The weight W with linear(x, W) = x @ Wᵀ = cat(-x[..., d/2:], x[..., :d/2])."""
    half = head_dim // 2
    rotation = torch.zeros(head_dim, head_dim)
    rotation[torch.arange(half), torch.arange(half) + half] = -1.0
    rotation[torch.arange(half) + half, torch.arange(half)] = 1.0
    return rotation


def modeling_modules(model: nn.Module) -> list[types.ModuleType]:
    """The transformers modeling modules whose `rotate_half` the model's attention calls."""
    found = []
    for module in model.modules():
        if isinstance(getattr(module, "layer_idx", None), int):
            source = sys.modules.get(type(module).__module__)
            if callable(getattr(source, "rotate_half", None)) and source not in found:
                found.append(source)
    return found


@contextmanager
def rope_by_matmul(sources: list[types.ModuleType], rotations: list[torch.Tensor]
                   ) -> Iterator[None]:
    """While active, the i-th call of `rotate_half(x)` in `sources` is `linear(x, rotations[i])`
    (x's last dim matching). Each call gets its own copy of R: XNNPACK's partitioner groups
    a fully-connected layer with its weight, so one R shared by every layer would merge
    layers on both sides of the (undelegated) cache update into one cyclic subgraph."""
    saved = [source.rotate_half for source in sources]  # type: ignore[attr-defined]
    calls = iter(rotations)

    def make(original: Any) -> Any:
        def rotate_half(x: torch.Tensor) -> torch.Tensor:
            rotation = next(calls, None)
            if rotation is None or x.shape[-1] != rotation.shape[0]:
                return original(x)
            return nn.functional.linear(x, rotation)
        return rotate_half

    for source, original in zip(sources, saved, strict=True):
        source.rotate_half = make(original)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for source, original in zip(sources, saved, strict=True):
            source.rotate_half = original  # type: ignore[attr-defined]
