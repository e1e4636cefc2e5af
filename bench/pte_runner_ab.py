"""Decode tok/s of several decode .pte files in ExecuTorch's own C++ LLM runner, interleaved
in one process (an A/B of export variants against an anchor's file, e.g. optimum-executorch's).

    python bench/pte_runner_ab.py --tokenizer DIR/tokenizer.json [--rounds 15]
                                  [--new-tokens 64] A.pte B.pte ...

The loop is decode_speed.py's runner_tok_s: each round runs every file once (greedy, the chat
prompt below); tok/s = (generated - 1) / (end - first token) from the runner's stats; the
first round warms up, the median of the rest is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from decode_speed import PROMPT, runner_tok_s  # bench/ is on sys.path when run as a script

CHAT = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"  # SmolLM2's template


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ptes", nargs="+", type=Path)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    rates = runner_tok_s({str(p): p for p in args.ptes}, args.tokenizer, CHAT,
                         args.new_tokens, args.rounds)
    for path, rate in rates.items():
        print(f"{path}: median {rate:.1f} tok/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
