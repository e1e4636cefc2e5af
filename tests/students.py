"""Tiny real-architecture students, built locally from transformers configs with fixed seeds."""

from __future__ import annotations

from pathlib import Path

import torch


def _save(model: torch.nn.Module, folder: Path) -> Path:
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def tiny_llama(folder: Path, seed: int = 0, layers: int = 2) -> Path:
    """A Llama-style decoder of `layers` layers (GQA, RoPE, RMSNorm, SwiGLU, tied embeddings)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=True)
    return _save(LlamaForCausalLM(config).eval(), folder)


def tiny_qwen2(folder: Path, seed: int = 0) -> Path:
    """A 2-layer Qwen2-style decoder (q/k/v biases, GQA, untied lm_head)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=False,
                         use_sliding_window=False)
    return _save(Qwen2ForCausalLM(config).eval(), folder)


def tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A 2-layer BERT-style encoder (feature extraction)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=128,
                        max_position_embeddings=64)
    model = BertModel(config, add_pooling_layer=False).eval()
    model.config.architectures = ["BertModel"]
    return _save(model, folder)


def tiny_resnet(folder: Path, seed: int = 0) -> Path:
    """A 2-stage ResNet image classifier on 64x64 images."""
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    config = ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32],
                          depths=[1, 1], layer_type="basic", num_labels=10, image_size=64)
    return _save(ResNetForImageClassification(config).eval(), folder)


def linear_heavy_llama(folder: Path, seed: int = 0) -> Path:
    """A Llama-style decoder whose bytes are mostly Linear weights (2.9M parameters), with a
    padding token like SmolLM2's (its embedding has a padding_idx)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=1024,
                         num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4,
                         max_position_embeddings=128, tie_word_embeddings=True, pad_token_id=2)
    return _save(LlamaForCausalLM(config).eval(), folder)
