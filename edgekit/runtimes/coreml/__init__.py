"""The Core ML emulator: a numpy interpreter of the ML program inside a saved .mlpackage.

Core ML's own `predict` needs macOS; the emulator reads the package with coremltools' milproto
loader (which works anywhere) and runs its MIL operations one by one, in fp32 (CPU compute
unit) or fp16 (GPU / Neural Engine) precision.
"""

from __future__ import annotations

from edgekit.runtimes.coreml.session import PRECISIONS, CoreMLEmulatorSession

__all__ = ["PRECISIONS", "CoreMLEmulatorSession"]
