"""Calibration data: what GPTQ, sensitivity analysis and activation-based pruning see.

`--calib PATH` takes text lines (.txt), JSON lines with a "text" field (.jsonl), a folder
of images, or an .npz keyed by input name. Without it, language models calibrate on
edgekit's built-in English corpus and other students on generated in-distribution inputs
(the same generator as the parity samples, with another seed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.model.samples import corpus_text, read_inputs, sample_inputs, text_tokens
from edgekit.model.student import Student

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_CALIB_SEED = 1000  # apart from the parity samples' seeds


def calibration_inputs(student: Student, path: str | Path | None,
                       count: int = 16) -> list[dict[str, np.ndarray]]:
    """Up to `count` input sets for `student` to calibrate compression on.

    Args:
        student: the fp32 student (its input specs fix the shapes).
        path: a .txt, .jsonl, image folder or .npz; None for the built-in defaults.
        count: the most input sets to return.

    Returns:
        Input sets keyed by input name, shaped like the student's inputs.

    Raises:
        EdgekitError: the file is missing, unreadable, empty or does not fit the student.
    """
    if path is None:
        if "input_ids" in student.input_names and not student.examples:
            return _text_windows(student, corpus_text(), "edgekit's corpus", count)
        return sample_inputs(student, count, seed=_CALIB_SEED)[:count]
    source = Path(path)
    if not source.exists():
        raise EdgekitError(f"{source}: no such calibration file or folder")
    if source.is_dir():
        return _images(student, source, count)
    suffix = source.suffix.lower()
    if suffix == ".npz":
        return read_inputs(source, student)[:count]
    if suffix in (".txt", ".jsonl"):
        text = _read_text(source, suffix)
        return _text_windows(student, text, str(source), count)
    raise EdgekitError(f"{source}: unknown calibration data type '{suffix}' (known: .txt, "
                       ".jsonl, .npz, or a folder of images)")


def _read_text(path: Path, suffix: str) -> str:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgekitError(f"{path}: not readable UTF-8 text ({exc})") from None
    if suffix == ".txt":
        return raw
    lines = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EdgekitError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise EdgekitError(f"{path}:{number}: expected an object with a \"text\" string")
        lines.append(record["text"])
    return "\n".join(lines)


def _text_windows(student: Student, text: str, where: str,
                  count: int) -> list[dict[str, np.ndarray]]:
    """Non-overlapping windows of the tokenized text, one per input set."""
    if "input_ids" not in student.input_names:
        raise EdgekitError(f"{where}: text calibration needs a student that takes input_ids "
                           f"(this one takes {', '.join(student.input_names)})")
    ids = text_tokens(student, text)
    spec = next(s for s in student.inputs if s.name == "input_ids")
    length = spec.shape[-1]
    windows = [ids[start:start + length] for start in range(0, len(ids) - length + 1, length)]
    if not windows:
        raise EdgekitError(f"{where}: {len(ids)} tokens, fewer than one {length}-token window")
    template = sample_inputs(student, 1, seed=_CALIB_SEED)[0]
    samples = []
    for window in windows[:count]:
        sample = dict(template)
        sample["input_ids"] = window.reshape(spec.shape).astype(template["input_ids"].dtype)
        if "attention_mask" in sample:
            sample["attention_mask"] = np.ones_like(sample["attention_mask"])
        samples.append(sample)
    return samples


def _images(student: Student, folder: Path, count: int) -> list[dict[str, np.ndarray]]:
    """Images resized to the student's input and normalised like ImageNet."""
    from PIL import Image, UnidentifiedImageError

    spec = next((s for s in student.inputs if s.name == "pixel_values"), None)
    if spec is None or len(spec.shape) != 4:
        raise EdgekitError(f"{folder}: image calibration needs a student that takes "
                           "pixel_values [N, C, H, W]")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EdgekitError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    _, channels, height, width = spec.shape
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:channels, None, None]
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:channels, None, None]
    samples = []
    for file in files[:count]:
        try:
            with Image.open(file) as image:
                mode = "RGB" if channels == 3 else "L"
                pixels = np.asarray(image.convert(mode).resize((width, height)), np.float32)
        except (OSError, UnidentifiedImageError) as exc:
            raise EdgekitError(f"{file}: not a readable image ({exc})") from None
        chw = pixels.reshape(height, width, channels).transpose(2, 0, 1) / 255.0
        batch = np.repeat(((chw - mean) / std)[None], spec.shape[0], axis=0)
        samples.append({"pixel_values": batch.astype(np.float32)})
    return samples
