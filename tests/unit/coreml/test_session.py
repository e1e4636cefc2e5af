"""The emulator session on real saved packages: fp32 and fp16 precision, overflow found at the
op where it first happens, and one-line errors naming the op or input."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.console import import_backend
from edgekit.errors import EdgekitError
from edgekit.runtimes.coreml import CoreMLEmulatorSession
from edgekit.runtimes.coreml.program import load_program

ct = import_backend("coremltools")
mb = import_backend("coremltools.converters.mil").Builder
types = import_backend("coremltools.converters.mil.mil.types")

X = np.array([[0.1, 2049.0, 70000.0, 1e-8]], dtype=np.float32)


@pytest.fixture
def doubling(save_program):
    """x (fp32) -> cast to fp16 -> times 2 -> cast back to fp32: the fp16 cast rounds."""
    @mb.program(input_specs=[mb.TensorSpec((1, 4), dtype=types.fp32)],
                opset_version=ct.target.iOS18)
    def program(x):
        half = mb.cast(x=x, dtype="fp16", name="to_fp16")
        doubled = mb.mul(x=half, y=np.float16(2.0), name="double")
        return mb.cast(x=doubled, dtype="fp32", name="y")

    return save_program(program)


def test_fp16_mode_rounds_every_value_and_names_the_overflowing_op(doubling) -> None:
    session = CoreMLEmulatorSession(doubling, "fp16")
    out = session.run({"x": X})["y"]
    # 0.1 -> 0.0999755859375 (nearest fp16); 2049 -> 2048 (tie, to even, spacing 2);
    # 70000 > 65504 -> inf; 1e-8 is below half the smallest fp16 subnormal (2^-24) -> 0
    assert out.tolist() == [[0.199951171875, 4096.0, np.inf, 0.0]]
    # x is declared fp32 and stays 70000; the cast to fp16 is where it overflows, not `double`
    # (its input was already inf)
    (where,) = session.overflow_ops  # the converter renames the cast
    assert where.endswith("(cast)")
    out = session.run({"x": np.array([[0, 0, 40000, 0]], dtype=np.float32)})["y"]
    assert out.tolist() == [[0, 0, np.inf, 0]]  # 80000 > 65504
    assert session.overflow_ops == ("double (mul)",)


def test_fp16_mode_keeps_ops_the_program_declares_fp32_in_float32(save_program) -> None:
    """RMSNorm's statistics kept in fp32 between casts: x**2 exceeds 65504 without overflow."""
    @mb.program(input_specs=[mb.TensorSpec((1, 2), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def program(h):
        wide = mb.cast(x=h, dtype="fp32", name="wide")
        square = mb.mul(x=wide, y=wide, name="square")
        inverse = mb.rsqrt(x=square, name="inverse")
        return mb.mul(x=h, y=mb.cast(x=inverse, dtype="fp16", name="narrow"), name="y")

    session = CoreMLEmulatorSession(save_program(program), "fp16")
    out = session.run({"h": np.array([[300, 400]], np.float32)}, keep_intermediates=True)
    assert session.intermediates["square"].tolist() == [[90000, 160000]]  # fp32: no inf
    # fp16(1/300) = 1748 * 2**-19, fp16(1/400) = 1311 * 2**-19; times 300 and 400 that is
    # 1.00021 and 1.00021, which round to 1.0 in fp16 (spacing 2**-10 near 1)
    assert out["y"].dtype == np.float16 and out["y"].tolist() == [[1.0, 1.0]]
    assert session.overflow_ops == ()
    session.run({"h": np.array([[70000, 1]], np.float32)})
    assert session.overflow_ops == ("h (input)",)  # an fp16 input rounds above 65504


def test_fp32_mode_computes_fp16_tensors_in_float32(doubling) -> None:
    session = CoreMLEmulatorSession(doubling, "fp32")
    out = session.run({"x": X})["y"]
    assert out.dtype == np.float32
    assert out.tolist() == (X * np.float32(2)).tolist()  # no fp16 rounding anywhere
    assert session.overflow_ops == ()


def test_intermediates_are_kept_on_request(doubling) -> None:
    session = CoreMLEmulatorSession(doubling, "fp16")
    session.run({"x": X}, keep_intermediates=True)
    assert session.intermediates["double"].tolist() == [[0.199951171875, 4096.0, np.inf, 0.0]]
    session.run({"x": X})
    assert session.intermediates == {}


def test_unsupported_op_is_an_error_naming_it(save_program) -> None:
    @mb.program(input_specs=[mb.TensorSpec((1, 4), dtype=types.fp32)],
                opset_version=ct.target.iOS18)
    def program(x):
        return mb.argsort(x=x, axis=-1, name="order")

    with pytest.raises(EdgekitError, match=r"Core ML op 'argsort' at op 'order' \(#\d+ of "
                                           r"function main\) is not supported"):
        CoreMLEmulatorSession(save_program(program))


def test_bad_inputs_and_precision_are_one_line_errors(doubling) -> None:
    session = CoreMLEmulatorSession(doubling)
    with pytest.raises(EdgekitError, match="missing input 'x'"):
        session.run({})
    with pytest.raises(EdgekitError, match=r"input 'x' has shape \[4\], the program "
                                           r"expects \[1, 4\]"):
        session.run({"x": X[0]})
    with pytest.raises(EdgekitError, match="precision 'int8' is not one of fp32, fp16"):
        CoreMLEmulatorSession(doubling, "int8")


def test_a_folder_that_is_not_a_package_is_an_error(tmp_path) -> None:
    with pytest.raises(EdgekitError, match="not a Core ML package"):
        CoreMLEmulatorSession(tmp_path)


def test_attention_program_with_a_bool_mask(save_program) -> None:
    spec = [mb.TensorSpec((1, 1, 2), dtype=types.fp32), mb.TensorSpec((1, 2, 2), dtype=types.fp32),
            mb.TensorSpec((1, 2, 2), dtype=types.fp32)]

    @mb.program(input_specs=spec, opset_version=ct.target.iOS18)
    def program(q, k, v):
        full = mb.scaled_dot_product_attention(query=q, key=k, value=v, name="full")
        masked = mb.scaled_dot_product_attention(
            query=q, key=k, value=v, attn_mask=np.array([[False, True]]), name="masked")
        return mb.identity(x=full, name="full_out"), mb.identity(x=masked, name="masked_out")

    path = save_program(program)
    assert "scaled_dot_product_attention" in {op.op_type for op in load_program(path).operations}
    session = CoreMLEmulatorSession(path)
    out = session.run({"q": np.array([[[1, 0]]], np.float32),
                       "k": np.array([[[2, 0], [0, 0]]], np.float32),
                       "v": np.array([[[1, 2], [3, 4]]], np.float32)})
    # scores [2, 0] / sqrt(2); softmax -> p = sigmoid(sqrt(2)) = 0.80443; out = p*v0 + (1-p)*v1
    np.testing.assert_allclose(out["full_out"], [[[1.391140634986086, 2.391140634986086]]],
                               rtol=1e-6)
    assert out["masked_out"].tolist() == [[[3, 4]]]  # only key 1 may be attended to


def test_a_flexible_dim_that_is_an_expression_of_a_symbol(save_program) -> None:
    """A reshape of a flexible [1, s, 4] input to [1, -1] has a dim 4*s (a sympy expression,
    not a symbol), as the reshapes of Cohere's and GPT-J's interleaved RoPE leave in a decode
    package."""
    symbol = import_backend("coremltools.converters.mil.mil").get_new_symbol()

    @mb.program(input_specs=[mb.TensorSpec((1, symbol, 4), dtype=types.fp32)],
                opset_version=ct.target.iOS18)
    def program(x):
        return mb.reshape(x=x, shape=np.array([1, -1], np.int32), name="y")

    path = save_program(program)
    (reshape,) = [op for op in load_program(path).operations if op.op_type == "reshape"]
    assert reshape.output_types[0].shape == (1, -1)
    out = CoreMLEmulatorSession(path).run({"x": np.arange(8, dtype=np.float32).reshape(1, 2, 4)})
    assert out["y"].tolist() == [[0, 1, 2, 3, 4, 5, 6, 7]]
