"""`edgekit bundle`: manifests valid against the schema, golden vectors that reproduce in
edgekit's runtimes, paths that cannot leave the bundle, one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekit.bundle import read_manifest, verify_bundle
from edgekit.bundle.golden import verify_bundled_program
from edgekit.cli import main
from edgekit.errors import EdgekitError

REPO = Path(__file__).parents[2]
SCHEMA = json.loads((REPO / "docs" / "bundle-manifest.schema.json").read_text())
FORMATS = {"ios": ["coreml", "executorch"], "android": ["executorch", "onnx", "ort"],
           "web": ["onnx"]}


@pytest.mark.parametrize("app", ["ios", "android", "web"])
def test_bundle_holds_the_apps_artifacts_and_a_valid_manifest(bundles, llama_export, app):
    import jsonschema

    manifest = read_manifest(bundles[app])
    jsonschema.validate(manifest, SCHEMA)
    assert manifest["app"] == app
    assert [a["format"] for a in manifest["artifacts"]] == FORMATS[app]
    report = json.loads((llama_export / "report.json").read_text())
    exported = {(a["target"], a["format"]): a for a in report["artifacts"]}
    for item in manifest["artifacts"]:
        source = exported[(app, item["format"])]
        assert item["sha256"] == source["sha256"] and item["parity"] == source["parity"]
        assert (bundles[app] / item["path"]).exists()
        assert [s["name"] for s in item["inputs"]] == ["input_ids"]
        assert [s["name"] for s in item["outputs"]] == ["logits"]
        assert item["outputs"][0]["shape"] == [1, 64, 256]
        assert item["self_test"]["host"]["verdict"] == "pass", item["self_test"]
    # Core ML takes int32 ids and returns fp16 (read from the package, not assumed).
    if app == "ios":
        coreml = manifest["artifacts"][0]
        assert (coreml["inputs"][0]["dtype"], coreml["outputs"][0]["dtype"]) == ("int32",
                                                                                  "float16")
    # The tiny student has no tokenizer.json: the apps encode text as UTF-8 bytes.
    pre = manifest["preprocessing"]
    assert (pre["kind"], pre["tokenizer"], pre["seq_len"], pre["vocab_size"]) == (
        "text", "bytes", 64, 256)
    assert pre["special_ids"] == {"bos": 1, "eos": 2}
    assert manifest["postprocessing"] == {"kind": "next_token", "output": "logits",
                                          "decoding": "greedy", "position": "last_token"}
    assert manifest["summary"] == {"pass": len(FORMATS[app]), "fail": 0, "not_run": 0}


def test_golden_vectors_reproduce_in_edgekits_runtimes(bundles):
    """Re-run every bundle's golden inputs from the bundle folder: ExecuTorch, ONNX Runtime
    (.onnx and .ort) and the Core ML emulator each match the golden outputs."""
    for app, bundle in bundles.items():
        results = verify_bundle(bundle)
        runtimes = [r["runtime"].split()[0] for r in results]
        assert runtimes == {"ios": ["edgekit", "executorch"],
                            "android": ["executorch", "onnxruntime", "onnxruntime"],
                            "web": ["onnxruntime"]}[app]
        for result in results:
            assert result["verdict"] == "pass", (app, result)
            assert result["metrics"]["top1_agreement"] == 1.0
    # The golden input is the parity corpus through the bytes tokenizer: printable text.
    manifest = read_manifest(bundles["web"])
    entry = manifest["golden"]["samples"][0]["inputs"][0]
    ids = np.fromfile(bundles["web"] / entry["path"], dtype="<i8")
    text = bytes(ids.astype(np.uint8)).decode()
    assert ids.shape == (64,) and sum(c.isalpha() or c == " " for c in text) > 48, text


def test_executorch_bundled_program_checks_the_golden_outputs(bundles, tmp_path):
    manifest = read_manifest(bundles["android"])
    bundled = manifest["bundled_program"]
    assert bundled["program"] == "model/tiny-llama.pte" and bundled["host"]["verdict"] == "pass"
    verify_bundled_program(bundles["android"] / bundled["path"], 1, 0.0, bundled["atol"])
    # A wrong expected output is caught by ExecuTorch's own check.
    samples = manifest["golden"]["samples"]
    broken = _copy(bundles["android"], tmp_path / "broken")
    golden = broken / samples[0]["outputs"][0]["path"]
    values = np.fromfile(golden, dtype="<f4")
    values[7] += 1.0
    values.tofile(golden)
    from edgekit.bundle.golden import read_tensor, write_bundled_program

    inputs = [{e["name"]: read_tensor(broken, e) for e in s["inputs"]} for s in samples]
    outputs = [{e["name"]: read_tensor(broken, e) for e in s["outputs"]} for s in samples]
    write_bundled_program(broken / bundled["program"], broken / bundled["path"], inputs, outputs,
                          ["input_ids"], ["logits"])
    with pytest.raises(EdgekitError, match="bundled program check failed"):
        verify_bundled_program(broken / bundled["path"], 1, 0.0, bundled["atol"])


def test_damaged_weights_fail_the_host_self_test(bundles, tmp_path):
    bundle = _copy(bundles["web"], tmp_path / "web")
    manifest = read_manifest(bundle)
    model = bundle / manifest["artifacts"][0]["path"]
    _damage_onnx_weights(model)
    with pytest.raises(EdgekitError, match="sha256 differs from the manifest"):
        verify_bundle(bundle)
    # Even with a manifest that vouches for the damaged file, the numbers give it away.
    from edgekit.export import Artifact

    manifest["artifacts"][0]["sha256"] = Artifact("onnx", model, "", "", (), ()).sha256()
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    [result] = verify_bundle(bundle)
    assert result["verdict"] == "fail" and "max_rel" in result["reason"]


def _damage_onnx_weights(path: Path) -> None:
    """Scale the largest initializer (the embedding) by 1.5: a file that loads, and is wrong."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    largest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    largest.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(largest) * 1.5, largest.name))
    onnx.save(model, str(path))


