from pathlib import Path

import pytest

from edgekit.errors import ConfigError
from edgekit.targets import FORMATS, all_targets, get_target, resolve_targets, targets_dir

REPO_TARGETS = Path(__file__).parents[2] / "targets"


def test_every_shipped_target_file_loads():
    files = sorted(p.stem for p in REPO_TARGETS.glob("*.toml"))
    assert files == ["android", "ios", "web"]
    targets = all_targets()
    assert sorted(targets) == files
    for target in targets.values():
        assert target.formats and set(target.formats) <= set(FORMATS)
        assert target.device
        assert target.quant == "int4"  # 4-bit unless --quant says otherwise
        tolerance = target.tolerance(target.quant)
        assert tolerance.cosine_min is not None and tolerance.top1_min is not None
        assert target.tolerance("none").max_rel is not None


def test_target_formats_are_as_documented():
    assert get_target("ios").formats == ("coreml", "executorch")
    assert get_target("android").formats == ("executorch", "onnx", "ort")
    assert get_target("web").formats == ("onnx",)
    assert get_target("ios").tolerance("none").max_rel == 1e-4


def test_all_and_unknown_targets():
    assert [t.name for t in resolve_targets(("all",))] == ["android", "ios", "web"]
    assert [t.name for t in resolve_targets(("web", "ios", "web"))] == ["web", "ios"]
    with pytest.raises(ConfigError, match="unknown target 'tv'"):
        get_target("tv")


def test_targets_dir_is_found():
    assert (targets_dir() / "ios.toml").is_file()


def test_bad_target_files_are_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from edgekit import targets as module

    (tmp_path / "watch.toml").write_text('formats = ["ort"]\ndevice = "x"\n')
    with pytest.raises(ConfigError, match="list 'onnx' too"):
        module._read_target(tmp_path / "watch.toml")
    (tmp_path / "tv.toml").write_text('formats = ["onnx"]\ncolour = 1\n')
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        module._read_target(tmp_path / "tv.toml")
    (tmp_path / "car.toml").write_text('formats = ["tflite"]\n')
    with pytest.raises(ConfigError, match="'formats' must list"):
        module._read_target(tmp_path / "car.toml")
