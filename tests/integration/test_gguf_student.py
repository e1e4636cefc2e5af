"""The tiny GGUF student (tests/gguf_student.py) loads like the built-in one: seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gguf_student import HEADS, KV_HEADS, llama_cpp_permute, llama_weights, tiny_gguf, tokens
from helpers import read_report, run_cli

import edgekit.model


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf", seed=0)


@pytest.fixture(scope="module")
def student(gguf_path: Path) -> edgekit.model.Student:
    return edgekit.model.load(str(gguf_path))


def test_loads_runs_and_tokenizes(student):
    assert student.task == "text-generation"
    (spec,) = student.inputs
    vocab = len(tokens())
    ids = torch.randint(0, vocab, spec.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = student.module(ids)
    assert logits.shape == (*spec.shape, vocab)
    assert torch.isfinite(logits).all()

    tokenizer = student.tokenizer
    text = "Hello, the world! 123"
    ids = tokenizer.encode(text)
    assert tokenizer.convert_tokens_to_ids("Ġthe") in ids  # the embedded merges are applied
    assert tokenizer.decode(ids) == text
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<|im_start|>", "<|im_end|>")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_weights_read_back_as_written(student, gguf_path: Path):
    import gguf

    source = {name: t.numpy() for name, t in llama_weights(seed=0).items()}
    loaded = {name: t.numpy() for name, t in student.module.model.state_dict().items()}
    stored = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(gguf_path).tensors}
    q, k = "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"
    # The file holds q/k in llama.cpp's permuted layout; transformers undoes it on load.
    assert np.array_equal(stored["blk.0.attn_q.weight"], llama_cpp_permute(source[q], HEADS))
    assert np.array_equal(stored["blk.0.attn_k.weight"], llama_cpp_permute(source[k], KV_HEADS))
    assert not np.array_equal(stored["blk.0.attn_q.weight"], source[q])
    assert np.array_equal(loaded[q], source[q])
    assert np.array_equal(loaded[k], source[k])
    assert [n for n in source if not np.array_equal(loaded[n], source[n])] == []
    assert np.array_equal(loaded["lm_head.weight"], source["model.embed_tokens.weight"])  # tied


def test_exports_for_android(gguf_path: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(gguf_path), "--target", "android",
                     "--quant", "none", "--out", str(out),
                     "--set", "validate.samples=1", "--set", "export.decode=false")
    assert result.returncode == 0, result.stderr[-3000:]
    report = read_report(out)
    assert report["model"]["task"] == "text-generation"
    assert all(a["parity"]["verdict"] == "pass" for a in report["artifacts"])
