"""The Student: an export-ready module with named, typed inputs and outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TensorSpec:
    """Name, static shape and dtype of one graph input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    def to_json(self) -> dict[str, Any]:
        dtype = str(self.dtype).removeprefix("torch.")
        return {"name": self.name, "shape": list(self.shape), "dtype": dtype}


@dataclass(frozen=True)
class Student:
    """A loaded student, ready for compression and export.

    `module.forward(*inputs)` takes tensors in the order of `inputs` and returns a tensor or a
    tuple of tensors in the order of `output_names`: no keyword plumbing, no caches, no
    dict outputs, so every exporter sees the same clean graph.
    """

    name: str
    task: str
    module: torch.nn.Module
    inputs: tuple[TensorSpec, ...]
    output_names: tuple[str, ...]
    source: str
    tokenizer: Any = None  # a transformers tokenizer, when the student has one
    hf_config: Any = None  # the transformers config, when the student has one
    program: torch.export.ExportedProgram | None = None  # set when loaded from a .pt2
    examples: tuple[dict[str, Any], ...] = ()  # real inputs given with the student (numpy)
    pruning: dict[str, Any] | None = None  # what pruning removed, when the student was pruned

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    def parameter_count(self) -> int:
        """Parameters of the student, counting tied weights once."""
        return sum(p.numel() for p in self.module.parameters())


def student_failure(name: str, exc: BaseException) -> str:
    """The one-line message for a student whose own PyTorch forward raised `exc`."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return (f"{name}: the student itself fails in PyTorch ({type(exc).__name__}: {first}); "
            "edgekit exports what the model computes, so its own forward must run first")
