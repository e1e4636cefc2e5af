"""Pruning: structured pruning that really shrinks tensors, and unstructured/2:4 sparsity.

A spec is comma-separated `key=value` items (docs/pruning.md):

    mlp=0.25          remove this fraction of every MLP's intermediate channels (gated MLPs
                      lose the same channels in gate, up and down)
    heads=0.25        remove this fraction of attention heads in every layer (GQA-aware:
                      each key/value group keeps the same number of query heads)
    layers=2          remove this many whole transformer layers
    unstructured=0.5  zero this fraction of each Linear's weights, smallest magnitude first
    nm=2:4            zero N of every M consecutive input weights of each Linear (2:4)

Importance comes from activations on calibration data (`[prune] importance = "activation"`)
or from weight magnitudes alone ("magnitude"). Structured pruning returns a valid smaller
transformers model: tensors are cut, the config is updated, and the student can be saved as
a Hugging Face folder that transformers loads. Zeroed weights keep their shapes: only a format
that stores sparse weights (Core ML) turns them into fewer bytes, and no speed-up is claimed.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekit.compress.sensitivity import forward_all
from edgekit.console import quiet
from edgekit.errors import ConfigError, EdgekitError
from edgekit.model.student import Student

FRACTION_KEYS = ("mlp", "heads", "unstructured")
IMPORTANCE = ("activation", "magnitude")


@dataclass(frozen=True)
class PruneSpec:
    """A parsed pruning spec; zero everywhere means no pruning."""

    mlp: float = 0.0
    heads: float = 0.0
    layers: int = 0
    unstructured: float = 0.0
    nm: tuple[int, int] | None = None

    @property
    def structured(self) -> bool:
        return bool(self.mlp or self.heads or self.layers)

    @property
    def empty(self) -> bool:
        return not (self.structured or self.unstructured or self.nm)


def parse_spec(spec: str) -> PruneSpec:
    """Parse `mlp=0.25,heads=0.25,layers=2,unstructured=0.5,nm=2:4`.

    Raises:
        ConfigError: an unknown key or a value out of range.
    """
    values: dict[str, Any] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key, sep, raw = (s.strip() for s in item.partition("="))
        where = f"--prune {spec!r}: '{item}'"
        if not sep:
            raise ConfigError(f"{where}: expected key=value (keys: mlp, heads, layers, "
                              "unstructured, nm)")
        try:
            if key in FRACTION_KEYS:
                values[key] = float(raw)
                if not 0.0 <= values[key] < 1.0:
                    raise ValueError
            elif key == "layers":
                values[key] = int(raw)
                if values[key] < 0:
                    raise ValueError
            elif key == "nm":
                n, m = (int(x) for x in raw.split(":"))
                if not 0 < n < m:
                    raise ValueError
                values[key] = (n, m)
            else:
                raise ConfigError(f"{where}: unknown key '{key}' (known: mlp, heads, layers, "
                                  "unstructured, nm)")
        except ValueError:
            expected = {"layers": "a whole number of layers", "nm": "N:M with 0 < N < M"}
            raise ConfigError(f"{where}: expected {expected.get(key, 'a fraction in [0, 1)')}"
                              ) from None
    if values.get("unstructured") and values.get("nm"):
        raise ConfigError(f"--prune {spec!r}: choose unstructured or nm, not both")
    return PruneSpec(**values)


def check_spec(spec: str) -> None:
    """Reject a malformed pruning spec before any work starts."""
    parse_spec(spec)


def prune(student: Student, spec: str, calibration: list[dict[str, np.ndarray]] | None = None,
          importance: str = "activation") -> Student:
    """Return a pruned copy of `student` (an empty spec returns it unchanged).

    Args:
        student: the fp32 student.
        spec: the pruning spec (see the module docstring).
        calibration: inputs to score channels, heads and layers by their activations.
        importance: "activation" (needs calibration) or "magnitude".

    Returns:
        The pruned student; `student.pruning` holds what was removed and sparsity statistics.

    Raises:
        ConfigError: a bad spec or importance.
        EdgekitError: structured pruning of an architecture edgekit cannot cut.
    """
    parsed = parse_spec(spec)
    if parsed.empty:
        return student
    if importance not in IMPORTANCE:
        raise ConfigError(f"prune.importance '{importance}' is not known "
                          f"(known: {', '.join(IMPORTANCE)})")
    scored_by = importance if calibration else "magnitude"
    module = copy.deepcopy(student.module)
    hf_config = copy.deepcopy(student.hf_config)
    before = sum(p.numel() for p in module.parameters())
    record: dict[str, Any] = {"spec": spec, "importance": scored_by,
                              "parameters_before": before}
    if parsed.structured:
        blocks = _blocks(module, hf_config, student.name)
        inputs = calibration if scored_by == "activation" else None
        if parsed.layers:
            record["layers_removed"] = _drop_layers(student, module, blocks, hf_config,
                                                    parsed.layers, inputs)
            blocks = _blocks(module, hf_config, student.name)
        if parsed.heads:
            record["heads"] = _prune_heads(student, module, blocks, hf_config, parsed.heads,
                                           inputs)
        if parsed.mlp:
            record["mlp"] = _prune_mlp(student, module, blocks, hf_config, parsed.mlp, inputs)
    if parsed.unstructured or parsed.nm:
        record["sparsity"] = _sparsify(module, parsed)
    record["parameters_after"] = sum(p.numel() for p in module.parameters())
    return dataclasses.replace(student, module=module, hf_config=hf_config,
                               pruning=record)


# --- finding the blocks of a transformers model ----------------------------------------


@dataclass
class Block:
    """One transformer layer's prunable parts (None where the layer has no such part)."""

    layer: nn.Module
    up: list[nn.Linear]  # produce the intermediate channels (gate and up)
    down: nn.Linear  # consumes them
    act: Any  # the activation between up and down (for activation scores)
    qkv: tuple[nn.Linear, nn.Linear, nn.Linear]
    out: nn.Linear  # the attention output projection
    gated: bool


