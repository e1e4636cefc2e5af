from dataclasses import replace

import torch
from torch import nn

from edgekit.compress.plan import QuantSettings, apply_plan, find_layers, plan_layer


class TiedLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 32)
        self.proj = nn.Linear(32, 64)
        self.odd = nn.Linear(24, 8)  # 24 is not a multiple of group 32
        self.head = nn.Linear(32, 16, bias=False)
        self.head.weight = self.embed.weight  # tied


def test_tied_weights_are_found_once():
    model = TiedLM()
    layers = {names: type(m).__name__ for names, m in find_layers(model)}
    assert layers == {("embed", "head"): "Embedding", ("proj",): "Linear", ("odd",): "Linear"}


def test_plan_precisions_and_reasons():
    torch.manual_seed(0)
    model = TiedLM()
    settings = QuantSettings(bits=4, group_size=32, keep_float=("proj",))
    plans = {p.names: p for p in (plan_layer(n, m, settings) for n, m in find_layers(model))}
    assert plans[("proj",)].precision == "float"
    assert plans[("proj",)].reason == "kept in float by keep_float"
    assert plans[("odd",)].precision == "float"
    assert "not a multiple of group 32" in plans[("odd",)].reason
    tied = plans[("embed", "head")]
    assert tied.precision == "int4" and tied.kind == "embedding"
    assert tied.to_json()["group_size"] == 32
    assert 15 < tied.error_sqnr_db < 30  # int4 of a gaussian table: ~20 dB
    eight = plan_layer(("embed", "head"), model.embed, replace(settings, bits=8))
    assert eight.precision == "int8" and eight.error_sqnr_db > tied.error_sqnr_db + 20


def test_apply_plan_writes_dequantized_weights_through_ties():
    torch.manual_seed(0)
    model = TiedLM()
    settings = QuantSettings()
    plans = [plan_layer(n, m, settings) for n, m in find_layers(model)]
    apply_plan(model, plans)
    tied = next(p for p in plans if p.names == ("embed", "head"))
    assert tied.weight is not None
    torch.testing.assert_close(model.head.weight, tied.weight.dequantize())
    assert model.head.weight.data_ptr() == model.embed.weight.data_ptr()
