"""In-distribution example inputs, chosen by what an input is called.

Text students get windows of edgekit's English corpus through their own tokenizer (or its
bytes when they have none); image students get smooth, natural-looking images normalised like
ImageNet; audio students get a voiced, speech-like 16 kHz waveform (`input_values`, normalised
to zero mean and unit variance as wav2vec2's feature extractor does) or its log-mel spectrogram
as Whisper computes it (`input_features`). Inputs nobody can interpret get standard normal
values and should be replaced with real data (`--inputs`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from edgekit.console import import_backend
from edgekit.errors import EdgekitError
from edgekit.model.student import Student, TensorSpec

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_SAMPLE_RATE = 16000
_HOP = 160  # Whisper's log-mel: 25 ms windows (400 samples) every 10 ms
_WINDOW = 400


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
    if spec.name == "input_values" and len(spec.shape) == 2:
        wave = _speech_like(spec.shape[-1], rng)
        return np.resize((wave - wave.mean()) / (wave.std() + 1e-7), spec.shape).astype(dtype)
    if spec.name == "input_features" and len(spec.shape) == 3:
        return _log_mel(_speech_like(spec.shape[-1] * _HOP, rng), spec.shape[1])[None].astype(dtype)
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


def _speech_like(length: int, rng: np.random.Generator) -> np.ndarray:
    """A voiced 16 kHz signal: harmonics of a gliding pitch under formant-like peaks, in
    syllable-rate bursts, with a little breath noise (peak about 0.3, like a speech clip)."""
    t = np.arange(length) / _SAMPLE_RATE
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / _SAMPLE_RATE
    formants = rng.uniform((500, 1200, 2400), (800, 1800, 3000))
    wave = np.zeros(length)
    for k in range(1, 30):
        gain = sum(np.exp(-((k * f0.mean() - f) / 200) ** 2) for f in formants) + 0.05 / k
        wave += gain * np.sin(k * phase)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, np.pi)), 0, 1)
    wave = wave * envelope + 0.02 * rng.standard_normal(length)
    return (0.3 * wave / (np.abs(wave).max() + 1e-7)).astype(np.float32)


def _log_mel(wave: np.ndarray, mels: int) -> np.ndarray:
    """Whisper's log-mel spectrogram of `wave`: [mels, len(wave) // 160], clamped 8 decades
    below its peak and scaled to about [-1, 1]."""
    audio = import_backend("transformers.audio_utils")
    filters = audio.mel_filter_bank(num_frequency_bins=1 + _WINDOW // 2, num_mel_filters=mels,
                                    min_frequency=0.0, max_frequency=_SAMPLE_RATE / 2,
                                    sampling_rate=_SAMPLE_RATE, norm="slaney",
                                    mel_scale="slaney")
    spec = audio.spectrogram(wave, audio.window_function(_WINDOW, "hann"),
                             frame_length=_WINDOW, hop_length=_HOP, power=2.0,
                             mel_filters=filters, log_mel="log10")[:, :-1]
    spec = np.maximum(spec, spec.max() - 8.0)
    return (spec + 4.0) / 4.0


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
