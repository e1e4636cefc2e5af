"""Ten of docs/models.md's architecture families, exported to every format of
`--target all` at fp32 in the default suite (bench/coverage.py measures them all), and the
messages of the students edgekit cannot check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from edgekit import load, load_config, run
from edgekit.errors import StudentError


def _bench_module():
    """bench/coverage.py (by path: the name `coverage` is also a PyPI package)."""
    path = Path(__file__).parents[2] / "bench" / "coverage.py"
    spec = importlib.util.spec_from_file_location("edgekit_bench_coverage", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


coverage = _bench_module()

# Decoders, encoders, vision and audio; each one exercises a path the others do not:
# qwen3 (q/k norms), gpt2 (Conv1D, learned positions), deberta-v2 (reads the 2D padding
# mask), vit (patch attention), regnet (BatchNorm, settled as training leaves it), dinov2
# (image features), wav2vec2 (waveform), whisper (log-mel encoder of an encoder-decoder).
FAMILIES = ("llama", "qwen3", "gpt2", "bert", "deberta-v2", "vit", "regnet", "dinov2",
            "wav2vec2", "whisper")
FORMATS = {("android", "executorch"), ("android", "onnx"), ("android", "ort"),
           ("ios", "coreml"), ("ios", "executorch"), ("web", "onnx")}


def _export(folder: Path, out: Path) -> dict:
    config = load_config(None, [f'model.path="{folder}"', 'export.targets=["all"]',
                                f'export.out="{out}"', 'compress.quant="none"',
                                "validate.samples=1", "export.decode=false"])
    return run(config)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_exports_to_every_format_at_fp32_parity(name: str, tmp_path: Path):
    family = coverage.BY_NAME[name]
    report = _export(coverage.build_student(family, tmp_path / name), tmp_path / "out")
    verdicts = {(a["target"], a["format"]): a["parity"] for a in report["artifacts"]}
    assert set(verdicts) == FORMATS
    failed = {key: p["reason"] for key, p in verdicts.items() if p["verdict"] != "pass"}
    assert not failed
    assert report["model"]["task"] == ("text-generation" if family.group == "decoder" else
                                       "image-classification" if family.model.endswith(
                                           "ForImageClassification") else "feature-extraction")


def test_audio_students_take_a_waveform_or_log_mel_features(tmp_path: Path):
    wav2vec2 = load(coverage.build_student(coverage.BY_NAME["wav2vec2"], tmp_path / "w"))
    whisper = load(coverage.build_student(coverage.BY_NAME["whisper"], tmp_path / "h"))
    assert [(s.name, s.shape) for s in wav2vec2.inputs] == [("input_values", (1, 16000))]
    # Whisper's encoder only: 16 mel bins x 2 frames per position (max_source_positions 32)
    assert [(s.name, s.shape) for s in whisper.inputs] == [("input_features", (1, 16, 64))]
    assert whisper.parameter_count() < 30_000  # the decoder is not part of the student


def test_a_model_that_reads_the_mask_otherwise_gets_its_own_padding_mask(tmp_path: Path):
    deberta = load(coverage.build_student(coverage.BY_NAME["deberta-v2"], tmp_path / "d"))
    bert = load(coverage.build_student(coverage.BY_NAME["bert"], tmp_path / "b"))
    assert (deberta.module.padding_mask, bert.module.padding_mask) == (True, False)


def test_a_student_whose_own_forward_fails_is_told_so():
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ torch.ones(3, 3)

    with pytest.raises(StudentError) as error:
        load(Broken(), example_inputs=(torch.ones(2, 2),), name="broken")
    assert str(error.value).startswith("broken: the student itself fails in PyTorch "
                                       "(RuntimeError: mat1 and mat2 shapes cannot be")


def test_an_fp16_failure_from_tiny_outputs_explains_the_range(tmp_path: Path):
    from edgekit.compress.quantize import quantize
    from edgekit.export import export
    from edgekit.model import sample_inputs
    from edgekit.targets import get_target
    from edgekit.validate import measure, reference_outputs, verdict_under

    # random-init MobileNetV2 without settled BatchNorm: its logits end near 4e-27
    folder = coverage.build_student(coverage.BY_NAME["mobilenet_v2"], tmp_path / "raw",
                                    settle=False)
    student = load(folder)
    samples = sample_inputs(student, 1)
    [artifact] = export(student, quantize(student, "none"), ("coreml",), tmp_path / "out")
    measured = measure(artifact, student, samples, reference_outputs(student, samples), "fp16")
    verdict = verdict_under(measured, get_target("ios").tolerance("none", "coreml"))
    assert verdict.verdict == "fail"
    assert "; fp16 range: the student's outputs peak at 4.3e-27, below fp16's smallest " \
           "normal (about 6.1e-05), where the GPU and Neural Engine flush values to zero" \
           in verdict.reason
    assert verdict.reason.endswith("(--target android,web)")
