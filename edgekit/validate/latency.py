"""Measured latency: an artifact timed in its runtime on this host, under a device profile's
limits (threads capped at the host's cores, CPU affinity, app memory budget checked).
Labelled "measured on host (<cpu>, N threads)": it is never a phone number."""

from __future__ import annotations

import contextlib
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.console import quiet
from edgekit.devices import DeviceProfile
from edgekit.errors import EdgekitError
from edgekit.runtimes.limits import (
    limits_for,
    over_budget,
    peak_rss_mib,
    pinned,
    reset_peak_rss,
    rss_mib,
)

# Kept small so that an export stays quick; `edgekit bench --iterations` raises them.
WARMUP = 2
ITERATIONS = 5

CORE_ML_NOT_RUN = ("Core ML artifacts cannot be timed on this host: Core ML runs only on Apple "
                   "hardware, and an emulator's time is not device time")


@cache
def host_cpu() -> str:
    """The host CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    with contextlib.suppress(OSError):  # no /proc/cpuinfo: fall back to platform
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def measure_latency(
    path: Path,
    device: DeviceProfile,
    inputs: dict[str, np.ndarray],
    iterations: int = ITERATIONS,
    warmup: int = WARMUP,
    input_names: tuple[str, ...] | None = None,
    output_names: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Time the artifact at `path` in its runtime under `device`'s limits.

    Args:
        path: a .pte, .onnx, .ort or .mlpackage artifact.
        device: the profile whose threads, affinity and memory budget apply.
        inputs: one sample, keyed by input name.
        iterations: timed runs after warm-up (p50/p90 are over these).
        warmup: untimed runs after loading.
        input_names: input names in order (a .pte stores none).
        output_names: output names in order.

    Returns:
        The report.json `measured` object, or {"status": "not_run", "reason": ...} when the
        artifact's runtime cannot run here.
    """
    from edgekit.runtimes import RuntimeUnavailable, open_session, runtime_for

    if iterations < 1 or warmup < 0:
        raise EdgekitError(f"iterations must be >= 1 and warm-up >= 0, got {iterations}, "
                           f"{warmup}")
    if runtime_for(path) == "coreml":
        return {"status": "not_run", "reason": CORE_ML_NOT_RUN}
    limits = limits_for(device)
    _import_runtime(runtime_for(path))  # load_ms times loading the artifact, not the import
    with pinned(limits):
        baseline = rss_mib()
        exact_peak = reset_peak_rss()
        start = time.perf_counter()
        try:
            with quiet():
                session = open_session(path, input_names, output_names, threads=limits.threads)
        except RuntimeUnavailable as exc:
            return {"status": "not_run", "reason": str(exc)}
        load_ms = (time.perf_counter() - start) * 1e3
        for _ in range(warmup):
            session.run(inputs)
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            session.run(inputs)
            times.append((time.perf_counter() - start) * 1e3)
        peak = peak_rss_mib() - baseline
        del session
    p50, p90 = np.percentile(times, [50, 90])
    used = max(peak, 0.0)
    return {
        "label": f"measured on host ({host_cpu()}, {limits.threads} "
                 f"thread{'s' if limits.threads > 1 else ''})",
        "device": device.key,
        "threads": limits.threads,
        "load_ms": round(load_ms, 3),
        "p50_ms": round(float(p50), 4),
        "p90_ms": round(float(p90), 4),
        "peak_rss_mib": round(used, 2),
        "memory_budget_mib": float(limits.memory_budget_mib),
        "over_memory_budget": over_budget(used, limits),
        "iterations": iterations,
        "peak_rss_exact": exact_peak,
    }


def _import_runtime(runtime: str) -> None:
    from edgekit.console import import_backend

    with quiet():
        if runtime == "executorch":
            import_backend("executorch.runtime")
            import_backend("executorch.extension.pybindings.portable_lib")
        elif runtime == "onnxruntime":
            import_backend("onnxruntime")


def inputs_for(path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...] | None,
                                    tuple[str, ...] | None]:
    """A timing sample for the artifact at `path`, with its input and output names.

    Shapes come from the report.json of its output folder when there is one, else from the
    artifact (ONNX graph inputs; the .pte method's tensor metadata). Token inputs are 0
    (every vocabulary has it), masks 1, floats seeded Gaussian noise: timing needs shapes,
    not meaning.
    """
    specs, outputs = _specs_from_report(path)
    if specs is None:
        specs = _specs_from_artifact(path)
    rng = np.random.default_rng(0)
    sample = {}
    for name, shape, dtype in specs:
        if np.issubdtype(np.dtype(dtype), np.floating):
            sample[name] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in name:
            sample[name] = np.ones(shape, dtype=dtype)
        else:
            sample[name] = np.zeros(shape, dtype=dtype)
    return sample, tuple(n for n, _, _ in specs), outputs


# c10::ScalarType codes of the dtypes a .pte input can have here -> numpy dtype names.
_SCALAR_TYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                 11: "bool"}
_TORCH_TO_NUMPY = {"float32": "float32", "float16": "float16", "int64": "int64",
                   "int32": "int32", "bool": "bool", "uint8": "uint8", "int8": "int8"}


def _specs_from_report(path: Path) -> tuple[list[tuple[str, tuple[int, ...], str]] | None,
                                            tuple[str, ...] | None]:
    for report_path in (path.parent.parent / "report.json", path.parent / "report.json"):
        if not report_path.is_file():
            continue
        try:
            artifacts = json.loads(report_path.read_text()).get("artifacts", [])
        except (OSError, ValueError):
            continue
        for entry in artifacts:
            if Path(entry.get("path", "")).name == path.name:
                specs = [(s["name"], tuple(s["shape"]), _TORCH_TO_NUMPY.get(s["dtype"], "float32"))
                         for s in entry["inputs"]]
                return specs, tuple(entry.get("outputs", ())) or None
    return None, None


def _specs_from_artifact(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    if path.suffix in (".onnx", ".ort"):
        from edgekit.console import import_backend

        ort = import_backend("onnxruntime")
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own types for bad files
            raise EdgekitError(f"{path}: ONNX Runtime could not load it ({exc})") from None
        kinds = {"tensor(float)": "float32", "tensor(int64)": "int64",
                 "tensor(int32)": "int32", "tensor(float16)": "float16", "tensor(bool)": "bool"}
        return [(i.name, tuple(d if isinstance(d, int) else 1 for d in i.shape),
                 kinds.get(i.type, "float32")) for i in session.get_inputs()]
    if path.suffix == ".pte":
        from edgekit.console import import_backend, quiet

        runtime = import_backend("executorch.runtime")
        try:
            with quiet():
                method = runtime.Runtime.get().load_program(str(path)).load_method("forward")
        except Exception as exc:  # the bindings raise RuntimeError/ValueError for bad files
            raise EdgekitError(f"{path}: ExecuTorch could not load it ({exc})") from None
        meta = method.metadata
        specs = []
        for i in range(meta.num_inputs()):
            tensor = meta.input_tensor_meta(i)
            code = int(tensor.dtype())  # c10::ScalarType
            if code not in _SCALAR_TYPES:
                raise EdgekitError(f"{path}: input {i} has a dtype (ScalarType {code}) edgekit "
                                   "cannot generate; bench the export folder instead")
            specs.append((f"input_{i}", tuple(tensor.sizes()), _SCALAR_TYPES[code]))
        return specs
    raise EdgekitError(f"{path}: cannot tell its input shapes without the report.json of its "
                       "export beside it")
