"""A tiny random-init Llama GGUF with an embedded byte-level BPE tokenizer, written with gguf's
GGUFWriter the way llama.cpp's converter writes one (so edgekit loads it like the built-in
SmolLM2 GGUF). Fixed seed; no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

VOCAB_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2, as in SmolLM2
MERGES = ("Ġ t", "h e", "i n", "e r", "a n", "o n", "r e", "Ġ a", "Ġt he")
HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS, CONTEXT = 64, 128, 2, 4, 2, 128
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)


def tokens() -> list[str]:
    """The vocabulary: 3 control tokens, the 256 byte-level symbols, then the merge results."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return [*VOCAB_SPECIALS, *bytes_to_unicode().values(), *(m.replace(" ", "") for m in MERGES)]


def llama_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """The student's weights by Hugging Face name (tied embeddings, so no lm_head), fp32."""
    gen = torch.Generator().manual_seed(seed)
    head_dim = HIDDEN // HEADS

    def randn(*shape: int, std: float = 0.02, mean: float = 0.0) -> torch.Tensor:
        return mean + std * torch.randn(*shape, generator=gen)

    weights = {"model.embed_tokens.weight": randn(len(tokens()), HIDDEN),
               "model.norm.weight": randn(HIDDEN, std=0.1, mean=1.0)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        weights |= {
            p + "input_layernorm.weight": randn(HIDDEN, std=0.1, mean=1.0),
            p + "self_attn.q_proj.weight": randn(HEADS * head_dim, HIDDEN),
            p + "self_attn.k_proj.weight": randn(KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.v_proj.weight": randn(KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.o_proj.weight": randn(HIDDEN, HEADS * head_dim),
            p + "post_attention_layernorm.weight": randn(HIDDEN, std=0.1, mean=1.0),
            p + "mlp.gate_proj.weight": randn(INTERMEDIATE, HIDDEN),
            p + "mlp.up_proj.weight": randn(INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": randn(HIDDEN, INTERMEDIATE),
        }
    return weights


def llama_cpp_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf `permute` of q/k rows: per head, the HF rotate-half
    layout (all first halves, then all second halves) becomes interleaved pairs. transformers'
    LlamaTensorProcessor._reverse_permute_weights undoes it on load."""
    return (weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def tiny_gguf(path: Path, seed: int = 0) -> Path:
    """Write a 2-layer Llama GGUF (hidden 64, 4 heads, 2 KV heads, intermediate 128, vocab 268,
    fp32 tensors, tied embeddings) with a GPT-2-style byte-level BPE tokenizer, bos/eos and a
    ChatML chat template in its metadata; the weights are llama_weights(seed). Returns path."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    vocab = tokens()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama-gguf")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(len(vocab))
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(INTERMEDIATE)
    writer.add_block_count(LAYERS)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)

    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(vocab)
    writer.add_token_types([gguf.TokenType.CONTROL] * len(VOCAB_SPECIALS)
                           + [gguf.TokenType.NORMAL] * (len(vocab) - len(VOCAB_SPECIALS)))
    writer.add_token_merges(list(MERGES))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, LAYERS)
    for hf_name, tensor in llama_weights(seed).items():
        array = tensor.numpy()
        if ".q_proj." in hf_name:
            array = llama_cpp_permute(array, HEADS)
        elif ".k_proj." in hf_name:
            array = llama_cpp_permute(array, KV_HEADS)
        writer.add_tensor(names.get_name(hf_name, try_suffixes=(".weight",)), array)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
