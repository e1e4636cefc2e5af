"""Supported models, measured: tiny random-init students of many transformers architectures
exported with `edgekit export --target all` at fp32 and at int4 (decoder LMs also decode-ready),
rendered as docs/models.md.

    nice -n 10 python bench/coverage.py [--families llama,bert] [--work DIR] [--timeout 1200]

Each student is built here from its transformers config with a fixed seed (2 layers, hidden
32-64, vocabulary 256, 32x32 images, 1 s of 16 kHz audio) and saved as a Hugging Face folder;
nothing is downloaded. Each (architecture, quant) runs in its own process:

    python -m edgekit export --model DIR --target all --quant none|int4 --out OUT
        --set validate.samples=1 --set export.decode=true|false --set export.max_seq_len=96

Decoder LMs run at fp32 with export.decode=true; when that run fails (exit 2 or 3), it is run
again with export.decode=false so that the forward formats still get their verdicts, and the
decode column holds its message. int4 runs export the forward programs only: an int4 decode
.pte takes about two minutes to lower even for these students (tests/integration/test_decode.py
checks int4 decode on Llama). Results are kept per run under --work/results, so `--families`
reruns some rows and the table is rendered from every row's latest result.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("executorch", "onnx", "ort", "coreml")
DECODE_FORMATS = ("executorch", "onnx", "coreml")
QUANTS = ("none", "int4")
GROUPS = ("decoder", "encoder", "vision", "audio")
MAX_SEQ_LEN = 96  # decode artifacts' KV cache (the decoders' max_position_embeddings is 128)
SEED = 0

# Shared shapes: two layers, hidden 64, four heads (two KV heads where the config has them),
# a 256-token vocabulary (edgekit feeds the corpus' bytes to a student without a tokenizer).
_SPECIAL = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
_LLAMA_LIKE = {"vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "max_position_embeddings": 128, **_SPECIAL}
_GPT_LIKE = {"vocab_size": 256, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128,
             "bos_token_id": 1, "eos_token_id": 2}
_ENCODER = {"vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 128, "max_position_embeddings": 130}
_VIT_LIKE = {"image_size": 32, "patch_size": 8, "hidden_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "intermediate_size": 128, "num_labels": 10}
_CNN = {"num_labels": 10, "image_size": 32}
_AUDIO = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 64, "conv_dim": (16, 16, 16), "conv_stride": (5, 4, 4),
          "conv_kernel": (10, 4, 4), "num_conv_pos_embeddings": 16,
          "num_conv_pos_embedding_groups": 2, "vocab_size": 32}


@dataclass(frozen=True)
class Family:
    """One architecture family: the transformers classes and the tiny config's fields."""

    name: str
    group: str  # decoder | encoder | vision | audio
    model: str  # transformers model class
    config: str  # transformers config class
    fields: dict[str, Any] = field(default_factory=dict)


