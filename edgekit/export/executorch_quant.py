"""Emit a quantization plan for ExecuTorch: torchao tensors built from the plan's codes.

Linear weights become torchao IntxUnpackedToInt8Tensor with int8 dynamic per-token
activations, the form XNNPACK lowers to its 4/8-bit kernels (8da4w/8da8w). XNNPACK has no
float-activation int4 kernel, so int8 dynamic activations are a substitution the report names.
Embedding tables keep float activations and are fused by ExecuTorch's QuantFusionPass into
quantized_decomposed::embedding_{4bit,byte}. A table tied to the LM head gets its own copy
of the same codes: the fusion pass rewrites the shared constant and corrupts the head otherwise.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from edgekit.compress.plan import LayerPlan
from edgekit.compress.weights import QuantizedWeight
from edgekit.console import import_backend
from edgekit.errors import ConfigError

ACTIVATIONS_NOTE = ("XNNPACK has no float-activation int4/int8 linear kernel: linears run "
                    "with int8 dynamic per-token activations (8da4w/8da8w)")


def _torchao_weight(weight: QuantizedWeight, linear: bool) -> torch.Tensor:
    tensors = import_backend(
        "torchao.quantization.quantize_.workflows.intx.intx_unpacked_to_int8_tensor")
    activation = (tensors.IntxUnpackedToInt8TensorActivationQuantization.INT8_ASYM_PER_TOKEN
                  if linear else None)
    codes = weight.codes.to(torch.int8).clone()
    zeros = (weight.zeros.to(torch.int8).clone() if weight.zeros is not None
             else torch.zeros_like(weight.scales, dtype=torch.int8))
    if weight.zeros is not None:
        # torchao's int4 codes are signed (-8..7): shift unsigned codes and zeros alike.
        shift = 2 ** (weight.bits - 1)
        codes = (weight.codes - shift).to(torch.int8)
        zeros = (weight.zeros - shift).to(torch.int8)
    return tensors.IntxUnpackedToInt8Tensor(
        codes, weight.scales.clone(), zeros, getattr(torch, f"int{weight.bits}"),
        (1, weight.group_size), torch.float32, activation)


def quantized_module(module: nn.Module, layers: list[LayerPlan]) -> nn.Module:
    """A copy of `module` whose planned weights are torchao tensors of the plan's codes."""
    copied = copy.deepcopy(module)
    by_name = dict(copied.named_modules(remove_duplicate=False))
    for layer in layers:
        if layer.weight is None:
            continue
        for name in layer.names:  # one tensor per module: tied weights are untied here
            target = by_name[name]
            if layer.weight.zeros is not None and isinstance(target, nn.Linear):
                raise ConfigError(f"{name}: XNNPACK stores no zero points for quantized "
                                  "linears (its serializer would drop them); use a "
                                  "symmetric plan (quantize.symmetric = true, the default) "
                                  "for ExecuTorch targets")
            weight = _torchao_weight(layer.weight, isinstance(target, nn.Linear))
            target.weight = nn.Parameter(weight, requires_grad=False)
            if isinstance(target, nn.Embedding):
                # padding_idx only affects gradients, but it adds an argument to the traced
                # aten.embedding that ExecuTorch's embedding-fusion pattern does not match.
                target.padding_idx = None
    return copied.eval()


def fuse_quantized_embeddings(edge: Any) -> None:
    """Replace dequantize+embedding pairs with ExecuTorch's quantized embedding kernels."""
    fusion = import_backend("executorch.exir.passes.quant_fusion_pass")
    import_backend("executorch.kernels.quantized")  # registers the quantized op schemas
    fusion.quant_fusion_and_const_prop_pass(edge.exported_program())
