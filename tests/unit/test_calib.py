"""Calibration inputs: built-in corpus, text lines, JSON lines, images, .npz, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.compress.calib import calibration_inputs
from edgekit.errors import EdgekitError
from edgekit.model import load


def test_language_models_calibrate_on_the_built_in_corpus(student_dir):
    student = load(student_dir("llama"), seq_len=32)
    samples = calibration_inputs(student, None, 8)
    assert len(samples) == 8
    windows = [s["input_ids"] for s in samples]
    assert all(w.shape == (1, 32) and w.dtype == np.int64 for w in windows)
    assert len({w.tobytes() for w in windows}) == 8  # distinct, non-overlapping windows


def test_text_and_jsonl_files(student_dir, tmp_path):
    student = load(student_dir("bert"), seq_len=16)
    text = tmp_path / "calib.txt"
    text.write_text("A short line of real text for calibration.\n" * 10)
    samples = calibration_inputs(student, text, 4)
    assert len(samples) == 4
    assert samples[0]["attention_mask"].all()  # full windows, nothing padded
    lines = tmp_path / "calib.jsonl"
    lines.write_text('{"text": "first record of text"}\n\n{"text": "second one"}\n' * 8)
    assert calibration_inputs(student, lines, 2)[0]["input_ids"].shape == (1, 16)
    lines.write_text('{"text": "ok"}\n{"prompt": "no text field"}\n')
    with pytest.raises(EdgekitError, match=r"calib.jsonl:2: expected an object"):
        calibration_inputs(student, lines, 2)


def test_image_folder_and_npz(student_dir, tmp_path):
    student = load(student_dir("resnet"))
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        Image.new("RGB", (80, 50), (index * 80, 100, 200)).save(folder / f"{index}.png")
    samples = calibration_inputs(student, folder, 8)
    assert len(samples) == 3 and samples[0]["pixel_values"].shape == (1, 3, 64, 64)
    # pure colour (0, 100, 200) normalised like ImageNet: channel 0 = (0 - 0.485) / 0.229
    assert samples[0]["pixel_values"][0, 0, 0, 0] == pytest.approx(-0.485 / 0.229, rel=1e-5)
    arrays = np.random.default_rng(0).standard_normal((5, 1, 3, 64, 64)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", pixel_values=arrays)
    assert len(calibration_inputs(student, tmp_path / "calib.npz", 4)) == 4


@pytest.mark.parametrize("name, message", [
    ("missing.txt", "no such calibration file"),
    ("calib.csv", "unknown calibration data type '.csv'"),
    ("short.txt", "fewer than one 64-token window"),
])
def test_bad_calibration_input_is_one_clear_error(student_dir, tmp_path, name, message):
    student = load(student_dir("llama"))
    (tmp_path / "calib.csv").write_text("a,b\n")
    (tmp_path / "short.txt").write_text("too short")
    with pytest.raises(EdgekitError, match=message):
        calibration_inputs(student, tmp_path / name, 4)


def test_text_calibration_of_an_image_model_is_refused(student_dir, tmp_path):
    (tmp_path / "calib.txt").write_text("words " * 200)
    with pytest.raises(EdgekitError, match="text calibration needs a student that takes"):
        calibration_inputs(load(student_dir("resnet")), tmp_path / "calib.txt", 4)
