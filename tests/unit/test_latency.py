"""Latency: measured timing under profile limits, and the roofline projection's orderings.
No timed assertions: only orderings and shapes of the results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgekit.devices import all_devices, get_device
from edgekit.validate.latency import measure_latency
from edgekit.validate.project import count_onnx, count_program, latency_model, project


def _mlp_onnx(path: Path, hidden: int, layers: int = 2, int8: bool = False) -> Path:
    """x[1,16,hidden] -> `layers` MatMuls, weights fp32 or int8 + DequantizeLinear."""
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for i in range(layers):
        weight = rng.standard_normal((hidden, hidden)).astype(np.float32)
        name = f"w{i}"
        if int8:
            inits += [numpy_helper.from_array((weight * 10).astype(np.int8), f"{name}_q"),
                      numpy_helper.from_array(np.array(0.1, np.float32), f"{name}_s")]
            nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s"], [name]))
        else:
            inits.append(numpy_helper.from_array(weight, name))
        nodes.append(helper.make_node("MatMul", [current, name], [f"h{i}"]))
        current = f"h{i}"
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, hidden])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, 16, hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def test_onnx_counts_matmul_flops_and_stored_weight_bytes(tmp_path: Path):
    cost = count_onnx(_mlp_onnx(tmp_path / "m.onnx", 64))
    assert cost.flops == 2 * (2 * 16 * 64 * 64)
    assert sum(op.weight_bytes for op in cost.ops) == 2 * 64 * 64 * 4
    int8 = count_onnx(_mlp_onnx(tmp_path / "q.onnx", 64, int8=True))
    assert int8.flops == cost.flops
    assert sum(op.weight_bytes for op in int8.ops) == 2 * 64 * 64 * 1
    assert {op.weight_bits for op in int8.ops if op.op_class == "matmul"} == {8}


def test_larger_model_projects_slower(tmp_path: Path):
    small = count_onnx(_mlp_onnx(tmp_path / "s.onnx", 64))
    large = count_onnx(_mlp_onnx(tmp_path / "l.onnx", 512, layers=4))
    for device in all_devices().values():
        a, b = project(small, device, "onnx"), project(large, device, "onnx")
        assert a["mid_ms"] < b["mid_ms"] and a["low_ms"] < b["low_ms"], device.key


def test_int8_weights_project_faster_than_fp32(tmp_path: Path):
    fp32 = count_onnx(_mlp_onnx(tmp_path / "f.onnx", 1024, layers=4))
    int8 = count_onnx(_mlp_onnx(tmp_path / "q.onnx", 1024, layers=4, int8=True))
    assert int8.bytes < fp32.bytes
    for device in all_devices().values():
        assert project(int8, device, "onnx")["mid_ms"] < project(fp32, device, "onnx")["mid_ms"]


def test_faster_phone_projects_faster(tmp_path: Path):
    cost = count_onnx(_mlp_onnx(tmp_path / "m.onnx", 1024, layers=4))
    mid = {k: project(cost, d, "onnx")["mid_ms"] for k, d in all_devices().items()}
    assert mid["galaxy-s24"] < mid["poco-f5"] < mid["tecno-pova-6"]
    assert mid["iphone-15-pro"] < mid["iphone-se-3"]
    assert mid["galaxy-s24"] < mid["galaxy-s23"]


def test_projection_is_labelled_and_ordered(tmp_path: Path):
    cost = count_onnx(_mlp_onnx(tmp_path / "m.onnx", 256))
    result = project(cost, get_device("pixel-8"), "onnx")
    assert result["label"] == "estimated" and result["compute_unit"] == "cpu"
    assert 0 < result["low_ms"] <= result["mid_ms"] <= result["high_ms"]
    assert set(result["breakdown"]) == {"matmul"}
    assert project(cost, get_device("iphone-15-pro"), "coreml")["compute_unit"] == "npu"


def test_latency_model_constants_load_as_pessimistic_optimistic_pairs():
    model = latency_model()
    assert model.memory_efficiency[0] < model.memory_efficiency[1] <= 1
    for unit in model.units.values():
        for slow, fast in unit.compute_efficiency.values():
            assert 0 < slow < fast <= 1
        assert unit.op_overhead_us[0] >= unit.op_overhead_us[1]


def test_torch_program_counts_linear_and_conv():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 8 * 8, 10)).eval()
    program = torch.export.export(model, (torch.zeros(1, 3, 8, 8),))
    cost = count_program(program)
    by_class = {op.op_class: op for op in cost.ops if op.op_class != "other"}
    assert by_class["conv"].flops == 2 * (8 * 8 * 8) * (3 * 3 * 3)
    assert by_class["matmul"].flops == 2 * 512 * 10
    assert by_class["matmul"].weight_bytes == (512 * 10 + 10) * 4  # weight and bias


_FRESH_MEASURE = """
import dataclasses, json, sys
from pathlib import Path
import numpy as np
from edgekit.devices import get_device
from edgekit.validate.latency import measure_latency
tiny = dataclasses.replace(get_device("pixel-8"), app_memory_budget_mib=1.0)
sample = {"x": np.ones((1, 16, 1024), np.float32)}
print(json.dumps(measure_latency(Path(sys.argv[1]), tiny, sample, iterations=2, warmup=1)))
"""


def test_measured_timing_reports_over_budget_without_crashing(tmp_path: Path):
    # Peak memory is the rise of this process's resident set: in a fresh process, as in
    # `edgekit bench`. (Inside a long test session, freed memory that stays resident is
    # reused and the rise can read 0.)
    import json
    import subprocess
    import sys

    path = _mlp_onnx(tmp_path / "m.onnx", 1024)  # 8 MiB of weights
    sample = {"x": np.ones((1, 16, 1024), np.float32)}
    fresh = subprocess.run([sys.executable, "-c", _FRESH_MEASURE, str(path)],
                           capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert result["label"].startswith("measured on host (")
    assert result["threads"] >= 1 and result["iterations"] == 2
    assert result["p50_ms"] <= result["p90_ms"]
    assert result["peak_rss_mib"] > 1.0
    assert result["over_memory_budget"] is True
    roomy = measure_latency(path, get_device("pixel-8"), sample, iterations=1, warmup=0)
    assert roomy["over_memory_budget"] is False


def test_core_ml_is_not_timed(tmp_path: Path):
    package = tmp_path / "m.mlpackage"
    package.mkdir()
    result = measure_latency(package, get_device("iphone-15-pro"), {}, iterations=1)
    assert result["status"] == "not_run" and "Core ML" in result["reason"]


def test_bad_iteration_counts_are_rejected(tmp_path: Path):
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match="iterations"):
        measure_latency(tmp_path / "m.onnx", get_device("pixel-8"), {}, iterations=0)


def test_core_ml_is_not_projected_for_android(tmp_path: Path):
    cost = count_onnx(_mlp_onnx(tmp_path / "m.onnx", 64))
    result = project(cost, get_device("pixel-8"), "coreml")
    assert result["status"] == "not_run" and "Android" in result["reason"]


@pytest.fixture(scope="module")
def int4_llama(student_dir, tmp_path_factory):
    """A tiny Llama, its int4 plan (RTN: fast), its torch.export program and its int4 .onnx."""
    from edgekit.compress import quantize
    from edgekit.compress.quantize import settings_for
    from edgekit.export import export, trace
    from edgekit.model import load

    student = load(student_dir("llama"))
    plan = quantize(student, "int4", settings_for("int4", method="rtn", mixed_precision=False))
    program = trace(student)
    (onnx_artifact,) = export(student, plan, ("onnx",), tmp_path_factory.mktemp("int4"), program)
    return plan, program, onnx_artifact.path


def test_quantized_pte_counts_the_plans_stored_bytes(int4_llama):
    from edgekit.validate.artifacts import cost_for_artifact
    from edgekit.validate.project import stored_weights

    plan, program, onnx_path = int4_llama
    fp32 = count_program(program)
    pte = cost_for_artifact(onnx_path.with_suffix(".pte"), program, plan.to_json())
    onnx_cost = count_onnx(onnx_path)
    weights = {op.weight_bits for op in pte.ops if op.op_class == "matmul"}
    assert weights == {4}
    stored = stored_weights(plan.to_json())
    assert stored and all(bits == 4 for _, bits in stored.values())
    assert pte.bytes < fp32.bytes
    for device in all_devices().values():
        mids = {name: project(cost, device, "executorch")["mid_ms"]
                for name, cost in (("fp32", fp32), ("pte", pte), ("onnx", onnx_cost))}
        assert mids["pte"] < mids["fp32"], device.key
        assert 0.67 < mids["pte"] / mids["onnx"] < 1.5, (device.key, mids)
