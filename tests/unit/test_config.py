from pathlib import Path

import pytest

from edgekit.config import Config, load_config
from edgekit.errors import ConfigError


def test_defaults_build_the_default_student_for_ios():
    config = load_config()
    assert config == Config()
    assert config.model.path == "smollm2-135m"
    assert config.export.targets == ("ios",)
    assert config.compress.quant is None


def test_export_defaults_are_decode_ready_on_the_targets_own_devices():
    export = load_config().export
    assert (export.devices, export.decode, export.max_seq_len) == ((), None, None)


def test_devices_decode_and_cache_length_from_file_and_overrides(tmp_path: Path):
    file = tmp_path / "edgekit.toml"
    file.write_text('[export]\ndevices = ["pixel-8", "phones/my-phone.toml"]\ndecode = false\n')
    export = load_config(file).export
    assert (export.devices, export.decode) == (("pixel-8", "phones/my-phone.toml"), False)
    export = load_config(file, ["export.devices='my-phone.toml'", "export.decode=true",
                                "export.max_seq_len=256"]).export
    assert (export.devices, export.decode, export.max_seq_len) == (("my-phone.toml",), True, 256)


def test_file_and_overrides_merge_with_overrides_winning(tmp_path: Path):
    file = tmp_path / "edgekit.toml"
    file.write_text('[model]\npath = "a"\nseq_len = 32\n[export]\ntargets = ["web"]\n')
    config = load_config(file, ["model.seq_len=16", "export.targets=['ios', 'android']"])
    assert config.model.path == "a"
    assert config.model.seq_len == 16
    assert config.export.targets == ("ios", "android")


def test_model_shorthand_names_the_model_path(tmp_path: Path):
    assert load_config(None, ["model=some/folder"]).model.path == "some/folder"
    file = tmp_path / "edgekit.toml"
    file.write_text('model = "x.gguf"\n')
    assert load_config(file).model.path == "x.gguf"


def test_unquoted_string_values_are_strings():
    config = load_config(None, ["export.out=out/dir", "compress.quant=none"])
    assert config.export.out == "out/dir"
    assert config.compress.quant == "none"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.colour=red", "unknown key 'model.colour'"),
        ("nosuch.key=1", "unknown key 'nosuch'"),
        ("model.seq_len=long", "'model.seq_len' must be an integer"),
        ("export.force=1", "'export.force' must be true or false"),
        ("export.decode=yes", "'export.decode' must be true or false, got 'yes'"),
        ("export.devices=8", "'export.devices' must be a list, got 8"),
        ("export.max_seq_len=0", "'export.max_seq_len' must be at least 1, got 0"),
        ("justakey", "expected section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_unknown_key_in_file_names_file_and_key(tmp_path: Path):
    file = tmp_path / "edgekit.toml"
    file.write_text("[export]\ntarget = ['ios']\n")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert str(file) in str(info.value)
    assert "unknown key 'export.target'" in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_config_is_frozen():
    config = load_config()
    with pytest.raises(AttributeError):
        config.model.path = "other"  # type: ignore[misc]
