"""Decode wrappers: a decoder LM with a KV cache, in the form each format runs.

transformers computes q/k/v and RoPE; edgekit takes over at the attention function, which
transformers lets a caller register by name. Each attention module gets a small cache
module (`edgekit_kv`) that stores the new keys/values and attends over the cache:

- ExecuTorch: the cache is a mutable buffer [1, max_seq_len, kv_heads, head_dim] written by
  ExecuTorch's `llama::update_cache` and read by `llama::custom_sdpa` (the LLM custom ops
  its own exporter uses); forward(tokens [1, T], input_pos [1]) -> logits [1, V].
- ONNX: past keys/values come in and present ones go out [1, kv_heads, length, head_dim]
  (onnxruntime-genai's layout), attention with an explicit additive mask.
- Core ML: the cache is a pair of fp16 buffers [1, kv_heads, max_seq_len, head_dim] per layer,
  written in place (slice assignment at the token's positions), which coremltools turns into
  iOS 18 states (read_state / slice_update / coreml_update_state); attention runs over the
  whole cache under an additive mask; forward(tokens [1, T], input_pos [1]) -> logits [1, V].

Layers are found by what they are (an attention module with `layer_idx`), not by
architecture name.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgekit.console import import_backend
from edgekit.errors import ExportError
from edgekit.model.student import Student
from edgekit.model.tasks import MASK_VALUE

ATTENTION = "edgekit_kv"  # the name the attention function is registered under


@dataclass(frozen=True)
class DecoderShape:
    """What the KV cache of a decoder LM looks like."""

    layers: int
    kv_heads: int
    heads: int
    head_dim: int
    hidden: int
    vocab: int

    @property
    def kv_bytes_per_token(self) -> int:
        """fp32 bytes of keys and values that one token adds to the cache."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 4


def decoder_shape(config: Any) -> DecoderShape:
    """The cache shape of a transformers decoder config."""
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return DecoderShape(layers=int(config.num_hidden_layers),
                        kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
                        heads=heads, head_dim=head_dim, hidden=int(config.hidden_size),
                        vocab=int(config.vocab_size))


def hf_model(student: Student) -> nn.Module:
    """The transformers model inside the student's export wrapper."""
    model = getattr(student.module, "model", None)
    if not isinstance(model, nn.Module):
        raise ExportError(f"{student.name}: decode export needs a transformers decoder LM")
    return model


def check_decoder(student: Student, max_seq_len: int) -> None:
    """Reject students the decode exporters cannot serve, naming why.

    Raises:
        ExportError: not a transformers decoder LM, sliding-window attention, or a
            max_seq_len outside [2, max_position_embeddings].
    """
    config = student.hf_config
    if student.task != "text-generation" or config is None:
        raise ExportError(f"{student.name}: decode export needs a transformers decoder LM "
                          f"(task text-generation), got task '{student.task}'")
    sliding = getattr(config, "use_sliding_window", False) or "sliding_attention" in (
        getattr(config, "layer_types", None) or ())
    if sliding and getattr(config, "sliding_window", None):
        raise ExportError(f"{student.name}: sliding-window attention is not supported by "
                          "edgekit's decode exporters (the KV cache would need a ring buffer)")
    limit = int(getattr(config, "max_position_embeddings", 0) or 0)
    if max_seq_len < 2 or (limit and max_seq_len > limit):
        raise ExportError(f"{student.name}: max_seq_len {max_seq_len} must be in [2, {limit}] "
                          "(max_position_embeddings)")
    if not _attention_modules(hf_model(student)):
        raise ExportError(f"{student.name}: no attention modules with a layer_idx found; "
                          "decode export supports transformers decoder LMs")


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules()
            if isinstance(getattr(m, "layer_idx", None), int) and hasattr(m, "scaling")]


@functools.cache
def _register_attention() -> None:
    transformers = import_backend("transformers")
    transformers.AttentionInterface.register(ATTENTION, _attend)


