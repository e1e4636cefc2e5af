"""Where a decode .pte spends its time: ExecuTorch's own event tracer (ETDump) over one prefill
and N decode steps, summed per event.

    python bench/pte_profile.py MODEL.pte [--steps 32] [--threads 2]

Prints, per event name (XNNPACK operators inside delegate calls, portable and custom
kernels, the delegate calls themselves), its count, total ms and share of Method::execute.
Delegate-call time not covered by the XNNPACK operator events inside it is the per-call
overhead (argument setup, reshape, thread dispatch). Profiling adds its own overhead: use
the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
from pathlib import Path

import torch

from edgekit.console import import_backend, quiet
from edgekit.llm.runners import load_decode_kernels

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pte", type=Path)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])
    load_decode_kernels()
    portable = import_backend("executorch.extension.pybindings.portable_lib")
    module = portable._load_for_executorch(str(args.pte), enable_etdump=True)
    portable._unsafe_reset_threadpool(args.threads)
    logits = module.forward((torch.tensor([PROMPT]), torch.tensor([0])))[0]
    for position in range(len(PROMPT), len(PROMPT) + args.steps):
        token = int(logits.reshape(-1, logits.shape[-1])[-1].argmax())
        logits = module.forward((torch.tensor([[token]]), torch.tensor([position])))[0]
    with tempfile.TemporaryDirectory() as tmp:
        dump = str(Path(tmp) / "etdump.etdp")
        module.write_etdump_result_to_file(dump)
        inspector = import_backend("executorch.devtools")
        with quiet():
            events = inspector.Inspector(etdump_path=dump).event_blocks
    totals: dict[str, list[float]] = collections.defaultdict(list)
    for block in events:
        if block.name != "Execute":
            continue
        for event in block.events:
            if event.perf_data is not None:
                totals[event.name].extend(event.perf_data.raw)
    execute = sum(totals["Method::execute"])
    print(f"{len(totals['Method::execute'])} executes (1 prefill of {len(PROMPT)} tokens, "
          f"{args.steps} decode steps), {execute:.1f} ms in Method::execute")
    print(f"{'event':58} {'count':>6} {'total ms':>9} {'share':>6}")
    for name, times in sorted(totals.items(), key=lambda item: -sum(item[1])):
        print(f"{name[:58]:58} {len(times):6d} {sum(times):9.2f} {sum(times) / execute:6.1%}")
    inside = sum(sum(t) for n, t in totals.items() if not n.startswith(("DELEGATE_CALL",
             "OPERATOR_CALL", "Method::", "native_call_", "llama::")))
    overhead = sum(totals["DELEGATE_CALL"]) - inside
    print(f"delegate-call overhead (DELEGATE_CALL minus the XNNPACK operators inside): "
          f"{overhead:.1f} ms, {overhead / execute:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
