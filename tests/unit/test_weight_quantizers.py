import torch

from edgekit.compress.weights import (
    code_range,
    quantize_gptq,
    quantize_rtn,
    quantize_search,
)


def test_code_ranges():
    assert code_range(4, True) == (-8, 7)
    assert code_range(4, False) == (0, 15)
    assert code_range(8, True) == (-128, 127)


def test_rtn_symmetric_int4_by_hand():
    weight = torch.tensor([[0.8, -0.4, 0.1, 0.0], [1.6, 0.2, -0.8, 0.4]])
    q = quantize_rtn(weight, bits=4, group_size=2)
    # group max |w| / 8: row 0 -> 0.1, 0.0125 ; row 1 -> 0.2, 0.1
    torch.testing.assert_close(q.scales, torch.tensor([[0.1, 0.0125], [0.2, 0.1]]))
    assert q.codes.tolist() == [[7, -4, 7, 0], [7, 1, -8, 4]]  # 8 clamps to 7
    assert q.zeros is None
    torch.testing.assert_close(q.dequantize(), torch.tensor([[0.7, -0.4, 0.0875, 0.0],
                                                             [1.4, 0.2, -0.8, 0.4]]))


def test_rtn_asymmetric_int4_by_hand():
    weight = torch.tensor([[0.0, 1.5, -1.5, 3.0]])
    q = quantize_rtn(weight, bits=4, group_size=4, symmetric=False)
    # range [-1.5, 3.0] over 15 steps: scale 0.3, zero round(1.5 / 0.3) = 5
    torch.testing.assert_close(q.scales, torch.tensor([[0.3]]))
    assert q.zeros is not None and q.zeros.tolist() == [[5]]
    assert q.codes.tolist() == [[5, 10, 0, 15]]
    torch.testing.assert_close(q.dequantize(), weight)


def test_search_never_reconstructs_worse_than_rtn():
    torch.manual_seed(0)
    weight = torch.randn(64, 128) * torch.linspace(0.1, 2.0, 128)
    weight[3, 5] = 12.0  # an outlier that min/max scaling wastes range on
    for symmetric in (True, False):
        rtn = quantize_rtn(weight, 4, 32, symmetric)
        searched = quantize_search(weight, 4, 32, symmetric)
        rtn_err = ((rtn.dequantize() - weight) ** 2).sum()
        search_err = ((searched.dequantize() - weight) ** 2).sum()
        assert search_err < rtn_err * 0.95  # measured: 0.92 (symmetric), 0.93 (asymmetric)
        lo, hi = code_range(4, symmetric)
        assert searched.codes.min() >= lo and searched.codes.max() <= hi


def test_gptq_lowers_output_error_on_correlated_inputs():
    torch.manual_seed(0)
    weight = torch.randn(32, 64)
    mixing = torch.randn(64, 64) * 0.3 + torch.eye(64)
    inputs = torch.randn(512, 64) @ mixing  # correlated activations: where GPTQ helps
    hessian = 2 * inputs.T @ inputs
    gptq = quantize_gptq(weight, hessian, bits=4, group_size=32)
    searched = quantize_search(weight, 4, 32)
    reference = inputs @ weight.T
    gptq_err = ((inputs @ gptq.dequantize().T - reference) ** 2).mean()
    search_err = ((inputs @ searched.dequantize().T - reference) ** 2).mean()
    assert gptq_err < search_err * 0.8
    assert gptq.codes.min() >= -8 and gptq.codes.max() <= 7
    assert gptq.scales.shape == (32, 2)


def test_activation_weighted_search_lowers_output_error_and_is_plain_search_for_white_inputs():
    torch.manual_seed(0)
    weight = torch.randn(32, 64)
    loudness = torch.ones(64)
    loudness[[3, 17, 40, 59]] = 20.0  # outlier channels, as LM activations have
    inputs = torch.randn(1024, 64) * loudness
    hessian = inputs.T @ inputs
    weighted = quantize_search(weight, 4, 32, hessian=hessian)
    plain = quantize_search(weight, 4, 32)
    reference = inputs @ weight.T
    weighted_err = ((inputs @ weighted.dequantize().T - reference) ** 2).mean()
    plain_err = ((inputs @ plain.dequantize().T - reference) ** 2).mean()
    assert weighted_err < plain_err * 0.5  # measured: 0.17-0.30 over seeds 0-2
    assert weighted.codes.min() >= -8 and weighted.codes.max() <= 7
    # white inputs (H a multiple of I) weigh every channel alike: the plain search's choice
    white = quantize_search(weight, 4, 32, hessian=7.0 * torch.eye(64))
    assert torch.equal(white.codes, plain.codes)
    torch.testing.assert_close(white.scales, plain.scales)
