"""Decode-ready exports of tiny Llama- and Qwen2-style students: fp32 artifacts reproduce the
eager student's greedy generation token for token, in ExecuTorch and in ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import rounding_tolerance, run_cli

from edgekit.compress import quantize
from edgekit.errors import ExportError
from edgekit.llm.export import decode_parity, export_decode
from edgekit.llm.generate import generate
from edgekit.llm.runners import EagerDecodeSession, open_decoder
from edgekit.llm.tokenizer import read_special_ids
from edgekit.model import load

MAX_SEQ_LEN = 48
PROMPT = [1, 5, 7, 9, 11, 40, 50, 60]
HIDDEN, INTERMEDIATE, LAYERS = 64, 128, 2
# The longest chain of products summed for one logit: per layer the projections, the MLP and
# attention over the cache, then the head.
REDUCTION = LAYERS * (HIDDEN + INTERMEDIATE + MAX_SEQ_LEN) + HIDDEN


def lively(kind: str, folder: Path) -> Path:
    """A tiny student with large initial weights, so that greedy generation wanders over the
    vocabulary instead of repeating one token (a repeated token would prove little)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=256, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
                  num_hidden_layers=LAYERS,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  initializer_range=0.3)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=True))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=False,
                                             use_sliding_window=False))
    model.eval().save_pretrained(folder, safe_serialization=True)
    return folder


# Qwen2 is the same path with q/k/v biases and an untied head: slow, to keep the default
# suite within its time budget (each kind costs an ExecuTorch and an ONNX export).
@pytest.fixture(scope="module", params=["llama", pytest.param("qwen2", marks=pytest.mark.slow)])
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"decode-{request.param}")
    student = load(lively(request.param, root / "student"))
    plan = quantize(student, "none")
    artifacts = export_decode(student, plan, ("executorch", "onnx"), root / "out", MAX_SEQ_LEN)
    return student, plan, {a.format: a for a in artifacts}


def logit_tolerance(student) -> float:
    """How far two fp32 runtimes' logits of this student may differ: the rounding bound over
    REDUCTION products, scaled by the largest |logit| the eager student gives at any cache
    position (every slot fed one token at a time)."""
    session = EagerDecodeSession(student.module.model, MAX_SEQ_LEN)
    tokens = [PROMPT[i % len(PROMPT)] for i in range(MAX_SEQ_LEN)]
    scale = max(float(np.abs(session.feed([token])).max()) for token in tokens)
    return rounding_tolerance(scale, REDUCTION)


def eager_tokens(student, count: int) -> list[int]:
    return generate(EagerDecodeSession(student.module.model, MAX_SEQ_LEN), PROMPT, count).tokens


@pytest.mark.parametrize("fmt", ["executorch", "onnx"])
def test_fp32_decode_reproduces_eager_greedy_generation(exported, fmt):
    student, _, artifacts = exported
    expected = eager_tokens(student, 32)
    assert len(set(expected)) > 10  # the reference really moves around the vocabulary
    session = open_decoder(artifacts[fmt].path)
    assert session.max_seq_len == MAX_SEQ_LEN
    assert generate(session, PROMPT, 32).tokens == expected


@pytest.mark.parametrize("fmt", ["executorch", "onnx"])
def test_generation_parity_report(exported, fmt):
    student, plan, artifacts = exported
    parity = decode_parity(artifacts[fmt], student, plan, MAX_SEQ_LEN)
    assert parity["verdict"] == "pass", parity["reason"]
    assert parity["against"]["fp32"] == {"agreement": 1.0, "first_divergence": None,
                                         "compared": 32, "identical": True}
    tolerance = logit_tolerance(student)
    assert parity["prefill_vs_decode"]["max_abs_logit_diff"] < tolerance
    limit = parity["max_seq_len"]
    assert limit["overflow_refused"] and limit["last_slot_same_top1"]
    assert limit["last_slot_max_abs_logit_diff"] < tolerance


def test_decode_artifacts_carry_what_runtimes_need(exported):
    student, _, artifacts = exported
    pte, genai = artifacts["executorch"].path, artifacts["onnx"].path
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(str(pte))
    for method in ("get_max_seq_len", "use_kv_cache", "use_sdpa_with_kv_cache",
                   "enable_dynamic_shape", "get_vocab_size"):
        assert method in program.method_names
    assert program.load_method("get_max_seq_len").execute([])[0] == MAX_SEQ_LEN
    assert artifacts["executorch"].notes["metadata"]["get_vocab_size"] == 256
    config = json.loads((genai / "genai_config.json").read_text())
    assert config["model"]["context_length"] == MAX_SEQ_LEN
    assert config["search"]["past_present_share_buffer"] is False
    assert (pte.parent / "special_tokens.json").is_file()
    assert (genai / "special_tokens.json").is_file()


