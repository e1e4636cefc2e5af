"""MIL ops that move, select and reshape data: reshape, transpose, slicing, gather, concat.

Semantics follow coremltools' op definitions: negative axes count from the end; `reshape`
takes -1 (inferred) and 0 (copied from x when the rank is unchanged); `expand_dims` axes refer
to the output rank; `gather` accepts negative indices (-D <= i < D) and `batch_dims`;
`slice_by_index` applies begin/end/squeeze masks; `concat` can interleave.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgekit.runtimes.coreml.elementwise import Args, OpFn, opt, scalar
from edgekit.runtimes.coreml.program import NUMPY_DTYPE


def ints(value: Any) -> list[int]:
    """A const int vector argument as a list of Python ints."""
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _reshape(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    shape = ints(a["shape"])
    if len(shape) == x.ndim:
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


def _expand_dims(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    out_rank = x.ndim + len(ints(a["axes"]))
    axes = sorted(ax % out_rank for ax in ints(a["axes"]))
    return np.expand_dims(x, tuple(axes))


def _squeeze(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    if "axes" not in a:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(ints(a["axes"])))


def _concat(a: Args) -> np.ndarray:
    values = [np.asarray(v) for v in a["values"]]
    if any(v.ndim == 0 for v in values):  # coremltools concatenates scalars into a vector
        values = [np.atleast_1d(v) for v in values]
    axis = int(scalar(a["axis"]))
    if not opt(a, "interleave", False):
        return np.concatenate(values, axis=axis)
    # interleave: the i-th slices of every input along `axis` come out one after another
    stacked = np.stack(values, axis=axis % values[0].ndim + 1)
    shape = list(values[0].shape)
    shape[axis] = shape[axis] * len(values)
    return stacked.reshape(shape)


def _split(a: Args) -> tuple[np.ndarray, ...]:
    x = np.asarray(a["x"])
    axis = int(scalar(a["axis"]))
    if "split_sizes" in a:
        bounds = np.cumsum(ints(a["split_sizes"]))[:-1]
        return tuple(np.split(x, bounds, axis=axis))
    return tuple(np.split(x, int(scalar(a["num_splits"])), axis=axis))


def _slices(a: Args, shape: tuple[int, ...]) -> tuple[tuple[Any, ...], list[int]]:
    """The numpy index of slice_by_index / slice_update, and the axes it squeezes."""
    rank = len(shape)
    begin, end = ints(a["begin"]), ints(a["end"])
    stride = ints(a["stride"]) if "stride" in a else [1] * rank
    begin_mask = ints(a["begin_mask"]) if "begin_mask" in a else [0] * rank
    end_mask = ints(a["end_mask"]) if "end_mask" in a else [0] * rank
    squeeze_mask = ints(a["squeeze_mask"]) if "squeeze_mask" in a else [0] * rank
    index: list[Any] = []
    for i in range(rank):
        if squeeze_mask[i]:
            index.append(slice(begin[i], begin[i] + 1 if begin[i] != -1 else None))
            continue
        start = None if begin_mask[i] else begin[i]
        stop = None if end_mask[i] else end[i]
        index.append(slice(start, stop, stride[i]))
    return tuple(index), [i for i in range(rank) if squeeze_mask[i]]


def _slice_by_index(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    index, squeezed = _slices(a, x.shape)
    out = x[index]
    return np.squeeze(out, axis=tuple(squeezed)) if squeezed else out


def _slice_update(a: Args) -> np.ndarray:
    x = np.array(a["x"], copy=True)
    index, squeezed = _slices(a, x.shape)
    update = np.asarray(a["update"])
    if squeezed:
        update = np.expand_dims(update, tuple(squeezed))
    x[index] = update
    return x


def _slice_by_size(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    begin, size = ints(a["begin"]), ints(a["size"])
    index = tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size, strict=True))
    return x[index]


def _gather(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    indices = np.asarray(a["indices"]).astype(np.int64)
    axis = int(opt(a, "axis", 0)) % x.ndim
    batch_dims = int(opt(a, "batch_dims", 0))
    if batch_dims == 0:
        return np.take(x, indices, axis=axis)
    batch = x.shape[:batch_dims]
    flat_x = x.reshape((-1,) + x.shape[batch_dims:])
    flat_i = indices.reshape((-1,) + indices.shape[batch_dims:])
    parts = [np.take(flat_x[b], flat_i[b], axis=axis - batch_dims)
             for b in range(flat_x.shape[0])]
    return np.stack(parts).reshape(batch + parts[0].shape)


def _gather_along_axis(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    indices = np.asarray(a["indices"]).astype(np.int64)
    axis = int(opt(a, "axis", 0))
    indices = np.where(indices < 0, indices + x.shape[axis], indices)
    return np.take_along_axis(x, indices, axis=axis)


def _gather_nd(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    indices = np.asarray(a["indices"]).astype(np.int64)
    batch_dims = int(opt(a, "batch_dims", 0))
    depth = indices.shape[-1]
    batch = x.shape[:batch_dims]
    flat_x = x.reshape((-1,) + x.shape[batch_dims:])
    flat_i = indices.reshape((flat_x.shape[0], -1, depth))
    parts = [flat_x[b][tuple(np.moveaxis(flat_i[b], -1, 0))] for b in range(flat_x.shape[0])]
    return np.stack(parts).reshape(batch + indices.shape[batch_dims:-1]
                                   + x.shape[batch_dims + depth:])


def _cast(a: Args) -> np.ndarray:
    # fp16 is held as float32 and rounded by the interpreter in fp16 mode.
    dtype = scalar(a["dtype"])
    target = np.float32 if dtype in ("fp16", "fp32") else NUMPY_DTYPE[dtype]
    return np.asarray(a["x"]).astype(target)


def _pad(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    pad = ints(a["pad"])
    lead = x.ndim - len(pad) // 2  # pad covers the last len(pad)/2 axes
    widths = [(0, 0)] * lead + [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]
    mode = opt(a, "mode", "constant")
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=opt(a, "constant_val", 0.0))
    if mode == "reflect":
        return np.pad(x, widths, mode="reflect")
    if mode == "replicate":
        return np.pad(x, widths, mode="edge")
    raise ValueError(f"pad mode '{mode}' is not one of constant, reflect, replicate")


def _band_part(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    lower, upper = int(opt(a, "lower", -1)), int(opt(a, "upper", -1))
    rows = np.arange(x.shape[-2])[:, None]
    cols = np.arange(x.shape[-1])[None, :]
    keep = ((lower < 0) | (rows - cols <= lower)) & ((upper < 0) | (cols - rows <= upper))
    return np.where(keep, x, np.zeros((), dtype=x.dtype))


def _cumsum(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    axis = int(opt(a, "axis", 0))
    if opt(a, "reverse", False):
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype)
    if opt(a, "exclusive", False):
        out = out - x
    return np.flip(out, axis) if opt(a, "reverse", False) else out


def _range_1d(a: Args) -> np.ndarray:
    return np.arange(scalar(a["start"]), scalar(a["end"]), scalar(a["step"]))


def _flatten2d(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    axis = int(opt(a, "axis", 1))  # Python slicing: x.shape[:axis] | x.shape[axis:]
    return x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))


def _one_hot(a: Args) -> np.ndarray:
    indices = np.asarray(a["indices"]).astype(np.int64)
    depth = int(scalar(a["one_hot_vector_size"]))
    axis = int(opt(a, "axis", -1))
    hot = np.arange(depth) == indices[..., None]
    out = np.where(hot, opt(a, "on_value", 1), opt(a, "off_value", 0))
    return np.moveaxis(out, -1, axis)


def _upsample_nearest_neighbor(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])
    scales = (float(opt(a, "scale_factor_height", 1)), float(opt(a, "scale_factor_width", 1)))
    for axis, scale in zip((-2, -1), scales, strict=True):
        size = int(math.floor(x.shape[axis] * scale))  # out[i] = x[floor(i / scale)]
        x = np.take(x, np.floor(np.arange(size) / scale).astype(np.int64), axis=axis)
    return x


def _pixel_shuffle(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])  # [N, C*r*r, H, W] -> [N, C, H*r, W*r]
    r = int(scalar(a["upscale_factor"]))
    n, c, h, w = x.shape
    blocks = x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
    return blocks.reshape(n, c // (r * r), h * r, w * r)


def _pixel_unshuffle(a: Args) -> np.ndarray:
    x = np.asarray(a["x"])  # [N, C, H*r, W*r] -> [N, C*r*r, H, W]
    r = int(scalar(a["downscale_factor"]))
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // r, r, w // r, r).transpose(0, 1, 3, 5, 2, 4)
    return blocks.reshape(n, c * r * r, h // r, w // r)


OPS: dict[str, OpFn] = {
    "identity": lambda a: np.asarray(a["x"]),
    "reshape": _reshape,
    "transpose": lambda a: np.transpose(np.asarray(a["x"]), ints(a["perm"])),
    "expand_dims": _expand_dims,
    "squeeze": _squeeze,
    "concat": _concat,
    "stack": lambda a: np.stack([np.asarray(v) for v in a["values"]],
                                axis=int(scalar(a["axis"]))),
    "split": _split,
    "slice_by_index": _slice_by_index,
    "slice_by_size": _slice_by_size,
    "slice_update": _slice_update,
    "tile": lambda a: np.tile(np.asarray(a["x"]), ints(a["reps"])),
    "gather": _gather,
    "gather_along_axis": _gather_along_axis,
    "gather_nd": _gather_nd,
    "select": lambda a: np.where(np.asarray(a["cond"]).astype(bool), a["a"], a["b"]),
    "cast": _cast,
    "shape": lambda a: np.asarray(np.shape(a["x"]), dtype=np.int32),
    "fill": lambda a: np.full(ints(a["shape"]), opt(a, "value", 0.0)),
    "range_1d": _range_1d,
    "pad": _pad,
    "band_part": _band_part,
    "cumsum": _cumsum,
    "flatten2d": _flatten2d,
    "one_hot": _one_hot,
    "upsample_nearest_neighbor": _upsample_nearest_neighbor,
    "pixel_shuffle": _pixel_shuffle,
    "pixel_unshuffle": _pixel_unshuffle,
    "reverse": lambda a: np.flip(np.asarray(a["x"]), tuple(ints(a["axes"])) if "axes" in a
                                 else None),
}