def _blocks(module: nn.Module, config: Any, name: str) -> list[Block]:
    layers = _layer_list(module)
    if layers is None or config is None:
        raise EdgekitError(f"{name}: structured pruning supports transformers decoders "
                           "(Llama, Qwen2, Mistral and similar) and BERT-style encoders; "
                           "use unstructured= or nm= for other models")
    blocks = []
    for layer in layers:
        mlp = getattr(layer, "mlp", None)
        attn = getattr(layer, "self_attn", None)
        if mlp is not None and hasattr(mlp, "gate_proj") and attn is not None:
            blocks.append(Block(layer, [mlp.gate_proj, mlp.up_proj], mlp.down_proj,
                                mlp.act_fn, (attn.q_proj, attn.k_proj, attn.v_proj),
                                attn.o_proj, True))
        elif hasattr(layer, "intermediate") and hasattr(layer, "attention"):  # BERT family
            self_attn = layer.attention.self
            blocks.append(Block(layer, [layer.intermediate.dense], layer.output.dense,
                                layer.intermediate.intermediate_act_fn,
                                (self_attn.query, self_attn.key, self_attn.value),
                                layer.attention.output.dense, False))
        else:
            raise EdgekitError(f"{name}: layer {type(layer).__name__} has no MLP/attention "
                               "edgekit knows how to cut")
    return blocks


_LAYER_PATHS = ("model.model.layers", "model.layers", "model.encoder.layer",
                "model.bert.encoder.layer", "model.roberta.encoder.layer")


def _layer_list(module: nn.Module) -> nn.ModuleList | None:
    found = _layer_parent(module)
    return getattr(found[0], found[1]) if found else None