def _copy(bundle: Path, dest: Path) -> Path:
    shutil.copytree(bundle, dest)
    return dest


@pytest.mark.parametrize("bad", ["../outside.onnx", "/etc/passwd", "model/../../x.onnx",
                                 "model\\..\\x.onnx", ".hidden/x.onnx", ""])
def test_a_manifest_path_outside_the_bundle_is_refused(bundles, tmp_path, bad):
    bundle = _copy(bundles["web"], tmp_path / "evil")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["golden"]["samples"][0]["inputs"][0]["path"] = bad
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgekitError, match="escapes the bundle") as caught:
        read_manifest(bundle)
    assert "\n" not in str(caught.value)


def test_a_symlink_out_of_the_bundle_is_refused(bundles, tmp_path):
    bundle = _copy(bundles["web"], tmp_path / "evil")
    manifest = json.loads((bundle / "manifest.json").read_text())
    (tmp_path / "secret.onnx").write_bytes(b"not yours")
    (bundle / "model" / "link.onnx").symlink_to(tmp_path / "secret.onnx")
    manifest["artifacts"][0]["path"] = "model/link.onnx"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgekitError, match="resolves outside the bundle"):
        read_manifest(bundle)


def test_a_report_path_outside_the_export_is_refused(llama_export, tmp_path, capsys):
    out = _copy(llama_export, tmp_path / "out")
    report = json.loads((out / "report.json").read_text())
    for entry in report["artifacts"]:
        if entry["target"] == "web":
            entry["path"] = "../../etc/passwd"
    (out / "report.json").write_text(json.dumps(report))
    assert main(["bundle", str(out), "--app", "web", "--dest", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "escapes the bundle" in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()


def test_bad_input_is_one_line_and_writes_nothing(llama_export, tmp_path, capsys):
    dest = tmp_path / "dest"
    no_report = tmp_path / "empty"
    no_report.mkdir()
    only_android = _copy(llama_export, tmp_path / "android-only")
    report = json.loads((only_android / "report.json").read_text())
    report["artifacts"] = [a for a in report["artifacts"] if a["target"] == "android"]
    (only_android / "report.json").write_text(json.dumps(report))
    changed = _copy(llama_export, tmp_path / "changed")
    with (changed / "web" / "tiny-llama.onnx").open("ab") as handle:
        handle.write(b"\0")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    cases = [
        ([str(tmp_path / "missing"), "--app", "web"], "no such export folder"),
        ([str(no_report), "--app", "web"], "no report.json"),
        ([str(only_android), "--app", "web"], "target 'web' was not exported (exported: android)"),
        ([str(llama_export), "--app", "watch"], "unknown app 'watch'"),
        ([str(changed), "--app", "web"], "sha256 differs from report.json"),
    ]
    for args, message in cases:
        assert main(["bundle", *args, "--dest", str(dest)]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("edgekit: error: ") and message in err and err.count("\n") == 1
        assert not dest.exists()
    assert main(["bundle", str(llama_export), "--app", "web", "--dest", str(full)]) == 2
    assert "--dest is not empty" in capsys.readouterr().err
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_cli_writes_a_bundle(llama_export, tmp_path, capsys):
    dest = tmp_path / "b"
    assert main(["bundle", str(llama_export), "--app", "web", "--dest", str(dest),
                 "--samples", "1"]) == 0
    out = capsys.readouterr().out
    assert "model/tiny-llama.onnx: self-test on host pass (onnxruntime" in out
    assert f"bundle for web: {dest / 'manifest.json'} (1 passed, 0 failed, 0 not run)" in out
    assert len(read_manifest(dest)["golden"]["samples"]) == 1
    assert main(["bundle", str(llama_export), "--app", "web", "--dest", str(dest),
                 "--samples", "0"]) == 2
    assert "--samples 0" in capsys.readouterr().err