FAMILIES: tuple[Family, ...] = (
    # decoder LMs (text-generation)
    Family("llama", "decoder", "LlamaForCausalLM", "LlamaConfig",
           {**_LLAMA_LIKE, "tie_word_embeddings": True}),
    Family("qwen2", "decoder", "Qwen2ForCausalLM", "Qwen2Config",
           {**_LLAMA_LIKE, "use_sliding_window": False}),
    Family("qwen3", "decoder", "Qwen3ForCausalLM", "Qwen3Config",
           {**_LLAMA_LIKE, "head_dim": 16, "use_sliding_window": False}),
    Family("mistral", "decoder", "MistralForCausalLM", "MistralConfig",
           {**_LLAMA_LIKE, "sliding_window": None}),
    Family("gemma", "decoder", "GemmaForCausalLM", "GemmaConfig",
           {**_LLAMA_LIKE, "head_dim": 16}),
    Family("gemma2", "decoder", "Gemma2ForCausalLM", "Gemma2Config",
           {**_LLAMA_LIKE, "head_dim": 16}),
    Family("gemma3", "decoder", "Gemma3ForCausalLM", "Gemma3TextConfig",
           {**_LLAMA_LIKE, "head_dim": 16}),
    Family("phi", "decoder", "PhiForCausalLM", "PhiConfig", _LLAMA_LIKE),
    Family("phi3", "decoder", "Phi3ForCausalLM", "Phi3Config", _LLAMA_LIKE),
    Family("gpt2", "decoder", "GPT2LMHeadModel", "GPT2Config", _GPT_LIKE),
    Family("gpt_neox", "decoder", "GPTNeoXForCausalLM", "GPTNeoXConfig",
           {k: v for k, v in _LLAMA_LIKE.items() if k != "num_key_value_heads"}),
    Family("opt", "decoder", "OPTForCausalLM", "OPTConfig",
           {"vocab_size": 256, "hidden_size": 64, "ffn_dim": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 128,
            "word_embed_proj_dim": 64, **_SPECIAL}),
    Family("falcon", "decoder", "FalconForCausalLM", "FalconConfig",
           {"vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 128, **_SPECIAL}),
    Family("stablelm", "decoder", "StableLmForCausalLM", "StableLmConfig", _LLAMA_LIKE),
    Family("olmo", "decoder", "OlmoForCausalLM", "OlmoConfig", _LLAMA_LIKE),
    Family("olmo2", "decoder", "Olmo2ForCausalLM", "Olmo2Config", _LLAMA_LIKE),
    Family("granite", "decoder", "GraniteForCausalLM", "GraniteConfig", _LLAMA_LIKE),
    Family("smollm3", "decoder", "SmolLM3ForCausalLM", "SmolLM3Config", _LLAMA_LIKE),
    Family("starcoder2", "decoder", "Starcoder2ForCausalLM", "Starcoder2Config",
           {**_LLAMA_LIKE, "sliding_window": None}),
    Family("cohere", "decoder", "CohereForCausalLM", "CohereConfig", _LLAMA_LIKE),
    Family("gptj", "decoder", "GPTJForCausalLM", "GPTJConfig", {**_GPT_LIKE, "rotary_dim": 8}),
    Family("bloom", "decoder", "BloomForCausalLM", "BloomConfig",
           {"vocab_size": 256, "hidden_size": 64, "n_layer": 2, "n_head": 4, **_SPECIAL}),
    # text encoders (feature-extraction: last_hidden_state)
    Family("bert", "encoder", "BertModel", "BertConfig", _ENCODER),
    Family("roberta", "encoder", "RobertaModel", "RobertaConfig", {**_ENCODER, "pad_token_id": 1}),
    Family("xlm-roberta", "encoder", "XLMRobertaModel", "XLMRobertaConfig",
           {**_ENCODER, "pad_token_id": 1}),
    Family("distilbert", "encoder", "DistilBertModel", "DistilBertConfig",
           {"vocab_size": 256, "dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128,
            "max_position_embeddings": 128}),
    Family("albert", "encoder", "AlbertModel", "AlbertConfig", {**_ENCODER, "embedding_size": 32}),
    Family("electra", "encoder", "ElectraModel", "ElectraConfig",
           {**_ENCODER, "embedding_size": 32}),
    Family("deberta-v2", "encoder", "DebertaV2Model", "DebertaV2Config", _ENCODER),
    Family("mpnet", "encoder", "MPNetModel", "MPNetConfig", {**_ENCODER, "pad_token_id": 1}),
    Family("modernbert", "encoder", "ModernBertModel", "ModernBertConfig",
           {**_ENCODER, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
            "cls_token_id": 1, "sep_token_id": 2}),
    # vision (image-classification: logits)
    Family("vit", "vision", "ViTForImageClassification", "ViTConfig", _VIT_LIKE),
    Family("deit", "vision", "DeiTForImageClassification", "DeiTConfig", _VIT_LIKE),
    Family("dinov2", "vision", "Dinov2Model", "Dinov2Config", _VIT_LIKE),  # a backbone
    Family("beit", "vision", "BeitForImageClassification", "BeitConfig", _VIT_LIKE),
    Family("swin", "vision", "SwinForImageClassification", "SwinConfig",
           {**_CNN, "patch_size": 4, "embed_dim": 16, "depths": [1, 1], "num_heads": [2, 2],
            "window_size": 4}),
    Family("convnext", "vision", "ConvNextForImageClassification", "ConvNextConfig",
           {**_CNN, "hidden_sizes": [16, 32], "depths": [1, 1], "num_stages": 2}),
    Family("convnextv2", "vision", "ConvNextV2ForImageClassification", "ConvNextV2Config",
           {**_CNN, "hidden_sizes": [16, 32], "depths": [1, 1], "num_stages": 2}),
    Family("resnet", "vision", "ResNetForImageClassification", "ResNetConfig",
           {**_CNN, "embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1],
            "layer_type": "basic"}),
    Family("regnet", "vision", "RegNetForImageClassification", "RegNetConfig",
           {**_CNN, "embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1],
            "groups_width": 8}),
    Family("mobilenet_v2", "vision", "MobileNetV2ForImageClassification", "MobileNetV2Config",
           {**_CNN, "depth_multiplier": 0.25}),
    Family("efficientnet", "vision", "EfficientNetForImageClassification", "EfficientNetConfig",
           {**_CNN, "width_coefficient": 0.25, "depth_coefficient": 0.25, "hidden_dim": 320}),
    Family("mobilevit", "vision", "MobileViTForImageClassification", "MobileViTConfig",
           {**_CNN, "hidden_sizes": [32, 48, 64], "neck_hidden_sizes": [8, 8, 16, 16, 24, 32, 64],
            "num_attention_heads": 2}),
    # audio encoders (feature-extraction on a waveform or log-mel features)
    Family("wav2vec2", "audio", "Wav2Vec2Model", "Wav2Vec2Config", _AUDIO),
    Family("hubert", "audio", "HubertModel", "HubertConfig", _AUDIO),
    Family("whisper", "audio", "WhisperModel", "WhisperConfig",
           {"vocab_size": 256, "d_model": 32, "encoder_layers": 2, "decoder_layers": 1,
            "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 64,
            "decoder_ffn_dim": 64, "num_mel_bins": 16, "max_source_positions": 32,
            "max_target_positions": 32, "decoder_start_token_id": 1, **_SPECIAL}),
)
BY_NAME = {f.name: f for f in FAMILIES}


def build_student(family: Family, folder: Path, seed: int = SEED, settle: bool = True) -> Path:
    """Save a random-init student of `family` (seeded) as a Hugging Face folder at `folder`;
    vision students' BatchNorm statistics are settled first unless `settle` is False."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = getattr(transformers, family.config)(**family.fields)
    model = getattr(transformers, family.model)(config).eval()
    model.config.architectures = [family.model]
    model.save_pretrained(folder, safe_serialization=True)
    if settle and family.group == "vision":
        settle_batch_norm(folder)
    return folder


def settle_batch_norm(folder: Path, count: int = 32) -> None:
    """Set the BatchNorm statistics of the student at `folder` to those of its activations on
    edgekit's natural images, as training leaves them, and save it again.

    transformers initialises convolutions with std 0.02 (EfficientNet's BatchNorm weights
    too) and BatchNorm statistics at mean 0, variance 1, so each layer of a random-init CNN
    shrinks its input: MobileNetV2's logits end near 4e-27, EfficientNet's near 1e-35 and
    MobileViT's at 0, which no trained network has and fp16 cannot hold. Each BatchNorm is
    reset to PyTorch's own init (weight 1, bias 0) and its statistics measured.
    """
    import torch

    from edgekit.model import load, sample_inputs

    student = load(folder)
    model = student.module.model
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_parameters()  # PyTorch's init: weight 1, bias 0, statistics cleared
        norm.momentum = None  # a cumulative average over the batches
    images = [s["pixel_values"] for s in sample_inputs(student, count, seed=SEED + 1)]
    model.train()
    with torch.no_grad():
        for batch in range(0, count, 8):
            model(pixel_values=torch.from_numpy(np.concatenate(images[batch:batch + 8])))
    model.eval()
    for norm in norms:
        norm.momentum = 0.1  # PyTorch's default (the value is not saved)
    model.save_pretrained(folder, safe_serialization=True)


def export_args(folder: Path, out: Path, quant: str, decode: bool) -> list[str]:
    """The `edgekit export` arguments of one (student, quant) run."""
    return ["export", "--model", str(folder), "--target", "all", "--quant", quant,
            "--out", str(out), "--force", "--set", "validate.samples=1",
            "--set", f"export.decode={'true' if decode else 'false'}",
            "--set", f"export.max_seq_len={MAX_SEQ_LEN}"]


def run_export(folder: Path, out: Path, quant: str, decode: bool,
               timeout: float) -> dict[str, Any]:
    """Run one export in its own process; its exit code, last stderr line and report."""
    command = [sys.executable, "-m", "edgekit", *export_args(folder, out, quant, decode)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT)
        code, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired:
        code, stderr = None, f"timed out after {timeout:.0f} s"
    lines = [line for line in stderr.splitlines() if line.strip()]
    result: dict[str, Any] = {"exit": code, "decode": decode, "seconds":
                              round(time.perf_counter() - start, 1),
                              "message": lines[-1] if lines else ""}
    report = out / "report.json"
    if code in (0, 1) and report.is_file():
        result["report"] = _summary(json.loads(report.read_text()))
    return result


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """Per format (the first target holding it), its verdict, reason and metrics."""
    formats: dict[str, Any] = {}
    for item in report["artifacts"]:
        parity = item["parity"]
        formats.setdefault(item["format"], {
            "verdict": parity["verdict"], "reason": parity["reason"],
            "metrics": parity.get("metrics", {}), "precision": parity.get("precision"),
            "layer": (parity.get("localization") or {}).get("layer")})
    decode: dict[str, Any] = {}
    for item in report.get("decode", []):
        parity = item["parity"]
        against = parity.get("against", {}).get(parity.get("expected_reference", ""), {})
        decode.setdefault(item["format"], {
            "verdict": parity["verdict"], "reason": parity.get("reason", ""),
            "agreement": against.get("agreement"), "compared": against.get("compared"),
            "judged": parity.get("tokens_judged", True)})
    planned = sum(math.prod(layer["shape"]) for recipe in report.get("compression", [])
                  for layer in recipe["plan"].get("layers", [])
                  if layer["precision"] != "float")
    return {"task": report["model"]["task"], "inputs": report["model"]["inputs"],
            "parameters": report["model"]["parameters"], "quantized_weights": planned,
            "formats": formats, "decode": decode}


def run_family(family: Family, work: Path, quant: str, timeout: float) -> dict[str, Any]:
    """Export one family at one quant level (decoders decode-ready too); the bench's result."""
    folder = work / "students" / family.name
    if not (folder / "config.json").is_file():
        build_student(family, folder)
    out = work / "out" / f"{family.name}-{quant}"
    decode = family.group == "decoder" and quant == "none"
    result = run_export(folder, out, quant, decode, timeout)
    if decode and result["exit"] in (2, 3):
        # a failed decode export takes the forward formats with it: run those alone
        forward = run_export(folder, out, quant, False, timeout)
        if forward["exit"] in (0, 1):  # the forward formats export: the decode failed
            forward["decode_failure"] = {"exit": result["exit"], "message": result["message"]}
        forward["seconds"] = round(forward["seconds"] + result["seconds"], 1)
        result = forward
    result.update(family=family.name, group=family.group, quant=quant)
    return result


# ---- rendering --------------------------------------------------------------------------


class Notes:
    """Numbered footnotes for messages, each exact message once."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def ref(self, message: str) -> str:
        # the bench's own scratch paths say nothing: keep the artifact's file name
        message = re.sub(r"/\S*/([^/\s]+\.(?:mlpackage|pte|onnx|ort))", r"\1", message)
        if message not in self.messages:
            self.messages.append(message)
        return f"[{self.messages.index(message) + 1}]"


def _metrics(cell: dict[str, Any], quant: str) -> str:
    m = cell["metrics"]
    if quant == "none":
        return f"max_rel {m['max_rel']:.1e}"
    if "top1_agreement" in m:
        return f"top1 {m['top1_agreement']:.2f}, cos {m['cosine_min']:.3f}"
    return f"cos {m['cosine_min']:.4f}"


def format_cell(result: dict[str, Any], fmt: str, notes: Notes) -> str:
    """One format's cell: pass/fail with numbers, not run, or the refusal's note."""
    report = result.get("report")
    if report is None:
        return f"{_failure_kind(result)} {notes.ref(_message(result, result['family']))}"
    cell = report["formats"].get(fmt)
    if cell is None:
        return "-"
    precision = " (fp16)" if cell.get("precision") == "fp16" else ""
    if cell["verdict"] == "not_run":
        return f"not run {notes.ref(cell['reason'])}"
    text = f"{cell['verdict']}{precision}"
    if cell["metrics"]:  # none when the artifact did not run
        text += f": {_metrics(cell, result['quant'])}"
    if cell["verdict"] == "fail":
        where = f" (the error first grows at {cell['layer']})" if cell.get("layer") else ""
        text += " " + notes.ref(f"{result['family']} {fmt}: {cell['reason']}{where}")
    return text


def decode_cell(result: dict[str, Any], notes: Notes) -> str:
    """The decode column: greedy tokens matching the eager student, per decode format."""
    if result["group"] != "decoder" or result["quant"] != "none":
        return "-"
    if "decode_failure" in result:
        failure = result["decode_failure"]
        message = _message(failure, f"{result['family']} decode")
        return f"{_failure_kind(failure)} {notes.ref(message)}"
    report = result.get("report")
    if report is None:
        return "not run (the export failed)"
    parts = []
    short = {"executorch": "pte", "onnx": "onnx", "coreml": "mlpackage"}
    for fmt in DECODE_FORMATS:
        cell = report["decode"].get(fmt)
        if cell is None:
            continue
        tokens = (f"{round(cell['agreement'] * cell['compared'])}/{cell['compared']}"
                  if cell["agreement"] is not None else "")
        judged = "" if cell["judged"] else " (not judged)"
        text = f"{short[fmt]} {cell['verdict']} {tokens}{judged}".rstrip()
        if cell["verdict"] != "pass":
            text += " " + notes.ref(f"{result['family']} decode {fmt}: {cell['reason']}")
        parts.append(text)
    return ", ".join(parts) or "-"


def quantized_cell(result: dict[str, Any]) -> str:
    """The share of the student's weights the int4 plan stores at 4 or 8 bits."""
    report = result.get("report")
    if report is None:
        return "-"
    if "quantized_weights" not in report:  # a result from before the column
        return "-"
    return f"{report['quantized_weights'] / report['parameters']:.0%}"


def _failure_kind(result: dict[str, Any]) -> str:
    if result["exit"] is None:
        return "timed out"
    if result["exit"] == 2:
        return "refused"
    return "internal error" if result["exit"] == 3 else f"exit {result['exit']}"


def _message(result: dict[str, Any], family: str) -> str:
    message = _strip(result["message"]) or f"exit {result['exit']}, nothing on stderr"
    return message if message.startswith(f"{family}:") else f"{family}: {message}"


def _strip(message: str) -> str:
    return message.removeprefix("edgekit: error: ")


def all_pass(result: dict[str, Any] | None) -> bool:
    """Whether every format of `--target all` passed parity in this run."""
    report = (result or {}).get("report")
    return bool(report) and all(report["formats"].get(f, {}).get("verdict") == "pass"
                                for f in FORMATS)


def render(results: dict[tuple[str, str], dict[str, Any]], command: str,
           seconds: float) -> str:
    """docs/models.md from every (family, quant) result."""
    import torch
    import transformers

    import edgekit

    notes = Notes()
    counts = {g: sum(1 for f in FAMILIES if f.group == g) for g in GROUPS}
    passing = [f.name for f in FAMILIES if all_pass(results.get((f.name, "none")))]
    passing_int4 = [f.name for f in FAMILIES if all_pass(results.get((f.name, "int4")))]
    crashed = sorted({r["family"] for r in results.values()
                      if r["exit"] == 3 or r.get("decode_failure", {}).get("exit") == 3})
    lines = [
        "# Supported models",
        "",
        "Generated by `bench/coverage.py`; do not edit by hand. Regenerate with",
        "",
        f"    {command}",
        "",
        f"Measured {datetime.date.today().isoformat()} with edgekit {edgekit.__version__}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}; "
        f"the run took {seconds / 60:.0f} min on this host.",
        "",
        f"{len(FAMILIES)} architecture families: {counts['decoder']} decoder LMs, "
        f"{counts['encoder']} text encoders, {counts['vision']} vision models, "
        f"{counts['audio']} audio encoders. {len(passing)} of them pass parity at fp32 in "
        f"every format of `--target all`, {len(passing_int4)} at int4; "
        + (f"edgekit crashed (exit 3) on {', '.join(crashed)}." if crashed else
           "none crashes edgekit (exit 3)."),
        "",
        "Every student is a tiny random-init model built from its transformers config with "
        "seed 0 (2 layers, hidden 32-64, vocabulary 256, 32x32 images, 1 s of 16 kHz audio), "
        "saved as a Hugging Face folder, and exported with",
        "",
        "    edgekit export --model DIR --target all --quant none|int4 --out OUT "
        "--set validate.samples=1 --set export.decode=true|false "
        f"--set export.max_seq_len={MAX_SEQ_LEN}",
        "",
        "(`export.decode=true` for decoder LMs at fp32). Vision students' BatchNorm layers "
        "are reset to PyTorch's init and their statistics measured on edgekit's natural "
        "images, as training leaves them: transformers' random init (std 0.02 convolutions) "
        "shrinks MobileNetV2's logits to 4e-27, which no trained network has. The numbers "
        "say that the architecture's "
        "graph converts and runs the same as in PyTorch; a trained model of the same family "
        "has other weights and should be checked with its own `edgekit export`.",
        "",
        "Legend:",
        "",
        "- `pass: max_rel 3.7e-07` (fp32): parity passed the target's tolerance; max_rel is "
        "max |artifact - student| / max |student| over one in-distribution sample. Decoder "
        "logits also give `top1` (next-token agreement), other outputs `cos` (minimum cosine).",
        "- `(fp16)`: Core ML runs in edgekit's Core ML emulator at fp16, as on the iPhone's GPU "
        "and Neural Engine (tolerance max_rel 1e-2).",
        "- int4: the default plan (int4 group 32, the most sensitive layers at int8), judged "
        "on `top1` >= 0.6 and `cos` >= 0.93. The plan quantizes nn.Linear and nn.Embedding "
        "weights; `quantized` is their share of the student's weights (convolutions, and "
        "GPT-2-style Conv1D projections, stay float).",
        "- decode (fp32): the decode-ready artifacts (KV cache, max_seq_len "
        f"{MAX_SEQ_LEN}) of each format and how many of 32 greedy tokens match the eager fp32 "
        "student's (Core ML: the student with its fp16 KV cache). int4 runs export the "
        "forward programs only (an int4 decode .pte takes minutes to lower).",
        "- `refused [n]`: edgekit stopped with exit 2 and the one-line message in note n.",
        "- `fail [n]`: the artifact was written but failed its check: it missed the "
        "tolerance, or its runtime here could not run it (note n).",
        "- `internal error [n]`: edgekit crashed (exit 3), a bug to fix.",
        "",
    ]
    for quant, title in (("none", "fp32 (`--quant none`)"), ("int4", "int4 (`--quant int4`)")):
        lines += [f"## {title}", ""]
        for group in GROUPS:
            decode = group == "decoder" and quant == "none"
            extra = " decode |" if decode else " quantized |" if quant != "none" else ""
            lines += [f"### {group.capitalize()}", "",
                      "| architecture | ExecuTorch .pte | ONNX | ORT | Core ML |" + extra,
                      "|---|---|---|---|---|" + ("---|" if extra else "")]
            for family in (f for f in FAMILIES if f.group == group):
                result = results.get((family.name, quant))
                if result is None:
                    cells = ["not measured"] * (len(FORMATS) + bool(extra))
                else:
                    cells = [format_cell(result, fmt, notes) for fmt in FORMATS]
                    if decode:
                        cells.append(decode_cell(result, notes))
                    elif extra:
                        cells.append(quantized_cell(result))
                lines.append(f"| {family.name} ({family.model}) | " + " | ".join(cells) + " |")
            lines.append("")
    lines += ["## Notes", ""]
    lines += [f"{i}. {message}" for i, message in enumerate(notes.messages, 1)]
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", help="comma-separated family names to (re)run "
                                           "(default: all)")
    parser.add_argument("--quant", default="none,int4", help="quant levels to run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgekit-coverage"))
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per export")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "models.md")
    parser.add_argument("--render", action="store_true",
                        help="only render the doc from the results already in --work")
    args = parser.parse_args()
    names = [] if args.render else args.families.split(",") if args.families else list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown families {unknown} (known: {', '.join(BY_NAME)})")
    store = args.work / "results"
    store.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for quant in args.quant.split(","):
        for name in names:
            result = run_family(BY_NAME[name], args.work, quant, args.timeout)
            (store / f"{name}-{quant}.json").write_text(json.dumps(result, indent=1))
            verdicts = {f: c["verdict"] for f, c in
                        (result.get("report") or {}).get("formats", {}).items()}
            print(f"{name} {quant}: exit {result['exit']} in {result['seconds']} s "
                  f"{verdicts or result['message']}", flush=True)
    results = {}
    for file in sorted(store.glob("*.json")):
        result = json.loads(file.read_text())
        results[(result["family"], result["quant"])] = result
    seconds = sum(r["seconds"] for r in results.values())
    command = "nice -n 10 python bench/coverage.py"
    args.doc.write_text(render(results, command, seconds))
    print(f"wrote {args.doc} ({len(results)} runs, {seconds / 60:.0f} min of exports; "
          f"this call {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
