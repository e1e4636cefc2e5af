"""Bad input through the CLI: one line on stderr naming the thing, exit 2, nothing at --out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import run_cli


def _assert_clean_failure(result, out: Path, *needles: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_missing_model_path(tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(tmp_path / "nope"), "--out", str(out))
    _assert_clean_failure(result, out, "nope", "no such file or folder")


def test_folder_without_config(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(tmp_path / "empty"), "--out", str(out))
    _assert_clean_failure(result, out, "empty", "no config.json")


def test_corrupt_safetensors(student_dir, tmp_path: Path):
    folder = tmp_path / "broken"
    shutil.copytree(student_dir("llama"), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\x00" * 64)
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(folder), "--out", str(out))
    _assert_clean_failure(result, out, "model.safetensors", "corrupt safetensors")


def test_pickle_only_checkpoint(student_dir, tmp_path: Path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(student_dir("llama") / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(folder), "--out", str(out))
    _assert_clean_failure(result, out, "pytorch_model.bin", "does not unpickle", "safetensors")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--target", "watch"], ["unknown target 'watch'", "ios"]),
        (["--set", "export.colour=red"], ["unknown key 'export.colour'"]),
        (["--quant", "int3"], ["unknown quant 'int3'"]),
        (["--prune", "rows=0.5"], ["unknown key 'rows'", "mlp, heads, layers"]),
        (["--device", "nokia-3310"], ["unknown device 'nokia-3310'", "pixel-8"]),
        (["--device", "phones/mine.toml"], ["phones/mine.toml: device profile not found",
                                            "edgekit devices --template > mine.toml"]),
    ],
)
def test_bad_flags_fail_before_any_work(student_dir, tmp_path: Path, args, needles):
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(student_dir("llama")), "--out", str(out), *args)
    _assert_clean_failure(result, out, *needles)
    assert "[edgekit] load" not in result.stderr


def test_unknown_key_in_config_file(tmp_path: Path):
    config = tmp_path / "edgekit.toml"
    config.write_text("[model]\npath = 'x'\nflavour = 'y'\n")
    out = tmp_path / "out"
    result = run_cli("export", "--config", str(config), "--out", str(out))
    _assert_clean_failure(result, out, str(config), "unknown key 'model.flavour'")


def test_existing_non_empty_out_needs_force(student_dir, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("export", "--model", str(student_dir("llama")), "--out", str(out),
                     "--target", "web", "--quant", "none")
    assert result.returncode == 2
    assert "output folder is not empty; pass --force" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"
    forced = run_cli("export", "--model", str(student_dir("llama")), "--out", str(out),
                     "--target", "web", "--quant", "none", "--forward-only", "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md",
                                                     "web"]


def test_run_with_missing_inputs_file(tmp_path: Path):
    artifact = tmp_path / "m.onnx"
    artifact.write_bytes(b"not onnx")
    result = run_cli("run", str(artifact), "--inputs", str(tmp_path / "in.npz"),
                     "--out", str(tmp_path / "o.npz"))
    assert result.returncode == 2
    # the inputs are read (and their shapes checked) before the runtime opens the artifact
    assert "in.npz: no such inputs file" in result.stderr
    assert "Traceback" not in result.stderr
    import numpy as np

    np.savez(tmp_path / "in.npz", input_ids=np.zeros((1, 8), dtype=np.int64))
    result = run_cli("run", str(artifact), "--inputs", str(tmp_path / "in.npz"),
                     "--out", str(tmp_path / "o.npz"))
    assert result.returncode == 2
    assert "m.onnx: ONNX Runtime could not load it" in result.stderr
    assert "Traceback" not in result.stderr