def _layer_parent(module: nn.Module) -> tuple[nn.Module, str] | None:
    """The module holding the transformer layers' ModuleList, and its attribute name."""
    for candidate in _LAYER_PATHS:
        *path, attr = candidate.split(".")
        parent: Any = module
        for part in path:
            parent = getattr(parent, part, None)
        if isinstance(getattr(parent, attr, None), nn.ModuleList):
            return parent, attr
    return None


# --- importance from activations ---------------------------------------------------------


def _run(student: Student, module: nn.Module, inputs: list[dict[str, np.ndarray]]) -> None:
    """Run the calibration inputs through `module` (hooks collect what they need)."""
    collections.deque(forward_all(student, inputs, module), maxlen=0)  # outputs unused


class _Inputs:
    """Collects a function of each call's first input on the given modules."""

    def __init__(self, modules: list[nn.Module], reduce: Any) -> None:
        self.totals: list[Any] = [0.0] * len(modules)
        self.hooks = [m.register_forward_pre_hook(self._hook(i, reduce))
                      for i, m in enumerate(modules)]

    def _hook(self, index: int, reduce: Any) -> Any:
        def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            self.totals[index] = self.totals[index] + reduce(args[0].detach())
        return hook

    def __enter__(self) -> _Inputs:
        return self

    def __exit__(self, *_: Any) -> None:
        for hook in self.hooks:
            hook.remove()


def _channel_scores(student: Student, module: nn.Module, blocks: list[Block],
                    inputs: list[dict[str, np.ndarray]] | None) -> list[torch.Tensor]:
    """Per block, the importance of each intermediate channel: mean |activation| entering
    the down projection times the norm of the down projection's column."""
    columns = [b.down.weight.detach().norm(dim=0) for b in blocks]
    if inputs is None:
        return [col * torch.stack([u.weight.detach().norm(dim=1) for u in b.up]).prod(0)
                for col, b in zip(columns, blocks, strict=True)]
    with _Inputs([b.down for b in blocks],
                 lambda x: x.abs().reshape(-1, x.shape[-1]).mean(0)) as seen:
        _run(student, module, inputs)
    return [total * col for total, col in zip(seen.totals, columns, strict=True)]


def _head_scores(student: Student, module: nn.Module, blocks: list[Block], head_dim: int,
                 inputs: list[dict[str, np.ndarray]] | None) -> list[torch.Tensor]:
    """Per block, each query head's contribution: the norm of its slice of the output
    projection applied to its attention output (or the slice's weight norm)."""
    scores = []
    if inputs is None:
        for b in blocks:
            w = b.out.weight.detach()
            scores.append(w.reshape(w.shape[0], -1, head_dim).norm(dim=(0, 2)))
        return scores

    def contribution(block: Block) -> Any:
        w = block.out.weight.detach()
        heads = w.shape[1] // head_dim
        w_heads = w.reshape(w.shape[0], heads, head_dim)

        def reduce(x: torch.Tensor) -> torch.Tensor:
            x = x.reshape(-1, heads, head_dim)
            return torch.einsum("thd,ohd->tho", x, w_heads).norm(dim=-1).mean(0)
        return reduce

    for b in blocks:
        with _Inputs([b.out], contribution(b)) as seen:
            _run(student, module, inputs)
        scores.append(seen.totals[0])
    return scores


# --- cutting ------------------------------------------------------------------------------


def _cut_linear(linear: nn.Linear, keep: torch.Tensor, dim: int) -> None:
    """Keep only `keep` rows (dim 0, outputs) or columns (dim 1, inputs) of `linear`."""
    with torch.no_grad():
        weight = linear.weight.detach().index_select(dim, keep).clone()
        linear.weight = nn.Parameter(weight)
        if dim == 0:
            linear.out_features = len(keep)
            if linear.bias is not None:
                linear.bias = nn.Parameter(linear.bias.detach()[keep].clone())
        else:
            linear.in_features = len(keep)


