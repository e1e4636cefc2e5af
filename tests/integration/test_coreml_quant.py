"""The plan emitted natively in Core ML: constexpr_blockwise_shift_scale ops holding the
plan's codes; read back from the saved .mlpackage, they dequantize to the plan's weights
within fp16 rounding of the scales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.compress.plan import QuantSettings, find_layers, plan_layer
from edgekit.console import import_backend
from edgekit.export import trace
from edgekit.export.coreml import _register_missing_conversions
from edgekit.export.coreml_quant import apply_plan
from edgekit.model import load


def _convert_quantized(student, plans, weights, dest: Path) -> dict:
    ct = import_backend("coremltools")
    _register_missing_conversions()
    model = ct.convert(trace(student).run_decompositions({}),
                       minimum_deployment_target=ct.target.iOS18,
                       compute_precision=ct.precision.FLOAT16, skip_model_load=True)
    program = model._mil_program
    notes = apply_plan(program, plans, weights)
    quantized = ct.convert(program, minimum_deployment_target=ct.target.iOS18,
                           compute_precision=ct.precision.FLOAT16, skip_model_load=True,
                           pass_pipeline=ct.PassPipeline.EMPTY)
    quantized.save(str(dest))
    return notes


def _read_back(package: Path) -> dict[str, dict[str, np.ndarray]]:
    ct = import_backend("coremltools")
    milproto = import_backend("coremltools.converters.mil.frontend.milproto.load")
    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    weights = package / "Data" / "com.apple.CoreML" / "weights"
    program = milproto.load(spec, spec.specificationVersion, str(weights))
    found = {}
    for op in program.functions["main"].operations:
        if op.op_type == "constexpr_blockwise_shift_scale":
            found[op.name] = {"data": op.data.val, "scale": op.scale.val,
                              "offset": None if op.offset is None else op.offset.val}
    return found


@pytest.mark.parametrize("symmetric", [True, False])
def test_constexpr_weights_dequantize_to_the_plan(student_dir, tmp_path: Path, symmetric: bool):
    student = load(str(student_dir("llama")))
    found = find_layers(student.module)
    plans = [plan_layer(n, m, QuantSettings(symmetric=symmetric)) for n, m in found]
    weights = {n[0]: m.weight.detach().numpy() for n, m in found}
    package = tmp_path / "q.mlpackage"
    notes = _convert_quantized(student, plans, weights, package)
    assert notes["kept_float"] == {}
    assert len(notes["quantized_ops"]) == 15  # the tied embedding/head is one const
    constexprs = _read_back(package)
    assert len(constexprs) == 15
    by_shape_and_codes = {}
    for plan in plans:
        assert plan.weight is not None
        by_shape_and_codes[plan.weight.codes.numpy().astype(np.int8).tobytes()] = plan
    for op in constexprs.values():
        codes = op["data"].astype(np.int8)
        plan = by_shape_and_codes[codes.tobytes()]
        assert plan.weight is not None
        offset = 0 if op["offset"] is None else op["offset"].astype(np.float32)
        group = plan.weight.group_size
        scale = np.repeat(op["scale"].astype(np.float32), group, axis=1)
        offset = offset if np.isscalar(offset) else np.repeat(offset, group, axis=1)
        dequantized = (codes.astype(np.float32) - offset) * scale
        expected = plan.weight.dequantize().numpy()
        # scales are stored in fp16: relative error at most fp16's half-ulp (2^-11)
        np.testing.assert_allclose(dequantized, expected, rtol=2.0**-11, atol=0)