def _attend(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
            attention_mask: torch.Tensor | None, scaling: float | None = None,
            **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention hook: q [B, H, T, D], k/v [B, Hkv, T, D] -> [B, T, H, D]."""
    cache: Any = module.edgekit_kv
    return cache(query, key, value, attention_mask, scaling or query.shape[-1] ** -0.5), None


def _with_caches(hf: nn.Module, make_cache: Any) -> nn.Module:
    """A copy of a transformers model whose attention goes through edgekit_kv."""
    _register_attention()
    model: Any = copy.deepcopy(hf)
    for attention in _attention_modules(model):
        attention.edgekit_kv = make_cache()
    model.config._attn_implementation = ATTENTION
    return model.eval()


def _sdpa(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
          scale: float) -> torch.Tensor:
    """Attention with an additive mask; q [B, H, T, D], k/v [B, Hkv, L, D] -> [B, T, H, D]."""
    groups = query.shape[1] // keys.shape[1]
    if groups > 1:
        keys = keys.repeat_interleave(groups, dim=1)
        values = values.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, keys.transpose(2, 3)) * scale + mask
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, values).transpose(1, 2)


# ---- ExecuTorch: custom ops over a mutable cache ------------------------------------------


class CustomOpCache(nn.Module):
    """KV cache as mutable buffers, updated and read by ExecuTorch's LLM custom ops."""

    def __init__(self, max_seq_len: int, kv_heads: int, head_dim: int) -> None:
        super().__init__()
        shape = (1, max_seq_len, kv_heads, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape), persistent=False)
        self.start_pos: Any = 0  # set by the wrapper before each call

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None, scale: float) -> torch.Tensor:
        ops = torch.ops.llama
        ops.update_cache(key.transpose(1, 2), self.k_cache, self.start_pos)
        ops.update_cache(value.transpose(1, 2), self.v_cache, self.start_pos)
        return ops.custom_sdpa(query.transpose(1, 2), self.k_cache, self.v_cache,
                               self.start_pos, None, 0.0, True, scale)


class ExecuTorchDecoder(nn.Module):
    """forward(tokens [1, T], input_pos [1]) -> logits of the last token [1, V].

    The signature and layout ExecuTorch's LLM runner expects (use_kv_cache,
    use_sdpa_with_kv_cache, enable_dynamic_shape).
    """

    def __init__(self, student: Student, max_seq_len: int) -> None:
        super().__init__()
        import_backend("executorch.extension.llm.custom_ops.custom_ops")  # llama:: op schemas
        shape = decoder_shape(student.hf_config)
        self.max_seq_len = max_seq_len
        self.model = _with_caches(
            hf_model(student), lambda: CustomOpCache(max_seq_len, shape.kv_heads, shape.head_dim))
        self.caches = [m for m in self.model.modules() if isinstance(m, CustomOpCache)]

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        start = input_pos[0].item()
        torch._check(start >= 0)
        torch._check(start + length <= self.max_seq_len)
        for cache in self.caches:
            cache.start_pos = start
        positions = (torch.arange(length, dtype=torch.long) + input_pos[0])[None]
        out = self.model(input_ids=tokens, position_ids=positions, use_cache=False,
                         logits_to_keep=1)
        return out.logits[:, -1, :]


# ---- ONNX: past/present tensors ------------------------------------------------------------


class PastPresentCache(nn.Module):
    """Keys/values of earlier tokens come in (`past`), all of them go out (`present`)."""

    def __init__(self) -> None:
        super().__init__()
        self.past: tuple[torch.Tensor, torch.Tensor] | None = None
        self.present: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None, scale: float) -> torch.Tensor:
        assert self.past is not None and mask is not None
        keys = torch.cat([self.past[0], key], dim=2)
        values = torch.cat([self.past[1], value], dim=2)
        self.present = (keys, values)
        return _sdpa(query, keys, values, mask, scale)


class OnnxDecoder(nn.Module):
    """onnxruntime-genai's decoder signature:

    (input_ids [1, T], attention_mask [1, P+T], position_ids [1, T],
     past_key_values.{i}.key/value [1, Hkv, P, D] ...) ->
    (logits [1, T, V], present.{i}.key/value [1, Hkv, P+T, D] ...)
    """

    def __init__(self, student: Student) -> None:
        super().__init__()
        self.model = _with_caches(hf_model(student), PastPresentCache)
        self.caches = [m for m in self.model.modules() if isinstance(m, PastPresentCache)]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        length = input_ids.shape[1]
        total = attention_mask.shape[1]
        # query i sits at absolute position total - length + i and sees keys up to it, unless
        # the key is padding (attention_mask 0)
        key_pos = torch.arange(total)[None, :]
        query_pos = (torch.arange(length) + (total - length))[:, None]
        visible = (key_pos <= query_pos) & (attention_mask[:, None, None, :] > 0)
        mask = torch.where(visible, 0.0, MASK_VALUE).to(torch.float32)
        for index, cache in enumerate(self.caches):
            cache.past = (past[2 * index], past[2 * index + 1])
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                         use_cache=False)
        presents = [t for cache in self.caches for t in (cache.present or ())]
        return (out.logits, *presents)


# ---- Core ML: fp16 buffers that become states ---------------------------------------------


