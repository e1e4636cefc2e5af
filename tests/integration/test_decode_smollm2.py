"""SmolLM2-135M decode artifacts: the int4 ones in the real clients (ExecuTorch's own LLM
runner, the TextLLMRunner Python bindings in the executorch wheel, and onnxruntime-genai), and
the fp32 ones against the eager student token for token. Slow: the exports and the int4 plan
of a 135M-parameter model take minutes."""

from __future__ import annotations

import json
import re

import pytest
from helpers import run_cli

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2-decode") / "out"
    done = run_cli("export", "--model", "smollm2-135m", "--target", "android", "--quant",
                   "int4", "--decode", "--out", str(out), timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    return out, {d["format"]: d for d in report["decode"]}


def chat_prompt(folder) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}],
                                         add_generation_prompt=True, tokenize=False)


def coherent(text: str) -> bool:
    words = re.findall(r"[A-Za-z]+", text)
    return len(words) >= 3 and len(set(words)) >= 3


def test_pte_runs_in_executorch_llm_runner(exported):
    out, decode = exported
    pte = out / decode["executorch"]["path"]
    import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401  (llama:: kernels)
    import executorch.kernels.quantized  # noqa: F401  (embedding_4bit kernel)
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner

    runner = TextLLMRunner(str(pte), str(pte.parent / "tokenizer.json"))
    pieces: list[str] = []
    stats = []
    runner.generate(chat_prompt(pte.parent),
                    GenerationConfig(max_new_tokens=24, temperature=0.0, echo=False),
                    pieces.append, stats.append)
    text = "".join(pieces)
    assert "Paris" in text, text
    assert coherent(text)
    assert stats and stats[0].num_generated_tokens > 0


def test_onnx_folder_runs_in_onnxruntime_genai(exported):
    out, decode = exported
    folder = out / decode["onnx"]["path"]
    import onnxruntime_genai as og
    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=96, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(tokenizer.encode(chat_prompt(folder)))
    new = []
    while not generator.is_done() and len(new) < 24:
        generator.generate_next_token()
        new.append(int(generator.get_next_tokens()[0]))
    text = tokenizer.decode(new)
    assert "Paris" in text, text
    assert coherent(text)


def test_generation_parity_and_speed_reported(exported):
    _, decode = exported
    for fmt, entry in decode.items():
        parity = entry["parity"]
        assert parity["verdict"] == "pass", (fmt, parity["reason"])
        assert parity["prefill_vs_decode"]["same_top1"]
        assert parity["max_seq_len"]["overflow_refused"]
        assert entry["max_seq_len"] == 512
        assert entry["latency"]["measured"]["decode_tok_s"] > 0
        projected = entry["latency"]["projected"]["decode_tok_s"]
        assert projected["low"] <= projected["mid"] <= projected["high"]
    # int8 layers over 576/1536 inputs are MatMulNBits in blocks of 64/128: float activations,
    # so ORT reproduces the eager int4 student token for token (measured 32/32)
    assert decode["onnx"]["parity"]["tokens_judged"]
    assert decode["onnx"]["parity"]["against"]["quantized"]["identical"]


def test_generate_cli_with_text_prompt(exported):
    out, decode = exported
    done = run_cli("generate", str(out / decode["executorch"]["path"]), "--prompt", QUESTION,
                   "--chat", "--max-new-tokens", "24", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "Paris" in result["text"] and len(result["tokens"]) <= 24


@pytest.fixture(scope="module")
def coreml_int4(tmp_path_factory):
    """The int4 SmolLM2 Core ML decode package (the decode stage alone: the .pte and ONNX
    exports of the fixture above cover the rest of the CLI)."""
    from edgekit.compress import quantize
    from edgekit.llm.export import decode_parity, export_decode
    from edgekit.model import load

    student = load("smollm2-135m")
    plan = quantize(student, "int4")
    out = tmp_path_factory.mktemp("smollm2-coreml")
    (artifact,) = export_decode(student, plan, ("coreml",), out, 512)
    return artifact, decode_parity(artifact, student, plan, 512)


def test_coreml_int4_generation_parity(coreml_int4):
    artifact, parity = coreml_int4
    assert parity["verdict"] == "pass", parity["reason"]
    assert (parity["emulated"], parity["precision"]) == (True, "fp16")
    assert not artifact.notes["plan"]["kept_float"]
    assert parity["max_seq_len"]["overflow_refused"]


def test_coreml_generate_cli_answers(coreml_int4):
    artifact, _ = coreml_int4
    done = run_cli("generate", str(artifact.path), "--prompt", QUESTION, "--chat",
                   "--max-new-tokens", "24", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["emulated"] is True
    assert "Paris" in result["text"] and coherent(result["text"]), result["text"]


@pytest.fixture(scope="module")
def fp32_decode(tmp_path_factory):
    """SmolLM2's fp32 decode .pte and genai folder (the decode stage alone, max_seq_len 512),
    each with its generation parity against the eager fp32 student."""
    from edgekit.compress import quantize
    from edgekit.llm.export import decode_parity, export_decode
    from edgekit.model import load

    student = load("smollm2-135m")
    plan = quantize(student, "none")
    out = tmp_path_factory.mktemp("smollm2-fp32")
    artifacts = export_decode(student, plan, ("executorch", "onnx"), out, 512)
    return {a.format: decode_parity(a, student, plan, 512) for a in artifacts}


@pytest.mark.parametrize("fmt", ["executorch", "onnx"])
def test_fp32_decode_reproduces_eager_greedy_generation(fp32_decode, fmt):
    parity = fp32_decode[fmt]
    assert parity["verdict"] == "pass", parity["reason"]
    assert parity["tokens_judged"]
    assert parity["against"]["fp32"] == {"agreement": 1.0, "first_divergence": None,
                                         "compared": 32, "identical": True}
    assert parity["prefill_vs_decode"]["same_top1"]
    assert parity["max_seq_len"]["overflow_refused"]
