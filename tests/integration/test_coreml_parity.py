"""Core ML parity from the emulator: labelled as emulated, fp16 overflow named in the verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import edgekit
from edgekit.compress.quantize import QuantPlan
from edgekit.devices import get_device
from edgekit.errors import EdgekitError
from edgekit.export import export
from edgekit.runtimes import coreml_precision, open_session
from edgekit.targets import Tolerance
from edgekit.validate.parity import measure, reference_outputs, verdict_under


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    """A linear layer whose outputs (4 x 30000 = 120000) exceed fp16's 65504."""
    linear = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        linear.weight.fill_(30000.0)
    student = edgekit.load(torch.nn.Sequential(linear).eval(),
                           example_inputs=(torch.ones(1, 4),), name="huge")
    (artifact,) = export(student, QuantPlan("none"), ("coreml",),
                         tmp_path_factory.mktemp("huge"))
    samples = [{"input_0": np.ones((1, 4), np.float32)}]
    return artifact, student, samples, reference_outputs(student, samples)


def test_fp16_overflow_fails_parity_naming_the_op(huge) -> None:
    artifact, student, samples, reference = huge
    measured = measure(artifact, student, samples, reference, "fp16")
    verdict = verdict_under(measured, Tolerance(max_rel=1e-2))
    assert verdict.verdict == "fail"
    assert verdict.reason.startswith("fp16 overflow in linear_0")
    assert "(linear)" in verdict.reason and "NaN or Inf" in verdict.reason
    report = verdict.to_json()
    assert (report["runtime"], report["emulated"], report["precision"]) == \
        ("coreml-emulator", True, "fp16")
    assert report["overflow"] == [measured.overflow[0]]


def test_fp32_emulation_of_the_same_package_passes(huge) -> None:
    artifact, student, samples, reference = huge
    verdict = verdict_under(measure(artifact, student, samples, reference, "fp32"),
                            Tolerance(max_rel=1e-4))
    assert (verdict.verdict, verdict.precision, verdict.overflow) == ("pass", "fp32", ())


def test_open_session_runs_core_ml_in_the_emulator_and_precision_is_core_ml_only(
        huge, tmp_path: Path) -> None:
    artifact, _, samples, _ = huge
    session = open_session(artifact.path)
    assert session.precision == "fp16"  # type: ignore[attr-defined]
    assert np.isinf(session.run(samples[0])["output_0"]).all()
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(EdgekitError, match="precision applies to Core ML packages only"):
        open_session(tmp_path / "model.onnx", precision="fp16")


def test_precision_follows_the_device() -> None:
    assert coreml_precision(get_device("iphone-15-pro")) == "fp16"  # Neural Engine runs Core ML
    assert coreml_precision(get_device("pixel-8")) == "fp32"  # no Core ML accelerator
