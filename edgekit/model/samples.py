"""In-distribution example inputs, chosen by what an input is called.

Text students get windows of edgekit's English corpus through their own tokenizer (or its
bytes when they have none); image students get smooth, natural-looking images normalised like
ImageNet. Inputs nobody can interpret get standard normal values and should be replaced with
real data (`--inputs`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from edgekit.errors import EdgekitError
from edgekit.model.student import Student, TensorSpec

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def corpus_text() -> str:
    """edgekit's built-in English corpus: everyday sentences and instructions."""
    return resources.files("edgekit.data").joinpath("corpus.txt").read_text()


def sample_inputs(student: Student, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """`count` example input sets for `student`, as numpy arrays keyed by input name.

    A student loaded with its own example inputs (a torch.nn.Module) is checked on those.
    """
    if student.examples:
        return [dict(example) for example in student.examples]
    rng = np.random.default_rng(seed)
    tokens = _corpus_tokens(student)
    samples = []
    for index in range(count):
        sample = {}
        for spec in student.inputs:
            sample[spec.name] = np.ascontiguousarray(_one(spec, index, rng, tokens))
        samples.append(sample)
    return samples


def _one(spec: TensorSpec, index: int, rng: np.random.Generator, tokens: np.ndarray) -> np.ndarray:
    dtype = torch.empty((), dtype=spec.dtype).numpy().dtype
    if spec.name == "input_ids":
        length = spec.shape[-1]
        start = (index * 97 * length // 64) % max(1, len(tokens) - length)
        window = tokens[start:start + length]
        return np.resize(window, spec.shape).astype(dtype)
    if spec.name == "attention_mask":
        mask = np.ones(spec.shape, dtype=dtype)
        if index % 2 == 1:  # every other sample is a shorter, padded sentence
            mask[..., spec.shape[-1] * 3 // 4:] = 0
        return mask
    if spec.name == "pixel_values" and len(spec.shape) == 4:
        return _natural_images(spec.shape, rng).astype(dtype)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 2, size=spec.shape).astype(dtype)
    return rng.standard_normal(spec.shape).astype(dtype)


def _corpus_tokens(student: Student) -> np.ndarray:
    return text_tokens(student, corpus_text())


def text_tokens(student: Student, text: str) -> np.ndarray:
    """`text` as token ids through the student's tokenizer, or its UTF-8 bytes without one,
    folded into the vocabulary."""
    vocab = int(getattr(student.hf_config, "vocab_size", 0) or 256)
    if student.tokenizer is not None:
        ids = np.asarray(student.tokenizer(text)["input_ids"], dtype=np.int64)
    else:
        ids = np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64)
    return ids % vocab


def _natural_images(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Smooth colour fields with edges: low-frequency noise upsampled, plus a bright shape."""
    batch, channels, height, width = shape
    coarse = rng.random((batch, channels, 4, 4)).astype(np.float32)
    rows = np.linspace(0, 3, height)
    cols = np.linspace(0, 3, width)
    r0 = np.floor(rows).astype(int).clip(0, 2)
    c0 = np.floor(cols).astype(int).clip(0, 2)
    fr = (rows - r0)[:, None]
    fc = (cols - c0)[None, :]
    top = coarse[..., r0, :][..., c0] * (1 - fc) + coarse[..., r0, :][..., c0 + 1] * fc
    bottom = coarse[..., r0 + 1, :][..., c0] * (1 - fc) + coarse[..., r0 + 1, :][..., c0 + 1] * fc
    image = top * (1 - fr) + bottom * fr
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = rng.integers(0, height), rng.integers(0, width)
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < (min(height, width) // 4) ** 2
    image = np.where(disc, 0.5 + 0.5 * image, image)
    if channels == 3:
        return (image - _IMAGENET_MEAN[None, :, None, None]) / _IMAGENET_STD[None, :, None, None]
    return (image - 0.5) / 0.25


def read_inputs(path: Path, student: Student) -> list[dict[str, np.ndarray]]:
    """Samples from an .npz keyed by input name; a leading extra axis holds several samples."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise EdgekitError(f"{path}: no such inputs file") from None
    except (ValueError, OSError) as exc:
        raise EdgekitError(f"{path}: not a readable .npz without pickles ({exc})") from None
    counts = set()
    for spec in student.inputs:
        if spec.name not in arrays:
            raise EdgekitError(f"{path}: missing input '{spec.name}' "
                               f"(the student takes {', '.join(student.input_names)})")
        shape = arrays[spec.name].shape
        if shape == spec.shape:
            counts.add(1)
            arrays[spec.name] = arrays[spec.name][None]
        elif shape[1:] == spec.shape:
            counts.add(shape[0])
        else:
            raise EdgekitError(f"{path}: input '{spec.name}' has shape {list(shape)}, the student "
                               f"takes {list(spec.shape)} (or N x that)")
    if len(counts) != 1:
        raise EdgekitError(f"{path}: inputs hold different numbers of samples {sorted(counts)}")
    dtypes = {spec.name: spec.dtype for spec in student.inputs}
    count = counts.pop()
    return [{name: arrays[name][i].astype(torch.empty((), dtype=dtypes[name]).numpy().dtype)
             for name in student.input_names} for i in range(count)]
