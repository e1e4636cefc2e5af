"""Decode tok/s of several decode .pte files in ExecuTorch's own C++ LLM runner, interleaved
in one process (an A/B of export variants against an anchor's file, e.g. optimum-executorch's).

    python bench/pte_runner_ab.py --tokenizer DIR/tokenizer.json [--rounds 15]
                                  [--new-tokens 64] A.pte B.pte ...

Each round runs every file once (TextLLMRunner.generate, greedy, the chat prompt below);
decode tok/s per call is (generated - 1) / (end - first token) from the runner's stats. The
first round warms up; the median of the rest is printed with every round's value.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from edgekit.console import import_backend, quiet

PROMPT = ("<|im_start|>user\nWhat are three good habits for staying healthy?<|im_end|>\n"
          "<|im_start|>assistant\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ptes", nargs="+", type=Path)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    import_backend("executorch.extension.llm.custom_ops.custom_ops")
    import_backend("executorch.kernels.quantized")
    llm = import_backend("executorch.extension.llm.runner")
    with quiet():
        runners = {p: llm.TextLLMRunner(str(p), str(args.tokenizer)) for p in args.ptes}
    rates: dict[Path, list[float]] = {p: [] for p in runners}
    for _ in range(args.rounds + 1):
        for path, runner in runners.items():
            stats: list = []
            with quiet():  # the runner prints its stats table on every call
                runner.generate(PROMPT, llm.GenerationConfig(
                    max_new_tokens=args.new_tokens, temperature=0.0, echo=False),
                    None, stats.append)
            runner.reset()
            seconds = (stats[-1].inference_end_ms - stats[-1].prompt_eval_end_ms) / 1e3
            rates[path].append((stats[-1].num_generated_tokens - 1) / seconds)
    for path, values in rates.items():
        print(f"{path}: median {statistics.median(values[1:]):.1f} tok/s, rounds "
              f"{[round(v) for v in values[1:]]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
