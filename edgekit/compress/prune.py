"""Pruning. Structured and unstructured pruning arrive with the compression issue; a pruning
spec given now is a clear error rather than an export of the unpruned model."""

from __future__ import annotations

from edgekit.errors import ConfigError
from edgekit.model.student import Student


def check_spec(spec: str) -> None:
    """Reject a pruning spec edgekit does not apply (yet), before any work starts."""
    if spec.strip():
        raise ConfigError(f"--prune {spec!r}: pruning is not yet available in this edgekit "
                          "version; leave --prune unset")


def prune(student: Student, spec: str) -> Student:
    """Return `student` pruned by `spec` (an empty spec returns it unchanged)."""
    check_spec(spec)
    return student
