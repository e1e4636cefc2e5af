"""Task wrappers: the clean forward graphs that every format can convert.

transformers builds attention masks with ops some converters lack (`diff`, `new_ones`), so
the wrappers hand it an explicit additive 4D float mask and explicit position ids. The mask
value is -1e4 rather than -inf or float32's minimum, so that it stays finite (and 0 * mask
stays 0) when a runtime computes in fp16. A few models read a 4D mask otherwise (DeBERTa
multiplies by it, BLOOM builds ALiBi from a 2D one): `fit_mask` checks on one input that the
model reads the additive mask as it reads its own padding mask, and hands the others the 2D
padding mask, so the wrapper always computes what the model computes.

Non-text students are wrapped by their main input: `pixel_values` (images), `input_values`
(a 16 kHz waveform: wav2vec2, HuBERT) or `input_features` (a log-mel spectrogram: Whisper's
encoder). An encoder-decoder model's features are its encoder's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

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
        self.padding_mask = False  # True: the model gets a 2D mask of ones (see fit_mask)
        causal = torch.full((seq_len, seq_len), MASK_VALUE).triu(1)[None, None]  # additive 4D
        self.register_buffer("attention_mask", causal, persistent=False)
        self.register_buffer("position_ids", torch.arange(seq_len)[None], persistent=False)
        self.positions = _accepts(model, "position_ids")
        self.seq_len = seq_len

    def use_padding_mask(self) -> None:
        """Hand the model a 2D mask of ones, from which it builds its causal mask itself."""
        self.padding_mask = True
        self.attention_mask = torch.ones(1, self.seq_len, dtype=torch.long)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        extra = {"position_ids": self.position_ids} if self.positions else {}
        out = self.model(
            input_ids=input_ids, attention_mask=self.attention_mask, use_cache=False, **extra
        )
        return out.logits


class EncoderForExport(nn.Module):
    """(input_ids, attention_mask) [1, T] -> last_hidden_state or logits."""

    def __init__(self, model: nn.Module, seq_len: int, output: str) -> None:
        super().__init__()
        self.model = model
        self.output = output
        self.padding_mask = False  # True: the model gets its 2D mask as given (see fit_mask)
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

    def use_padding_mask(self) -> None:
        """Hand the model the 2D padding mask as given, to build its attention mask from."""
        self.padding_mask = True

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.padding_mask:
            mask = attention_mask
        else:
            keep = attention_mask[:, None, None, :].to(torch.float32)
            mask = (1.0 - keep) * MASK_VALUE
        kwargs = {k: getattr(self, buf) for k, buf in self.extra.items()}
        out = self.model(input_ids=input_ids, attention_mask=mask, **kwargs)
        return getattr(out, self.output)


class ImageClassifierForExport(nn.Module):
    """pixel_values [1, C, H, W] -> logits [1, classes]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


class FeaturesForExport(nn.Module):
    """One non-text input (pixel_values [1, C, H, W], input_values [1, samples] or
    input_features [1, mels, frames]) -> last_hidden_state."""

    def __init__(self, model: nn.Module, input_name: str) -> None:
        super().__init__()
        self.model = model
        self.input_name = input_name

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(**{self.input_name: features}).last_hidden_state


def fit_mask(wrapper: CausalLMForExport | EncoderForExport,
             own_forward: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]) -> None:
    """Switch a text wrapper to the 2D padding mask when the model does not read edgekit's
    additive 4D mask as it reads its own padding mask.

    Args:
        wrapper: a CausalLMForExport or EncoderForExport, switched in place.
        own_forward: the model's own forward on the wrapper's inputs, with a 2D mask.
        inputs: one example input set, in the wrapper's input order.

    Raises:
        Exception: whatever the model's own forward raises (the student itself fails).
    """
    with torch.no_grad():
        expected = own_forward(*inputs)
        try:
            actual = wrapper(*inputs)
        except Exception:  # a model that cannot take a 4D mask at all
            actual = None
    if actual is not None and actual.shape == expected.shape:
        if len(inputs) > 1 and actual.dim() > 2 and actual.shape[1] == inputs[1].shape[-1]:
            # padded positions' outputs are nobody's to use: compare the kept ones
            keep = inputs[1][0].bool()
            actual, expected = actual[:, keep], expected[:, keep]
        scale = float(expected.abs().max()) or 1.0
        if float((actual - expected).abs().max()) <= 1e-4 * scale:
            return
    wrapper.use_padding_mask()


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
