"""Compressed weights: iOS 18 constexpr ops in real saved packages, decompressed by the
emulator to values worked out by hand from the op documentation (ops/defs/iOS18)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.console import import_backend
from edgekit.runtimes.coreml import CoreMLEmulatorSession
from edgekit.runtimes.coreml.program import load_program

ct = import_backend("coremltools")
mb = import_backend("coremltools.converters.mil").Builder
types = import_backend("coremltools.converters.mil.mil.types")

INT4_DATA = np.arange(-8, 8).reshape(4, 4)  # rows [-8..-5], [-4..-1], [0..3], [4..7]
# out = scale * (data - offset), one scale and offset per row (block size [1, 4])
INT4_DEQUANTIZED = [[-4.5, -4, -3.5, -3], [-4, -3, -2, -1], [0, 2, 4, 6], [20, 24, 28, 32]]


def _spec(shape: tuple[int, ...]) -> list:
    return [mb.TensorSpec(shape, dtype=types.fp32)]


def _session(path, op_type: str, precision: str = "fp32") -> CoreMLEmulatorSession:
    """The emulator on `path`, after checking the saved program still holds `op_type`."""
    assert op_type in {op.op_type for op in load_program(path).operations}
    return CoreMLEmulatorSession(path, precision)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_int4_blockwise_shift_scale_weights_feed_a_linear(save_program, precision) -> None:
    @mb.program(input_specs=_spec((1, 4)), opset_version=ct.target.iOS18)
    def program(x):
        weight = mb.constexpr_blockwise_shift_scale(
            data=INT4_DATA.astype(types.np_int4_dtype),
            scale=np.array([[0.5], [1.0], [2.0], [4.0]], dtype=np.float32),
            offset=np.array([[1], [0], [0], [-1]], dtype=types.np_int4_dtype))
        return mb.linear(x=x, weight=weight, name="y"), mb.identity(x=weight, name="w")

    session = _session(save_program(program, precision), "constexpr_blockwise_shift_scale",
                       precision)
    out = session.run({"x": np.ones((1, 4), np.float32)})
    assert out["w"].tolist() == INT4_DEQUANTIZED
    assert out["y"].tolist() == [[-15, -10, 12, 104]]  # row sums


def test_int8_blocks_along_both_axes(save_program) -> None:
    @mb.program(input_specs=_spec((1,)), opset_version=ct.target.iOS18)
    def program(x):
        weight = mb.constexpr_blockwise_shift_scale(
            data=np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.int8),
            scale=np.array([[0.5, 2.0]], dtype=np.float32))  # block size [2, 2], no offset
        return mb.mul(x=weight, y=x, name="w")

    session = _session(save_program(program), "constexpr_blockwise_shift_scale")
    out = session.run({"x": np.ones(1, np.float32)})
    assert out["w"].tolist() == [[0.5, 1, 6, 8], [2.5, 3, 14, 16]]


def test_palettized_weights_with_one_and_two_lookup_tables(save_program) -> None:
    @mb.program(input_specs=_spec((1,)), opset_version=ct.target.iOS18)
    def program(x):
        single = mb.constexpr_lut_to_dense(
            indices=np.array([[0, 1], [2, 3]], dtype=types.np_uint2_dtype),
            lut=np.array([1, 2, 3, 4], dtype=np.float32).reshape(1, 1, 4, 1))
        # Case 1 of the op's documentation: rows 0-2 use the first table, rows 3-5 the second
        grouped = mb.constexpr_lut_to_dense(
            indices=np.array([2, 3, 3, 0, 1, 0, 3, 0, 2, 1, 0, 3],
                             dtype=types.np_uint2_dtype).reshape(6, 2),
            lut=np.array([1, 5, 9, 13, 2, 10, 18, 26], dtype=np.float32).reshape(2, 1, 4, 1))
        return mb.mul(x=single, y=x, name="single"), mb.mul(x=grouped, y=x, name="grouped")

    out = _session(save_program(program), "constexpr_lut_to_dense").run(
        {"x": np.ones(1, np.float32)})
    assert out["single"].tolist() == [[1, 2], [3, 4]]
    assert out["grouped"].tolist() == [[9, 13], [13, 1], [5, 1], [26, 2], [18, 10], [2, 26]]


def test_vector_palettization_fills_the_vector_axis(save_program) -> None:
    # Case 2.2 of the op's documentation, with a = [1, 2, 3] and b = [4, 5, 6]
    @mb.program(input_specs=_spec((1,)), opset_version=ct.target.iOS18)
    def program(x):
        dense = mb.constexpr_lut_to_dense(
            indices=np.array([[[0, 0], [1, 0]], [[1, 1], [0, 0]]], dtype=types.np_uint1_dtype),
            lut=np.array([1, 2, 3, 4, 5, 6], dtype=np.float32).reshape(1, 1, 1, 2, 3),
            vector_axis=np.int32(2))
        return mb.mul(x=dense, y=x, name="w")

    out = _session(save_program(program), "constexpr_lut_to_dense").run(
        {"x": np.ones(1, np.float32)})
    assert out["w"].tolist() == [[[1, 2, 3, 1, 2, 3], [4, 5, 6, 1, 2, 3]],
                                 [[4, 5, 6, 4, 5, 6], [1, 2, 3, 1, 2, 3]]]


def test_sparse_weights_fill_the_mask_in_row_major_order(save_program) -> None:
    @mb.program(input_specs=_spec((1,)), opset_version=ct.target.iOS18)
    def program(x):
        dense = mb.constexpr_sparse_to_dense(
            nonzero_data=np.array([5, 6, 7], dtype=np.float32),
            mask=np.array([[1, 0, 1], [0, 0, 1]], dtype=types.np_uint1_dtype))
        return mb.mul(x=dense, y=x, name="w")

    out = _session(save_program(program), "constexpr_sparse_to_dense").run(
        {"x": np.ones(1, np.float32)})
    assert out["w"].tolist() == [[5, 0, 6], [0, 0, 7]]


def test_weights_that_decompress_above_fp16_range_are_flagged_in_fp16_mode(save_program):
    @mb.program(input_specs=_spec((1,)), opset_version=ct.target.iOS18)
    def program(x):
        weight = mb.constexpr_blockwise_shift_scale(
            data=np.array([[10, 1]], dtype=np.int8),
            scale=np.array([[10000.0]], dtype=np.float32))  # 10 * 10000 > 65504
        return mb.mul(x=weight, y=x, name="w")

    path = save_program(program, "fp16")  # fp16 weights: fp32 ones stay fp32 in fp16 mode
    fp32 = _session(path, "constexpr_blockwise_shift_scale")
    assert fp32.run({"x": np.ones(1, np.float32)})["w"].tolist() == [[100000, 10000]]
    assert fp32.overflow_ops == ()
    fp16 = _session(path, "constexpr_blockwise_shift_scale", "fp16")
    assert fp16.run({"x": np.ones(1, np.float32)})["w"].tolist() == [[np.inf, 10000]]
    (where,) = fp16.overflow_ops
    assert where.endswith("(constexpr_blockwise_shift_scale)")


def test_ios16_affine_dequantize_and_cast() -> None:
    from edgekit.runtimes.coreml.session import OPS

    # (data - zero_point) * scale, one zero point and scale per row (axis 0)
    out = OPS["constexpr_affine_dequantize"]({
        "quantized_data": np.array([[1, 2], [3, 4]], dtype=np.uint8),
        "zero_point": np.array([1, 2], dtype=np.uint8), "scale": np.float32([0.5, 2.0]),
        "axis": np.int32(0)})
    assert out.tolist() == [[0, 0.5], [2, 4]]
    out = OPS["constexpr_affine_dequantize"]({
        "quantized_data": np.array([-2, 4], dtype=np.int8), "zero_point": np.int8(0),
        "scale": np.float32(0.25), "axis": np.int32(0)})
    assert out.tolist() == [-0.5, 1.0]
    out = OPS["constexpr_cast"]({"source_val": np.float16([1.5, -2.0]), "output_dtype": "fp32"})
    assert out.dtype == np.float32 and out.tolist() == [1.5, -2.0]
