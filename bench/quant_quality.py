"""4-bit quality on SmolLM2-135M with real text: edgekit's int4 plan against each anchor's
default 4-bit path, in one run.

    python bench/quant_quality.py [--windows 12] [--seq-len 128] [--json results.json]

Evaluation text: CPython's LICENSE.txt (real English prose that ships with every Python),
cut into `--windows` windows of `--seq-len` tokens. Every variant is compared with the fp32
student on the same windows: mean KL(fp32 || variant) per token, top-1 agreement of the next
token, perplexity of the text, and weight bytes.

Variants (each anchor at its default 4-bit settings, block/group 32):
- edgekit int4: the plan `edgekit export --quant int4` emits (error-minimising scale search
  weighted by calibration activations, symmetric, g32, Linear + Embedding, the most
  sensitive layers at int8 per channel), evaluated in eager PyTorch with the plan's weights;
  and variants of it (GPTQ, no calibration, RTN).
- torchao 8da4w: Int8DynamicActivationIntxWeightConfig(int4, PerGroup(32)) on every Linear,
  the ExecuTorch/XNNPACK default path, eager.
- coremltools int4: PostTrainingQuantizer int4 per_block 32 (symmetric) on the torch model,
  eager with its quantized weights.
- onnxruntime rtn: MatMulNBitsQuantizer(block_size=32) on the fp32 ONNX export, run in ORT;
  and edgekit's own int4 ONNX artifact in ORT beside it.

The goal (edgekit's KL at most 0.7x each anchor's at no more than 1.15x its bytes) is checked
for the default plan, and, where an anchor stores more bytes than the default plan, for
edgekit's plan given that anchor's bytes: mixed precision promotes more measured layers to
int8 (the default plan's sensitivities, reused) until they are spent. Both are printed.
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
                    calibration: list[dict[str, np.ndarray]] | None,
                    sensitivity: dict[str, float] | None = None
                    ) -> tuple[torch.nn.Module, int, Any]:
    """The plan `edgekit export --quant int4` computes, applied to the eager student, its
    bytes (plan plus the float parameters it leaves, e.g. norms) and the plan."""
    plan = quantize(student, "int4", settings, calibration, sensitivity)
    module = plan.eager_module(student.module)
    planned = {id(p) for p in (layer.get_parameter("weight") for _, layer in
                               find_layers(student.module))}
    rest = sum(p.numel() * 4 for p in student.module.parameters() if id(p) not in planned)
    return module, plan_bytes(plan.layers) + rest, plan


def at_bytes(student: Any, default: Any, default_bytes: int, budget: int,
             calibration: list[dict[str, np.ndarray]]) -> tuple[torch.nn.Module, int, Any]:
    """edgekit's int4 plan given `budget` bytes: mixed precision promotes measured layers
    (the default plan's sensitivities, not measured again) until the budget is spent."""
    mixed = default.mixed or {}
    four_bit = plan_bytes(default.layers) - mixed.get("extra_bytes", 0)
    rest = default_bytes - plan_bytes(default.layers)
    extra = max(0.0, (budget - rest - four_bit) / four_bit)
    known = {layer.names[0]: layer.sensitivity for layer in default.layers
             if layer.sensitivity is not None}
    settings = replace(default.settings, error_budget=0.0, max_extra_bytes=extra)
    return edgekit_variant(student, settings, calibration, known)


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


def torchao_variant(student: Any) -> tuple[torch.nn.Module, int, None]:
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
    return (module.eval(), _bytes(size_probe, linear_weights) + _tied_head_bytes(size_probe),
            None)


def _tied_head_bytes(module: torch.nn.Module) -> int:
    names = [n for n, _ in find_layers(module) if len(n) > 1]
    if not names:
        return 0
    table = dict(module.named_modules())[names[0][0]].get_parameter("weight")
    return table.numel() * 4  # the untied fp32 embedding kept beside the quantized head


def coremltools_variant(student: Any) -> tuple[torch.nn.Module, int, None]:
    ptq = import_backend("coremltools.optimize.torch.quantization")
    module = copy.deepcopy(student.module)
    probe = copy.deepcopy(module)
    config = ptq.PostTrainingQuantizerConfig(global_config=ptq.ModulePostTrainingQuantizerConfig(
        weight_dtype="int4", granularity="per_block", block_size=32))
    with quiet():
        quantized = ptq.PostTrainingQuantizer(module, config).compress()
    weights = {id(m.weight): (m.weight.numel(), (4, 32, False))
               for m in probe.modules() if isinstance(m, torch.nn.Linear)}
    return quantized.eval(), _bytes(probe, weights), None


def onnx_variants(student: Any, batches: list[np.ndarray], plan: Any, folder: Path
                  ) -> dict[str, tuple[list[np.ndarray], int]]:
    """ORT's own 4-bit quantizer on the fp32 export, and edgekit's `plan` exported, in ORT."""
    import onnx

    from edgekit.export import trace
    from edgekit.export.onnx import lower

    ort = import_backend("onnxruntime")
    nbits = import_backend("onnxruntime.quantization.matmul_nbits_quantizer")
    program = trace(student)
    lower(program, student, folder / "fp32.onnx")
    lower(program, student, folder / "edgekit.onnx", plan=plan)
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


DEFAULT = "edgekit int4 (default: search + int8 mixed precision)"
ANCHORS = {"torchao 8da4w g32": "torchao", "coremltools int4 per_block 32": "coremltools",
           "onnxruntime MatMulNBits rtn b32 (ORT)": "onnxruntime"}
GOAL_KL, GOAL_BYTES = 0.7, 1.15  # edgekit's KL <= 0.7x the anchor's at <= 1.15x its bytes


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
    plans: dict[str, Any] = {}
    builds = {
        DEFAULT: lambda: edgekit_variant(student, default, calibration),
        "edgekit int4 gptq + int8 mixed precision": lambda: edgekit_variant(
            student, replace(default, method="gptq"), calibration),
        "edgekit int4 search, no calibration (no weighting, no mixed precision)":
            lambda: edgekit_variant(student, replace(default, mixed_precision=False), None),
        "edgekit rtn": lambda: edgekit_variant(
            student, replace(default, method="rtn", mixed_precision=False), None),
        "torchao 8da4w g32": lambda: torchao_variant(student),
        "coremltools int4 per_block 32": lambda: coremltools_variant(student),
    }

    def measure(name: str, build: Any) -> None:
        start = time.perf_counter()
        module, size, plans[name] = build()
        rows[name] = {**metrics(reference, logits_of(module, batches), batches), "bytes": size,
                      "seconds": time.perf_counter() - start}
        print(f"{name}: {rows[name]}", file=sys.stderr, flush=True)

    for name, build in builds.items():
        if not args.only or any(word in name for word in args.only):
            measure(name, build)
    if not args.only:
        with tempfile.TemporaryDirectory() as tmp:
            plan = plans.get(DEFAULT) or quantize(student, "int4", calibration=calibration)
            for name, (outs, size) in onnx_variants(student, batches, plan, Path(tmp)).items():
                label = "onnxruntime MatMulNBits rtn b32 (ORT)" if name == "ort" \
                    else "edgekit int4 .onnx (ORT)"
                rows[label] = {**metrics(reference, outs, batches), "bytes": size}
    goals = []
    for anchor, short in ANCHORS.items():
        if anchor not in rows or DEFAULT not in rows:
            continue
        contenders = [DEFAULT]
        budget = int(rows[anchor]["bytes"])
        if budget > rows[DEFAULT]["bytes"] * 1.05:  # the anchor spends more bytes: so may we
            name = f"edgekit int4 at {short}'s bytes (mixed precision, error_budget 0)"
            measure(name, lambda budget=budget: at_bytes(student, plans[DEFAULT],
                                                         int(rows[DEFAULT]["bytes"]),
                                                         budget, calibration))
            contenders.append(name)
        for name in contenders:
            kl, size = rows[name]["kl"] / rows[anchor]["kl"], rows[name]["bytes"] / budget
            goals.append({"anchor": anchor, "edgekit": name, "kl_ratio": kl,
                          "bytes_ratio": size, "met": kl <= GOAL_KL and size <= GOAL_BYTES})
    print(f"{'variant':70} {'KL':>8} {'top1':>6} {'ppl':>8} {'MB':>8}")
    for name, row in rows.items():
        print(f"{name:70} {row['kl']:8.4f} {row['top1']:6.3f} {row['ppl']:8.2f} "
              f"{row['bytes'] / 1e6:8.1f}")
    print(f"goal: KL <= {GOAL_KL}x the anchor's at <= {GOAL_BYTES}x its bytes")
    for goal in goals:
        print(f"  vs {goal['anchor']}: {goal['edgekit']}: KL {goal['kl_ratio']:.2f}x, "
              f"bytes {goal['bytes_ratio']:.2f}x -> {'met' if goal['met'] else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "goals": goals}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
