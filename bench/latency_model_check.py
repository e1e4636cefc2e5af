"""Published on-device latencies vs edgekit's projection: regenerates the table in
docs/latency-model.md (between the `table:start` / `table:end` markers) and prints it.

    python bench/latency_model_check.py            # print and rewrite the doc table
    python bench/latency_model_check.py --check    # exit 1 when a published value is outside

Architectures are built from their public configs with transformers on the `meta` device:
shapes only, no weights, nothing downloaded. Each nn.Linear becomes a matmul at the published
quantization scheme's storage precision; attention and the KV cache are counted from the
config; the projection is edgekit.validate.project.project(), the same code as `edgekit bench`.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from edgekit.devices import get_device
from edgekit.validate.project import GraphCost, OpCost, project

DOC = Path(__file__).resolve().parents[1] / "docs" / "latency-model.md"
EXECUTORCH_README = ("https://github.com/pytorch/executorch/blob/"
                     "007485696ccb1cff20ed8bf8c034692406dc90b2/examples/models/llama/README.md")
# The Llama 2 7B numbers, with the first iPhone number ExecuTorch published; "~6" on the
# iPhone, measured in the demo app (the README marks app numbers apart from adb ones).
EXECUTORCH_LLAMA2_PR = "https://github.com/pytorch/executorch/pull/2927"
PROMPT = 64  # the README's prompt length

# Public config.json values of the architectures (Hugging Face model repositories).
LLAMA_3_2_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                    num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                    tie_word_embeddings=True)
LLAMA_3_2_3B = dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                    num_attention_heads=24, num_key_value_heads=8, vocab_size=128256,
                    tie_word_embeddings=True)
LLAMA_3_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                  tie_word_embeddings=False)

LLAMA_2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                  tie_word_embeddings=False)


@dataclass(frozen=True)
class Scheme:
    """Storage bits per weight (scales included) of block linears, the output layer and the
    embedding, as the published recipe states them."""

    name: str
    block_bits: float
    head_bits: float
    embedding_bits: float
    compute_bits: int  # 16 for bf16 arithmetic, 8 for int8-dynamic-activation kernels


BF16 = Scheme("BF16", 16, 16, 16, 16)
# 4-bit groupwise (group 32) linears, 8-bit per-channel output layer and embedding; one
# 16-bit scale per group of 32 adds 0.5 bit per weight.
SPINQUANT = Scheme("4-bit g32 + 8-bit head (8da4w)", 4.5, 8, 8, 8)
# Llama 3 8B recipe: 4-bit groupwise (group 128) for all linears, 4-bit g32 embedding.
G128 = Scheme("4-bit g128 (8da4w)", 4.125, 4.125, 4.5, 8)
# Llama 2 7B recipe (April 2024): every linear 4-bit g128 with fp32 scales, fp32 embedding.
G128_FP32 = Scheme("4-bit g128, fp32 scales and embedding (8da4w)", 4.25, 4.25, 32, 8)


@dataclass(frozen=True)
class Published:
    model: str
    config: dict[str, object]
    scheme: Scheme
    phone: str
    device: str  # edgekit profile used
    metric: str  # "decode" or "prefill"
    tokens_per_s: float
    source: str


PUBLISHED = [
    Published("Llama 3.2 1B BF16", LLAMA_3_2_1B, BF16, "OnePlus 12", "galaxy-s24",
              "decode", 19.2, EXECUTORCH_README),
    Published("Llama 3.2 1B BF16", LLAMA_3_2_1B, BF16, "OnePlus 12", "galaxy-s24",
              "prefill", 60.3, EXECUTORCH_README),
    Published("Llama 3.2 1B SpinQuant", LLAMA_3_2_1B, SPINQUANT, "OnePlus 12", "galaxy-s24",
              "decode", 50.2, EXECUTORCH_README),
    Published("Llama 3.2 1B SpinQuant", LLAMA_3_2_1B, SPINQUANT, "OnePlus 12", "galaxy-s24",
              "prefill", 260.5, EXECUTORCH_README),
    Published("Llama 3.2 1B QAT+LoRA", LLAMA_3_2_1B, SPINQUANT, "OnePlus 12", "galaxy-s24",
              "decode", 45.8, EXECUTORCH_README),
    Published("Llama 3.2 1B QAT+LoRA", LLAMA_3_2_1B, SPINQUANT, "OnePlus 12", "galaxy-s24",
              "prefill", 252.0, EXECUTORCH_README),
    Published("Llama 3.2 3B BF16", LLAMA_3_2_3B, BF16, "OnePlus 12", "galaxy-s24",
              "decode", 7.6, EXECUTORCH_README),
    Published("Llama 3.2 3B BF16", LLAMA_3_2_3B, BF16, "OnePlus 12", "galaxy-s24",
              "prefill", 21.2, EXECUTORCH_README),
    Published("Llama 3.2 3B SpinQuant", LLAMA_3_2_3B, SPINQUANT, "OnePlus 12", "galaxy-s24",
              "decode", 19.7, EXECUTORCH_README),
    Published("Llama 3.2 3B SpinQuant", LLAMA_3_2_3B, SPINQUANT, "OnePlus 12", "galaxy-s24",
              "prefill", 89.7, EXECUTORCH_README),
    Published("Llama 3.2 3B QAT+LoRA", LLAMA_3_2_3B, SPINQUANT, "OnePlus 12", "galaxy-s24",
              "decode", 18.5, EXECUTORCH_README),
    Published("Llama 3.2 3B QAT+LoRA", LLAMA_3_2_3B, SPINQUANT, "OnePlus 12", "galaxy-s24",
              "prefill", 88.8, EXECUTORCH_README),
    Published("Llama 3 8B 4-bit g128", LLAMA_3_8B, G128, "Galaxy S24", "galaxy-s24",
              "decode", 10.91, EXECUTORCH_README),
    Published("Llama 3 8B 4-bit g128", LLAMA_3_8B, G128, "OnePlus 12", "galaxy-s24",
              "decode", 10.85, EXECUTORCH_README),
    Published("Llama 2 7B 4-bit g128", LLAMA_2_7B, G128_FP32, "Galaxy S24 (adb)", "galaxy-s24",
              "decode", 10.66, EXECUTORCH_LLAMA2_PR),
    Published("Llama 2 7B 4-bit g128", LLAMA_2_7B, G128_FP32, "OnePlus 12 (adb)", "galaxy-s24",
              "decode", 11.55, EXECUTORCH_LLAMA2_PR),
    Published("Llama 2 7B 4-bit g128", LLAMA_2_7B, G128_FP32, "iPhone 15 Pro (app)",
              "iphone-15-pro", "decode", 6.0, EXECUTORCH_LLAMA2_PR),
]


def decoder_cost(config: dict[str, object], scheme: Scheme, tokens: int, context: int
                 ) -> GraphCost:
    """The ops of `tokens` new tokens attending to `context` positions, from the module tree
    of the architecture built on the meta device (logits for the last token only, as
    ExecuTorch's Llama runner computes them)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**config))  # type: ignore[arg-type]
    act = scheme.compute_bits // 8 if scheme.compute_bits == 16 else 4
    ops: list[OpCost] = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            rows = 1 if name == "lm_head" else tokens
            bits = scheme.head_bits if name == "lm_head" else scheme.block_bits
            stored = 16 if bits >= 16 else math.floor(bits)
            ops.append(OpCost("matmul", 2 * rows * module.in_features * module.out_features,
                              int(module.in_features * module.out_features * bits / 8),
                              rows * (module.in_features + module.out_features) * act, stored))
        elif isinstance(module, torch.nn.Embedding):
            ops.append(OpCost("other", 0, int(tokens * module.embedding_dim
                                              * scheme.embedding_bits / 8),
                              tokens * module.embedding_dim * act))
    hidden = int(config["hidden_size"])  # type: ignore[call-overload]
    layers = int(config["num_hidden_layers"])  # type: ignore[call-overload]
    kv_dim = hidden // int(config["num_attention_heads"]) * int(  # type: ignore[call-overload]
        config["num_key_value_heads"])  # type: ignore[call-overload]
    for _ in range(layers):
        # QK^T and AV: 2 x 2 x tokens x context x hidden; the KV cache is read once per step.
        ops.append(OpCost("attention", 4 * tokens * context * hidden, 0,
                          2 * context * kv_dim * act + 2 * tokens * hidden * act))
        ops.extend(OpCost("other", tokens * hidden, 0, 3 * tokens * hidden * act)
                   for _ in range(6))  # 2 RMSNorms, 2 residual adds, SiLU*up, RoPE
    return GraphCost(tuple(ops), "transformers module tree (meta device)")


