"""Does structured pruning make the phone artifacts smaller and faster? One run, three
variants of the same Llama-style decoder, each exported to ExecuTorch (.pte, XNNPACK) and
ONNX (ONNX Runtime), timed on this host at 2 threads, round-robin:

- dense: the student as it is;
- edgekit mlp=0.5: `edgekit export --prune mlp=0.5` (half the MLP channels cut, tensors
  shrink, scored by activations on edgekit's corpus);
- torch ln_structured 0.5 (anchor): what a user gets from PyTorch's own pruning utility,
  torch.nn.utils.prune.ln_structured on the same MLP weights (channels zeroed, shapes kept),
  exported the same way.

    python bench/prune_latency.py [--iterations 50] [--json results.json]

Reports bytes, median (p50) latency of the full-sequence forward, and ratios to dense.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import edgekit
from edgekit.config import load_config


def build_student(folder: Path) -> Path:
    """A 4-layer decoder whose time goes into its MLPs, like a small distilled LM."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=2048, hidden_size=512, intermediate_size=2048,
                         num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4,
                         max_position_embeddings=256, tie_word_embeddings=True)
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    return folder


def torch_pruned(dense: Path, folder: Path) -> Path:
    """The anchor: torch.nn.utils.prune zeroes half the MLP channels (L2 norm) in place."""
    from torch.nn.utils import prune
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(dense).eval()
    for layer in model.model.layers:
        for linear in (layer.mlp.gate_proj, layer.mlp.up_proj):
            prune.ln_structured(linear, "weight", amount=0.5, n=2, dim=0)
            prune.remove(linear, "weight")
        prune.ln_structured(layer.mlp.down_proj, "weight", amount=0.5, n=2, dim=1)
        prune.remove(layer.mlp.down_proj, "weight")
    model.save_pretrained(folder)
    return folder


def export(model: Path, out: Path, prune_spec: str) -> dict[str, Any]:
    config = load_config(None, [f'model.path="{model}"', 'export.targets=["android"]',
                                f'export.out="{out}"', f'compress.prune="{prune_spec}"',
                                'model.seq_len=128'])
    return edgekit.run(config)


def interleaved_p50(reports: dict[str, dict[str, Any]], iterations: int
                    ) -> dict[str, dict[str, dict[str, float]]]:
    """Median latency per variant and format, timed round-robin (one run of each variant in
    turn) so that load from other processes falls on every variant alike."""
    from edgekit.runtimes import open_session

    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in reports}
    for fmt in ("executorch", "onnx"):
        sessions, samples, times = {}, {}, {}
        for name, report in reports.items():
            artifact = next(a for a in report["artifacts"] if a["format"] == fmt)
            sessions[name] = open_session(Path(report["out"]) / artifact["path"],
                                          tuple(s["name"] for s in artifact["inputs"]),
                                          tuple(artifact["outputs"]), threads=2)
            samples[name] = {s["name"]: np.arange(np.prod(s["shape"])).reshape(s["shape"])
                             .astype(np.int64) % 2048 for s in artifact["inputs"]}
            times[name] = []
            results[name][fmt] = {"bytes": artifact["bytes"]}
        for _ in range(5):  # warm-up
            for name, session in sessions.items():
                session.run(samples[name])
        for _ in range(iterations):
            for name, session in sessions.items():
                start = time.perf_counter()
                session.run(samples[name])
                times[name].append((time.perf_counter() - start) * 1000)
        for name in reports:
            results[name][fmt]["p50_ms"] = float(np.median(times[name]))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dense = build_student(root / "dense-student")
        anchor = torch_pruned(dense, root / "torch-pruned-student")
        reports = {name: export(model, root / name.split()[0], spec) for name, model, spec in (
            ("dense", dense, ""), ("edgekit mlp=0.5", dense, "mlp=0.5"),
            ("torch ln_structured 0.5 (anchor)", anchor, ""))}
        results = interleaved_p50(reports, args.iterations)
    base = results["dense"]
    print(f"{'variant':34} {'format':11} {'MB':>7} {'p50 ms':>8} {'bytes x':>8} {'p50 x':>6}")
    for name, rows in results.items():
        for fmt, row in rows.items():
            print(f"{name:34} {fmt:11} {row['bytes'] / 1e6:7.2f} {row['p50_ms']:8.2f} "
                  f"{row['bytes'] / base[fmt]['bytes']:8.2f} "
                  f"{row['p50_ms'] / base[fmt]['p50_ms']:6.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
