"""Validation: parity of each artifact against the fp32 eager student."""

from edgekit.validate.parity import (
    ParityVerdict,
    compare,
    measure,
    reference_outputs,
    verdict_under,
)

__all__ = ["ParityVerdict", "compare", "measure", "reference_outputs", "verdict_under"]
