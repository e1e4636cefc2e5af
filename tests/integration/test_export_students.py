"""Tiny real-architecture students exported to every format for real, through the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from helpers import read_report, run_cli

FP32_MAX_REL = 1e-4
FP16_MAX_REL = 5e-3  # measured 5e-4 to 1.3e-3 (fp16's unit roundoff is 4.9e-4)


@pytest.fixture(scope="module")
def exported(student_dir, tmp_path_factory):
    """Export each kind of student once for --target all and return (out folder, result)."""
    results: dict[str, tuple[Path, object]] = {}

    def get(kind: str) -> tuple[Path, dict]:
        if kind not in results:
            out = tmp_path_factory.mktemp("out") / kind
            result = run_cli("export", "--model", str(student_dir(kind)), "--target", "all",
                             "--quant", "none", "--forward-only", "--out", str(out))
            assert result.returncode == 0, result.stderr[-3000:]
            results[kind] = (out, result)
        return results[kind][0], read_report(results[kind][0])

    return get


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["llama", "qwen2", "bert", "resnet"])
def test_every_format_is_written_and_runs_at_fp32_parity(exported, kind: str):
    out, report = exported(kind)
    assert report["schema_version"] == 1
    assert report["targets"] == ["android", "ios", "web"]
    placed = {(a["target"], a["format"]) for a in report["artifacts"]}
    assert placed == {("android", "executorch"), ("android", "onnx"), ("android", "ort"),
                      ("ios", "coreml"), ("ios", "executorch"), ("web", "onnx")}
    for item in report["artifacts"]:
        path = out / item["path"]
        assert path.exists(), item["path"]
        suffix = {"executorch": "pte", "onnx": "onnx", "ort": "ort", "coreml": "mlpackage"}
        assert item["path"] == f"{item['target']}/tiny-{kind}.{suffix[item['format']]}"
        assert item["bytes"] > 0 and item["quant"] == "none"
        parity = item["parity"]
        assert parity["verdict"] == "pass", parity
        assert parity["metrics"]["cosine_min"] > 0.9999
        if item["format"] == "coreml":  # the emulator in fp16, as the iPhone's Neural Engine
            assert (parity["runtime"], parity["emulated"], parity["precision"]) == \
                ("coreml-emulator", True, "fp16")
            assert 1e-5 < parity["metrics"]["max_rel"] <= FP16_MAX_REL
            continue
        if not path.is_dir():
            assert item["sha256"] == _sha256(path)
        assert parity["metrics"]["max_rel"] <= FP32_MAX_REL
    assert report["summary"] == {"pass": 6, "fail": 0, "not_run": 0}
    assert (out / "report.md").read_text().startswith(f"# edgekit report: tiny-{kind}")
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_decoder_logits_agree_on_top1_and_record_the_export_notes(exported):
    _, report = exported("llama")
    by_format = {a["format"]: a for a in report["artifacts"] if a["target"] != "web"}
    assert by_format["executorch"]["parity"]["metrics"]["top1_agreement"] == 1.0
    assert by_format["executorch"]["notes"]["backend"] == "XNNPACK"
    assert by_format["executorch"]["notes"]["delegated_subgraphs"] >= 1
    usability = by_format["onnx"]["notes"]["mobile_usability"]
    assert usability["ran"] is True
    assert set(usability["suitability"]) >= {"NNAPI", "CoreML MLProgram"}
    assert by_format["coreml"]["notes"] == {
        "minimum_deployment_target": "iOS18", "compute_precision": "float16",
        "fp32_ops": {"pow": 5, "reduce_mean": 5, "add": 5, "rsqrt": 5}}  # 5 RMSNorms
    assert report["model"]["inputs"] == [{"name": "input_ids", "shape": [1, 64],
                                          "dtype": "int64"}]
    assert report["parity_inputs"] == {"kind": "corpus", "samples": 2, "seed": 0}


def test_encoder_inputs_and_outputs(exported):
    _, report = exported("bert")
    assert report["model"]["task"] == "feature-extraction"
    assert [i["name"] for i in report["model"]["inputs"]] == ["input_ids", "attention_mask"]
    assert report["model"]["outputs"] == ["last_hidden_state"]


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_coreml_package_targets_ios18_with_named_io(exported, kind: str):
    import coremltools as ct

    out, report = exported(kind)
    model = ct.models.MLModel(str(out / "ios" / f"tiny-{kind}.mlpackage"),
                              skip_model_load=True)
    spec = model.get_spec()
    assert spec.specificationVersion >= 9  # iOS 18
    assert [i.name for i in spec.description.input] == [i["name"] for i in
                                                        report["model"]["inputs"]]
    assert [o.name for o in spec.description.output] == report["model"]["outputs"]
    assert spec.WhichOneof("Type") == "mlProgram"


def test_edgekit_run_reproduces_the_artifacts_outputs(exported, tmp_path: Path):
    out, _ = exported("llama")
    ids = np.frombuffer(b"The river rose slowly through the night, and by morning the lower f",
                        dtype=np.uint8)[:64].astype(np.int64)[None]
    np.savez(tmp_path / "in.npz", input_ids=ids)
    results = {}
    for artifact in ("android/tiny-llama.pte", "android/tiny-llama.onnx",
                     "android/tiny-llama.ort"):
        result = run_cli("run", str(out / artifact), "--inputs", str(tmp_path / "in.npz"),
                         "--out", str(tmp_path / "o.npz"))
        assert result.returncode == 0, result.stderr
        assert "logits: shape [1, 64, 256] float32" in result.stdout
        with np.load(tmp_path / "o.npz") as data:
            results[artifact] = data["logits"]
    values = list(results.values())
    for other in values[1:]:
        np.testing.assert_allclose(other, values[0], rtol=1e-4, atol=1e-5)


def test_edgekit_run_on_coreml_runs_the_emulator_at_either_precision(exported, tmp_path: Path):
    out, _ = exported("llama")
    np.savez(tmp_path / "in.npz", input_ids=np.arange(64, dtype=np.int64)[None])
    logits = {}
    for artifact, precision in (("ios/tiny-llama.mlpackage", "fp16"),
                                ("ios/tiny-llama.mlpackage", "fp32"),
                                ("android/tiny-llama.onnx", None)):
        result = run_cli("run", str(out / artifact), "--inputs", str(tmp_path / "in.npz"),
                         "--out", str(tmp_path / "o.npz"),
                         *(("--precision", precision) if precision else ()))
        assert result.returncode == 0, result.stderr
        dtype = "float16" if precision == "fp16" else "float32"
        assert result.stdout == f"logits: shape [1, 64, 256] {dtype}\n"
        with np.load(tmp_path / "o.npz") as data:
            logits[precision] = data["logits"].astype(np.float64)
    scale = np.abs(logits[None]).max()
    # fp32 compute of the package's fp16 weights; fp16 compute on top (measured 2e-4, 8e-4)
    assert np.abs(logits["fp32"] - logits[None]).max() / scale < 1e-3
    assert 1e-5 < np.abs(logits["fp16"] - logits[None]).max() / scale < FP16_MAX_REL


@pytest.mark.parametrize("kind", ["llama", "bert", "resnet"])
def test_report_matches_the_documented_schema(exported, kind: str):
    import json

    import jsonschema

    schema = json.loads((Path(__file__).parents[2] / "docs" / "report.schema.json").read_text())
    _, report = exported(kind)
    jsonschema.Draft202012Validator(schema).validate(report)