def test_generate_cli_streams_the_same_tokens(exported):
    student, _, artifacts = exported
    ids = ",".join(str(t) for t in PROMPT)
    done = run_cli("generate", str(artifacts["executorch"].path), "--prompt-ids", ids,
                   "--max-new-tokens", "12", "--device", "pixel-8", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    eos = read_special_ids(artifacts["executorch"].path.parent).eos
    expected = generate(EagerDecodeSession(student.module.model, MAX_SEQ_LEN), PROMPT, 12,
                        eos=eos)
    assert result["tokens"] == expected.tokens
    assert result["stop"] == expected.stop
    timings = result["timings"]
    assert timings["label"].startswith("measured on host") and "2 threads" in timings["label"]
    assert timings["decode_tok_s"] > 0 and timings["prefill_ms"] > 0


def test_sampled_generation_is_seeded(exported):
    _, _, artifacts = exported
    path = str(artifacts["onnx"].path)
    runs = [run_cli("generate", path, "--prompt-ids", "1,2,3", "--temperature", "1.0",
                    "--top-k", "20", "--seed", seed, "--max-new-tokens", "16", "--json")
            for seed in ("3", "3", "4")]
    tokens = [json.loads(r.stdout)["tokens"] for r in runs]
    assert tokens[0] == tokens[1] != tokens[2]


def test_generate_cli_bad_input(exported, tmp_path):
    _, _, artifacts = exported
    pte = str(artifacts["executorch"].path)
    cases = [
        (["--prompt-ids", "1,x"], "not a comma-separated list"),
        (["--prompt", "hello"], "no tokenizer.json"),
        (["--prompt-ids", ",".join(["3"] * MAX_SEQ_LEN)], "leaves no room"),
        ([], "exactly one of --prompt"),
    ]
    for extra, message in cases:
        done = run_cli("generate", pte, *extra)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr)
        assert done.stderr.count("\n") == 1
    missing = run_cli("generate", str(tmp_path / "nope.pte"), "--prompt-ids", "1")
    assert missing.returncode == 2 and "no such artifact" in missing.stderr


def test_decode_rejects_what_it_cannot_serve(student_dir):
    bert = load(student_dir("bert"))
    with pytest.raises(ExportError, match="needs a transformers decoder LM"):
        export_decode(bert, quantize(bert, "none"), ("onnx",), Path("unused"), 32)
    llama = load(student_dir("llama"))
    with pytest.raises(ExportError, match=r"max_seq_len 4096 must be in \[2, 128\]"):
        export_decode(llama, quantize(llama, "none"), ("onnx",), Path("unused"), 4096)


def test_sliding_window_is_rejected(tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=64, use_sliding_window=True, sliding_window=16,
                         max_window_layers=0)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path, safe_serialization=True)
    student = load(tmp_path)
    with pytest.raises(ExportError, match="sliding-window attention is not supported"):
        export_decode(student, quantize(student, "none"), ("executorch",), tmp_path / "o", 32)


def test_int4_decode_follows_the_quantized_student(exported):
    """The ONNX plan runs float activations (MatMulNBits), so it reproduces the eager
    quantized student exactly; the ExecuTorch one (8da4w) is reported, not judged."""
    student, _, _ = exported
    plan = quantize(student, "int4")
    out = Path(exported[2]["onnx"].path).parent.parent / "int4"
    onnx, pte = export_decode(student, plan, ("onnx", "executorch"), out, MAX_SEQ_LEN)
    parity = decode_parity(onnx, student, plan, MAX_SEQ_LEN)
    assert parity["verdict"] == "pass", parity["reason"]
    assert parity["tokens_judged"] and parity["against"]["quantized"]["identical"]
    assert set(parity["against"]) == {"fp32", "quantized"}
    assert np.isfinite(parity["prefill_vs_decode"]["max_abs_logit_diff"])
    # the 8da4w .pte (XNNPACK forms, custom SDPA) runs; int8 activations: compared, not judged
    parity = decode_parity(pte, student, plan, MAX_SEQ_LEN)
    assert not parity["tokens_judged"]
    assert parity["against"]["quantized"]["compared"] == parity["against"]["fp32"]["compared"] > 0


