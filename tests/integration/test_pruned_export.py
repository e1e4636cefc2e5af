"""--prune end to end: structured pruning shrinks every format's artifact, the pruned
student is saved as a folder transformers loads, and the report records what was removed."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from helpers import run_cli

from edgekit.model import load

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "report.schema.json").read_text())


@pytest.fixture(scope="module")
def exports(student_dir, tmp_path_factory) -> dict[str, dict]:
    model = student_dir("llama")
    reports = {}
    for name, spec, targets in (("dense", "", "android,ios"), ("pruned", "mlp=0.5", "android,ios"),
                                ("sparse", "unstructured=0.5", "ios")):
        out = tmp_path_factory.mktemp("prune") / name
        result = run_cli("export", "--model", str(model), "--target", targets,
                         "--prune", spec, "--quant", "none", "--forward-only", "--out", str(out))
        assert result.returncode == 0, result.stderr[-3000:]
        reports[name] = json.loads((out / "report.json").read_text())
        reports[name]["out"] = out  # not part of report.json: validated without it
    return reports


def test_half_the_mlp_channels_give_a_smaller_artifact_in_every_format(exports):
    dense = {(a["target"], a["format"]): a for a in exports["dense"]["artifacts"]}
    pruned = {(a["target"], a["format"]): a for a in exports["pruned"]["artifacts"]}
    assert set(pruned) == {("android", "executorch"), ("android", "onnx"), ("android", "ort"),
                           ("ios", "coreml"), ("ios", "executorch")}
    for key, artifact in pruned.items():
        assert artifact["bytes"] < 0.85 * dense[key]["bytes"], key  # MLPs are ~half the layers
        assert artifact["parity"]["verdict"] == "pass", (key, artifact["parity"])


def test_the_report_records_the_pruning_and_the_saved_student_loads(exports):
    report = exports["pruned"]
    jsonschema.validate({k: v for k, v in report.items() if k != "out"}, SCHEMA)
    (recipe,) = report["compression"]
    pruning = recipe["pruning"]
    assert pruning["spec"] == "mlp=0.5" and pruning["importance"] == "activation"
    assert pruning["mlp"] == {"intermediate_size": [128, 64]}
    assert pruning["parameters_after"] < pruning["parameters_before"]
    assert recipe["calibration"] == {"source": "built-in", "samples": 16}
    assert 0.0 <= pruning["effect"]["top1_agreement"] <= 1.0  # the pruning's own change
    saved = load(report["out"] / pruning["saved_student"])
    assert saved.parameter_count() == pruning["parameters_after"]
    assert saved.hf_config.intermediate_size == 64
    assert report["model"]["parameters"] == pruning["parameters_before"]


def test_unstructured_sparsity_shrinks_core_ml_only(exports):
    dense = {(a["target"], a["format"]): a for a in exports["dense"]["artifacts"]}
    sparse = {(a["target"], a["format"]): a for a in exports["sparse"]["artifacts"]}
    coreml, pte = sparse[("ios", "coreml")], sparse[("ios", "executorch")]
    assert coreml["notes"]["sparse"]["sparse_weights"] >= 10  # every 2-D Linear weight
    assert coreml["bytes"] < 0.75 * dense[("ios", "coreml")]["bytes"]  # measured 0.64x
    assert abs(pte["bytes"] / dense[("ios", "executorch")]["bytes"] - 1) < 0.01  # no gain
    assert all(a["parity"]["verdict"] == "pass" for a in sparse.values())
    (recipe,) = exports["sparse"]["compression"]
    assert recipe["pruning"]["sparsity"]["linear_sparsity"] == pytest.approx(0.5, abs=0.01)


def test_a_bad_prune_spec_is_one_line_before_any_work(student_dir, tmp_path):
    result = run_cli("export", "--model", str(student_dir("llama")), "--prune", "rows=0.5",
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "unknown key 'rows'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
