"""Task wrappers: the clean forward graphs that every format can convert.

transformers builds attention masks with ops some converters lack (`diff`, `new_ones`), so
the wrappers hand it an explicit additive 4D float mask and explicit position ids. The mask
value is -1e4 rather than -inf or float32's minimum, so that it stays finite (and 0 * mask
stays 0) when a runtime computes in fp16.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

TASKS = (
    "text-generation",
    "feature-extraction",
    "fill-mask",
    "text-classification",
    "image-classification",
)
MASK_VALUE = -1e4

# Suffixes of transformers architecture names, in the order they are tried.
_ARCHITECTURE_TASKS = (
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForMaskedLM", "fill-mask"),
    ("ForSequenceClassification", "text-classification"),
    ("ForImageClassification", "image-classification"),
    ("Model", "feature-extraction"),
)


def infer_task(architectures: list[str] | None) -> str | None:
    """The task a transformers config's `architectures` implies, or None."""
    for arch in architectures or []:
        for suffix, task in _ARCHITECTURE_TASKS:
            if arch.endswith(suffix):
                return task
    return None


def _accepts(model: nn.Module, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


class CausalLMForExport(nn.Module):
    """input_ids [1, T] -> logits [1, T, V], causal attention over the whole window."""

    def __init__(self, model: nn.Module, seq_len: int) -> None:
        super().__init__()
        self.model = model
        causal = torch.full((seq_len, seq_len), MASK_VALUE).triu(1)[None, None]
        self.register_buffer("causal_mask", causal, persistent=False)
        self.register_buffer("position_ids", torch.arange(seq_len)[None], persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.model(
            input_ids=input_ids,
            attention_mask=self.causal_mask,
            position_ids=self.position_ids,
            use_cache=False,
        )
        return out.logits


class EncoderForExport(nn.Module):
    """(input_ids, attention_mask) [1, T] -> last_hidden_state or logits."""

    def __init__(self, model: nn.Module, seq_len: int, output: str) -> None:
        super().__init__()
        self.model = model
        self.output = output
        self.extra: dict[str, str] = {}
        base = getattr(model, str(getattr(model, "base_model_prefix", "")), model)
        embeddings = getattr(model, "embeddings", None) or getattr(base, "embeddings", None)
        if _accepts(model, "position_ids"):
            # RoBERTa-style embeddings count positions from padding_idx + 1.
            offset = getattr(embeddings, "padding_idx", -1) + 1
            self.register_buffer(
                "position_ids", torch.arange(seq_len)[None] + offset, persistent=False
            )
            self.extra["position_ids"] = "position_ids"
        if _accepts(model, "token_type_ids"):
            self.register_buffer(
                "token_type_ids", torch.zeros(1, seq_len, dtype=torch.long), persistent=False
            )
            self.extra["token_type_ids"] = "token_type_ids"

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        keep = attention_mask[:, None, None, :].to(torch.float32)
        additive = (1.0 - keep) * MASK_VALUE
        kwargs = {k: getattr(self, buf) for k, buf in self.extra.items()}
        out = self.model(input_ids=input_ids, attention_mask=additive, **kwargs)
        return getattr(out, self.output)


class ImageClassifierForExport(nn.Module):
    """pixel_values [1, C, H, W] -> logits [1, classes]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


class TupleOutputs(nn.Module):
    """Wraps a user's module so that it returns a flat tuple of tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(*inputs)
        if isinstance(out, torch.Tensor):
            return (out,)
        if isinstance(out, dict):
            return tuple(out.values())
        return tuple(out)