def _prune_mlp(student: Student, module: nn.Module, blocks: list[Block], config: Any,
               fraction: float, inputs: list[dict[str, np.ndarray]] | None) -> dict[str, Any]:
    width = blocks[0].down.in_features
    keep_count = max(1, round(width * (1 - fraction)))
    keep_count = max(8, keep_count // 8 * 8) if width >= 16 else keep_count  # kernel-friendly
    scores = _channel_scores(student, module, blocks, inputs)
    for block, score in zip(blocks, scores, strict=True):
        keep = torch.sort(torch.topk(score, keep_count).indices).values
        for up in block.up:
            _cut_linear(up, keep, 0)
        _cut_linear(block.down, keep, 1)
    config.intermediate_size = keep_count
    return {"intermediate_size": [width, keep_count]}


def _prune_heads(student: Student, module: nn.Module, blocks: list[Block], config: Any,
                 fraction: float, inputs: list[dict[str, np.ndarray]] | None) -> dict[str, Any]:
    if not blocks[0].gated:
        raise ConfigError(f"{student.name}: heads= prunes decoders with a head_dim setting "
                          "(Llama, Qwen2, Mistral...); a BERT-style config cannot describe "
                          "fewer heads of the same size; use mlp= and layers=")
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    group = heads // kv_heads  # query heads sharing one key/value head
    scores = _head_scores(student, module, blocks, head_dim, inputs)
    if group > 1:  # GQA: drop query heads inside every key/value group, keep all groups
        keep_per_group = max(1, round(group * (1 - fraction)))
        new_heads, new_kv = keep_per_group * kv_heads, kv_heads
    else:  # MHA: drop whole heads (their keys and values go too)
        new_heads = new_kv = max(1, round(heads * (1 - fraction)))
    if new_heads == heads:
        raise ConfigError(f"heads={fraction:g}: {heads} heads in groups of {group} leave "
                          "nothing to remove; use a larger fraction")
    for block, score in zip(blocks, scores, strict=True):
        if group > 1:
            kept = [g * group + i for g in range(kv_heads)
                    for i in torch.sort(torch.topk(score[g * group:(g + 1) * group],
                                                   keep_per_group).indices).values.tolist()]
            kv_kept = list(range(kv_heads))
        else:
            kept = kv_kept = torch.sort(torch.topk(score, new_heads).indices).values.tolist()
        q, k, v = block.qkv
        _cut_linear(q, _dims(kept, head_dim), 0)
        _cut_linear(k, _dims(kv_kept, head_dim), 0)
        _cut_linear(v, _dims(kv_kept, head_dim), 0)
        _cut_linear(block.out, _dims(kept, head_dim), 1)
        _set_head_counts(block, new_heads, new_kv, head_dim)
    config.head_dim = head_dim
    config.num_attention_heads = new_heads
    if hasattr(config, "num_key_value_heads"):
        config.num_key_value_heads = new_kv
    return {"attention_heads": [heads, new_heads], "key_value_heads": [kv_heads, new_kv]}


def _dims(heads: list[int], head_dim: int) -> torch.Tensor:
    return torch.tensor([h * head_dim + d for h in heads for d in range(head_dim)])


def _set_head_counts(block: Block, heads: int, kv_heads: int, head_dim: int) -> None:
    """Update the attention module's own head bookkeeping (transformers reads it)."""
    for owner in _attention_modules(block.layer):
        if hasattr(owner, "num_heads"):
            owner.num_heads = heads
        if hasattr(owner, "num_key_value_heads"):
            owner.num_key_value_heads = kv_heads
        if hasattr(owner, "num_key_value_groups"):
            owner.num_key_value_groups = heads // kv_heads
        if hasattr(owner, "num_attention_heads"):  # BERT
            owner.num_attention_heads = heads
            owner.all_head_size = heads * head_dim
        if hasattr(owner, "head_dim"):
            owner.head_dim = head_dim


def _attention_modules(layer: nn.Module) -> Iterator[nn.Module]:
    for name in ("self_attn", "attention"):
        found = getattr(layer, name, None)
        if found is not None:
            yield found
            inner = getattr(found, "self", None)
            if inner is not None:
                yield inner


def _drop_layers(student: Student, module: nn.Module, blocks: list[Block], config: Any,
                 count: int, inputs: list[dict[str, np.ndarray]] | None) -> list[int]:
    """Remove the `count` layers that change their input least (cosine of input and output
    hidden states on calibration data; without it, the last layers before the final one)."""
    layers = _layer_list(module)
    assert layers is not None
    total = len(layers)
    if count >= total:
        raise ConfigError(f"layers={count}: the student has {total} layers; keep at least one")
    if inputs is not None:
        change = [0.0] * total

        def hook(index: int) -> Any:
            def record(_: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
                x = args[0] if args else kwargs["hidden_states"]
                y = out[0] if isinstance(out, tuple) else out
                cos = torch.nn.functional.cosine_similarity(x.reshape(-1, x.shape[-1]),
                                                            y.reshape(-1, y.shape[-1]), dim=-1)
                change[index] += float((1 - cos).mean())
            return record
        hooks = [layer.register_forward_hook(hook(i), with_kwargs=True)
                 for i, layer in enumerate(layers)]
        try:
            _run(student, module, inputs)
        finally:
            for h in hooks:
                h.remove()
        removed = sorted(sorted(range(total), key=lambda i: change[i])[:count])
    else:
        removed = list(range(total - 1 - count, total - 1))
    kept = [layers[i] for i in range(total) if i not in removed]
    for index, layer in enumerate(kept):
        for owner in _attention_modules(layer):
            if hasattr(owner, "layer_idx"):
                owner.layer_idx = index
    parent = _layer_parent(module)
    assert parent is not None
    setattr(parent[0], parent[1], nn.ModuleList(kept))
    config.num_hidden_layers = len(kept)
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in range(total) if i not in removed]
    return removed


# --- unstructured and N:M ----------------------------------------------------------------


def _sparsify(module: nn.Module, spec: PruneSpec) -> dict[str, Any]:
    """Zero the smallest-magnitude weights of every Linear that is not tied to an embedding."""
    tied = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    per_layer = {}
    zeros = total = 0
    for name, linear in module.named_modules():
        if not isinstance(linear, nn.Linear) or id(linear.weight) in tied:
            continue
        weight = linear.weight.detach()
        if spec.nm is not None:
            n, m = spec.nm
            if weight.shape[1] % m:
                continue
            groups = weight.abs().reshape(weight.shape[0], -1, m)
            drop = torch.zeros_like(groups, dtype=torch.bool)
            drop.scatter_(-1, torch.topk(groups, n, dim=-1, largest=False).indices, True)
            mask = drop.reshape(weight.shape)
        else:
            count = int(weight.numel() * spec.unstructured)
            if count == 0:
                continue
            threshold = weight.abs().reshape(-1).kthvalue(count).values
            mask = weight.abs() <= threshold
        with torch.no_grad():
            linear.weight.masked_fill_(mask, 0.0)
        layer_zeros = int((linear.weight == 0).sum())
        per_layer[name] = round(layer_zeros / weight.numel(), 4)
        zeros += layer_zeros
        total += weight.numel()
    pattern = f"{spec.nm[0]}:{spec.nm[1]}" if spec.nm else "unstructured"
    return {"pattern": pattern, "linear_sparsity": round(zeros / max(total, 1), 4),
            "zeros": zeros, "linear_weights": total, "per_layer": per_layer}


def save_pruned(student: Student, folder: Any) -> None:
    """Save a structurally pruned transformers student as a Hugging Face folder
    (config.json with the new sizes, safetensors weights, and its tokenizer)."""
    model = getattr(student.module, "model", None)
    if model is None or not hasattr(model, "save_pretrained"):
        raise EdgekitError(f"{student.name}: only transformers students save as a folder")
    model.config = student.hf_config
    with quiet():
        model.save_pretrained(folder, safe_serialization=True)
        if student.tokenizer is not None:
            student.tokenizer.save_pretrained(folder)
