"""The Core ML emulator against the eager fp32 student, for every tiny architecture.

fp32 mode on an fp32-compute package must match eager within 1e-4 relative error; fp16 mode
on edgekit's default (fp16-compute) package must show an error of fp16 size; activations above
65504 must be flagged in fp16 mode and be fine in fp32 mode.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import edgekit
from edgekit.compress.quantize import QuantPlan, quantize
from edgekit.export import coreml, export, trace
from edgekit.model.samples import sample_inputs
from edgekit.model.student import Student
from edgekit.runtimes.coreml import CoreMLEmulatorSession
from edgekit.runtimes.coreml.program import load_program
from edgekit.validate.parity import reference_outputs

FP32_MAX_REL = 1e-4
FP16_MAX_REL = 3e-2
FP16_MIN_REL = 1e-6  # below this the run was not really fp16
KINDS = ["llama", "qwen2", "bert", "resnet", "cnn"]


class SmallCNN(torch.nn.Module):
    """Conv, batch norm (with real running statistics), max and average pooling, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
            torch.nn.GELU(), torch.nn.AvgPool2d(2), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten())
        self.head = torch.nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _small_cnn() -> Student:
    torch.manual_seed(0)
    model = SmallCNN().eval()
    norm = model.features[1]
    norm.running_mean.uniform_(-0.5, 0.5)
    norm.running_var.uniform_(0.5, 2.0)
    return edgekit.load(model, example_inputs=(torch.rand(1, 3, 32, 32),), name="small-cnn")


