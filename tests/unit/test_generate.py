"""The generation loop, sampling and token agreement, on a scripted decode session."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.llm.generate import Generation, Sampling, generate, pick
from edgekit.llm.parity import token_agreement

VOCAB = 8


class ScriptedSession:
    """A decode session whose next token is (last token + 1) mod VOCAB."""

    def __init__(self, max_seq_len: int = 16) -> None:
        self.max_seq_len = max_seq_len
        self.position = 0
        self.fed: list[list[int]] = []

    def reset(self) -> None:
        self.position = 0
        self.fed = []

    def feed(self, tokens: list[int]) -> np.ndarray:
        if self.position + len(tokens) > self.max_seq_len:
            raise EdgekitError("past max_seq_len")
        self.fed.append(list(tokens))
        self.position += len(tokens)
        logits = np.zeros(VOCAB, dtype=np.float32)
        logits[(tokens[-1] + 1) % VOCAB] = 5.0
        return logits


def test_greedy_prefills_once_then_feeds_one_token_per_step():
    session = ScriptedSession()
    result = generate(session, [1, 2], max_new_tokens=4)
    assert result.tokens == [3, 4, 5, 6]
    assert session.fed == [[1, 2], [3], [4], [5]]  # the last token is never fed
    assert result.stop == "max_new_tokens"
    assert len(result.step_ms) == 3


def test_stops_at_eos_and_keeps_it():
    result = generate(ScriptedSession(), [1], max_new_tokens=10, eos=(4,))
    assert result.tokens == [2, 3, 4]
    assert result.stop == "eos"


def test_stops_when_the_cache_is_full():
    session = ScriptedSession(max_seq_len=5)
    result = generate(session, [0, 1, 2], max_new_tokens=10)
    assert result.tokens == [3, 4, 5]  # positions 3 and 4 filled, the third token not fed
    assert result.stop == "max_seq_len"
    assert session.position == 5


def test_rejects_empty_and_too_long_prompts():
    with pytest.raises(EdgekitError, match="no tokens"):
        generate(ScriptedSession(), [], 4)
    with pytest.raises(EdgekitError, match="max_seq_len 4 leaves no room"):
        generate(ScriptedSession(max_seq_len=4), [1, 2, 3, 4], 4)


def test_pick_greedy_and_seeded_sampling():
    logits = np.array([0.0, 3.0, 2.9, -5.0], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert pick(logits, Sampling(), rng) == 1
    top2 = {pick(logits, Sampling(temperature=1.0, top_k=2), rng) for _ in range(200)}
    assert top2 == {1, 2}  # never outside the two likeliest
    first = [pick(logits, Sampling(1.0), np.random.default_rng(7)) for _ in range(5)]
    again = [pick(logits, Sampling(1.0), np.random.default_rng(7)) for _ in range(5)]
    assert first == again


def test_sampling_follows_the_softmax():
    logits = np.log(np.array([0.5, 0.25, 0.25]))
    rng = np.random.default_rng(1)
    draws = np.bincount([pick(logits, Sampling(1.0), rng) for _ in range(4000)], minlength=3)
    assert np.allclose(draws / 4000, [0.5, 0.25, 0.25], atol=0.03)


def test_timings_from_the_median_step():
    generation = Generation(prompt=[1, 2, 3, 4], tokens=[5, 6, 7], prefill_ms=8.0,
                            step_ms=[2.0, 4.0, 100.0])
    timings = generation.timings()
    assert timings["prefill_tok_s"] == 500.0
    assert timings["decode_ms_median"] == 4.0
    assert timings["decode_tok_s"] == 250.0
    assert timings["decode_tok_s_mean"] == pytest.approx(28.3, abs=0.01)


def test_token_agreement():
    assert token_agreement([1, 2, 3], [1, 2, 3]) == {
        "agreement": 1.0, "first_divergence": None, "compared": 3, "identical": True}
    diverged = token_agreement([1, 2, 9, 4], [1, 2, 3, 4])
    assert diverged["first_divergence"] == 2
    assert diverged["agreement"] == 0.75
    assert token_agreement([1, 2], [1, 2, 3])["first_divergence"] == 2


def test_fp16_state_reference_rounds_only_what_earlier_calls_stored():
    """The Core ML reference reads keys/values of earlier calls as fp16 (Core ML state) and
    those of the current call as computed: one call is the plain student, a split is not."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from edgekit.llm.runners import EagerDecodeSession

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, initializer_range=0.3)).eval()
    tokens = [3, 9, 27, 17, 51, 8]
    plain = EagerDecodeSession(model, 16).feed(tokens)
    reference = EagerDecodeSession(model, 16, fp16_state=True)
    assert np.max(np.abs(reference.feed(tokens) - plain)) < 1e-5
    reference.reset()
    reference.feed(tokens[:4])
    split = reference.feed(tokens[4:])
    assert 0 < np.max(np.abs(split - plain)) < 1e-2
