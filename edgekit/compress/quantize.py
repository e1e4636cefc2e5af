"""The canonical quantization plan, computed once and emitted natively by every format.

Only the float plan ("none") is built so far; int8 and int4 arrive with the compression
issue, and asking for them now is a clear error rather than a silent float export.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import ConfigError
from edgekit.model.student import Student

QUANT_SCHEMES = ("none", "int8", "int4")


@dataclass(frozen=True)
class QuantPlan:
    """Which precision each layer is stored at. `scheme` 'none' keeps every layer in fp32."""

    scheme: str

    def to_json(self) -> dict[str, str]:
        return {"scheme": self.scheme}


def check_scheme(scheme: str) -> None:
    """Reject a scheme edgekit does not build (yet), before any work starts."""
    if scheme not in QUANT_SCHEMES:
        raise ConfigError(f"unknown quant '{scheme}' (known: {', '.join(QUANT_SCHEMES)})")
    if scheme != "none":
        raise ConfigError(f"--quant {scheme}: not yet available in this edgekit version; "
                          "use --quant none")


def quantize(student: Student, scheme: str) -> QuantPlan:
    """Compute the quantization plan for `student`.

    Args:
        student: the (possibly pruned) fp32 student.
        scheme: one of QUANT_SCHEMES.

    Returns:
        The plan every exporter emits.
    """
    check_scheme(scheme)
    return QuantPlan(scheme=scheme)
