"""Pruning: specs, structured cuts that shrink real transformers students, sparsity."""

from __future__ import annotations

import pytest
import torch

from edgekit.compress.calib import calibration_inputs
from edgekit.compress.prune import parse_spec, prune, save_pruned
from edgekit.errors import ConfigError, EdgekitError
from edgekit.model import load


def _outputs(student, sample):
    with torch.no_grad():
        return student.module(*[torch.from_numpy(sample[n]) for n in student.input_names])


def test_spec_parsing_and_errors():
    spec = parse_spec("mlp=0.25, heads=0.5,layers=2,nm=2:4")
    assert (spec.mlp, spec.heads, spec.layers, spec.nm) == (0.25, 0.5, 2, (2, 4))
    assert parse_spec("").empty and parse_spec(" , ").empty
    for bad, message in (("mlp=1.5", "fraction"), ("rows=0.2", "unknown key 'rows'"),
                         ("layers=-1", "whole number"), ("nm=4:2", "N:M"), ("mlp", "key=value"),
                         ("unstructured=0.5,nm=2:4", "not both")):
        with pytest.raises(ConfigError, match=message):
            parse_spec(bad)


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_structured_pruning_shrinks_and_saves_a_loadable_folder(student_dir, tmp_path, kind):
    student = load(student_dir(kind))
    calibration = calibration_inputs(student, None, 4)
    pruned = prune(student, "mlp=0.5,heads=0.5,layers=1", calibration)
    record = pruned.pruning
    assert record["importance"] == "activation"
    assert record["mlp"] == {"intermediate_size": [128, 64]}
    assert record["heads"] == {"attention_heads": [4, 2], "key_value_heads": [2, 2]}
    assert len(record["layers_removed"]) == 1
    assert record["parameters_after"] < 0.6 * record["parameters_before"]
    assert pruned.hf_config.num_hidden_layers == 1
    assert pruned.hf_config.intermediate_size == 64
    mlp = pruned.module.model.model.layers[0].mlp
    assert mlp.gate_proj.weight.shape == (64, 64) and mlp.down_proj.weight.shape == (64, 64)
    attn = pruned.module.model.model.layers[0].self_attn
    assert attn.q_proj.weight.shape == (32, 64) and attn.o_proj.weight.shape == (64, 32)
    assert attn.k_proj.weight.shape == (32, 64)  # both key/value groups stay (GQA)
    assert student.hf_config.intermediate_size == 128  # the original is untouched

    save_pruned(pruned, tmp_path / "pruned")
    reloaded = load(tmp_path / "pruned")
    assert reloaded.parameter_count() == pruned.parameter_count()
    sample = calibration[0]
    torch.testing.assert_close(_outputs(reloaded, sample), _outputs(pruned, sample))


def test_activation_importance_keeps_the_channels_that_carry_signal(student_dir):
    student = load(student_dir("llama"))
    down = student.module.model.model.layers[0].mlp.down_proj
    with torch.no_grad():  # silence half the channels: they carry nothing downstream
        down.weight[:, ::2] = 0.0
    pruned = prune(student, "mlp=0.5", calibration_inputs(student, None, 2))
    kept = pruned.module.model.model.layers[0].mlp.down_proj.weight
    torch.testing.assert_close(kept, down.weight[:, 1::2])


def test_bert_prunes_mlp_and_layers_but_refuses_heads(student_dir):
    student = load(student_dir("bert"))
    pruned = prune(student, "mlp=0.5,layers=1", None)
    assert pruned.pruning["importance"] == "magnitude"  # no calibration given
    assert pruned.hf_config.intermediate_size == 64 and pruned.hf_config.num_hidden_layers == 1
    with pytest.raises(ConfigError, match="heads= prunes decoders"):
        prune(student, "heads=0.5", None)


def test_structured_pruning_of_a_cnn_is_a_clear_error(student_dir):
    with pytest.raises(EdgekitError, match="structured pruning supports transformers"):
        prune(load(student_dir("resnet")), "mlp=0.5", None)


def test_unstructured_and_2_4_sparsity(student_dir):
    student = load(student_dir("llama"))
    half = prune(student, "unstructured=0.5")
    assert half.pruning["sparsity"]["pattern"] == "unstructured"
    assert half.pruning["sparsity"]["linear_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert half.parameter_count() == student.parameter_count()  # shapes kept
    nm = prune(student, "nm=2:4")
    q = nm.module.model.model.layers[0].self_attn.q_proj.weight
    zeros_per_group = (q.reshape(q.shape[0], -1, 4) == 0).sum(-1)
    assert bool((zeros_per_group >= 2).all())
    assert nm.pruning["sparsity"]["linear_sparsity"] == pytest.approx(0.5, abs=0.01)
    head = nm.module.model.lm_head.weight  # tied to the embedding: left dense
    assert float((head == 0).float().mean()) < 0.01
