"""Element-wise MIL ops: binary arithmetic and comparisons, unary math, activations.

Semantics follow coremltools' op definitions (ops/defs/iOS15..iOS18): binary ops broadcast
like numpy, `rsqrt`/`log`/`inverse` add their documented `epsilon` first, `round` rounds half
to even, `gelu` has the EXACT, TANH_APPROXIMATION and SIGMOID_APPROXIMATION modes.
Every function takes the op's resolved arguments by parameter name and returns its output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Args = dict[str, Any]
OpFn = Callable[[Args], Any]


def scalar(value: Any) -> Any:
    """A const argument as a Python scalar (str stays str)."""
    return value if isinstance(value, str) else np.asarray(value).item()


def opt(a: Args, name: str, default: Any) -> Any:
    """An optional const argument as a Python scalar, or `default` when absent."""
    return scalar(a[name]) if name in a else default


def _binary(fn: Callable[[Any, Any], Any]) -> OpFn:
    return lambda a: fn(np.asarray(a["x"]), np.asarray(a["y"]))


def _unary(fn: Callable[[np.ndarray], Any]) -> OpFn:
    return lambda a: fn(np.asarray(a["x"]))


def _floor_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.floor_divide(x, y)


def _real_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Python's truediv, as the op's value_inference; an int32 result truncates toward zero.
    return np.true_divide(x, y)


_ERF = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, element-wise (math.erf: exact to double precision)."""
    return np.asarray(_ERF(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), as 0.5 * (1 + tanh(x / 2)): no overflow for large |x|."""
    x = np.asarray(x)
    half = x.dtype.type(0.5) if x.dtype.kind == "f" else 0.5
    return half * (1 + np.tanh(x * half))


def _gelu(a: Args) -> np.ndarray:
    x = np.asarray(a["x"], dtype=np.float64)
    mode = opt(a, "mode", "EXACT")
    if mode == "EXACT":
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * sigmoid(1.702 * x)
    raise ValueError(f"gelu mode '{mode}' is not one of EXACT, TANH_APPROXIMATION, "
                     "SIGMOID_APPROXIMATION")


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


def _leaky_relu(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    return np.where(x >= 0, x, opt(a, "alpha", 0.01) * x)


def _elu(a: Args) -> np.ndarray:
    x = np.asarray(a["x"], dtype=np.float64)
    return np.where(x > 0, x, opt(a, "alpha", 1.0) * np.expm1(np.minimum(x, 0.0)))


def _clamped_relu(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    return np.minimum(np.where(x >= 0, x, scalar(a["alpha"]) * x), scalar(a["beta"]))


def _prelu(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    alpha = np.asarray(a["alpha"]).reshape((1, -1) + (1,) * (x.ndim - 2))  # one per channel
    return np.where(x >= 0, x, alpha * x)


def _sigmoid_hard(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    return np.clip(opt(a, "alpha", 0.2) * x + opt(a, "beta", 0.5), 0.0, 1.0)


def _linear_activation(a: Args) -> np.ndarray:
    return opt(a, "alpha", 1.0) * np.asarray(a["x"]) + opt(a, "beta", 0.0)


def _scaled_tanh(a: Args) -> np.ndarray:
    return opt(a, "alpha", 1.0) * np.tanh(opt(a, "beta", 1.0) * np.asarray(a["x"]))


def _thresholded_relu(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    return np.where(x >= opt(a, "alpha", 1.0), x, 0.0)


def _softplus_parametric(a: Args) -> np.ndarray:
    x = np.asarray(a["x"], dtype=np.float64)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    alpha = np.asarray(a["alpha"]).reshape(shape)
    beta = np.asarray(a["beta"]).reshape(shape)
    return alpha * np.logaddexp(0.0, beta * x)


def _eps(a: Args, default: float) -> float:
    return float(opt(a, "epsilon", default))


def _clip(a: Args) -> np.ndarray:
    return np.minimum(np.maximum(np.asarray(a["x"]), scalar(a["alpha"])), scalar(a["beta"]))


def _threshold(a: Args) -> np.ndarray:
    return np.maximum(np.asarray(a["x"]), scalar(a["alpha"]))


OPS: dict[str, OpFn] = {
    # binary, numpy broadcasting
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "real_div": _binary(_real_div),
    "floor_div": _binary(_floor_div),
    "mod": _binary(np.mod),
    "pow": _binary(np.power),
    "maximum": _binary(np.maximum),
    "minimum": _binary(np.minimum),
    "equal": _binary(np.equal),
    "not_equal": _binary(np.not_equal),
    "less": _binary(np.less),
    "less_equal": _binary(np.less_equal),
    "greater": _binary(np.greater),
    "greater_equal": _binary(np.greater_equal),
    "logical_and": _binary(np.logical_and),
    "logical_or": _binary(np.logical_or),
    "logical_xor": _binary(np.logical_xor),
    # unary
    "abs": _unary(np.abs),
    "sign": _unary(np.sign),
    "ceil": _unary(np.ceil),
    "floor": _unary(np.floor),
    "round": _unary(np.round),  # half to even, as the op's value_inference (np.round)
    "sqrt": _unary(np.sqrt),
    "square": _unary(np.square),
    "exp": _unary(np.exp),
    "exp2": _unary(np.exp2),
    "sin": _unary(np.sin),
    "cos": _unary(np.cos),
    "tan": _unary(np.tan),
    "asin": _unary(np.arcsin),
    "acos": _unary(np.arccos),
    "atan": _unary(np.arctan),
    "sinh": _unary(np.sinh),
    "cosh": _unary(np.cosh),
    "atanh": _unary(np.arctanh),
    "erf": _unary(erf),
    "logical_not": _unary(np.logical_not),
    "rsqrt": lambda a: 1.0 / np.sqrt(np.asarray(a["x"]) + _eps(a, 1e-12)),
    "log": lambda a: np.log(np.asarray(a["x"]) + _eps(a, 1e-45)),
    "inverse": lambda a: 1.0 / (np.asarray(a["x"]) + _eps(a, 1e-4)),
    "clip": _clip,
    "threshold": _threshold,
    # activations
    "relu": _unary(lambda x: np.maximum(x, 0)),
    "relu6": _unary(lambda x: np.clip(x, 0, 6)),
    "sigmoid": _unary(sigmoid),
    "tanh": _unary(np.tanh),
    "silu": _unary(lambda x: x * sigmoid(x)),
    "gelu": _gelu,
    "softplus": _unary(_softplus),
    "softsign": _unary(lambda x: x / (1.0 + np.abs(x))),
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "clamped_relu": _clamped_relu,
    "prelu": _prelu,
    "sigmoid_hard": _sigmoid_hard,
    "linear_activation": _linear_activation,
    "scaled_tanh": _scaled_tanh,
    "thresholded_relu": _thresholded_relu,
    "softplus_parametric": _softplus_parametric,
}
