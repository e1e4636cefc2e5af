"""The generation loop: prefill the prompt, then decode one token at a time, greedy or
sampled, stopping at an end-of-sequence id, after max_new_tokens, or when the cache is full.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.llm.runners import DecodeSession


@dataclass(frozen=True)
class Sampling:
    """Greedy when temperature is 0; otherwise softmax(logits / temperature) over the top_k
    (0: all) most likely tokens, from a seeded generator."""

    temperature: float = 0.0
    top_k: int = 0
    seed: int = 0


@dataclass
class Generation:
    """What one generate() call produced, with its timings (measured on host)."""

    prompt: list[int]
    tokens: list[int] = field(default_factory=list)
    stop: str = ""  # eos | max_new_tokens | max_seq_len
    prefill_ms: float = 0.0
    step_ms: list[float] = field(default_factory=list)  # each decode step after the prefill

    def timings(self) -> dict[str, Any]:
        """Prefill time and throughput, and decode tokens/s from the median step."""
        timing: dict[str, Any] = {
            "prompt_tokens": len(self.prompt),
            "generated_tokens": len(self.tokens),
            "prefill_ms": round(self.prefill_ms, 3),
            "prefill_tok_s": round(len(self.prompt) / (self.prefill_ms / 1e3), 2)
            if self.prefill_ms else None,
            "first_token_ms": round(self.prefill_ms, 3),
        }
        if self.step_ms:
            median = statistics.median(self.step_ms)
            timing.update(decode_steps=len(self.step_ms),
                          decode_ms_median=round(median, 3),
                          decode_tok_s=round(1e3 / median, 2),
                          decode_tok_s_mean=round(len(self.step_ms) * 1e3 / sum(self.step_ms), 2))
        return timing


def pick(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """The next token from one position's logits."""
    if sampling.temperature <= 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / sampling.temperature
    if 0 < sampling.top_k < scaled.size:
        cutoff = np.partition(scaled, -sampling.top_k)[-sampling.top_k]
        scaled = np.where(scaled >= cutoff, scaled, -np.inf)
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    return int(rng.choice(probs.size, p=probs))


def generate(session: DecodeSession, prompt: Sequence[int], max_new_tokens: int,
             eos: Sequence[int] = (), sampling: Sampling | None = None,
             on_token: Callable[[int], None] | None = None) -> Generation:
    """Generate up to `max_new_tokens` tokens after `prompt`.

    Args:
        session: an open decode session (its cache is reset first).
        prompt: the prompt's token ids (at least one).
        max_new_tokens: upper bound on generated tokens.
        eos: ids that end generation (the eos token itself is kept in `tokens`).
        sampling: greedy by default.
        on_token: called with each new token as soon as it is chosen (streaming).

    Returns:
        The Generation: tokens, why it stopped, prefill and per-step times.

    Raises:
        EdgekitError: an empty prompt, or a prompt longer than the session's max_seq_len.
    """
    sampling = sampling or Sampling()
    prompt = [int(t) for t in prompt]
    if not prompt:
        raise EdgekitError("generate: the prompt has no tokens")
    if len(prompt) >= session.max_seq_len:
        raise EdgekitError(f"generate: the prompt has {len(prompt)} tokens; max_seq_len "
                           f"{session.max_seq_len} leaves no room to generate")
    rng = np.random.default_rng(sampling.seed)
    result = Generation(prompt=prompt)
    session.reset()
    start = time.perf_counter()
    logits = session.feed(prompt)
    result.prefill_ms = (time.perf_counter() - start) * 1e3
    while True:
        token = pick(logits, sampling, rng)
        result.tokens.append(token)
        if on_token is not None:
            on_token(token)
        if token in eos:
            result.stop = "eos"
            break
        if len(result.tokens) >= max_new_tokens:
            result.stop = "max_new_tokens"
            break
        if session.position >= session.max_seq_len:
            result.stop = "max_seq_len"
            break
        start = time.perf_counter()
        logits = session.feed([token])
        result.step_ms.append((time.perf_counter() - start) * 1e3)
    return result
