import torch
from transformers.models.llama import modeling_llama

from edgekit.llm.xnnpack_forms import rmsnorm_by_matmul, rope_by_matmul, rotation_matrix


def test_rotation_matrix_is_rotate_half_exactly():
    x = torch.randn(2, 3, 5, 8)
    rotated = torch.nn.functional.linear(x, rotation_matrix(8))
    assert torch.equal(rotated, modeling_llama.rotate_half(x))


def test_rope_by_matmul_replaces_rotate_half_only_while_active():
    original = modeling_llama.rotate_half
    x = torch.randn(1, 2, 3, 8)
    rotations = [rotation_matrix(8), rotation_matrix(8)]
    with rope_by_matmul([modeling_llama], rotations):
        assert modeling_llama.rotate_half is not original
        torch.testing.assert_close(modeling_llama.rotate_half(x), original(x), rtol=0, atol=0)
    assert modeling_llama.rotate_half is original


def test_llama_rmsnorm_is_rewritten_and_keeps_its_output():
    norm = modeling_llama.LlamaRMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(16))
    x = torch.randn(1, 4, 16)
    expected = norm(x)
    rmsnorm_by_matmul(norm)
    assert hasattr(norm, "mean_vector")  # the matmul form took over
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-6)