class StateCache(nn.Module):
    """KV cache as fp16 buffers written in place: Core ML states (which are fp16 only).

    A call attends over the cache as stored (fp16) for earlier positions and over its own
    keys/values as computed: only what is kept across calls goes through fp16 memory.
    """

    k_cache: torch.Tensor
    v_cache: torch.Tensor

    def __init__(self, max_seq_len: int, kv_heads: int, head_dim: int) -> None:
        super().__init__()
        shape = (1, kv_heads, max_seq_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=torch.float16), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=torch.float16),
                             persistent=False)
        self.start_pos: Any = 0  # set by the wrapper before each call
        self.mask: torch.Tensor | None = None  # [1, 1, T, max_seq_len], set by the wrapper

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None, scale: float) -> torch.Tensor:
        start, end = self.start_pos, self.start_pos + key.shape[2]
        keys = self.k_cache.float().slice_scatter(key, dim=2, start=start, end=end)
        values = self.v_cache.float().slice_scatter(value, dim=2, start=start, end=end)
        self.k_cache[:, :, start:end] = key.to(torch.float16)
        self.v_cache[:, :, start:end] = value.to(torch.float16)
        assert self.mask is not None
        return _sdpa(query, keys, values, self.mask, scale)


class CoreMLDecoder(nn.Module):
    """forward(tokens [1, T], input_pos [1]) -> logits of the last token [1, V], the KV cache
    in fp16 buffers (Core ML states); T is flexible, so one function prefills and decodes."""

    def __init__(self, student: Student, max_seq_len: int) -> None:
        super().__init__()
        shape = decoder_shape(student.hf_config)
        self.max_seq_len = max_seq_len
        self.model = _with_caches(
            hf_model(student), lambda: StateCache(max_seq_len, shape.kv_heads, shape.head_dim))
        self.caches = [m for m in self.model.modules() if isinstance(m, StateCache)]

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        start = input_pos[0].item()
        torch._check(start >= 0)
        torch._check(start + length <= self.max_seq_len)
        positions = torch.arange(length, dtype=torch.int32) + input_pos[0]
        # query i (at position start + i) sees cache slots up to its own position; slots past
        # it hold zeros or an earlier sequence's values and are masked out
        visible = torch.arange(self.max_seq_len, dtype=torch.int32)[None, :] <= positions[:, None]
        # arithmetic, not torch.where(visible, 0.0, MASK_VALUE): coremltools types a select of
        # two scalars as a scalar, a shape the program would then declare wrongly
        mask = ((1.0 - visible.to(torch.float32)) * MASK_VALUE)[None, None]
        for cache in self.caches:
            cache.start_pos, cache.mask = start, mask
        out = self.model(input_ids=tokens, position_ids=positions[None].long(),
                         use_cache=False, logits_to_keep=1)
        return out.logits[:, -1, :]


class StoredInFp16(nn.Module):
    """No cache: attention over the whole sequence where a key/value from an earlier call is
    read as fp16 (what a Core ML state holds between calls) and one from the query's own call
    as computed. `calls` [L] numbers the call that fed each position; set before each run."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = torch.zeros(0, dtype=torch.long)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None, scale: float) -> torch.Tensor:
        assert mask is not None
        groups = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
        earlier = self.calls[None, :] < self.calls[:, None]  # [query, key]
        fp16_key, fp16_value = key.half().float(), value.half().float()
        scores = torch.where(earlier, torch.matmul(query, fp16_key.transpose(2, 3)),
                             torch.matmul(query, key.transpose(2, 3)))
        weights = torch.softmax(scores * scale + mask, dim=-1)
        out = torch.matmul(weights * earlier, fp16_value) + torch.matmul(weights * ~earlier,
                                                                         value)
        return out.transpose(1, 2)


class Fp16StateReference(nn.Module):
    """A transformers model recomputing the whole history at every call (no cache), reading
    keys/values of tokens fed in earlier calls as fp16: the eager reference of a Core ML decode
    package, whose cache is fp16 state between calls."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.model = _with_caches(hf, StoredInFp16)
        self.attention = [m for m in self.model.modules() if isinstance(m, StoredInFp16)]

    def forward(self, input_ids: torch.Tensor, calls: torch.Tensor) -> torch.Tensor:
        """Logits [1, T, V] of the whole sequence; `calls` [T] numbers each token's call."""
        for attention in self.attention:
            attention.calls = calls
        length = input_ids.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        mask = ((1.0 - causal.to(torch.float32)) * MASK_VALUE)[None, None]
        # positions given, not left to the model: OPT derives them from attention_mask, which
        # here is additive (0 / MASK_VALUE), not the 0/1 padding mask it expects
        positions = torch.arange(length, dtype=torch.long)[None]
        return self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                          use_cache=False).logits
