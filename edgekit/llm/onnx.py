"""ONNX decode export: a folder onnxruntime-genai runs as is.

model.onnx takes input_ids, attention_mask, position_ids and past_key_values.{i}.key/value
[1, kv_heads, past, head_dim] and returns logits and present.{i}.key/value (the cache grows
by concatenation, so genai_config.json sets past_present_share_buffer false). The
quantization plan is emitted with MatMulNBits/GatherBlockQuantized, as for full-sequence
exports; tokenizer files sit beside the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import torch

from edgekit.compress.quantize import QuantPlan
from edgekit.console import quiet
from edgekit.errors import ExportError
from edgekit.export import onnx_quant
from edgekit.export._files import staged
from edgekit.llm.decode import OnnxDecoder, check_decoder, decoder_shape
from edgekit.llm.tokenizer import special_ids
from edgekit.model.student import Student

MODEL_FILE = "model.onnx"
GENAI_CONFIG = "genai_config.json"
_OPSET = 18


def io_names(layers: int) -> tuple[list[str], list[str]]:
    """Input and output names, in onnxruntime-genai's convention."""
    past = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    present = [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past], ["logits", *present]


def genai_config(student: Student, max_seq_len: int) -> dict[str, Any]:
    """genai_config.json for the folder: greedy search, cache grown by concatenation."""
    shape = decoder_shape(student.hf_config)
    ids = special_ids(student)
    eos: Any = list(ids.eos) if len(ids.eos) != 1 else ids.eos[0]
    model_type = str(getattr(student.hf_config, "model_type", "llama"))
    return {
        "model": {
            "bos_token_id": ids.bos if ids.bos is not None else 0,
            "context_length": max_seq_len,
            "eos_token_id": eos if ids.eos else 0,
            "pad_token_id": ids.pad if ids.pad is not None else (ids.eos or (0,))[0],
            "type": model_type,
            "vocab_size": shape.vocab,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": MODEL_FILE,
                "head_size": shape.head_dim,
                "hidden_size": shape.hidden,
                "num_attention_heads": shape.heads,
                "num_hidden_layers": shape.layers,
                "num_key_value_heads": shape.kv_heads,
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                           "position_ids": "position_ids",
                           "past_key_names": "past_key_values.%d.key",
                           "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                            "present_value_names": "present.%d.value"},
            },
        },
        "search": {"do_sample": False, "early_stopping": True, "max_length": max_seq_len,
                   "min_length": 0, "num_beams": 1, "num_return_sequences": 1,
                   "past_present_share_buffer": False, "repetition_penalty": 1.0,
                   "temperature": 1.0, "top_k": 1, "top_p": 1.0},
    }


def lower_decoder(student: Student, plan: QuantPlan, folder: Path, max_seq_len: int
                  ) -> dict[str, Any]:
    """Write model.onnx and genai_config.json into `folder`.

    Returns:
        Notes for the report: opset, the plan's operators, the io names.

    Raises:
        ExportError: the student is not a supported decoder, or the export failed.
    """
    check_decoder(student, max_seq_len)
    shape = decoder_shape(student.hf_config)
    module = OnnxDecoder(student).eval()
    inputs, outputs = io_names(shape.layers)
    past_len, length = 3, 2
    past = [torch.zeros(1, shape.kv_heads, past_len, shape.head_dim)
            for _ in range(2 * shape.layers)]
    args = (torch.zeros(1, length, dtype=torch.long),
            torch.ones(1, past_len + length, dtype=torch.long),
            torch.arange(past_len, past_len + length)[None], *past)
    seq, total, cached = (torch.export.Dim.DYNAMIC for _ in range(3))
    # the mask's width is past + seq: torch.export infers that relation from the graph
    dynamic = ({1: seq}, {1: total}, {1: seq}, tuple({2: cached} for _ in past))
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / MODEL_FILE
    try:
        with quiet(), torch.no_grad(), staged(dest) as partial:
            torch.onnx.export(module, args, str(partial), dynamo=True, opset_version=_OPSET,
                              input_names=inputs, output_names=outputs,
                              dynamic_shapes=dynamic, external_data=False,
                              verbose=False)
            model = onnx.load(str(partial))
            for node in model.graph.node:
                del node.metadata_props[:]
            notes: dict[str, Any] = {"opset": _OPSET, "inputs": inputs[:3] + ["past..."],
                                     "outputs": outputs[:1] + ["present..."]}
            if plan.quantized:
                notes["plan"], substituted = onnx_quant.emit_plan(model, plan)
                if substituted:  # decode parity then reports, not judges
                    notes["substituted"] = substituted
            onnx.save(model, str(partial))
    except Exception as exc:  # torch.onnx raises many types; the first line names the op
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{student.name}: ONNX decode export failed ({first})") from None
    with staged(folder / GENAI_CONFIG) as partial:
        partial.write_text(json.dumps(genai_config(student, max_seq_len), indent=2) + "\n")
    return notes
