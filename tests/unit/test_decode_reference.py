"""The eager reference of a Core ML decode package (Fp16StateReference) on a decoder that
derives its positions from the attention mask when none are given (OPT's learned positions)."""

from __future__ import annotations

import torch
import transformers

from edgekit.llm.decode import Fp16StateReference
from tests.helpers import FP16_UNIT_ROUNDOFF, rounding_tolerance

# products along the longest chain: layers * (hidden + ffn + sequence) + hidden for the head
REDUCTION = 2 * (32 + 64 + 6) + 32


def tiny_opt() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.OPTConfig(vocab_size=64, hidden_size=32, ffn_dim=64,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    max_position_embeddings=32, word_embed_proj_dim=32)
    return transformers.OPTForCausalLM(config).eval()


def test_one_call_matches_the_model_itself() -> None:
    """All tokens fed in one call: nothing is read back as fp16, so the reference is the
    model's own forward (positions 0..T-1), up to fp32 rounding."""
    model = tiny_opt()
    ids = torch.tensor([[5, 9, 2, 33, 17, 8]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        got = Fp16StateReference(model)(ids, torch.zeros(6, dtype=torch.long))
    scale = float(expected.abs().max())
    assert got.shape == (1, 6, 64)
    assert float((got - expected).abs().max()) <= rounding_tolerance(scale, REDUCTION)


def test_tokens_of_earlier_calls_are_read_as_fp16() -> None:
    """Each token in its own call: earlier keys/values are rounded to fp16, so the logits move
    within fp16's rounding bound over the same chain, and no more."""
    model = tiny_opt()
    ids = torch.tensor([[5, 9, 2, 33, 17, 8]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        got = Fp16StateReference(model)(ids, torch.arange(6))
    moved, scale = float((got - expected).abs().max()), float(expected.abs().max())
    assert 0 < moved <= rounding_tolerance(scale, REDUCTION, unit=FP16_UNIT_ROUNDOFF)
    # the first token attends only to itself, in its own call: no fp16 in its logits
    assert float((got[0, 0] - expected[0, 0]).abs().max()) <= rounding_tolerance(
        scale, REDUCTION)
