"""The [budgets] and [regression] sections of edgekit.toml, and the shipped example."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.config import (
    BudgetsConfig,
    DeviceBudget,
    FormatBudget,
    LatencyBudget,
    ParityBudget,
    SizeBudget,
    load_config,
)
from edgekit.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "edgekit.toml"


def test_defaults_check_nothing():
    config = load_config()
    assert config.budgets == BudgetsConfig()
    assert config.budgets.parity == ParityBudget()
    assert config.budgets.formats == {} and config.budgets.devices == {}
    assert config.budgets.fail_on_not_run is False
    assert config.regression.baseline is None
    assert config.regression.size_growth == 0.01


def test_budget_tables_from_a_file(tmp_path: Path):
    file = tmp_path / "edgekit.toml"
    file.write_text(
        "[budgets.parity]\nmax_rel = 1e-3\ntop1_min = 0.95\n"
        "[budgets.size]\nmax_mib = 20\n"
        "[budgets.formats.coreml]\nparity.cosine_min = 0.999\nsize.max_bytes = 1000\n"
        "[budgets.devices.pixel-8]\nlatency.measured_p50_ms = 25\nmemory.peak_rss_mib = 300\n"
        "[regression]\nbaseline = 'old/report.json'\nlatency_growth = 0.5\n")
    config = load_config(file)
    budgets = config.budgets
    assert budgets.parity == ParityBudget(max_rel=1e-3, top1_min=0.95)
    assert budgets.size == SizeBudget(max_mib=20.0)
    assert isinstance(budgets.size.max_mib, float)
    assert budgets.formats == {"coreml": FormatBudget(parity=ParityBudget(cosine_min=0.999),
                                                      size=SizeBudget(max_bytes=1000))}
    assert budgets.devices["pixel-8"].latency == LatencyBudget(measured_p50_ms=25.0)
    assert budgets.devices["pixel-8"].memory.peak_rss_mib == 300.0
    assert config.regression.baseline == "old/report.json"
    assert config.regression.latency_growth == 0.5


def test_nested_overrides_merge_into_the_file(tmp_path: Path):
    file = tmp_path / "edgekit.toml"
    file.write_text("[budgets.devices.pixel-8]\nlatency.measured_p50_ms = 25\n")
    config = load_config(file, ["budgets.devices.pixel-8.memory.peak_rss_mib=128",
                                "budgets.devices.iphone-13.latency.projected_high_ms=40",
                                "budgets.parity.max_rel=1e-9"])
    assert config.budgets.devices == {
        "pixel-8": DeviceBudget(latency=LatencyBudget(measured_p50_ms=25.0),
                                memory=config.budgets.devices["pixel-8"].memory),
        "iphone-13": DeviceBudget(latency=LatencyBudget(projected_high_ms=40.0)),
    }
    assert config.budgets.devices["pixel-8"].memory.peak_rss_mib == 128.0
    assert config.budgets.parity.max_rel == 1e-9


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("budgets.parity.maxrel=1", "unknown key 'budgets.parity.maxrel'"),
        ("budgets.speed.p50=1", "unknown key 'budgets.speed'"),
        ("budgets.formats.tflite.size.max_mib=1", "unknown key 'budgets.formats.tflite' "
                                                  "(known: executorch, onnx, ort, coreml)"),
        ("budgets.formats.onnx.latency.load_ms=1", "unknown key 'budgets.formats.onnx.latency'"),
        ("budgets.devices.pixel-8.size.max_mib=1", "unknown key 'budgets.devices.pixel-8.size'"),
        ("budgets.parity.max_rel=abc", "'budgets.parity.max_rel' must be a number, got 'abc'"),
        ("budgets.parity.max_rel=-1", "'budgets.parity.max_rel' must be at least 0"),
        ("budgets.parity.top1_min=1.5", "'budgets.parity.top1_min' must be between 0 and 1"),
        ("budgets.size.max_bytes=1.5", "'budgets.size.max_bytes' must be an integer"),
        ("budgets.fail_on_not_run=1", "'budgets.fail_on_not_run' must be true or false"),
        ("budgets.devices=1", "[budgets.devices] must be a table"),
        ("regression.size_growth=-0.1", "'regression.size_growth' must be at least 0"),
        ("regression.colour=1", "unknown key 'regression.colour'"),
        ("budgets..max_rel=1", "expected section.key=value"),
    ],
)
def test_bad_budget_keys_and_values_name_the_key(override: str, message: str):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert message in str(info.value)


def test_unknown_budget_key_in_a_file_names_file_and_key(tmp_path: Path):
    file = tmp_path / "edgekit.toml"
    file.write_text("[budgets.latency]\np50_ms = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert str(file) in str(info.value)
    assert "unknown key 'budgets.latency.p50_ms'" in str(info.value)


def test_the_shipped_example_loads_and_sets_every_kind_of_budget():
    config = load_config(EXAMPLE)
    budgets = config.budgets
    assert config.model.path == "smollm2-135m"
    assert budgets.parity.max_rel == 1e-4 and budgets.parity.top1_min == 0.99
    assert budgets.size.max_mib == 600.0
    assert budgets.latency.measured_p50_ms == 2000.0
    assert budgets.memory.peak_rss_mib == 4096.0
    assert budgets.formats["onnx"].size.max_mib == 560.0
    assert budgets.devices["pixel-8"].latency.projected_high_ms == 1500.0
    assert config.regression.max_rel_slack == 1e-6
