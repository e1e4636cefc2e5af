"""ExecuTorch decode export: one .pte with the KV cache as mutable state, lowered to XNNPACK,
with the metadata methods ExecuTorch's LLM runner reads (the iOS/Android demo apps and the
Python `TextLLMRunner` load it unchanged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgekit.compress.quantize import QuantPlan
from edgekit.console import import_backend, quiet
from edgekit.errors import ExportError
from edgekit.export._files import staged
from edgekit.export.executorch import _count_delegates, _undelegated_ops
from edgekit.export.executorch_quant import (
    ACTIVATIONS_NOTE,
    fuse_quantized_embeddings,
    quantized_module,
)
from edgekit.llm.decode import ExecuTorchDecoder, check_decoder, decoder_shape
from edgekit.llm.tokenizer import special_ids
from edgekit.model.student import Student


def runner_metadata(student: Student, max_seq_len: int) -> dict[str, Any]:
    """The constant methods ExecuTorch's LLM runner reads from a .pte."""
    shape = decoder_shape(student.hf_config)
    ids = special_ids(student)
    metadata: dict[str, Any] = {
        "get_max_seq_len": max_seq_len,
        "get_max_context_len": max_seq_len,
        "get_n_layers": shape.layers,
        "get_vocab_size": shape.vocab,
        "use_kv_cache": True,
        "use_sdpa_with_kv_cache": True,
        "enable_dynamic_shape": True,
    }
    if ids.bos is not None:
        metadata["get_bos_id"] = ids.bos
    if ids.eos:
        metadata["get_eos_ids"] = list(ids.eos)
    return metadata


def trace_decoder(student: Student, max_seq_len: int, plan: QuantPlan | None = None
                  ) -> torch.export.ExportedProgram:
    """torch.export the ExecuTorch decode wrapper, prompt length dynamic in [1, max_seq_len]."""
    module: torch.nn.Module = ExecuTorchDecoder(student, max_seq_len)
    if plan is not None and plan.quantized:
        module = quantized_module(module, list(plan.layers))
    tokens = torch.zeros((1, 2), dtype=torch.long)
    seq = torch.export.Dim("seq", min=1, max=max_seq_len)
    try:
        with quiet(), torch.no_grad():
            return torch.export.export(module, (tokens, torch.tensor([0])),
                                       dynamic_shapes=({1: seq}, None), strict=False)
    except Exception as exc:  # torch.export raises many types; the first line names the cause
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{student.name}: torch.export of the decoder failed ({first})"
                          ) from None


def lower_decoder(student: Student, plan: QuantPlan, dest: Path, max_seq_len: int
                  ) -> dict[str, Any]:
    """Write the decode .pte at `dest`.

    Args:
        student: a transformers decoder LM student.
        plan: the quantization plan (int4/int8 linears as 8da4w/8da8w, embeddings as
            quantized_decomposed::embedding_4bit/byte).
        dest: the .pte path.
        max_seq_len: KV cache length (prompt plus generated tokens).

    Returns:
        Notes for the report: backend, delegated subgraphs, ops outside XNNPACK, metadata.

    Raises:
        ExportError: the student is not a supported decoder, or lowering failed.
    """
    check_decoder(student, max_seq_len)
    program = trace_decoder(student, max_seq_len, plan)
    exir = import_backend("executorch.exir")
    partitioner = import_backend("executorch.backends.xnnpack.partition.xnnpack_partitioner")
    passes = import_backend("executorch.exir.passes")
    sym_shapes = import_backend("executorch.exir.passes.sym_shape_eval_pass")
    metadata = runner_metadata(student, max_seq_len)
    try:
        with quiet():
            edge = exir.to_edge_transform_and_lower(
                program, partitioner=[partitioner.XnnpackPartitioner()],
                compile_config=exir.EdgeCompileConfig(_check_ir_validity=False,
                                                      _skip_dim_order=True),
                constant_methods=metadata)
            if plan.quantized:
                fuse_quantized_embeddings(edge)
            graph = edge.exported_program().graph_module
            undelegated, delegates = _undelegated_ops(graph), _count_delegates(graph)
            executorch_program = edge.to_executorch(exir.ExecutorchBackendConfig(
                extract_delegate_segments=True,
                memory_planning_pass=passes.MemoryPlanningPass(alloc_graph_input=False),
                sym_shape_eval_pass=sym_shapes.ConstraintBasedSymShapeEvalPass()))
    except Exception as exc:  # exir raises many types; the first line names the op or pass
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{student.name}: ExecuTorch decode lowering failed ({first})"
                          ) from None
    with staged(dest) as partial:
        partial.write_bytes(executorch_program.buffer)
    notes: dict[str, Any] = {"backend": "XNNPACK", "delegated_subgraphs": delegates,
                             "undelegated_ops": dict(sorted(undelegated.items())),
                             "metadata": metadata}
    if plan.quantized:
        notes["substituted"] = [ACTIVATIONS_NOTE]
    return notes
