"""Bad students give one-line LoadErrors that name the file and the fix."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from edgekit.errors import LoadError
from edgekit.model import load


def test_missing_path_names_it(tmp_path: Path):
    with pytest.raises(LoadError, match="no such file or folder"):
        load(str(tmp_path / "nope"))


def test_folder_without_config(tmp_path: Path):
    with pytest.raises(LoadError, match="no config.json"):
        load(str(tmp_path))


def test_corrupt_safetensors_is_named(student_dir, tmp_path: Path):
    folder = tmp_path / "broken"
    shutil.copytree(student_dir("llama"), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(LoadError) as info:
        load(str(folder))
    assert "model.safetensors: corrupt safetensors file" in str(info.value)
    assert "\n" not in str(info.value)


def test_pickle_only_checkpoint_is_refused_without_unpickling(student_dir, tmp_path: Path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(student_dir("llama") / "config.json", folder / "config.json")
    # A pickle that would run code if loaded: edgekit must refuse it, not open it.
    (folder / "pytorch_model.bin").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    with pytest.raises(LoadError, match="pickle checkpoint; edgekit does not unpickle"):
        load(str(folder))
    with pytest.raises(LoadError, match="pickle checkpoint"):
        load(str(folder / "pytorch_model.bin"))
    assert not Path("pwned").exists()


def test_unknown_task_and_uninferable_task(student_dir, tmp_path: Path):
    with pytest.raises(LoadError, match="unknown task 'translate'"):
        load(str(student_dir("llama")), task="translate")
    folder = tmp_path / "noarch"
    shutil.copytree(student_dir("llama"), folder)
    config = json.loads((folder / "config.json").read_text())
    del config["architectures"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match="cannot infer the task"):
        load(str(folder))


def test_hub_id_offline_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LoadError, match="Hugging Face Hub could not be reached"):
        load("someone/some-model")


def test_module_needs_example_inputs():
    with pytest.raises(LoadError, match="needs example_inputs"):
        load(torch.nn.Linear(2, 2))


def test_corrupt_gguf_and_pt2(tmp_path: Path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with pytest.raises(LoadError, match="m.gguf: not a GGUF model"):
        load(str(gguf))
    pt2 = tmp_path / "m.pt2"
    pt2.write_bytes(b"not a zip")
    with pytest.raises(LoadError, match="m.pt2: not a readable .pt2"):
        load(str(pt2))
