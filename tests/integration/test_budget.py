"""A phone's app memory budget: a run that passes it is reported as "would be killed on
<device>", never a crash; within it, the child process gives the same outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli

import edgekit
from edgekit.compress.quantize import QuantPlan
from edgekit.devices import get_device
from edgekit.export import export
from edgekit.runtimes import open_session
from edgekit.runtimes.budget import WouldBeKilled, mark_over_budget, run_under_budget
from edgekit.targets import Tolerance
from edgekit.validate.parity import measure, reference_outputs, verdict_under

PIXEL = get_device("pixel-8")
TINY = dataclasses.replace(PIXEL, app_memory_budget_mib=0.25)  # less than any session needs


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                 torch.nn.Linear(32, 4)).eval()
    student = edgekit.load(module, example_inputs=(torch.rand(1, 16),), name="small")
    (artifact,) = export(student, QuantPlan("none"), ("onnx",), tmp_path_factory.mktemp("s"))
    samples = [{"input_0": np.random.default_rng(i).random((1, 16), np.float32)}
               for i in range(2)]
    return artifact, student, samples


def test_within_budget_the_child_gives_the_in_process_outputs(small) -> None:
    artifact, _, samples = small
    run = run_under_budget(artifact.path, samples, PIXEL)
    here = open_session(artifact.path)
    for sample, outputs in zip(samples, run.outputs, strict=True):
        np.testing.assert_array_equal(outputs["output_0"], here.run(sample)["output_0"])
    assert 0 <= run.peak_mib < PIXEL.app_memory_budget_mib and run.overflow == ()


def test_over_budget_is_would_be_killed_in_the_verdict_not_a_crash(small) -> None:
    artifact, student, samples = small
    with pytest.raises(WouldBeKilled, match=r"would be killed on Google Pixel 8: memory grew "
                                            r"by \d+ MiB, above its 0.25 MiB app memory budget"):
        run_under_budget(artifact.path, samples, TINY)
    reference = reference_outputs(student, samples)
    verdict = verdict_under(measure(artifact, student, samples, reference, device=TINY),
                            Tolerance(max_rel=1e-4))
    assert verdict.verdict == "fail" and verdict.reason.startswith("would be killed on")
    verdict = verdict_under(measure(artifact, student, samples, reference, device=PIXEL),
                            Tolerance(max_rel=1e-4))
    assert verdict.verdict == "pass", verdict


def test_an_entry_measured_over_budget_fails_its_verdict() -> None:
    entry = {"parity": {"verdict": "pass", "reason": "within tolerance (max_rel)"},
             "latency": {"measured": {"over_memory_budget": True, "peak_rss_mib": 9000.0,
                                      "memory_budget_mib": 4096.0}}}
    mark_over_budget(entry, PIXEL)
    assert entry["parity"] == {
        "verdict": "fail", "reason": "would be killed on Google Pixel 8: memory grew by 9000 "
                                     "MiB, above its 4096 MiB app memory budget; parity: "
                                     "within tolerance (max_rel)"}


def test_edgekit_run_with_a_device_runs_under_its_budget(small, tmp_path: Path) -> None:
    artifact, _, samples = small
    np.savez(tmp_path / "in.npz", **samples[0])
    result = run_cli("run", str(artifact.path), "--inputs", str(tmp_path / "in.npz"),
                     "--out", str(tmp_path / "out.npz"), "--device", "pixel-8")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "output_0: shape [1, 4] float32\n"
    result = run_cli("run", str(artifact.path), "--inputs", str(tmp_path / "in.npz"),
                     "--out", str(tmp_path / "out.npz"), "--precision", "fp16")
    assert result.returncode == 2
    assert "--precision applies to Core ML packages only" in result.stderr
