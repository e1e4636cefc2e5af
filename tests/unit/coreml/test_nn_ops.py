"""Neural-network Core ML ops in the emulator, against values worked out by hand from the MIL
op documentation: linear/matmul transposes, conv and pool padding modes (same puts the extra
row at the end, same_lower at the start), ceil_mode, average-pool denominators, norms,
softmax, attention masks, reductions."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtimes.coreml.session import OPS

F = np.float32
I32 = np.int32
B = np.bool_
NINE = np.arange(9, dtype=F).reshape(1, 1, 3, 3)  # [[0,1,2],[3,4,5],[6,7,8]]
ONE_TO_NINE = NINE + 1
SDPA_P = 0.8044296825069569  # softmax([sqrt(2), 0])[0] = sigmoid(sqrt(2))


def run(op: str, **args: object) -> object:
    return OPS[op](args)


CASES = [
    ("linear", {"x": F([[1, 2]]), "weight": F([[1, 0], [1, 1], [0, 2]]),
                "bias": F([0.5, 0, -1])}, [[1.5, 3, 3]]),
    ("linear", {"x": F([[1, 2]]), "weight": F([[1, 1]])}, [[3]]),
    ("matmul", {"x": F([[1, 2], [3, 4]]), "y": F([[5, 6], [7, 8]])}, [[19, 22], [43, 50]]),
    ("matmul", {"x": F([[1, 2], [3, 4]]), "y": F([[5, 6], [7, 8]]), "transpose_y": B(True)},
     [[17, 23], [39, 53]]),
    ("matmul", {"x": F([[1, 2], [3, 4]]), "y": F([[5, 6], [7, 8]]), "transpose_x": B(True)},
     [[26, 30], [38, 44]]),
    ("matmul", {"x": F([[[1, 2]], [[3, 4]]]), "y": F([[1], [1]])}, [[[3]], [[7]]]),  # batch
    ("einsum", {"values": (F([[1, 2]]), F([[3], [4]])), "equation": "ij,jk->ik"}, [[11]]),
    # conv: 2x2 ones over [[0,1,2],[3,4,5],[6,7,8]]
    ("conv", {"x": NINE, "weight": np.ones((1, 1, 2, 2), F), "pad_type": "valid"},
     [[[[8, 12], [20, 24]]]]),
    ("conv", {"x": NINE, "weight": np.ones((1, 1, 2, 2), F), "pad_type": "valid",
              "bias": F([1])}, [[[[9, 13], [21, 25]]]]),
    ("conv", {"x": NINE, "weight": np.ones((1, 1, 2, 2), F), "pad_type": "same"},
     [[[[8, 12, 7], [20, 24, 13], [13, 15, 8]]]]),
    ("conv", {"x": NINE, "weight": np.ones((1, 1, 2, 2), F), "pad_type": "same_lower"},
     [[[[0, 1, 3], [3, 8, 12], [9, 20, 24]]]]),
    ("conv", {"x": NINE, "weight": np.ones((1, 1, 3, 3), F), "pad_type": "custom",
              "pad": I32([1, 1, 1, 1]), "strides": I32([2, 2])}, [[[[8, 12], [20, 24]]]]),
    ("conv", {"x": NINE, "weight": np.ones((1, 1, 2, 2), F), "pad_type": "valid",
              "dilations": I32([2, 2])}, [[[[16]]]]),  # 0 + 2 + 6 + 8
    ("conv", {"x": F([[[[1]], [[2]]]]), "weight": F([[[[3]]], [[[4]]]]), "pad_type": "valid",
              "groups": I32(2)}, [[[[3]], [[8]]]]),
    ("conv", {"x": F([[[[1]], [[2]]]]), "weight": F([[[[3]], [[4]]]]), "pad_type": "valid"},
     [[[[11]]]]),
    ("conv", {"x": F([[[1, 2, 3, 4]]]), "weight": F([[[1, -1]]]), "pad_type": "valid"},
     [[[-1, -1, -1]]]),  # 1-D
    # conv_transpose: x[i] adds weight * x[i] from position stride * i (+ dilation * k)
    ("conv_transpose", {"x": F([[[1, 2]]]), "weight": F([[[1, 10]]]), "strides": I32([2])},
     [[[1, 10, 2, 20]]]),
    ("conv_transpose", {"x": F([[[1, 2]]]), "weight": F([[[1, 10]]])}, [[[1, 12, 20]]]),
    ("conv_transpose", {"x": F([[[1, 2]]]), "weight": F([[[1, 10]]]), "pad_type": "custom",
                        "pad": I32([1, 0])}, [[[12, 20]]]),
    ("conv_transpose", {"x": F([[[1, 2]]]), "weight": F([[[1, 10, 100]]]), "strides": I32([2]),
                        "pad_type": "same"}, [[[1, 10, 102, 20]]]),  # D_out = D_in * stride
    ("conv_transpose", {"x": F([[[1, 2]]]), "weight": F([[[1, 10, 100]]]), "strides": I32([2]),
                        "output_shape": I32([1, 1, 6])}, [[[1, 10, 102, 20, 200, 0]]]),
    ("conv_transpose", {"x": F([[[1, 2]]]), "weight": F([[[1, 10]]]), "dilations": I32([2])},
     [[[1, 2, 10, 20]]]),
    ("conv_transpose", {"x": F([[[1], [2]]]), "weight": F([[[3]], [[4]]]), "groups": I32(2),
                        "bias": F([0.5, -0.5])}, [[[3.5], [7.5]]]),
    ("conv_transpose", {"x": F([[[1], [2]]]), "weight": F([[[3]], [[4]]])}, [[[11]]]),
    ("conv_transpose", {"x": F([[[[1, 2], [3, 4]]]]), "weight": np.ones((1, 1, 2, 2), F)},
     [[[[1, 3, 2], [4, 10, 6], [3, 7, 4]]]]),
    # pooling
    ("max_pool", {"x": NINE, "kernel_sizes": I32([2, 2]), "strides": I32([1, 1]),
                  "pad_type": "valid"}, [[[[4, 5], [7, 8]]]]),
    ("max_pool", {"x": NINE, "kernel_sizes": I32([2, 2]), "strides": I32([2, 2]),
                  "pad_type": "valid"}, [[[[4]]]]),
    ("max_pool", {"x": NINE, "kernel_sizes": I32([2, 2]), "strides": I32([2, 2]),
                  "pad_type": "valid", "ceil_mode": B(True)}, [[[[4, 5], [7, 8]]]]),
    ("avg_pool", {"x": NINE, "kernel_sizes": I32([2, 2]), "strides": I32([1, 1]),
                  "pad_type": "valid"}, [[[[2, 3], [5, 6]]]]),
    ("avg_pool", {"x": ONE_TO_NINE, "kernel_sizes": I32([2, 2]), "strides": I32([2, 2]),
                  "pad_type": "custom", "pad": I32([1, 1, 1, 1])},
     [[[[0.25, 1.25], [2.75, 7]]]]),  # padding counts in the denominator
    ("avg_pool", {"x": ONE_TO_NINE, "kernel_sizes": I32([2, 2]), "strides": I32([2, 2]),
                  "pad_type": "custom", "pad": I32([1, 1, 1, 1]),
                  "exclude_padding_from_average": B(True)}, [[[[1, 2.5], [5.5, 7]]]]),
    ("l2_pool", {"x": F([[[[3, 4]]]]), "kernel_sizes": I32([1, 2]), "pad_type": "valid"},
     [[[[5]]]]),
    # normalisation
    ("batch_norm", {"x": F([[[1], [2]]]), "mean": F([1, 0]), "variance": F([4, 1]),
                    "gamma": F([2, 1]), "beta": F([0, 1]), "epsilon": F(0)}, [[[0], [3]]]),
    ("layer_norm", {"x": F([[1, 2, 3]]), "axes": I32([-1]), "epsilon": F(0)},
     [[-1.224744871391589, 0, 1.224744871391589]]),
    ("layer_norm", {"x": F([[1, 2, 3]]), "axes": I32([-1]), "epsilon": F(0),
                    "gamma": F([1, 2, 3]), "beta": F([0, 0, 1])},
     [[-1.224744871391589, 0, 4.674234614174767]]),
    ("layer_norm", {"x": F([[1, 3], [5, 7]]), "axes": I32([0]), "epsilon": F(0),
                    "gamma": F([1, 10])}, [[-1, -1], [10, 10]]),  # gamma ~ x.shape[axes]
    ("instance_norm", {"x": F([[[1, 3]]]), "epsilon": F(0)}, [[[-1, 1]]]),
    ("instance_norm", {"x": F([[[1, 3]]]), "epsilon": F(0), "gamma": F([2]),
                       "beta": F([1])}, [[[-1, 3]]]),
    ("l2_norm", {"x": F([[[3, 4]]]), "epsilon": F(0)}, [[[0.6, 0.8]]]),
    ("l2_norm", {"x": F([[[[3]]], [[[-2]]]]), "epsilon": F(0)}, [[[[1]]], [[[-1]]]]),  # batch
    ("softmax", {"x": F([0, np.log(3)]), "axis": I32(-1)}, [0.25, 0.75]),
    ("softmax", {"x": F([[0], [np.log(3)]]), "axis": I32(0)}, [[0.25], [0.75]]),
    # attention: scores [1*2, 0] / sqrt(2)
    ("scaled_dot_product_attention", {"query": F([[[1, 0]]]), "key": F([[[2, 0], [0, 0]]]),
                                      "value": F([[[1, 2], [3, 4]]])},
     [[[3 - 2 * SDPA_P, 4 - 2 * SDPA_P]]]),
    ("scaled_dot_product_attention", {"query": F([[[1, 0]]]), "key": F([[[2, 0], [0, 0]]]),
                                      "value": F([[[1, 2], [3, 4]]]),
                                      "attn_mask": B([[False, True]])}, [[[3, 4]]]),
    ("scaled_dot_product_attention", {"query": F([[[1, 0]]]), "key": F([[[2, 0], [0, 0]]]),
                                      "value": F([[[1, 2], [3, 4]]]),
                                      "attn_mask": F([[0, np.sqrt(2)]])}, [[[2, 3]]]),
    # reductions
    ("reduce_mean", {"x": F([[1, 2], [3, 4]]), "axes": I32([1])}, [1.5, 3.5]),
    ("reduce_mean", {"x": F([[1, 2], [3, 4]]), "axes": I32([-1]), "keep_dims": B(True)},
     [[1.5], [3.5]]),
    ("reduce_mean", {"x": F([[1, 2], [3, 4]])}, 2.5),  # no axes: all, rank 0
    ("reduce_sum", {"x": F([[1, 2], [3, 4]]), "axes": I32([0])}, [4, 6]),
    ("reduce_max", {"x": F([[1, 2], [3, 4]]), "axes": I32([1])}, [2, 4]),
    ("reduce_min", {"x": F([[1, 2], [3, 4]]), "axes": I32([1])}, [1, 3]),
    ("reduce_prod", {"x": F([[1, 2], [3, 4]]), "axes": I32([0])}, [3, 8]),
    ("reduce_l1_norm", {"x": F([[-1, 2]]), "axes": I32([1])}, [3]),
    ("reduce_l2_norm", {"x": F([[3, 4]]), "axes": I32([1])}, [5]),
    ("reduce_sum_square", {"x": F([[3, 4]]), "axes": I32([1])}, [25]),
    ("reduce_log_sum", {"x": F([[1, np.e - 1]]), "axes": I32([1])}, [1]),
    ("reduce_log_sum_exp", {"x": F([[0, np.log(3)]]), "axes": I32([1])}, [1.3862943611198906]),
    ("reduce_argmax", {"x": F([[1, 3, 3]]), "axis": I32(-1)}, [1]),  # first of ties
    ("reduce_argmax", {"x": F([[1, 3, 3]]), "axis": I32(-1), "keep_dims": B(True)}, [[1]]),
    ("reduce_argmin", {"x": F([[2, 1, 1]]), "axis": I32(1)}, [1]),
]


@pytest.mark.parametrize(("op", "args", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_nn_op_matches_its_documented_value(op: str, args: dict, expected: object) -> None:
    out = np.asarray(run(op, **args))
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_topk_returns_values_and_int32_indices() -> None:
    values, indices = run("topk", x=F([1, 3, 2]), k=I32(2))
    assert values.tolist() == [3, 2] and indices.tolist() == [1, 2]
    assert indices.dtype == np.int32
    values, indices = run("topk", x=F([1, 3, 2]), k=I32(2), ascending=B(True))
    assert values.tolist() == [1, 2] and indices.tolist() == [0, 2]


def test_unknown_pad_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="pad_type 'full'"):
        run("conv", x=NINE, weight=np.ones((1, 1, 2, 2), F), pad_type="full")