def rows() -> list[dict[str, object]]:
    """One row per published value: the projection and whether the range contains it."""
    table = []
    for item in PUBLISHED:
        if item.metric == "decode":
            cost = decoder_cost(item.config, item.scheme, 1, PROMPT + 64)
            scale = 1.0
        else:
            cost = decoder_cost(item.config, item.scheme, PROMPT, PROMPT // 2)
            scale = 1.0 / PROMPT
        result = project(cost, get_device(item.device), "executorch")
        published_ms = 1e3 / item.tokens_per_s
        low, mid, high = (float(result[k]) * scale for k in ("low_ms", "mid_ms", "high_ms"))
        table.append({"item": item, "published_ms": published_ms, "low": low, "mid": mid,
                      "high": high, "inside": low <= published_ms <= high,
                      "error": (mid - published_ms) / published_ms})
    return table


def render(table: list[dict[str, object]]) -> str:
    lines = ["| Model (scheme) | Phone (profile) | Metric | Published | Published ms/token | "
             "Projected low-mid-high ms/token | Mid error | In range |",
             "|---|---|---|---|---|---|---|---|"]
    for row in table:
        item = row["item"]
        assert isinstance(item, Published)
        lines.append(
            f"| {item.model} ({item.scheme.name}) | {item.phone} (`{item.device}`) | "
            f"{item.metric} | [{item.tokens_per_s} tok/s]({item.source}) | "
            f"{row['published_ms']:.1f} | {row['low']:.1f} - {row['mid']:.1f} - "
            f"{row['high']:.1f} | {row['error']:+.0%} | {'yes' if row['inside'] else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not rewrite the doc")
    args = parser.parse_args()
    table = rows()
    text = render(table)
    print(text)
    if not args.check:
        doc = DOC.read_text()
        start, end = "<!-- table:start -->", "<!-- table:end -->"
        head, rest = doc.split(start, 1)
        _, tail = rest.split(end, 1)
        DOC.write_text(f"{head}{start}\n{text}\n{end}{tail}")
    outside = [r for r in table if not r["inside"]]
    print(f"{len(table) - len(outside)}/{len(table)} published values inside the projected "
          "range", file=sys.stderr)
    return 1 if outside and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
