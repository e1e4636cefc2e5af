"""MIL scatter ops (KV-cache writes and index_put): scatter, scatter_along_axis, scatter_nd.

Semantics follow coremltools' op definitions (ops/defs/iOS15 and iOS17 scatter_gather.py):
`updates` are combined into a copy of `data` at `indices` by `mode` (update, add, sub, mul,
div, max, min); negative indices count from the end; repeated indices with a combining mode
apply once per occurrence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.runtimes.coreml.elementwise import Args, OpFn, opt

_COMBINE = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
            "max": np.maximum, "min": np.minimum}


def _apply(out: np.ndarray, index: tuple[Any, ...], updates: np.ndarray, mode: str) -> None:
    if mode == "update":
        out[index] = updates
    elif mode in _COMBINE:
        _COMBINE[mode].at(out, index, updates)
    else:
        raise ValueError(f"scatter mode '{mode}' is not one of update, "
                         f"{', '.join(_COMBINE)}")


def _wrapped(indices: Any, size: int) -> np.ndarray:
    values = np.asarray(indices).astype(np.int64)
    return np.where(values < 0, values + size, values)


def _scatter(a: Args) -> np.ndarray:
    out = np.array(a["data"], copy=True)
    axis = int(opt(a, "axis", 0)) % out.ndim
    index = (slice(None),) * axis + (_wrapped(a["indices"], out.shape[axis]),)
    _apply(out, index, np.asarray(a["updates"]), str(opt(a, "mode", "update")))
    return out


def _scatter_along_axis(a: Args) -> np.ndarray:
    out = np.array(a["data"], copy=True)
    updates = np.asarray(a["updates"])
    axis = int(opt(a, "axis", 0)) % out.ndim
    grids: list[Any] = list(np.indices(updates.shape, sparse=True))
    grids[axis] = _wrapped(a["indices"], out.shape[axis])
    _apply(out, tuple(grids), updates, str(opt(a, "mode", "update")))
    return out


def _scatter_nd(a: Args) -> np.ndarray:
    out = np.array(a["data"], copy=True)
    indices = np.asarray(a["indices"]).astype(np.int64)
    index = tuple(_wrapped(indices[..., k], out.shape[k]) for k in range(indices.shape[-1]))
    _apply(out, index, np.asarray(a["updates"]), str(opt(a, "mode", "update")))
    return out


OPS: dict[str, OpFn] = {
    "scatter": _scatter,
    "scatter_along_axis": _scatter_along_axis,
    "scatter_nd": _scatter_nd,
}
