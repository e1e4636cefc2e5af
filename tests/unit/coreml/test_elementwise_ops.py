"""Element-wise Core ML ops in the emulator, against values worked out by hand from the MIL
op documentation (coremltools ops/defs): broadcasting, epsilons, rounding, gelu modes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgekit.runtimes.coreml.session import OPS

F = np.float32


def run(op: str, **args: object) -> np.ndarray:
    return np.asarray(OPS[op](args))


CASES = [
    # binary ops broadcast like numpy: (3,) with (2, 1) -> (2, 3)
    ("add", {"x": F([1, 2, 3]), "y": F([[10], [20]])}, [[11, 12, 13], [21, 22, 23]]),
    ("sub", {"x": F([5, 3]), "y": F([1, 4])}, [4, -1]),
    ("mul", {"x": F([2, -3]), "y": F(4)}, [8, -12]),
    ("real_div", {"x": F([1, 3]), "y": F([4, 2])}, [0.25, 1.5]),
    ("floor_div", {"x": F([7, -7]), "y": F(2)}, [3, -4]),
    ("mod", {"x": F([7, -7]), "y": F(3)}, [1, 2]),  # Python's %: sign of the divisor
    ("pow", {"x": F([2, 3]), "y": F(2)}, [4, 9]),
    ("maximum", {"x": F([1, 5]), "y": F([3, 2])}, [3, 5]),
    ("minimum", {"x": F([1, 5]), "y": F([3, 2])}, [1, 2]),
    ("abs", {"x": F([-2, 3])}, [2, 3]),
    ("sign", {"x": F([-2, 0, 3])}, [-1, 0, 1]),
    ("ceil", {"x": F([-1.5, 1.2])}, [-1, 2]),
    ("floor", {"x": F([-1.5, 1.2])}, [-2, 1]),
    ("round", {"x": F([0.5, 1.5, 2.5, -0.5, 0.6])}, [0, 2, 2, 0, 1]),  # half to even
    ("sqrt", {"x": F([4, 9])}, [2, 3]),
    ("square", {"x": F([-3])}, [9]),
    ("exp", {"x": F([0, 1])}, [1, 2.718281828459045]),
    ("exp2", {"x": F([3, -1])}, [8, 0.5]),
    ("sin", {"x": F([math.pi / 2])}, [1]),
    ("cos", {"x": F([0])}, [1]),
    ("tan", {"x": F([math.pi / 4])}, [1]),
    ("asin", {"x": F([1])}, [1.5707963267948966]),
    ("acos", {"x": F([1])}, [0]),
    ("atan", {"x": F([1])}, [0.7853981633974483]),
    ("sinh", {"x": F([0])}, [0]),
    ("cosh", {"x": F([0])}, [1]),
    ("atanh", {"x": F([0.5])}, [0.5493061443340548]),
    ("erf", {"x": F([0.5, 1])}, [0.5204998778130465, 0.8427007929497149]),
    # rsqrt / log / inverse add epsilon first; defaults 1e-12 / 1e-45 / 1e-4
    ("rsqrt", {"x": F([4])}, [0.5]),
    ("rsqrt", {"x": F([4]), "epsilon": F(5)}, [1 / 3]),
    ("log", {"x": F([math.e])}, [1]),
    ("log", {"x": F([0]), "epsilon": F(1)}, [0]),
    ("inverse", {"x": F([4])}, [0.24999375015624611]),
    ("inverse", {"x": F([0.5]), "epsilon": F(0.5)}, [1]),
    ("clip", {"x": F([-1, 0.5, 3]), "alpha": F(0), "beta": F(1)}, [0, 0.5, 1]),
    ("threshold", {"x": F([-1, 2]), "alpha": F(0.5)}, [0.5, 2]),
    # activations
    ("relu", {"x": F([-1, 2])}, [0, 2]),
    ("relu6", {"x": F([-1, 3, 7])}, [0, 3, 6]),
    ("sigmoid", {"x": F([0, 2])}, [0.5, 0.8807970779778823]),
    ("tanh", {"x": F([0.5])}, [0.46211715726000974]),
    ("silu", {"x": F([1, -1])}, [0.7310585786300049, -0.2689414213699951]),
    ("gelu", {"x": F([1, -1])}, [0.8413447460685429, -0.15865525393145707]),  # EXACT default
    ("gelu", {"x": F([1, -1]), "mode": "EXACT"}, [0.8413447460685429, -0.15865525393145707]),
    ("gelu", {"x": F([1, -1]), "mode": "TANH_APPROXIMATION"},
     [0.8411919906082768, -0.15880800939172324]),
    ("gelu", {"x": F([1, -1]), "mode": "SIGMOID_APPROXIMATION"},
     [0.8457957659328212, -0.1542042340671787]),
    ("softplus", {"x": F([0])}, [0.6931471805599453]),
    ("softsign", {"x": F([1, -3])}, [0.5, -0.75]),
    ("leaky_relu", {"x": F([-2, 3]), "alpha": F(0.1)}, [-0.2, 3]),
    ("leaky_relu", {"x": F([-2])}, [-0.02]),  # alpha defaults to 0.01
    ("elu", {"x": F([-1, 2]), "alpha": F(1)}, [-0.6321205588285577, 2]),
    ("clamped_relu", {"x": F([-2, 1, 8]), "alpha": F(0.5), "beta": F(6)}, [-1, 1, 6]),
    ("prelu", {"x": F([[[-1], [-1]]]), "alpha": F([0.1, 0.2])}, [[[-0.1], [-0.2]]]),
    ("sigmoid_hard", {"x": F([0, 10, -10]), "alpha": F(0.2), "beta": F(0.5)}, [0.5, 1, 0]),
    ("linear_activation", {"x": F([1, 2]), "alpha": F(2), "beta": F(1)}, [3, 5]),
    ("scaled_tanh", {"x": F([0.5]), "alpha": F(2), "beta": F(2)}, [1.5231883119115297]),
    ("thresholded_relu", {"x": F([0.5, 1, 2]), "alpha": F(1)}, [0, 1, 2]),
    ("softplus_parametric", {"x": F([[[0], [0]]]), "alpha": F([1, 2]), "beta": F([1, 1])},
     [[[0.6931471805599453], [1.3862943611198906]]]),
]


@pytest.mark.parametrize(("op", "args", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_float_op_matches_its_documented_value(op: str, args: dict, expected: list) -> None:
    out = run(op, **args)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


BOOL_CASES = [
    ("equal", {"x": np.int32([1, 2, 3]), "y": np.int32(2)}, [False, True, False]),
    ("not_equal", {"x": np.int32([1, 2, 3]), "y": np.int32(2)}, [True, False, True]),
    ("less", {"x": F([1, 2, 3]), "y": F(2)}, [True, False, False]),
    ("less_equal", {"x": F([1, 2, 3]), "y": F(2)}, [True, True, False]),
    ("greater", {"x": F([1, 2, 3]), "y": F(2)}, [False, False, True]),
    ("greater_equal", {"x": F([1, 2, 3]), "y": F(2)}, [False, True, True]),
    ("logical_and", {"x": np.array([1, 1, 0, 0], bool), "y": np.array([1, 0, 1, 0], bool)},
     [True, False, False, False]),
    ("logical_or", {"x": np.array([1, 1, 0, 0], bool), "y": np.array([1, 0, 1, 0], bool)},
     [True, True, True, False]),
    ("logical_xor", {"x": np.array([1, 1, 0, 0], bool), "y": np.array([1, 0, 1, 0], bool)},
     [False, True, True, False]),
    ("logical_not", {"x": np.array([True, False])}, [False, True]),
]


@pytest.mark.parametrize(("op", "args", "expected"), BOOL_CASES, ids=[c[0] for c in BOOL_CASES])
def test_comparison_and_logic_ops_give_booleans(op: str, args: dict, expected: list) -> None:
    out = run(op, **args)
    assert out.dtype == np.bool_
    assert out.tolist() == expected


def test_integer_arithmetic_stays_integer() -> None:
    assert run("add", x=np.int32([1, 2]), y=np.int32(256)).tolist() == [257, 258]
    assert run("mul", x=np.int32([3]), y=np.int32([-2])).dtype.kind == "i"


def test_unknown_gelu_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="gelu mode 'FAST'"):
        run("gelu", x=F([1]), mode="FAST")
