"""The README's main job on the real built-in student (SmolLM2-135M-Instruct): minutes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import read_report, run_cli


@pytest.mark.slow
def test_readme_export_for_ios_on_the_default_student(tmp_path: Path):
    result = run_cli("export", "--target", "ios", cwd=tmp_path, timeout=3000)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "edgekit-out" / "smollm2-135m"
    report = read_report(out)
    assert report["model"]["name"] == "smollm2-135m"
    assert report["model"]["task"] == "text-generation"
    assert report["model"]["parameters"] == 134_515_008
    assert report["model"]["source"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert report["parity_inputs"]["kind"] == "corpus"
    by_format = {a["format"]: a for a in report["artifacts"]}
    assert set(by_format) == {"coreml", "executorch"}
    executorch = by_format["executorch"]["parity"]
    assert executorch["verdict"] == "pass"
    assert executorch["metrics"]["max_rel"] <= 1e-4
    assert executorch["metrics"]["top1_agreement"] == 1.0
    coreml = by_format["coreml"]["parity"]  # the emulator in fp16, norms kept in fp32
    assert (coreml["verdict"], coreml["runtime"], coreml["precision"]) == \
        ("pass", "coreml-emulator", "fp16")
    assert coreml["metrics"]["top1_agreement"] >= 0.97  # measured 0.992
    assert (out / "ios" / "smollm2-135m.pte").stat().st_size > 500_000_000
    assert (out / "ios" / "smollm2-135m.mlpackage" / "Manifest.json").is_file()
    # Backend noise (torchao's .so lines, coremltools' warnings) stays out of edgekit's output.
    assert "Failed to load" not in result.stderr + result.stdout
    foreign = [line for line in result.stderr.splitlines() if not line.startswith("[edgekit]")]
    assert foreign == []
