"""Compile-time MIL ops that decompress stored weights: block-wise int4/int8 (shift and scale),
palettized (look-up tables) and sparse (bit mask) weights.

Semantics follow coremltools' iOS 18 op definitions (ops/defs/iOS18/compression.py):

- constexpr_blockwise_shift_scale: out[i..] = scale[i0..] * (data[i..] - offset[i0..]) with
  i0 = floor(i / block_size) per axis and block_size = data.shape / scale.shape.
- constexpr_lut_to_dense: out[i..] = lut[block(i..), indices[i..], :]; a vector of
  VECTOR_SIZE values fills `vector_axis` contiguously.
- constexpr_sparse_to_dense: the mask's set bits, in row-major order, take nonzero_data in order;
  other elements are 0.

Also the iOS 16 constexpr_affine_dequantize ((data - zero_point) * scale along `axis`) and
constexpr_cast. The interpreter runs these once when a session is created.
"""

from __future__ import annotations

import numpy as np

from edgekit.runtimes.coreml.elementwise import Args, OpFn, opt, scalar
from edgekit.runtimes.coreml.program import NUMPY_DTYPE


def _blockwise_shift_scale(a: Args) -> np.ndarray:
    data = np.asarray(a["data"]).astype(np.float32)
    scale = np.asarray(a["scale"], dtype=np.float32)
    offset = np.asarray(a["offset"]).astype(np.float32) if "offset" in a else None
    for axis, (size, blocks) in enumerate(zip(data.shape, scale.shape, strict=True)):
        if size % blocks:
            raise ValueError(f"scale has {blocks} blocks on axis {axis}, which does not divide "
                             f"data's size {size}")
        if size != blocks:
            scale = np.repeat(scale, size // blocks, axis=axis)
            offset = None if offset is None else np.repeat(offset, size // blocks, axis=axis)
    return scale * (data - offset) if offset is not None else scale * data


def _block_index(shape: tuple[int, ...], blocks: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Per axis, the block each position belongs to, shaped to broadcast over `shape`."""
    index = []
    for axis, (size, count) in enumerate(zip(shape, blocks, strict=True)):
        view = [1] * len(shape)
        view[axis] = size
        index.append((np.arange(size) // (size // count)).reshape(view))
    return tuple(index)


def _ios16_packed(a: Args) -> None:
    if "shape" in a:  # the iOS 16 forms store packed bits plus an output shape
        raise ValueError("the iOS 16 form (packed bits with a `shape`) is not emulated; "
                         "convert with minimum_deployment_target iOS18")


def _lut_to_dense(a: Args) -> np.ndarray:
    _ios16_packed(a)
    indices = np.asarray(a["indices"]).astype(np.int64)
    lut = np.asarray(a["lut"])
    rank = indices.ndim
    vectors = lut[_block_index(indices.shape, lut.shape[:rank]) + (indices,)]  # *shape, V
    vector_size = lut.shape[-1]
    if vector_size == 1:
        return vectors[..., 0]
    axis = int(scalar(a["vector_axis"])) % rank
    moved = np.moveaxis(vectors, -1, axis + 1)  # ..., n_axis, V, ...
    shape = list(indices.shape)
    shape[axis] *= vector_size
    return moved.reshape(shape)


def _sparse_to_dense(a: Args) -> np.ndarray:
    _ios16_packed(a)
    mask = np.asarray(a["mask"]) != 0
    data = np.asarray(a["nonzero_data"])
    if int(mask.sum()) != data.size:
        raise ValueError(f"mask has {int(mask.sum())} set bits but nonzero_data has "
                         f"{data.size} values")
    out = np.zeros(mask.shape, dtype=data.dtype)
    out[mask] = data
    return out


def _affine_dequantize(a: Args) -> np.ndarray:
    data = np.asarray(a["quantized_data"]).astype(np.float32)
    axis = int(opt(a, "axis", 0)) % data.ndim
    shape = [1] * data.ndim
    shape[axis] = -1

    def per_axis(name: str) -> np.ndarray:
        value = np.asarray(a[name]).astype(np.float32)
        return value if value.ndim == 0 else value.reshape(shape)

    return (data - per_axis("zero_point")) * per_axis("scale")


def _constexpr_cast(a: Args) -> np.ndarray:
    dtype = scalar(a["output_dtype"])
    target = np.float32 if dtype in ("fp16", "fp32") else NUMPY_DTYPE[dtype]
    return np.asarray(a["source_val"]).astype(target)


OPS: dict[str, OpFn] = {
    "constexpr_blockwise_shift_scale": _blockwise_shift_scale,
    "constexpr_lut_to_dense": _lut_to_dense,
    "constexpr_sparse_to_dense": _sparse_to_dense,
    "constexpr_affine_dequantize": _affine_dequantize,
    "constexpr_cast": _constexpr_cast,
}
