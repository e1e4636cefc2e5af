"""The Python API: nn.Module and .pt2 students, real parity inputs, the default out folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import read_report, run_cli

import edgekit
from edgekit.config import load_config


class SmallCNN(torch.nn.Module):
    """A small image classifier defined here, not in transformers."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        )
        self.head = torch.nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_module_student_exports_for_android_with_its_example_inputs(tmp_path: Path):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    student = edgekit.load(SmallCNN(), example_inputs=(image,), name="small-cnn")
    config = load_config(None, ["export.targets=['android', 'ios']",
                                f"export.out='{tmp_path / 'out'}'"])
    report = edgekit.run(config, student)
    assert report["parity_inputs"] == {"kind": "example_inputs", "samples": 1, "seed": 0}
    verdicts = {(a["target"], a["format"]): a["parity"]["verdict"] for a in report["artifacts"]}
    assert verdicts == {("android", "executorch"): "pass", ("android", "onnx"): "pass",
                        ("android", "ort"): "pass", ("ios", "coreml"): "pass",
                        ("ios", "executorch"): "pass"}
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["model"]["inputs"] == [{"name": "input_0", "shape": [1, 3, 32, 32],
                                           "dtype": "float32"}]
    assert on_disk["model"]["source"] == "torch.nn.Module (SmallCNN)"


def test_pt2_student_through_the_cli(tmp_path: Path):
    torch.manual_seed(0)
    program = torch.export.export(SmallCNN().eval(), (torch.rand(1, 3, 32, 32),))
    torch.export.save(program, tmp_path / "cnn.pt2")
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(tmp_path / "cnn.pt2"), "--target", "web",
                     "--quant", "none", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    (artifact,) = report["artifacts"]
    assert artifact["path"] == "web/cnn.onnx"
    assert artifact["parity"]["verdict"] == "pass"
    assert artifact["parity"]["metrics"]["max_rel"] <= 1e-4


def test_real_inputs_from_npz_are_used_for_parity(student_dir, tmp_path: Path):
    ids = np.arange(2 * 64, dtype=np.int64).reshape(2, 1, 64) % 256
    np.savez(tmp_path / "in.npz", input_ids=ids)
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(student_dir("qwen2")), "--target", "web",
                     "--inputs", str(tmp_path / "in.npz"), "--quant", "none", "--forward-only",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["parity_inputs"] == {"kind": "file", "source": str(tmp_path / "in.npz"),
                                       "samples": 2}
    assert report["artifacts"][0]["parity"]["verdict"] == "pass"


def test_inputs_that_do_not_fit_the_student_are_rejected(student_dir, tmp_path: Path):
    np.savez(tmp_path / "in.npz", input_ids=np.zeros((1, 7), dtype=np.int64))
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(student_dir("qwen2")), "--target", "web",
                     "--inputs", str(tmp_path / "in.npz"), "--out", str(out))
    assert result.returncode == 2
    assert "input 'input_ids' has shape [1, 7], the student takes [1, 64]" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("task", ["fill-mask", "text-classification"])
def test_encoder_heads_export(task: str, tmp_path: Path):
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=32,
                        num_labels=3)
    model_class = BertForMaskedLM if task == "fill-mask" else BertForSequenceClassification
    model_class(config).eval().save_pretrained(tmp_path / "student")
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(tmp_path / "student"), "--target", "web",
                     "--quant", "none", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["task"] == task
    assert report["model"]["outputs"] == ["logits"]
    metrics = report["artifacts"][0]["parity"]["metrics"]
    assert metrics["top1_agreement"] == 1.0 and metrics["max_rel"] <= 1e-4


def test_default_out_folder_is_named_after_the_student(student_dir, tmp_path: Path):
    result = run_cli("export", "--model", str(student_dir("llama")), "--target", "web",
                     "--forward-only", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "edgekit-out" / "tiny-llama" / "web" / "tiny-llama.onnx").is_file()
    assert "1 passed, 0 failed, 0 not run" in result.stdout
    # targets quantize to 4 bits unless told otherwise
    (artifact,) = read_report(tmp_path / "edgekit-out" / "tiny-llama")["artifacts"]
    assert artifact["quant"] == "int4"


def test_sharded_safetensors_folder(tmp_path: Path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    LlamaForCausalLM(config).eval().save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    shards = sorted((tmp_path / "sharded").glob("*.safetensors"))
    assert len(shards) > 1
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(tmp_path / "sharded"), "--target", "web",
                     "--forward-only", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["artifacts"][0]["parity"]["verdict"] == "pass"
