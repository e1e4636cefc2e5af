import numpy as np
import torch

from edgekit.model import TensorSpec
from edgekit.model.samples import corpus_text, sample_inputs
from edgekit.model.student import Student


def _student(*specs: TensorSpec, vocab: int = 256) -> Student:
    class Config:
        vocab_size = vocab

    return Student(name="s", task="generic", module=torch.nn.Identity(), inputs=specs,
                   output_names=("y",), source="test", hf_config=Config())


def test_text_samples_are_corpus_bytes_within_the_vocabulary():
    student = _student(TensorSpec("input_ids", (1, 16), torch.long), vocab=200)
    first, second = sample_inputs(student, 2)
    ids = first["input_ids"]
    assert ids.shape == (1, 16) and ids.dtype == np.int64
    assert ids.max() < 200
    expected = np.frombuffer(corpus_text().encode()[:16], dtype=np.uint8) % 200
    np.testing.assert_array_equal(ids[0], expected)
    assert not np.array_equal(first["input_ids"], second["input_ids"])


def test_attention_masks_alternate_full_and_padded():
    student = _student(TensorSpec("input_ids", (1, 8), torch.long),
                       TensorSpec("attention_mask", (1, 8), torch.long))
    full, padded = sample_inputs(student, 2)
    assert full["attention_mask"].tolist() == [[1] * 8]
    assert padded["attention_mask"].tolist() == [[1] * 6 + [0] * 2]


def test_images_are_normalised_and_smooth():
    student = _student(TensorSpec("pixel_values", (1, 3, 32, 32), torch.float32))
    image = sample_inputs(student, 1, seed=3)[0]["pixel_values"]
    assert image.shape == (1, 3, 32, 32) and image.dtype == np.float32
    assert -2.2 < image.min() and image.max() < 2.7  # ImageNet-normalised [0, 1] pixels
    neighbours = np.abs(np.diff(image, axis=-1)).mean()
    noise = np.abs(np.diff(np.random.default_rng(0).standard_normal(image.shape), axis=-1)).mean()
    assert neighbours < noise / 5  # natural images are smooth, unlike noise


def test_samples_are_deterministic_for_a_seed():
    student = _student(TensorSpec("x", (2, 3), torch.float32))
    a = sample_inputs(student, 1, seed=7)[0]["x"]
    b = sample_inputs(student, 1, seed=7)[0]["x"]
    np.testing.assert_array_equal(a, b)
