"""Generation parity of a decode artifact: greedy tokens against the eager fp32 student and the
eager quantized student, prefill-vs-decode consistency, and behaviour at max_seq_len.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.llm.generate import generate
from edgekit.llm.runners import DecodeSession


def token_agreement(tokens: Sequence[int], reference: Sequence[int]) -> dict[str, Any]:
    """Fraction of positions where the tokens match, and the first position where they do not.

    Generation feeds back its own tokens, so after a divergence the two continue from
    different histories: `first_divergence` is the number that matters, `agreement` shows
    how far apart they ended up.
    """
    count = min(len(tokens), len(reference))
    same = [a == b for a, b in zip(tokens[:count], reference[:count], strict=True)]
    first = next((i for i, ok in enumerate(same) if not ok), None)
    if first is None and len(tokens) != len(reference):
        first = count
    return {"agreement": round(sum(same) / max(count, 1), 4), "first_divergence": first,
            "compared": count, "identical": first is None}


def prefill_vs_decode(session: DecodeSession, tokens: Sequence[int]) -> dict[str, Any]:
    """Logits of the last token when the whole sequence is prefilled at once, against feeding
    the first half as a prompt and the rest one token at a time (the cache path)."""
    tokens = [int(t) for t in tokens]
    session.reset()
    whole = session.feed(tokens)
    split = max(1, len(tokens) // 2)
    session.reset()
    stepped = session.feed(tokens[:split])
    for token in tokens[split:]:
        stepped = session.feed([token])
    return {"tokens": len(tokens), "prompt_split": split,
            "max_abs_logit_diff": float(np.max(np.abs(whole - stepped))),
            "same_top1": bool(np.argmax(whole) == np.argmax(stepped))}


def at_max_seq_len(session: DecodeSession, reference: DecodeSession,
                   filler: Sequence[int]) -> dict[str, Any]:
    """Fill the cache to its last slot (a prompt of max_seq_len - 1 tokens, then one decode
    step), compare that step with the reference, then check that one more token is refused
    with an error rather than written past the cache."""
    length = session.max_seq_len
    prompt = [int(filler[i % len(filler)]) for i in range(length - 1)]
    session.reset()
    session.feed(prompt)
    last = session.feed([prompt[-1]])
    reference.reset()
    reference.feed(prompt)  # fed as the session was: a reference may depend on the calls
    expected = reference.feed([prompt[-1]])
    try:
        session.feed([prompt[-1]])
        refused = False
    except EdgekitError:
        refused = True
    return {"max_seq_len": length, "last_slot_same_top1": bool(np.argmax(last) ==
                                                                np.argmax(expected)),
            "last_slot_max_abs_logit_diff": float(np.max(np.abs(last - expected))),
            "overflow_refused": refused}


def generation_parity(session: DecodeSession, references: Mapping[str, DecodeSession],
                      prompt: Sequence[int], new_tokens: int = 32,
                      max_seq_len_reference: str | None = "fp32") -> dict[str, Any]:
    """Greedy generation of `new_tokens` tokens in `session` against each reference.

    Args:
        session: the artifact's decode session.
        references: eager sessions by name ("fp32", "quantized").
        prompt: prompt token ids.
        new_tokens: tokens generated (no early stop at eos, so the count is fixed).
        max_seq_len_reference: the reference the max_seq_len check compares the last cache
            slot with (the one the artifact is held to); None skips the check (one pass
            over the whole cache).

    Returns:
        JSON-ready: the artifact's tokens, agreement and first divergence per reference,
        prefill-vs-decode consistency, and the max_seq_len behaviour.
    """
    generated = generate(session, prompt, new_tokens)
    report: dict[str, Any] = {"prompt_tokens": len(prompt), "new_tokens": new_tokens,
                              "tokens": generated.tokens, "against": {}}
    for name, reference in references.items():
        expected = generate(reference, prompt, new_tokens).tokens
        report["against"][name] = token_agreement(generated.tokens, expected)
    report["prefill_vs_decode"] = prefill_vs_decode(session, list(prompt) + generated.tokens)
    if max_seq_len_reference is not None and max_seq_len_reference in references:
        report["max_seq_len"] = at_max_seq_len(session, references[max_seq_len_reference],
                                               list(prompt) + generated.tokens)
        report["max_seq_len"]["reference"] = max_seq_len_reference
    return report
