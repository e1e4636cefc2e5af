"""Compression: pruning and the canonical quantization plan."""

from edgekit.compress.prune import prune
from edgekit.compress.quantize import QUANT_SCHEMES, QuantPlan, quantize

__all__ = ["QUANT_SCHEMES", "QuantPlan", "prune", "quantize"]
