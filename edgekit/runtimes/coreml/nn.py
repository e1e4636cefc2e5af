"""Neural-network MIL ops: linear, matmul, conv, pooling, normalisation, reductions,
softmax and scaled_dot_product_attention.

Semantics follow coremltools' op definitions: `linear` is x @ weight.T + bias; conv and pool
take `pad_type` valid / same (extra padding at the end) / same_lower (extra at the start) /
custom, and pool's `ceil_mode` uses the output-size rule of ops/defs/_utils.py;
`batch_norm` and `instance_norm` act per channel (axis 1); `layer_norm` normalises over `axes`
with gamma shaped like x.shape[axes]; `scaled_dot_product_attention` scales by
1/sqrt(E) and treats a bool mask as -inf where False. Sums accumulate in float32 (float64 for
the normalisation statistics).
"""

from __future__ import annotations

import itertools
import math
import string

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgekit.runtimes.coreml.elementwise import Args, OpFn, opt, scalar
from edgekit.runtimes.coreml.tensor import ints

F32 = np.float32


def _linear(a: Args) -> np.ndarray:
    out = np.matmul(np.asarray(a["x"]), np.asarray(a["weight"]).T)
    return out + np.asarray(a["bias"]) if "bias" in a else out


def _matmul(a: Args) -> np.ndarray:
    x, y = np.asarray(a["x"]), np.asarray(a["y"])
    if opt(a, "transpose_x", False) and x.ndim > 1:
        x = np.swapaxes(x, -1, -2)
    if opt(a, "transpose_y", False) and y.ndim > 1:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def _padding(a: Args, spatial: tuple[int, ...], kernel: list[int], strides: list[int],
             dilations: list[int]) -> list[tuple[int, int]]:
    """(before, after) padding per spatial axis from pad_type, as ops/defs/_utils.py."""
    pad_type = opt(a, "pad_type", "valid")
    nd = len(spatial)
    if pad_type == "valid":
        return [(0, 0)] * nd
    if pad_type == "custom":
        pad = ints(a["pad"]) if "pad" in a else [0] * 2 * nd
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(nd)]
    if pad_type not in ("same", "same_lower"):
        raise ValueError(f"pad_type '{pad_type}' is not one of valid, custom, same, same_lower")
    result = []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        effective = (k - 1) * d + 1
        total = max(0, s * math.ceil(size / s) - size + effective - s)
        small, large = total // 2, total - total // 2
        result.append((small, large) if pad_type == "same" else (large, small))
    return result


def _windows(x: np.ndarray, kernel: list[int], strides: list[int], dilations: list[int],
             out: list[int]) -> np.ndarray:
    """Views [N, C, *out, *kernel] of padded x: the input under each output position."""
    nd = len(kernel)
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    view = sliding_window_view(x, effective, axis=tuple(range(2, 2 + nd)))
    index = (slice(None), slice(None)) \
        + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, strides, strict=True)) \
        + tuple(slice(None, None, d) for d in dilations)
    return view[index]