def _by_position(session: CoreMLEmulatorSession, sample: dict[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
    """The sample keyed by the package's input names, in order (an nn.Module student's Core
    ML inputs are named by torch.export, e.g. `inputs_0`, not by the student's specs)."""
    return dict(zip(session.input_names, sample.values(), strict=True))


def _relative_error(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> float:
    worst = 0.0
    for name, ref in reference.items():
        diff = np.abs(actual[name].astype(np.float64) - ref.astype(np.float64)).max()
        worst = max(worst, float(diff / np.abs(ref).max()))
    return worst


@pytest.fixture(scope="module")
def packages(student_dir, tmp_path_factory):
    """Per kind: (fp16 package from edgekit.export, fp32-compute package, samples, eager)."""
    built: dict[str, tuple[Path, Path, list, list]] = {}

    def get(kind: str) -> tuple[Path, Path, list, list]:
        if kind not in built:
            student = _small_cnn() if kind == "cnn" else edgekit.load(student_dir(kind))
            out = tmp_path_factory.mktemp(f"coreml-{kind}")
            program = trace(student)
            (artifact,) = export(student, QuantPlan("none"), ("coreml",), out,
                                         program=program)
            fp32 = out / f"{student.name}-fp32.mlpackage"
            coreml.lower(copy.deepcopy(program), student, fp32, precision="float32")
            samples = sample_inputs(student, 2)
            built[kind] = (artifact.path, fp32, samples, reference_outputs(student, samples))
        return built[kind]

    return get


@pytest.mark.parametrize("kind", KINDS)
def test_fp32_mode_matches_the_eager_student(packages, kind: str) -> None:
    _, fp32_package, samples, references = packages(kind)
    session = CoreMLEmulatorSession(fp32_package, "fp32")
    for sample, reference in zip(samples, references, strict=True):
        actual = session.run(_by_position(session, sample))
        assert set(actual) == set(reference)
        assert _relative_error(reference, actual) < FP32_MAX_REL
        assert session.overflow_ops == ()


@pytest.mark.parametrize("kind", KINDS)
def test_fp16_mode_on_the_default_package_has_fp16_sized_error(packages, kind: str) -> None:
    fp16_package, _, samples, references = packages(kind)
    session = CoreMLEmulatorSession(fp16_package, "fp16")
    for sample, reference in zip(samples, references, strict=True):
        actual = session.run(_by_position(session, sample))
        assert all(value.dtype == np.float16 for value in actual.values())
        assert FP16_MIN_REL < _relative_error(reference, actual) < FP16_MAX_REL
        assert session.overflow_ops == ()


def test_activations_above_fp16_range_are_flagged_in_fp16_mode_only(tmp_path: Path) -> None:
    linear = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        linear.weight.fill_(30000.0)  # representable in fp16; four of them sum to 120000
    model = torch.nn.Sequential(linear, torch.nn.ReLU()).eval()
    student = edgekit.load(model, example_inputs=(torch.ones(1, 4),), name="huge")
    (artifact,) = export(student, QuantPlan("none"), ("coreml",), tmp_path)
    x = {"huge_input": np.ones((1, 4), dtype=np.float32)}

    fp32 = CoreMLEmulatorSession(artifact.path, "fp32")
    assert next(iter(fp32.run(_by_position(fp32, x)).values())).tolist() == [[120000.0] * 4]
    assert fp32.overflow_ops == ()

    fp16 = CoreMLEmulatorSession(artifact.path, "fp16")
    assert np.isinf(next(iter(fp16.run(_by_position(fp16, x)).values()))).all()
    assert len(fp16.overflow_ops) == 1 and fp16.overflow_ops[0].endswith("(linear)")


def test_int4_weights_of_a_real_export_match_the_quantized_eager_student(student_dir,
                                                                         tmp_path: Path) -> None:
    student = edgekit.load(student_dir("llama"))
    plan = quantize(student, "int4")
    package = tmp_path / "int4-fp32.mlpackage"
    coreml.lower(trace(student), student, package, precision="float32", plan=plan)
    op_types = [op.op_type for op in load_program(package).operations]
    assert op_types.count("constexpr_blockwise_shift_scale") == len(
        [layer for layer in plan.layers if layer.weight is not None])
    sample = sample_inputs(student, 1)[0]
    quantized = dataclasses.replace(student, module=plan.eager_module(student.module))
    (reference,) = reference_outputs(quantized, [sample])
    session = CoreMLEmulatorSession(package, "fp32")
    assert _relative_error(reference, session.run(_by_position(session, sample))) < FP32_MAX_REL


def test_the_default_fp16_export_keeps_rmsnorm_statistics_in_fp32(packages) -> None:
    fp16_package, _, _, _ = packages("llama")
    declared = {op.name: (op.op_type, op.output_types[0].dtype)
                for op in load_program(fp16_package).operations}
    kept = sorted(t for t, dtype in declared.values() if dtype == "fp32" and t != "cast")
    # two decoder layers x (input norm, post-attention norm) + the final norm: 5 norms
    assert kept == ["add"] * 5 + ["pow"] * 5 + ["reduce_mean"] * 5 + ["rsqrt"] * 5
    assert {t for t, dtype in declared.values() if dtype == "fp16"} >= {"linear", "mul",
                                                                        "softmax"}


@pytest.mark.slow
def test_smollm2_matches_eager_in_fp32_and_fp16_only_with_the_rmsnorm_kept_fp32(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    student = edgekit.load("smollm2-135m")
    program = trace(student)
    (sample,) = sample_inputs(student, 1)
    (reference,) = reference_outputs(student, [sample])
    package = tmp_path / "smollm2-fp32.mlpackage"
    coreml.lower(copy.deepcopy(program), student, package, precision="float32")
    fp32 = CoreMLEmulatorSession(package, "fp32")
    assert _relative_error(reference, fp32.run(sample)) < FP32_MAX_REL

    package = tmp_path / "smollm2.mlpackage"  # edgekit's default: fp16, norms in fp32
    coreml.lower(copy.deepcopy(program), student, package)
    fp16 = CoreMLEmulatorSession(package, "fp16")
    logits = fp16.run(sample)["logits"].astype(np.float32)
    assert fp16.overflow_ops == ()
    assert (logits.argmax(-1) == reference["logits"].argmax(-1)).mean() > 0.95
    assert _relative_error(reference, {"logits": logits}) < FP16_MAX_REL

    # coremltools' plain fp16 preset: SmolLM2's residual stream reaches |x| ~ 650, so
    # RMSNorm's x**2 (~4e5) exceeds fp16's 65504 and the emulator names those pow ops.
    monkeypatch.setattr(coreml, "_compute_precision", lambda ct, _: ct.precision.FLOAT16)
    package = tmp_path / "smollm2-all-fp16.mlpackage"
    coreml.lower(copy.deepcopy(program), student, package)
    fp16 = CoreMLEmulatorSession(package, "fp16")
    fp16.run(sample)
    assert fp16.overflow_ops and all(op.endswith("(pow)") for op in fp16.overflow_ops)
