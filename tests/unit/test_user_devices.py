"""The user's own phone: `edgekit devices --template` writes a profile that validates as it
is, and user files go through the same validator as the built-in ones, one line per problem."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edgekit.devices import (
    DeviceFile,
    device_template,
    devices_dir,
    get_device,
    read_device,
    resolve_devices,
)
from edgekit.errors import ConfigError

TEMPLATE = device_template()


@pytest.fixture
def my_phone(tmp_path: Path) -> Path:
    path = tmp_path / "my-phone.toml"
    path.write_text(TEMPLATE)
    return path


def test_the_template_validates_as_it_is(my_phone: Path):
    profile = get_device(str(my_phone))
    assert (profile.key, profile.name, profile.os, profile.tier) == (
        "my-phone", "My phone", "Android", "mid")
    assert (profile.threads, profile.big_cores, profile.ram_gib) == (4, 4, 8.0)
    assert profile.memory_bandwidth_gbps == 34.1
    assert profile.cpu_gflops() == 4 * 2.4 * 16
    assert (profile.gpu, profile.npu) == (None, None)
    assert profile.from_template
    assert profile.source == my_phone
    assert not any(p.from_template for p in resolve_devices(["pixel-8", "iphone-13"]))


def test_the_template_names_every_key_with_a_comment():
    data = tomllib.loads(TEMPLATE)
    assert set(data) == {"name", "os", "soc", "tier", "threads", "ram_gib",
                         "app_memory_budget_mib", "estimates", "cpu_clusters", "memory",
                         "sources"}
    lines = TEMPLATE.splitlines()
    for key in ("ram_gib", "ghz", "bandwidth_gbps", "app_memory_budget_mib", "threads"):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{key} = "))
        assert lines[at - 1].startswith("# ") or lines[at - 2].startswith("# "), key
    assert "# RAM in GiB (the GB on the spec sheet), e.g. 8. Where: the phone's spec page." \
        in lines
    assert any("in GHz" in line for line in lines)
    assert any("in GB/s" in line for line in lines)
    assert "# released = 2024" in lines  # optional keys and tables are written commented out
    assert "# [npu]" in lines and "# tops = 10.0" in lines
    # every field of the schema appears, set or commented out
    for key in DeviceFile.model_fields:
        assert any(line.lstrip("# ").startswith((f"{key} = ", f"[{key}]", f"[[{key}]]"))
                   for line in lines), key


def test_user_and_built_in_profiles_share_one_validator(tmp_path: Path):
    copy = tmp_path / "pixel-copy.toml"
    copy.write_text((devices_dir() / "pixel-8.toml").read_text())
    mine, built_in = get_device(str(copy)), get_device("pixel-8")
    assert mine.key == "pixel-copy"
    assert (mine.cpu_clusters, mine.memory_bandwidth_gbps, mine.sources) == (
        built_in.cpu_clusters, built_in.memory_bandwidth_gbps, built_in.sources)
    assert read_device(devices_dir() / "pixel-8.toml") == built_in


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("ram_gib = 8", "ram_gb = 8"),
         "ram_gb: unknown key; remove it or fix its spelling (known: name, os, soc, tier, "),
        (("threads = 4\n", ""),
         "threads: missing; add it: CPU threads inference runs on"),
        (("ram_gib = 8", 'ram_gib = "8 GB"'),
         "ram_gib: must be a number, got '8 GB'; write the number without its unit: RAM in "
         "GiB (the GB on the spec sheet), e.g. 8"),
        (("ghz = 2.4", 'ghz = "2.4 GHz"'),
         "cpu_clusters[0].ghz: must be a number, got '2.4 GHz'; write the number without its "
         "unit: peak clock of these cores, in GHz (e.g. 2.4)"),
        (("ghz = 2.0", "ghz = 0"),
         "cpu_clusters[1].ghz: must be greater than 0, got 0; peak clock of these cores"),
        (("cores = 4\n", "cores = 4.5\n"),
         "cpu_clusters[0].cores: must be a whole number, got 4.5; number of cores in this "
         "cluster"),
        (('tier = "mid"', 'tier = "flagship"'),
         "tier: must be 'high', 'mid' or 'low', got 'flagship'"),
        (("threads = 4", "threads = 9"),
         "threads: 9 is more than the 8 cores of cpu_clusters; use at most the prime and "
         "performance cores"),
        (('type = "LPDDR4X-4266"', 'type = "LPDDR4X-4266"\nspeed = 4266'),
         "memory.speed: unknown key; remove it or fix its spelling (known: type, bus_bits, "
         "bandwidth_gbps)"),
        (("# [npu]\n# The unit's", "[npu]\n# The unit's"),
         "npu.name: missing; add it: the unit's name"),
        (("# [gpu]\n# The unit's name, e.g. \"Adreno 740\" or \"Hexagon NPU\". Where: the SoC "
          "vendor's spec page.\n# name", "[gpu]\nname"),
         "sources.gpu: missing; every number needs its public source: add \"gpu\" = "
         "\"<URL or document>\" under [sources]"),
        (("[sources]\n", "[sources]\nmemory = 5\n"), "not valid TOML"),  # a duplicate key
    ],
)
def test_a_malformed_profile_is_one_line_naming_file_and_key(my_phone: Path, edit, message):
    old, new = edit
    assert old in TEMPLATE
    my_phone.write_text(TEMPLATE.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        get_device(str(my_phone))
    text = str(info.value)
    assert text.startswith(f"{my_phone}: ") and message in text
    assert "\n" not in text


def test_names_and_paths(tmp_path: Path, my_phone: Path):
    assert get_device("pixel-8").source == devices_dir() / "pixel-8.toml"
    with pytest.raises(ConfigError, match=r"unknown device 'my-phone' \(known: galaxy-s23, .*"
                                          r"pixel-8.*\); `edgekit devices` lists them, or pass "
                                          "your own profile's .toml path"):
        get_device("my-phone")
    with pytest.raises(ConfigError, match=r"nope.toml: device profile not found; `edgekit "
                                          r"devices --template > nope.toml` writes one"):
        get_device(str(tmp_path / "nope.toml"))
    assert [d.key for d in resolve_devices(["pixel-8", str(my_phone), "pixel-8"])] == [
        "pixel-8", "my-phone"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "my-phone.toml").write_text(TEMPLATE)
    with pytest.raises(ConfigError, match="two device profiles are named 'my-phone'.*rename"):
        resolve_devices([str(my_phone), str(tmp_path / "other" / "my-phone.toml")])
