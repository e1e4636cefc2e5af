"""ExecuTorch: lower the program to XNNPACK with to_edge_transform_and_lower, write a .pte."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from edgekit.compress.quantize import QuantPlan
from edgekit.console import import_backend, quiet
from edgekit.errors import ExportError
from edgekit.export._files import staged
from edgekit.export._trace import trace
from edgekit.export.executorch_quant import (
    ACTIVATIONS_NOTE,
    fuse_quantized_embeddings,
    quantized_module,
)
from edgekit.model.student import Student

_NOT_OPS = {"getitem", "executorch_call_delegate"}


def lower(program: torch.export.ExportedProgram, student: Student, dest: Path, *,
          plan: QuantPlan | None = None) -> dict[str, Any]:
    """Lower `program` (or, for a quantized plan, the student with the plan's torchao
    weights) to an XNNPACK-delegated .pte at `dest`.

    Returns:
        Notes for the report: delegate count, every op that stayed outside XNNPACK, and what
        was substituted for the plan.
    """
    notes: dict[str, Any] = {"backend": "XNNPACK"}
    if plan is not None and plan.quantized:
        try:
            program = trace(student, quantized_module(student.module, list(plan.layers)))
        except ExportError as exc:
            raise ExportError(f"{exc}{_own_forward_hint(student.module, plan)}") from None
        notes["substituted"] = [ACTIVATIONS_NOTE]
    exir = import_backend("executorch.exir")
    partitioner = import_backend("executorch.backends.xnnpack.partition.xnnpack_partitioner")
    try:
        with quiet():
            edge = exir.to_edge_transform_and_lower(
                program, partitioner=[partitioner.XnnpackPartitioner()]
            )
            if plan is not None and plan.quantized:
                fuse_quantized_embeddings(edge)
            undelegated = _undelegated_ops(edge.exported_program().graph_module)
            delegates = _count_delegates(edge.exported_program().graph_module)
            executorch_program = edge.to_executorch()
    except Exception as exc:  # exir raises many types; the first line names the op or pass
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"{student.name}: ExecuTorch lowering failed ({first})") from None
    with staged(dest) as partial:
        partial.write_bytes(executorch_program.buffer)
    notes.update(delegated_subgraphs=delegates, undelegated_ops=dict(sorted(undelegated.items())))
    return notes


def _own_forward_hint(module: torch.nn.Module, plan: QuantPlan) -> str:
    """Name the planned Linear subclasses that compute with their weight in their own forward
    (Falcon's `x @ self.weight.T`): torchao's int4 weights only support nn.Linear's."""
    by_name = dict(module.named_modules(remove_duplicate=False))
    own: dict[str, set[str]] = {}
    for layer in plan.layers:
        for name in layer.names:
            target = by_name.get(name)
            if isinstance(target, torch.nn.Linear) and \
                    type(target).forward is not torch.nn.Linear.forward:
                own.setdefault(type(target).__name__, set()).add(name.rsplit(".", 1)[-1])
    if not own:
        return ""
    suffixes = sorted(set().union(*own.values()))
    keep = ", ".join(f'"{suffix}"' for suffix in suffixes)
    return (f"; {', '.join(sorted(own))} computes with its weight in its own forward, which "
            "ExecuTorch's int4/int8 weights (torchao) do not support: keep those layers in "
            f"float (--set 'quantize.keep_float=[{keep}]') or export at --quant none")


def _count_delegates(graph_module: torch.fx.GraphModule) -> int:
    return sum(1 for node in graph_module.graph.nodes if node.op == "call_function"
               and _op_name(node.target) == "executorch_call_delegate")


def _undelegated_ops(graph_module: torch.fx.GraphModule) -> Counter[str]:
    ops: Counter[str] = Counter()
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and _op_name(node.target) not in _NOT_OPS:
            ops[_op_name(node.target)] += 1
    return ops


def _op_name(target: Any) -> str:
    name = getattr(target, "__name__", str(target))
    return str(name).split("::")[-1]
