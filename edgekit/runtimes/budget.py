"""Run an artifact in a child process under a device profile's app memory budget.

A phone kills an app whose memory passes its budget (iOS jetsam, Android's low-memory
killer). The child imports the runtime, tells the parent its resident memory at that point
(the interpreter and the runtime's code, which an app also has but which Python inflates),
then loads the artifact and runs the samples. The parent watches the child's resident set
every few milliseconds and kills it once the growth since that baseline passes the budget;
the child also reports its exact peak (the kernel's high-water mark) at the end, which catches
a spike between two looks. Either way the result is WouldBeKilled, never a crash of edgekit.

Inputs and outputs cross the process boundary as .npz files read without pickles.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.devices import DeviceProfile
from edgekit.errors import EdgekitError
from edgekit.runtimes.limits import limits_for, rss_mib

_POLL_SECONDS = 0.005


class WouldBeKilled(EdgekitError):
    """The run's memory passed the device's app budget: the phone would kill the app."""

    exit_code = 1


@dataclass(frozen=True)
class BudgetRun:
    """What a run under a memory budget gave back."""

    outputs: list[dict[str, np.ndarray]]  # per sample, by output name
    peak_mib: float  # memory growth of loading and running, over the post-import baseline
    overflow: tuple[str, ...]  # Core ML emulator only: ops that overflowed fp16


def run_under_budget(
    path: Path,
    samples: list[dict[str, np.ndarray]],
    device: DeviceProfile,
    input_names: tuple[str, ...] | None = None,
    output_names: tuple[str, ...] | None = None,
    precision: str | None = None,
    budget_mib: float | None = None,
) -> BudgetRun:
    """Run `samples` through the artifact in a child process under `device`'s limits.

    Args:
        path: a .pte, .onnx, .ort or .mlpackage artifact.
        samples: inputs keyed by name, one dict per run.
        device: the profile whose threads and app memory budget apply.
        input_names: input names in order (a .pte stores none).
        output_names: output names in order.
        precision: Core ML emulator precision (fp16 or fp32); None for other runtimes.
        budget_mib: overrides the profile's app memory budget (tests use a tiny one).

    Returns:
        The outputs of each sample, the peak memory growth and any fp16 overflow.

    Raises:
        WouldBeKilled: the run's memory passed the budget (the child was stopped).
        EdgekitError: the artifact could not be loaded or run (the child's one-line error).
    """
    budget = device.app_memory_budget_mib if budget_mib is None else budget_mib
    limits = limits_for(device)
    with tempfile.TemporaryDirectory(prefix="edgekit-run-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "in.npz", **{f"{i}.{k}": v for i, s in enumerate(samples)
                                       for k, v in s.items()})  # type: ignore[arg-type]
        job = {"path": str(path), "inputs": input_names, "outputs": output_names,
               "threads": limits.threads, "cpus": list(limits.cpus), "precision": precision,
               "count": len(samples), "folder": str(folder)}
        with (folder / "stderr").open("w") as stderr:
            child = subprocess.Popen([sys.executable, "-m", "edgekit.runtimes.budget",
                                      json.dumps(job)], stdout=subprocess.PIPE, stderr=stderr,
                                     text=True)
            peak, first_line = _watch(child, budget, device)
        assert child.stdout is not None
        lines = (first_line + child.stdout.read()).strip().splitlines()
        reply = _json_line(lines[-1]) if lines else {}
        if "error" in reply:
            raise EdgekitError(reply["error"])
        if child.returncode != 0 or "peak_mib" not in reply:
            lines = (folder / "stderr").read_text().strip().splitlines() or ["no output"]
            raise EdgekitError(f"{path}: the run in a child process failed "
                               f"(exit {child.returncode}: {lines[-1][:300]})")
        peak = max(peak, float(reply["peak_mib"] or 0.0))
        if peak > budget:
            raise WouldBeKilled(_killed(device, peak, budget))
        with np.load(folder / "out.npz", allow_pickle=False) as data:
            outputs: list[dict[str, np.ndarray]] = [{} for _ in samples]
            for key in data.files:
                index, name = key.split(".", 1)
                outputs[int(index)][name] = data[key]
    return BudgetRun(outputs, peak, tuple(reply.get("overflow", ())))


def _json_line(line: str) -> dict:
    try:
        reply = json.loads(line)
    except ValueError:
        return {}
    return reply if isinstance(reply, dict) else {}


def mark_over_budget(entry: dict[str, Any], device: DeviceProfile) -> None:
    """Fail a report entry's verdict when its measured run passed `device`'s memory budget.

    The pipeline measures in process (peak resident memory over the run, see latency.py);
    passing the budget there means the phone would kill the app, whatever its parity.
    """
    measured = entry.get("latency", {}).get("measured", {})
    if not measured.get("over_memory_budget"):
        return
    parity = entry["parity"]
    killed = _killed(device, measured["peak_rss_mib"], measured["memory_budget_mib"])
    parity.update(verdict="fail", reason=f"{killed}; parity: {parity['reason']}")


def _watch(child: subprocess.Popen[str], budget: float, device: DeviceProfile
           ) -> tuple[float, str]:
    """Poll the child's resident set until it exits; kill it over budget.

    Returns:
        The peak growth seen (MiB) since the baseline line the child prints after its
        imports, and the child's first line when it was not a baseline (an early error).
    """
    assert child.stdout is not None
    line = child.stdout.readline()  # "baseline <MiB>" once the runtime is imported
    if not line.startswith("baseline "):
        child.wait()
        return 0.0, line
    baseline = float(line.split()[1])
    peak = 0.0
    while child.poll() is None:
        growth = rss_mib(child.pid) - baseline
        peak = max(peak, growth)
        if growth > budget:
            child.kill()
            child.wait()
            raise WouldBeKilled(_killed(device, growth, budget))
        time.sleep(_POLL_SECONDS)
    return peak, ""


def _killed(device: DeviceProfile, used: float, budget: float) -> str:
    return (f"would be killed on {device.name}: memory grew by {used:.0f} MiB, above its "
            f"{budget:g} MiB app memory budget")


def _child(job: dict) -> int:
    """The child's side: import, report the baseline, load, run, write outputs, report."""
    import os

    from edgekit.runtimes import open_session, run_samples, runtime_for
    from edgekit.runtimes.limits import peak_rss_mib, reset_peak_rss, rss_mib

    path = Path(job["path"])
    folder = Path(job["folder"])
    try:
        _import_backend(runtime_for(path))
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, job["cpus"])
        with np.load(folder / "in.npz", allow_pickle=False) as data:
            samples: list[dict[str, np.ndarray]] = [{} for _ in range(job["count"])]
            for key in data.files:
                index, name = key.split(".", 1)
                samples[int(index)][name] = data[key]
        baseline = rss_mib()
        exact = reset_peak_rss()  # else the high-water mark includes the imports: poll only
        print(f"baseline {baseline}", flush=True)
        inputs = tuple(job["inputs"]) if job["inputs"] else None
        outputs = tuple(job["outputs"]) if job["outputs"] else None
        session = open_session(path, inputs, outputs, threads=job["threads"],
                               precision=job["precision"])
        results, overflow = run_samples(session, samples)
        peak = max(peak_rss_mib() - baseline, 0.0) if exact else None
    except EdgekitError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 0
    np.savez(folder / "out.npz", **{f"{i}.{k}": v for i, r in enumerate(results)
                                    for k, v in r.items()})  # type: ignore[arg-type]
    print(json.dumps({"peak_mib": peak, "overflow": list(overflow)}), flush=True)
    return 0


def _import_backend(runtime: str) -> None:
    from edgekit.console import import_backend, quiet

    modules = {"executorch": ("executorch.runtime",
                              "executorch.extension.pybindings.portable_lib"),
               "onnxruntime": ("onnxruntime",),
               "coreml": ("coremltools.converters.mil.frontend.milproto.load",)}
    with quiet():
        for module in modules[runtime]:
            import_backend(module)


if __name__ == "__main__":
    sys.exit(_child(json.loads(sys.argv[1])))
