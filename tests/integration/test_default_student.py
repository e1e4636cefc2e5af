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
    # 4-bit by default; measured (2 corpus samples): ExecuTorch top-1 0.672, cosine 0.959,
    # Core ML emulator 0.719, 0.968; bytes 0.18x and 0.14x of the fp32 student's 538 MB
    for fmt, parity in ((f, by_format[f]["parity"]) for f in ("executorch", "coreml")):
        assert by_format[fmt]["quant"] == "int4"
        assert parity["verdict"] == "pass", (fmt, parity)
        assert parity["metrics"]["top1_agreement"] >= 0.6
    assert by_format["coreml"]["parity"]["runtime"] == "coreml-emulator"
    fp32_bytes = 4 * report["model"]["parameters"]
    assert (out / "ios" / "smollm2-135m.pte").stat().st_size < 0.2 * fp32_bytes
    assert by_format["coreml"]["bytes"] < 0.2 * fp32_bytes
    assert (out / "ios" / "smollm2-135m.mlpackage" / "Manifest.json").is_file()
    # Backend noise (torchao's .so lines, coremltools' warnings) stays out of edgekit's output.
    assert "Failed to load" not in result.stderr + result.stdout
    foreign = [line for line in result.stderr.splitlines() if not line.startswith("[edgekit]")]
    assert foreign == []