def test_pte_runs_in_executorch_llm_runner(tmp_path):
    """ExecuTorch's own TextLLMRunner loads the .pte and the tokenizer.json beside it, reads
    the metadata methods and generates what edgekit's loop generates (a tiny student that
    shares SmolLM2's tokenizer and vocabulary, so the two agree on token ids)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from edgekit.model.load import _builtin_path, wrap_hf_model

    gguf = _builtin_path("smollm2-135m")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=64, tie_word_embeddings=True,
                         initializer_range=0.3, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    student = wrap_hf_model(LlamaForCausalLM(config), "text-generation", 16, "tiny-vocab",
                            "test", tokenizer)
    (artifact,) = export_decode(student, quantize(student, "none"), ("executorch",), tmp_path,
                                32)
    import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner

    runner = TextLLMRunner(str(artifact.path), str(tmp_path / "tokenizer.json"))
    pieces: list[str] = []
    runner.generate("The cat sat", GenerationConfig(max_new_tokens=8, temperature=0.0,
                                                    echo=False), pieces.append)
    prompt = tokenizer("The cat sat")["input_ids"]
    expected = generate(open_decoder(artifact.path), prompt, 8,
                        eos=(tokenizer.eos_token_id,)).tokens
    assert expected and pieces
    assert "".join(pieces) == tokenizer.decode(expected)


# ---- Core ML: a stateful .mlpackage run in edgekit's Core ML emulator -----------------------


# Qwen2 slow, as above: each Core ML export and parity run costs ~30 s on a shared 2-core host.
@pytest.fixture(scope="module", params=["llama", pytest.param("qwen2", marks=pytest.mark.slow)])
def coreml_exported(request, tmp_path_factory):
    """The decode stage of `edgekit export --target ios --decode`, Core ML only: export,
    generation parity in the emulator, speed."""
    from dataclasses import replace

    from edgekit.llm.stage import run_decode
    from edgekit.targets import get_target

    root = tmp_path_factory.mktemp(f"coreml-decode-{request.param}")
    student = load(lively(request.param, root / "student"))
    ios = replace(get_target("ios"), formats=("coreml",))
    (entry,) = run_decode(student, quantize(student, "none"), [ios], root / "out", MAX_SEQ_LEN)
    return student, entry, root / "out" / entry["path"]


def test_coreml_decode_generation_parity(coreml_exported):
    """The fp32 package reproduces, token for token over 32 tokens, the eager student whose
    keys/values of earlier calls are read as fp16 (Core ML states are fp16); agreement with
    the plain fp32 student is reported beside it."""
    student, entry, path = coreml_exported
    assert (entry["format"], path.suffix, entry["max_seq_len"]) == ("coreml", ".mlpackage",
                                                                    MAX_SEQ_LEN)
    assert entry["notes"]["compute_precision"] == "float32"
    assert entry["notes"]["states"] == 2 * 2  # keys and values of 2 layers
    parity = entry["parity"]
    assert parity["verdict"] == "pass", parity["reason"]
    assert (parity["emulated"], parity["precision"]) == (True, "fp32")
    assert parity["expected_reference"] == "fp32_fp16_state" and parity["tokens_judged"]
    assert parity["against"]["fp32_fp16_state"] == {"agreement": 1.0, "first_divergence": None,
                                                    "compared": 32, "identical": True}
    assert set(parity["against"]) == {"fp32", "fp32_fp16_state"}
    assert parity["prefill_vs_decode"]["same_top1"]
    limit = parity["max_seq_len"]
    assert limit["overflow_refused"] and limit["last_slot_same_top1"]
    assert limit["reference"] == "fp32_fp16_state"
    assert limit["last_slot_max_abs_logit_diff"] < logit_tolerance(student)
    latency = entry["latency"]
    assert latency["measured"]["status"] == "not_run"  # an emulator's speed is not Core ML's
    assert latency["projected"]["label"] == "estimated"
    assert (path.parent / "special_tokens.json").is_file()  # tokenizer files beside it


def test_coreml_decode_logits_and_state(coreml_exported):
    """Logits match the fp16-state eager reference to fp32 rounding, prefill then decode; the
    state holds fp16 values for the fed positions and zeros after them, and persists until
    reset."""
    student, _, path = coreml_exported
    session = open_decoder(path)
    reference = EagerDecodeSession(student.module.model, MAX_SEQ_LEN, fp16_state=True)
    assert (session.max_seq_len, session.emulated) == (MAX_SEQ_LEN, True)
    tolerance = logit_tolerance(student)
    for chunk in (PROMPT, [3], [77], [200]):
        got, expected = session.feed(chunk), reference.feed(chunk)
        assert np.max(np.abs(got - expected)) < tolerance
    states = session._session.states
    keys = next(v for k, v in states.items() if k.endswith("k_cache"))
    filled = len(PROMPT) + 3
    assert keys.shape == (1, 2, MAX_SEQ_LEN, 16)
    assert np.abs(keys[:, :, :filled]).max(axis=-1).min() > 0  # every fed position written
    assert not keys[:, :, filled:].any()
    assert np.array_equal(keys, keys.astype(np.float16).astype(np.float32))
    session.reset()
    assert not any(v.any() for v in session._session.states.values())


def test_coreml_generate_cli(coreml_exported, capsys):
    from edgekit.cli import main

    student, _, path = coreml_exported
    ids = ",".join(str(t) for t in PROMPT)
    assert main(["generate", str(path), "--prompt-ids", ids, "--max-new-tokens", "6",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    eos = read_special_ids(path.parent).eos
    reference = EagerDecodeSession(student.module.model, MAX_SEQ_LEN, fp16_state=True)
    expected = generate(reference, PROMPT, 6, eos=eos)
    assert result["tokens"] == expected.tokens and result["emulated"] is True
    assert "Core ML emulator" in result["timings"]["label"]
    # the tokenizer files are looked up beside the package, not inside it
    assert main(["generate", str(path), "--prompt", "hello"]) == 2
    assert f"{path.parent}: no tokenizer.json" in capsys.readouterr().err
