"""Data-movement Core ML ops in the emulator, against values worked out by hand from the MIL
op documentation: reshape's -1 and 0, expand_dims axes on the output rank, slice masks,
gather with negative indices and batch_dims, concat interleave, cast truncation and wrap."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtimes.coreml.session import OPS

F = np.float32
I32 = np.int32
B = np.bool_
GRID = np.arange(12, dtype=F).reshape(3, 4)  # [[0,1,2,3],[4,5,6,7],[8,9,10,11]]
NINE = np.arange(9, dtype=F).reshape(3, 3)


def run(op: str, **args: object) -> object:
    return OPS[op](args)


CASES = [
    ("identity", {"x": F([1, 2])}, [1, 2]),
    ("reshape", {"x": np.arange(6, dtype=F), "shape": I32([2, -1])}, [[0, 1, 2], [3, 4, 5]]),
    ("reshape", {"x": NINE, "shape": I32([0, -1])}, NINE.tolist()),  # 0 copies x's dim
    ("transpose", {"x": np.arange(6, dtype=F).reshape(2, 3), "perm": I32([1, 0])},
     [[0, 3], [1, 4], [2, 5]]),
    ("expand_dims", {"x": F([1, 2]), "axes": I32([-1])}, [[1], [2]]),
    ("expand_dims", {"x": F([1, 2]), "axes": I32([0, -1])}, [[[1], [2]]]),  # on output rank 3
    ("squeeze", {"x": F([[[1], [2]]])}, [1, 2]),
    ("squeeze", {"x": F([[[1], [2]]]), "axes": I32([0])}, [[1], [2]]),
    ("concat", {"values": (F([[1, 2]]), F([[3, 4]])), "axis": I32(0)}, [[1, 2], [3, 4]]),
    ("concat", {"values": (F([[1, 2]]), F([[3, 4]])), "axis": I32(-1)}, [[1, 2, 3, 4]]),
    ("concat", {"values": (F([1, 2]), F([3, 4])), "axis": I32(0), "interleave": B(True)},
     [1, 3, 2, 4]),
    ("stack", {"values": (F([1, 2]), F([3, 4])), "axis": I32(1)}, [[1, 3], [2, 4]]),
    ("slice_by_index", {"x": np.arange(10, dtype=F), "begin": I32([2]), "end": I32([8]),
                        "stride": I32([3])}, [2, 5]),
    ("slice_by_index", {"x": GRID, "begin": I32([1, 1]), "end": I32([0, 3]),
                        "end_mask": B([True, False])}, [[5, 6], [9, 10]]),
    ("slice_by_index", {"x": GRID, "begin": I32([2, 0]), "end": I32([3, 4]),
                        "squeeze_mask": B([True, False])}, [8, 9, 10, 11]),
    ("slice_by_index", {"x": GRID, "begin": I32([-1, 0]), "end": I32([0, 4]),
                        "squeeze_mask": B([True, False])}, [8, 9, 10, 11]),
    ("slice_by_index", {"x": F([1, 2, 3]), "begin": I32([0]), "end": I32([0]), "stride": I32([-1]),
                        "begin_mask": B([True]), "end_mask": B([True])}, [3, 2, 1]),
    ("slice_by_size", {"x": GRID, "begin": I32([1, 1]), "size": I32([2, -1])},
     [[5, 6, 7], [9, 10, 11]]),
    ("slice_update", {"x": F([0, 0, 0, 0]), "update": F([7, 8]), "begin": I32([1]),
                      "end": I32([3])}, [0, 7, 8, 0]),
    ("slice_update", {"x": np.zeros((2, 2), F), "update": F([5, 6]), "begin": I32([1, 0]),
                      "end": I32([2, 2]), "squeeze_mask": B([True, False])}, [[0, 0], [5, 6]]),
    ("tile", {"x": F([1, 2]), "reps": I32([2])}, [1, 2, 1, 2]),
    ("gather", {"x": F([[1, 2], [3, 4], [5, 6]]), "indices": I32([2, -1, 0]), "axis": I32(0)},
     [[5, 6], [5, 6], [1, 2]]),
    ("gather", {"x": F([[1, 2], [3, 4], [5, 6]]), "indices": np.int16([1]), "axis": I32(1)},
     [[2], [4], [6]]),
    ("gather", {"x": F([[1, 2, 3], [4, 5, 6]]), "indices": I32([[2, 0], [1, 1]]), "axis": I32(1),
                "batch_dims": I32(1)}, [[3, 1], [5, 5]]),
    ("gather_along_axis", {"x": F([[1, 2], [3, 4]]), "indices": I32([[1, 1], [0, 1]]),
                           "axis": I32(1)}, [[2, 2], [3, 4]]),
    ("gather_along_axis", {"x": F([[1, 2], [3, 4]]), "indices": I32([[1, 0]]), "axis": I32(0)},
     [[3, 2]]),
    ("gather_nd", {"x": F([[1, 2], [3, 4]]), "indices": I32([[1, 0], [0, 1]])}, [3, 2]),
    ("gather_nd", {"x": F([[1, 2], [3, 4]]), "indices": I32([[1]])}, [[3, 4]]),
    ("select", {"cond": B([True, False]), "a": F([1, 2]), "b": F([10, 20])}, [1, 20]),
    ("select", {"cond": B([[True], [False]]), "a": F([1, 2]), "b": F(0)}, [[1, 2], [0, 0]]),
    ("fill", {"shape": I32([2, 2]), "value": F(7)}, [[7, 7], [7, 7]]),
    ("range_1d", {"start": I32(1), "end": I32(7), "step": I32(2)}, [1, 3, 5]),
    ("pad", {"x": F([[1, 2]]), "pad": I32([1, 1])}, [[0, 1, 2, 0]]),  # pads the last axes
    ("pad", {"x": F([[1, 2]]), "pad": I32([0, 1, 1, 0]), "mode": "constant",
             "constant_val": F(9)}, [[9, 1, 2], [9, 9, 9]]),
    ("pad", {"x": F([1, 2, 3]), "pad": I32([2, 1]), "mode": "reflect"}, [3, 2, 1, 2, 3, 2]),
    ("pad", {"x": F([1, 2, 3]), "pad": I32([2, 1]), "mode": "replicate"}, [1, 1, 1, 2, 3, 3]),
    ("band_part", {"x": np.ones((3, 3), F), "lower": I32(0), "upper": I32(-1)},
     [[1, 1, 1], [0, 1, 1], [0, 0, 1]]),
    ("band_part", {"x": np.ones((3, 3), F), "lower": I32(1), "upper": I32(0)},
     [[1, 0, 0], [1, 1, 0], [0, 1, 1]]),
    ("cumsum", {"x": F([1, 2, 3]), "axis": I32(0)}, [1, 3, 6]),
    ("cumsum", {"x": F([1, 2, 3]), "axis": I32(0), "exclusive": B(True)}, [0, 1, 3]),
    ("cumsum", {"x": F([1, 2, 3]), "axis": I32(0), "reverse": B(True)}, [6, 5, 3]),
    ("cumsum", {"x": F([1, 2, 3]), "axis": I32(0), "exclusive": B(True), "reverse": B(True)},
     [5, 3, 0]),
    ("one_hot", {"indices": I32([0, 2]), "one_hot_vector_size": I32(3)}, [[1, 0, 0], [0, 0, 1]]),
    ("reverse", {"x": F([[1, 2], [3, 4]]), "axes": I32([1])}, [[2, 1], [4, 3]]),
    ("reverse", {"x": F([[1, 2], [3, 4]])}, [[4, 3], [2, 1]]),
    ("shape", {"x": np.zeros((2, 3), F)}, [2, 3]),
]


@pytest.mark.parametrize(("op", "args", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_tensor_op_matches_its_documented_value(op: str, args: dict, expected: list) -> None:
    out = np.asarray(run(op, **args))
    assert out.tolist() == expected


def test_split_by_count_and_by_sizes() -> None:
    parts = run("split", x=np.arange(6, dtype=F), num_splits=I32(3), axis=I32(0))
    assert [p.tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]
    parts = run("split", x=GRID, split_sizes=I32([1, 3]), axis=I32(1))
    assert [p.tolist() for p in parts] == [[[0], [4], [8]], [[1, 2, 3], [5, 6, 7], [9, 10, 11]]]


def test_cast_truncates_floats_and_wraps_integers_as_numpy_astype() -> None:
    # coremltools' cast value_inference is numpy astype: truncation toward zero, and
    # two's-complement wrap for out-of-range int16
    assert run("cast", x=F([1.7, -1.7, 2.5]), dtype="int32").tolist() == [1, -1, 2]
    assert run("cast", x=I32([70000, -1]), dtype="int16").tolist() == [4464, -1]
    assert run("cast", x=I32([40000]), dtype="uint16").tolist() == [40000]
    assert run("cast", x=I32([0, 2]), dtype="bool").tolist() == [False, True]
    # fp16 is held as float32; the interpreter rounds it in fp16 mode only
    out = run("cast", x=I32([3]), dtype="fp16")
    assert out.dtype == np.float32 and out.tolist() == [3.0]


@pytest.mark.parametrize(("shape", "axis", "expected"), [
    ((3,), -1, (1, 3)), ((3,), 1, (3, 1)), ((4, 3), -1, (4, 3)), ((2, 3, 2), -1, (6, 2)),
    ((5, 5, 2), 1, (5, 10))])  # the examples of the op's documentation
def test_flatten2d_splits_at_axis(shape: tuple, axis: int, expected: tuple) -> None:
    x = np.arange(np.prod(shape), dtype=F).reshape(shape)
    out = run("flatten2d", x=x, axis=I32(axis))
    assert out.shape == expected and out.ravel().tolist() == x.ravel().tolist()


SCATTER_DATA = F([[1, 2, 3], [4, 5, 6]])
SCATTER_CASES = [
    # the example of the scatter documentation: rows 1 and 0 get rows 0 and 1 of updates added
    ("scatter", {"data": SCATTER_DATA, "indices": I32([1, 0]),
                 "updates": F([[5, 6, 7], [8, 9, 10]]), "axis": I32(0), "mode": "add"},
     [[9, 11, 13], [9, 11, 13]]),
    ("scatter", {"data": SCATTER_DATA, "indices": I32([1, 0]),
                 "updates": F([[5, 6, 7], [8, 9, 10]])}, [[8, 9, 10], [5, 6, 7]]),
    ("scatter", {"data": SCATTER_DATA, "indices": I32([-1]), "updates": F([[0], [0]]),
                 "axis": I32(1)}, [[1, 2, 0], [4, 5, 0]]),
    ("scatter", {"data": F([0, 0]), "indices": I32([1, 1]), "updates": F([1, 2]),
                 "mode": "add"}, [0, 3]),  # a repeated index adds twice
    ("scatter", {"data": F([8, 8]), "indices": I32([0]), "updates": F([2]), "mode": "sub"},
     [6, 8]),
    ("scatter", {"data": F([8, 8]), "indices": I32([0]), "updates": F([2]), "mode": "div"},
     [4, 8]),
    ("scatter", {"data": F([8, 8]), "indices": I32([0, 1]), "updates": F([9, 1]),
                 "mode": "max"}, [9, 8]),
    ("scatter_along_axis", {"data": np.zeros((2, 2), F), "indices": I32([[1], [0]]),
                            "updates": F([[5], [6]]), "axis": I32(1)}, [[0, 5], [6, 0]]),
    ("scatter_along_axis", {"data": np.ones((2, 2), F), "indices": I32([[1, 1]]),
                            "updates": F([[5, 6]]), "axis": I32(0), "mode": "mul"},
     [[1, 1], [5, 6]]),
    ("scatter_nd", {"data": np.zeros((2, 2), F), "indices": I32([[0, 1], [1, 0]]),
                    "updates": F([3, 4])}, [[0, 3], [4, 0]]),
    ("scatter_nd", {"data": np.zeros((2, 2), F), "indices": I32([[1]]),
                    "updates": F([[7, 8]])}, [[0, 0], [7, 8]]),
    ("upsample_nearest_neighbor", {"x": F([[[[1, 2]]]]), "scale_factor_height": I32(2),
                                   "scale_factor_width": I32(2)},
     [[[[1, 1, 2, 2], [1, 1, 2, 2]]]]),
    ("upsample_nearest_neighbor", {"x": F([[[[1, 2]]]]), "scale_factor_width": F(1.5)},
     [[[[1, 1, 2]]]]),  # W2 = floor(2 * 1.5) = 3, out[i] = x[floor(i / 1.5)]
    ("pixel_shuffle", {"x": F([1, 2, 3, 4]).reshape(1, 4, 1, 1), "upscale_factor": I32(2)},
     [[[[1, 2], [3, 4]]]]),
    ("pixel_unshuffle", {"x": F([[[[1, 2], [3, 4]]]]), "downscale_factor": I32(2)},
     [[[[1]], [[2]], [[3]], [[4]]]]),
]


@pytest.mark.parametrize(("op", "args", "expected"), SCATTER_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(SCATTER_CASES)])
def test_scatter_and_resampling_ops(op: str, args: dict, expected: list) -> None:
    out = np.asarray(run(op, **args))
    assert out.tolist() == expected


def test_unknown_scatter_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="scatter mode 'xor'"):
        run("scatter", data=F([0]), indices=I32([0]), updates=F([1]), mode="xor")
