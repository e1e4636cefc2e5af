"""4-bit quality on SmolLM2-135M with real text: edgekit's int4 plan against each anchor's
default 4-bit path, in one run.

    python bench/quant_quality.py [--windows 12] [--seq-len 128] [--json results.json]

Evaluation text: CPython's LICENSE.txt (real English prose that ships with every Python),
cut into `--windows` windows of `--seq-len` tokens. Every variant is compared with the fp32
student on the same windows: mean KL(fp32 || variant) per token, top-1 agreement of the next
token, perplexity of the text, and weight bytes.

Variants (each anchor at its default 4-bit settings, block/group 32):
- edgekit int4: the plan `edgekit export --quant int4` emits (error-minimising scale search,
  symmetric, g32, Linear + Embedding, the most sensitive layers at int8 per channel),
  evaluated in eager PyTorch with the plan's weights; and variants of it.
- edgekit rtn: the same layout with round-to-nearest scales (the baseline of the search).
- torchao 8da4w: Int8DynamicActivationIntxWeightConfig(int4, PerGroup(32)) on every Linear,
  the ExecuTorch/XNNPACK default path, eager.
- coremltools int4: PostTrainingQuantizer int4 per_block 32 (symmetric) on the torch model,
  eager with its quantized weights.
- onnxruntime rtn: MatMulNBitsQuantizer(block_size=32) on the fp32 ONNX export, run in ORT;
  and edgekit's own int4 ONNX artifact in ORT beside it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekit.compress.calib import calibration_inputs
from edgekit.compress.plan import QuantSettings, find_layers
from edgekit.compress.quantize import SCHEMES, plan_bytes, quantize
from edgekit.console import import_backend, quiet
from edgekit.model import load


def windows(student: Any, count: int, length: int) -> list[np.ndarray]:
    text = (Path(sys.base_prefix) / "lib" / "python3.11" / "LICENSE.txt").read_text()
    ids = np.asarray(student.tokenizer(text)["input_ids"], dtype=np.int64)
    step = max(length, (len(ids) - length) // count)
    return [ids[i * step:i * step + length][None] for i in range(count)
            if i * step + length <= len(ids)]


def logits_of(module: torch.nn.Module, batches: list[np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad(), quiet():
        return [module(torch.from_numpy(b)).float().numpy() for b in batches]


def metrics(reference: list[np.ndarray], variant: list[np.ndarray],
            batches: list[np.ndarray]) -> dict[str, float]:
    kls, agree, nll, count = [], 0, 0.0, 0
    for ref, var, ids in zip(reference, variant, batches, strict=True):
        ref_logp = torch.log_softmax(torch.from_numpy(ref[0]).double(), -1)
        var_logp = torch.log_softmax(torch.from_numpy(var[0]).double(), -1)
        kls.append(float((ref_logp.exp() * (ref_logp - var_logp)).sum(-1).mean()))
        agree += int((ref[0].argmax(-1) == var[0].argmax(-1)).sum())
        targets = torch.from_numpy(ids[0, 1:])
        nll += float(-var_logp[:-1].gather(-1, targets[:, None]).sum())
        count += len(targets)
    positions = sum(r.shape[1] for r in reference)
    return {"kl": float(np.mean(kls)), "top1": agree / positions,
            "ppl": float(np.exp(nll / count))}


def edgekit_variant(student: Any, settings: QuantSettings,
                    calibration: list[dict[str, np.ndarray]] | None) -> tuple[torch.nn.Module, int]:
    """The plan `edgekit export --quant int4` computes, applied to the eager student."""
    plan = quantize(student, "int4", settings, calibration)
    module = plan.eager_module(student.module)
    planned = {id(p) for p in (layer.get_parameter("weight") for _, layer in
                               find_layers(student.module))}
    rest = sum(p.numel() * 4 for p in student.module.parameters() if id(p) not in planned)
    return module, plan_bytes(plan.layers) + rest


def _bytes(module: torch.nn.Module, quantized: dict[int, tuple[int, tuple[int, int, bool]]]
           ) -> int:
    total, seen = 0, set()
    for parameter in module.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        if id(parameter) in quantized:
            numel, (bits, group, has_zero) = quantized[id(parameter)]
            total += numel * bits // 8 + (numel // group) * (4 + (1 if has_zero else 0))
        else:
            total += parameter.numel() * 4
    return total


def torchao_variant(student: Any) -> tuple[torch.nn.Module, int]:
    torchao = import_backend("torchao.quantization")
    granularity = import_backend("torchao.quantization.granularity")
    module = copy.deepcopy(student.module)
    size_probe = copy.deepcopy(module)
    linear_weights = {id(m.weight): (m.weight.numel(), (4, 32, True))
                      for m in size_probe.modules() if isinstance(m, torch.nn.Linear)}
    with quiet():
        torchao.quantize_(module, torchao.Int8DynamicActivationIntxWeightConfig(
            weight_dtype=torch.int4, weight_granularity=granularity.PerGroup(32)))
    # torchao replaces the LM head's tied weight with its own tensor: the embedding stays fp32.
    return module.eval(), _bytes(size_probe, linear_weights) + _tied_head_bytes(size_probe)


def _tied_head_bytes(module: torch.nn.Module) -> int:
    names = [n for n, _ in find_layers(module) if len(n) > 1]
    if not names:
        return 0
    table = dict(module.named_modules())[names[0][0]].get_parameter("weight")
    return table.numel() * 4  # the untied fp32 embedding kept beside the quantized head


def coremltools_variant(student: Any) -> tuple[torch.nn.Module, int]:
    ptq = import_backend("coremltools.optimize.torch.quantization")
    module = copy.deepcopy(student.module)
    probe = copy.deepcopy(module)
    config = ptq.PostTrainingQuantizerConfig(global_config=ptq.ModulePostTrainingQuantizerConfig(
        weight_dtype="int4", granularity="per_block", block_size=32))
    with quiet():
        quantized = ptq.PostTrainingQuantizer(module, config).compress()
    weights = {id(m.weight): (m.weight.numel(), (4, 32, False))
               for m in probe.modules() if isinstance(m, torch.nn.Linear)}
    return quantized.eval(), _bytes(probe, weights)


def onnx_variants(student: Any, batches: list[np.ndarray],
                  calibration: list[dict[str, np.ndarray]], folder: Path
                  ) -> dict[str, tuple[list[np.ndarray], int]]:
    import onnx

    from edgekit.export import trace
    from edgekit.export.onnx import lower

    ort = import_backend("onnxruntime")
    nbits = import_backend("onnxruntime.quantization.matmul_nbits_quantizer")
    program = trace(student)
    lower(program, student, folder / "fp32.onnx")
    lower(program, student, folder / "edgekit.onnx",
          plan=quantize(student, "int4", calibration=calibration))
    model = onnx.load(folder / "fp32.onnx")
    with quiet():
        quantizer = nbits.MatMulNBitsQuantizer(model, block_size=32)
        quantizer.process()
    onnx.save(quantizer.model.model, folder / "ort.onnx")
    results = {}
    for name in ("ort", "edgekit"):
        path = folder / f"{name}.onnx"
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = [session.run(None, {"input_ids": b})[0] for b in batches]
        results[name] = (outs, path.stat().st_size)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", nargs="*", help="run only variants whose name holds a word")
    args = parser.parse_args()
    student = load("smollm2-135m", seq_len=args.seq_len)
    batches = windows(student, args.windows, args.seq_len)
    reference = logits_of(student.module, batches)
    fp32_bytes = _bytes(student.module, {})
    rows: dict[str, dict[str, float]] = {"fp32": {**metrics(reference, reference, batches),
                                                   "bytes": fp32_bytes}}
    calibration = calibration_inputs(student, None, 16)  # edgekit's corpus, not the eval text
    default = SCHEMES["int4"]
    builds = {
        "edgekit int4 (default: search + int8 mixed precision)":
            lambda: edgekit_variant(student, default, calibration),
        "edgekit int4, whole byte budget (error_budget 0)": lambda: edgekit_variant(
            student, replace(default, error_budget=0.0), calibration),
        "edgekit int4 gptq + int8 mixed precision": lambda: edgekit_variant(
            student, replace(default, method="gptq"), calibration),
        "edgekit int4 search, no mixed precision": lambda: edgekit_variant(
            student, replace(default, mixed_precision=False), None),
        "edgekit rtn": lambda: edgekit_variant(
            student, replace(default, method="rtn", mixed_precision=False), None),
        "torchao 8da4w g32": lambda: torchao_variant(student),
        "coremltools int4 per_block 32": lambda: coremltools_variant(student),
    }
    for name, build in builds.items():
        if args.only and not any(word in name for word in args.only):
            continue
        start = time.perf_counter()
        module, size = build()
        rows[name] = {**metrics(reference, logits_of(module, batches), batches), "bytes": size,
                      "seconds": time.perf_counter() - start}
        print(f"{name}: {rows[name]}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_rows = {} if args.only else onnx_variants(student, batches, calibration, Path(tmp))
        for name, (outs, size) in onnx_rows.items():
            label = "onnxruntime MatMulNBits rtn b32 (ORT)" if name == "ort" \
                else "edgekit int4 .onnx (ORT)"
            rows[label] = {**metrics(reference, outs, batches), "bytes": size}
    print(f"{'variant':40} {'KL':>8} {'top1':>6} {'ppl':>8} {'MB':>8}")
    for name, row in rows.items():
        print(f"{name:40} {row['kl']:8.4f} {row['top1']:6.3f} {row['ppl']:8.2f} "
              f"{row['bytes'] / 1e6:8.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
