"""edgekit: put small distilled models on phones, and prove they still behave.

`import edgekit` imports no backend (torch, ExecuTorch, ONNX, coremltools): the stage
functions below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["export", "load", "load_config", "prune", "quantize", "run", "validate",
           "__version__"]

if TYPE_CHECKING:
    from edgekit.compress import prune, quantize
    from edgekit.config import load_config
    from edgekit.export import export
    from edgekit.model import load
    from edgekit.pipeline import run
    from edgekit.validate import measure as validate

_LAZY = {
    "load": ("edgekit.model", "load"),
    "prune": ("edgekit.compress", "prune"),
    "quantize": ("edgekit.compress", "quantize"),
    "export": ("edgekit.export", "export"),
    "validate": ("edgekit.validate", "measure"),
    "run": ("edgekit.pipeline", "run"),
    "load_config": ("edgekit.config", "load_config"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