def _conv(a: Args) -> np.ndarray:
    x, weight = np.asarray(a["x"]), np.asarray(a["weight"])
    nd = weight.ndim - 2
    kernel = list(weight.shape[2:])
    strides = ints(a["strides"]) if "strides" in a else [1] * nd
    dilations = ints(a["dilations"]) if "dilations" in a else [1] * nd
    groups = int(opt(a, "groups", 1))
    pads = _padding(a, x.shape[2:], kernel, strides, dilations)
    padded = np.pad(x, [(0, 0), (0, 0), *pads])
    out = [(padded.shape[2 + i] - ((k - 1) * d + 1)) // s + 1
           for i, (k, s, d) in enumerate(zip(kernel, strides, dilations, strict=True))]
    win = _windows(padded, kernel, strides, dilations, out)  # N, Cin, *O, *K
    n, cin = x.shape[:2]
    win = win.reshape((n, groups, cin // groups) + win.shape[2:])
    w = weight.reshape((groups, weight.shape[0] // groups) + weight.shape[1:])
    o_letters, k_letters = string.ascii_lowercase[:nd], string.ascii_uppercase[:nd]
    result = np.einsum(f"ngc{o_letters}{k_letters},gdc{k_letters}->ngd{o_letters}", win, w,
                       optimize=True)
    result = result.reshape((n, weight.shape[0]) + tuple(out))
    if "bias" in a:
        result = result + np.asarray(a["bias"]).reshape((1, -1) + (1,) * nd)
    return result


def _conv_transpose(a: Args) -> np.ndarray:
    """Each input element adds weight * x at stride * i + dilation * k; then padding is cut.

    `pad` (custom) cuts pad[2i] from the start and pad[2i+1] from the end; `same` gives
    D_in * stride, cutting the excess half from the start (rounded down); `output_shape`
    keeps that many positions from the start cut (zeros past the computed end).
    """
    x, weight = np.asarray(a["x"], dtype=np.float32), np.asarray(a["weight"])
    nd = weight.ndim - 2
    kernel = list(weight.shape[2:])
    strides = ints(a["strides"]) if "strides" in a else [1] * nd
    dilations = ints(a["dilations"]) if "dilations" in a else [1] * nd
    groups = int(opt(a, "groups", 1))
    n, cin = x.shape[:2]
    cout = weight.shape[1] * groups
    spatial = x.shape[2:]
    full = [(size - 1) * s + (k - 1) * d + 1
            for size, s, k, d in zip(spatial, strides, kernel, dilations, strict=True)]
    out = np.zeros((n, groups, cout // groups, *full), dtype=np.float32)
    xg = x.reshape((n, groups, cin // groups) + spatial)
    wg = weight.reshape((groups, cin // groups, cout // groups) + tuple(kernel))
    for offset in itertools.product(*(range(k) for k in kernel)):
        tap: np.ndarray = wg[(slice(None),) * 3 + offset]  # [G, Cin/G, Cout/G] at `offset`
        contribution = np.einsum("ngc...,gco->ngo...", xg, tap)
        index = tuple(slice(o * d, o * d + (size - 1) * s + 1, s)
                      for o, d, size, s in zip(offset, dilations, spatial, strides, strict=True))
        out[(slice(None), slice(None), slice(None), *index)] += contribution
    out = out.reshape((n, cout, *full))
    pad_type = opt(a, "pad_type", "valid")
    pads = ints(a["pad"]) if "pad" in a and pad_type == "custom" else [0] * 2 * nd
    starts = [pads[2 * i] for i in range(nd)]
    sizes = [f - pads[2 * i] - pads[2 * i + 1] for i, f in enumerate(full)]
    if pad_type == "same":
        sizes = [size * s for size, s in zip(spatial, strides, strict=True)]
        starts = [(f - size) // 2 for f, size in zip(full, sizes, strict=True)]
    if "output_shape" in a:
        sizes = ints(a["output_shape"])[-nd:]
    grown = np.pad(out, [(0, 0), (0, 0)] + [(0, max(0, b + size - f)) for b, size, f in
                                           zip(starts, sizes, full, strict=True)])
    result = grown[(slice(None), slice(None), *(slice(b, b + size)
                                                for b, size in zip(starts, sizes, strict=True)))]
    if "bias" in a:
        result = result + np.asarray(a["bias"]).reshape((1, -1) + (1,) * nd)
    return result


def _pool(a: Args, kind: str) -> np.ndarray:
    x = np.asarray(a["x"], dtype=np.float32)
    kernel = ints(a["kernel_sizes"])
    nd = len(kernel)
    strides = ints(a["strides"]) if "strides" in a else [1] * nd
    pads = _padding(a, x.shape[2:], kernel, strides, [1] * nd)
    out = []
    for size, k, s, (before, after) in zip(x.shape[2:], kernel, strides, pads, strict=True):
        total = before + after
        if opt(a, "ceil_mode", False):
            dim = math.floor((size + total - k + s - 1) / s + 1)
            if (dim - 1) * s >= size + total / 2 and total > 0:
                dim -= 1
        else:
            dim = math.floor((size + total - k) / s + 1)
        out.append(dim)
    # extra room at the end for ceil_mode windows that run past the padding
    extra = [max(0, (o - 1) * s + k - (size + b + e))
             for o, s, k, size, (b, e) in zip(out, strides, kernel, x.shape[2:], pads,
                                              strict=True)]
    widths = [(0, 0), (0, 0)] + [(b, e + x_) for (b, e), x_ in zip(pads, extra, strict=True)]
    win_axes = tuple(range(-nd, 0))
    if kind == "max":
        padded = np.pad(x, widths, constant_values=-np.inf)
        return _windows(padded, kernel, strides, [1] * nd, out).max(axis=win_axes)
    total = _windows(np.pad(x, widths), kernel, strides, [1] * nd, out).sum(axis=win_axes)
    # denominator: elements of the window inside the input, or inside input plus padding
    counted = np.zeros((1, 1) + x.shape[2:], dtype=np.float32)
    if opt(a, "exclude_padding_from_average", False):
        counted = np.pad(counted + 1, widths[:2] + [(b, e + x_) for (b, e), x_ in
                                                   zip(pads, extra, strict=True)])
    else:
        counted = np.pad(np.pad(counted + 1, [(0, 0), (0, 0), *pads], constant_values=1),
                         [(0, 0), (0, 0)] + [(0, x_) for x_ in extra])
    count = _windows(counted, kernel, strides, [1] * nd, out).sum(axis=win_axes)
    return total / count


def _l2_pool(a: Args) -> np.ndarray:
    squared = dict(a, x=np.square(np.asarray(a["x"], dtype=np.float32)))
    kernel = ints(a["kernel_sizes"])
    return np.sqrt(_pool(squared, "avg") * float(np.prod(kernel)))


def _axes(a: Args, key: str = "axes") -> tuple[int, ...] | None:
    return tuple(ints(a[key])) if key in a and a[key] is not None else None


def _batch_norm(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    shape = (1, -1) + (1,) * (x.ndim - 2)

    def channel(name: str, default: float) -> np.ndarray:
        return np.asarray(a[name]).reshape(shape) if name in a else np.asarray(default, F32)

    scale = channel("gamma", 1.0) / np.sqrt(channel("variance", 1.0) + opt(a, "epsilon", 1e-5))
    return (x - channel("mean", 0.0)) * scale + channel("beta", 0.0)


def _normalize(x: np.ndarray, axes: tuple[int, ...], epsilon: float) -> np.ndarray:
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = np.square(x64 - mean).mean(axis=axes, keepdims=True)
    return (x64 - mean) / np.sqrt(var + epsilon)


def _layer_norm(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    axes = tuple(sorted(ax % x.ndim for ax in (_axes(a) or range(x.ndim))))
    out = _normalize(x, axes, float(opt(a, "epsilon", 1e-5)))
    shape = tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))
    if "gamma" in a:
        out = out * np.asarray(a["gamma"]).reshape(shape)
    if "beta" in a:
        out = out + np.asarray(a["beta"]).reshape(shape)
    return out


def _instance_norm(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    out = _normalize(x, tuple(range(2, x.ndim)), float(opt(a, "epsilon", 1e-5)))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if "gamma" in a:
        out = out * np.asarray(a["gamma"]).reshape(shape)
    if "beta" in a:
        out = out + np.asarray(a["beta"]).reshape(shape)
    return out


def _l2_norm(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])  # normalised over the last three axes, batch-wise before them
    total = np.sum(np.square(x.astype(np.float64)), axis=(-3, -2, -1), keepdims=True)
    return x / np.sqrt(total + float(opt(a, "epsilon", 1e-6)))


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Softmax along `axis`, shifted by the max for stability (a row of -inf stays NaN)."""
    x32 = np.asarray(x, dtype=np.float32)
    shifted = np.exp(x32 - x32.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def _sdpa(a: Args) -> np.ndarray:
    q, k, v = (np.asarray(a[n], dtype=np.float32) for n in ("query", "key", "value"))
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) / np.float32(math.sqrt(q.shape[-1]))
    if "attn_mask" in a:
        mask = np.asarray(a["attn_mask"])
        scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else scores + mask
    return np.matmul(softmax(scores, -1), v)


def _reduce(fn: str) -> OpFn:
    def run(a: Args) -> np.ndarray:
        x = np.asarray(a["x"])
        axes = _axes(a)
        keep = bool(opt(a, "keep_dims", False))
        if fn == "l2_norm":
            return np.sqrt(np.sum(np.square(x), axis=axes, keepdims=keep))
        if fn == "sum_square":
            return np.sum(np.square(x), axis=axes, keepdims=keep)
        if fn == "log_sum":
            return np.log(np.sum(x, axis=axes, keepdims=keep))
        if fn == "log_sum_exp":
            peak = np.max(x, axis=axes, keepdims=True)
            total = np.log(np.sum(np.exp(x - peak), axis=axes, keepdims=True)) + peak
            return total if keep else np.squeeze(total, axis=axes)
        return getattr(np, fn)(x, axis=axes, keepdims=keep)

    return run


def _reduce_arg(fn: str) -> OpFn:
    def run(a: Args) -> np.ndarray:
        x = np.asarray(a["x"])
        axis = int(opt(a, "axis", -1))
        out = getattr(np, fn)(x, axis=axis)  # first occurrence on ties, as numpy
        if opt(a, "keep_dims", False):
            out = np.expand_dims(out, axis)
        return out.astype(np.int32)

    return run


def _topk(a: Args) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a["x"])
    k, axis = int(opt(a, "k", 1)), int(opt(a, "axis", -1))
    ascending = bool(opt(a, "ascending", False))
    order = np.argsort(x if ascending else -x, axis=axis, kind="stable")
    index = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, index, axis=axis), index.astype(np.int32)


OPS: dict[str, OpFn] = {
    "linear": _linear,
    "matmul": _matmul,
    "einsum": lambda a: np.einsum(scalar(a["equation"]), *[np.asarray(v) for v in a["values"]]),
    "conv": _conv,
    "conv_transpose": _conv_transpose,
    "max_pool": lambda a: _pool(a, "max"),
    "avg_pool": lambda a: _pool(a, "avg"),
    "l2_pool": _l2_pool,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "instance_norm": _instance_norm,
    "l2_norm": _l2_norm,
    "softmax": lambda a: softmax(np.asarray(a["x"]), int(opt(a, "axis", -1))),
    "scaled_dot_product_attention": _sdpa,
    "reduce_mean": _reduce("mean"),
    "reduce_sum": _reduce("sum"),
    "reduce_max": _reduce("max"),
    "reduce_min": _reduce("min"),
    "reduce_prod": _reduce("prod"),
    "reduce_l1_norm": lambda a: _reduce("sum")(dict(a, x=np.abs(np.asarray(a["x"])))),
    "reduce_l2_norm": _reduce("l2_norm"),
    "reduce_sum_square": _reduce("sum_square"),
    "reduce_log_sum": _reduce("log_sum"),
    "reduce_log_sum_exp": _reduce("log_sum_exp"),
    "reduce_argmax": _reduce_arg("argmax"),
    "reduce_argmin": _reduce_arg("argmin"),
    "topk": _topk,
}
