"""Which layer went wrong: a damaged artifact is blamed on the export/runtime at the damaged
layer in every runtime; an over-aggressive quantization plan is blamed on quantization."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from corrupt import damage_mlpackage, damage_onnx, damage_pte
from helpers import run_cli

import edgekit
from edgekit.compress.quantize import quantize
from edgekit.export import export, trace
from edgekit.model.samples import sample_inputs
from edgekit.runtimes.coreml.program import load_program
from edgekit.targets import get_target
from edgekit.validate.localize import layer_nodes, localize_failure
from edgekit.validate.parity import measure, reference_outputs, verdict_under

DAMAGED = "model.model.layers.1.mlp.down_proj"


def _damage_coreml(package: Path, node: str) -> None:
    """Scale the stored weights (or int4 scales) of the linear op torch.export named `node`."""
    op = next(o for o in load_program(package).operations
              if o.op_type == "linear" and o.outputs[0].startswith(f"{node}_cast"))
    damage_mlpackage(package, op.args["weight"])


@pytest.fixture(scope="module")
def llama(student_dir):
    student = edgekit.load(student_dir("llama"))
    samples = sample_inputs(student, 2)
    return student, trace(student), samples, reference_outputs(student, samples)


def test_export_folder_with_damaged_artifacts_fails_validate_naming_the_layer(
        student_dir, llama, tmp_path: Path) -> None:
    student, program, _, _ = llama
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(student_dir("llama")), "--target", "web,ios",
                     "--quant", "none", "--forward-only", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_cli("validate", str(out))  # untouched: every artifact passes again
    assert result.returncode == 0, result.stderr[-3000:]

    node = layer_nodes(program, [DAMAGED])[DAMAGED]
    damage_onnx(out / "web" / "tiny-llama.onnx", node)
    _damage_coreml(out / "ios" / "tiny-llama.mlpackage", node)
    damage_pte(out / "ios" / "tiny-llama.pte",
               student.module.get_submodule(DAMAGED).weight.detach().numpy())
    result = run_cli("validate", str(out))
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    verdicts = {(a["target"], a["format"]): a["parity"] for a in report["artifacts"]}
    for key in (("web", "onnx"), ("ios", "executorch"), ("ios", "coreml")):
        parity = verdicts[key]
        assert parity["verdict"] == "fail", (key, parity)
        assert (parity["localization"]["cause"], parity["localization"]["layer"]) == \
            ("runtime/export", DAMAGED), (key, parity["localization"])
    assert f"first jump at {DAMAGED}" in verdicts[("ios", "coreml")]["localization"]["reason"]
    assert report["summary"] == {"pass": 0, "fail": 3, "not_run": 0}
    import jsonschema
    schema = json.loads((Path(__file__).parents[2] / "docs" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(report)


def test_over_aggressive_quantization_of_one_layer_is_blamed_on_quantization(
        llama, tmp_path: Path) -> None:
    student, program, samples, reference = llama
    plan = quantize(student, "int4")

    def two_bit_like(layer):  # codes squeezed to -1, 0, 1: far coarser than int4
        if "model.model.embed_tokens" not in layer.names:
            return layer
        w = layer.weight
        codes = (torch.sign(w.codes) * (w.codes.abs() >= 4)).to(w.codes.dtype)
        return dataclasses.replace(layer, weight=dataclasses.replace(w, codes=codes,
                                                                     scales=w.scales * 4))

    plan = dataclasses.replace(plan, layers=tuple(two_bit_like(x) for x in plan.layers))
    tolerance = get_target("ios").tolerance("int4")
    for artifact in export(student, plan, ("onnx", "coreml"), tmp_path, program=program):
        verdict = verdict_under(measure(artifact, student, samples, reference), tolerance)
        assert verdict.verdict == "fail", (artifact.format, verdict)
        found = localize_failure(verdict, artifact, student, plan, samples[0], program)
        assert found.localization is not None
        assert (found.localization["cause"], found.localization["layer"]) == \
            ("quantization", "model.model.embed_tokens"), found.localization


def test_validate_without_the_student_is_a_one_line_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    report = {"schema_version": 1, "model": {"name": "x", "source": str(tmp_path / "gone"),
                                             "task": "generic", "inputs": [], "outputs": []},
              "artifacts": []}
    (out / "report.json").write_text(json.dumps(report))
    result = run_cli("validate", str(out))
    assert result.returncode == 2
    assert "is not available here" in result.stderr and "Traceback" not in result.stderr
    shutil.rmtree(out)
    assert run_cli("validate", str(out)).stderr.startswith("edgekit: error:")
