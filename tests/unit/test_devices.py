"""Device profiles: every shipped file loads, names its sources, and the targets use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.devices import all_devices, get_device, read_device
from edgekit.errors import ConfigError
from edgekit.runtimes.limits import host_cpus, limits_for
from edgekit.targets import all_targets

REPO_DEVICES = Path(__file__).parents[2] / "targets" / "devices"


def test_every_shipped_device_file_loads_with_sources():
    files = sorted(p.stem for p in REPO_DEVICES.glob("*.toml") if not p.name.startswith("_"))
    devices = all_devices()
    assert sorted(devices) == files
    assert len(devices) >= 8
    for device in devices.values():
        assert device.cpu_clusters and device.memory_bandwidth_gbps > 0
        assert 0 < device.app_memory_budget_mib <= device.ram_gib * 1024
        assert 1 <= device.threads <= device.big_cores
        for field in ("cpu_clusters", "memory", "ram_gib"):
            assert any(k == field or k.startswith(field + ".") for k in device.sources), field
        assert device.estimates, f"{device.key}: say which numbers are estimates"


def test_profiles_span_tiers_on_both_systems():
    spread = {(d.os, d.tier) for d in all_devices().values()}
    assert {("iOS", "high"), ("iOS", "low"), ("Android", "high"), ("Android", "mid"),
            ("Android", "low")} <= spread


def test_every_target_default_device_exists():
    for target in all_targets().values():
        assert get_device(target.device).key == target.device


def test_unknown_device_is_named():
    with pytest.raises(ConfigError, match="unknown device 'nokia-3310'.*pixel-8"):
        get_device("nokia-3310")


def test_bad_device_files_are_rejected(tmp_path: Path):
    good = (REPO_DEVICES / "pixel-8.toml").read_text()
    (tmp_path / "a.toml").write_text("colour = 'red'\n" + good)
    with pytest.raises(ConfigError, match="a.toml: colour: unknown key; remove it"):
        read_device(tmp_path / "a.toml")
    unsourced = good.split("[sources]")[0] + '[sources]\n"cpu_clusters" = "x"\n'
    (tmp_path / "b.toml").write_text(unsourced)
    with pytest.raises(ConfigError, match="b.toml: sources.memory: missing; every number needs "
                                          "its public source"):
        read_device(tmp_path / "b.toml")


def test_host_limits_cap_threads_at_host_cpus():
    limits = limits_for(get_device("galaxy-s24"))
    assert limits.profile_threads == 6
    assert limits.threads == min(6, len(host_cpus()))
    assert len(limits.cpus) == limits.threads
