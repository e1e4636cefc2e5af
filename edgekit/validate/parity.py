"""Parity: run an artifact in its runtime on the student's inputs and compare to fp32 eager.

Metrics fit the output: every output gets max abs / max relative error, cosine similarity and
SQNR; logits also get top-1 agreement. A verdict is `pass` or `fail` only after a run;
an artifact that could not be run is `not_run`, with the reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from edgekit.console import quiet
from edgekit.devices import DeviceProfile
from edgekit.errors import EdgekitError, StudentError
from edgekit.model.student import Student, student_failure
from edgekit.runtimes import RuntimeUnavailable, open_session, run_samples, session_runtime
from edgekit.runtimes.budget import WouldBeKilled, run_under_budget
from edgekit.targets import Tolerance

_SQNR_CAP_DB = 300.0  # identical outputs: JSON has no infinity
FP16_SMALLEST_NORMAL = 2.0**-14  # 6.1e-05: below it fp16 keeps fewer bits, then flushes to 0


@dataclass(frozen=True)
class ParityVerdict:
    """The outcome of one artifact's parity check."""

    runtime: str  # what ran it here: executorch, onnxruntime or coreml-emulator
    verdict: str  # pass | fail | not_run
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    precision: str | None = None  # the Core ML emulator's precision (None: a real runtime)
    overflow: tuple[str, ...] = ()  # fp16 ops whose output overflowed from finite inputs
    localization: dict[str, Any] | None = None  # a failure's layer and cause (localize.py)
    reference_peak: float | None = None  # max |fp32 output| (explains fp16 range failures)

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"runtime": self.runtime, "verdict": self.verdict,
                                  "reason": self.reason, "metrics": self.metrics}
        if self.precision is not None:
            result.update(emulated=True, precision=self.precision)
        if self.overflow:
            result["overflow"] = list(self.overflow)
        if self.localization is not None:
            result["localization"] = self.localization
        return result


def reference_outputs(
    student: Student, samples: list[dict[str, np.ndarray]]
) -> list[dict[str, np.ndarray]]:
    """The fp32 eager student's outputs for each sample, keyed by output name.

    Raises:
        StudentError: the student's own forward fails on a sample.
    """
    results = []
    with torch.no_grad(), quiet():
        for sample in samples:
            args = [torch.from_numpy(sample[spec.name]) for spec in student.inputs]
            try:
                out = student.module(*args)
            except Exception as exc:  # the student's own code raised, before any export
                name = f"{student.name} (pruned)" if student.pruning else student.name
                raise StudentError(student_failure(name, exc)) from None
            outs = (out,) if isinstance(out, torch.Tensor) else tuple(out)
            results.append({name: t.detach().float().numpy()
                             for name, t in zip(student.output_names, outs, strict=True)})
    return results


def compare(
    reference: list[dict[str, np.ndarray]],
    actual: list[dict[str, np.ndarray]],
    logits: bool,
) -> dict[str, float]:
    """Parity metrics of `actual` against `reference` over all samples and outputs.

    Args:
        reference: per sample, the eager outputs by name.
        actual: per sample, the artifact's outputs by name.
        logits: whether the outputs are logits (adds top-1 agreement on the last axis).

    Returns:
        max_abs, max_rel (max |error| / max |reference|), cosine_min, sqnr_db (worst case)
        and, for logits, top1_agreement (fraction of positions with the same argmax).
    """
    max_abs, max_rel, cosine, sqnr = 0.0, 0.0, 1.0, _SQNR_CAP_DB
    agree, positions = 0, 0
    for ref_sample, act_sample in zip(reference, actual, strict=True):
        for name, ref in ref_sample.items():
            act = np.asarray(act_sample[name], dtype=np.float64).reshape(ref.shape)
            ref64 = ref.astype(np.float64)
            if not np.isfinite(act).all():
                return {"non_finite": 1.0}
            err = act - ref64
            abs_err = float(np.abs(err).max(initial=0.0))
            max_abs = max(max_abs, abs_err)
            max_rel = max(max_rel, abs_err / max(float(np.abs(ref64).max(initial=0.0)), 1e-12))
            cosine = min(cosine, _cosine(ref64, act))
            noise = float(np.sum(err**2))
            if noise > 0:
                sqnr = min(sqnr, 10.0 * np.log10(max(float(np.sum(ref64**2)), 1e-30) / noise))
            if logits:
                agree += int((ref.argmax(-1) == act.argmax(-1)).sum())
                positions += int(np.prod(ref.shape[:-1]))
    metrics = {"max_abs": max_abs, "max_rel": max_rel, "cosine_min": cosine,
               "sqnr_db": float(sqnr)}
    if logits and positions:
        metrics["top1_agreement"] = agree / positions
    return metrics


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:  # both zero agree; one zero against a non-zero does not
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a.ravel(), b.ravel()) / norms)


def judge(metrics: dict[str, float], tolerance: Tolerance) -> tuple[str, str]:
    """`(verdict, reason)` for metrics under a tolerance; the reason names every miss."""
    if metrics.get("non_finite"):
        return "fail", "the artifact produced NaN or Inf"
    misses = []
    if tolerance.max_rel is not None and metrics["max_rel"] > tolerance.max_rel:
        misses.append(f"max_rel {metrics['max_rel']:.3g} > {tolerance.max_rel:g}")
    if tolerance.cosine_min is not None and metrics["cosine_min"] < tolerance.cosine_min:
        misses.append(f"cosine_min {metrics['cosine_min']:.6f} < {tolerance.cosine_min:g}")
    top1 = metrics.get("top1_agreement")
    if tolerance.top1_min is not None and top1 is not None and top1 < tolerance.top1_min:
        misses.append(f"top1_agreement {top1:.3f} < {tolerance.top1_min:g}")
    if misses:
        return "fail", "; ".join(misses)
    checked = [k for k in ("max_rel", "cosine_min", "top1_min")
               if getattr(tolerance, k) is not None]
    return "pass", f"within tolerance ({', '.join(checked)})"


def measure(
    artifact: Any,
    student: Student,
    samples: list[dict[str, np.ndarray]],
    reference: list[dict[str, np.ndarray]],
    precision: str | None = None,
    device: DeviceProfile | None = None,
) -> ParityVerdict:
    """Run `artifact` in its runtime on `samples` and measure it against `reference`.

    Args:
        artifact: the exported Artifact (path, input and output names).
        student: the student the reference came from (is it an LM: top-1 on logits).
        samples: inputs keyed by name.
        reference: the fp32 eager outputs of each sample.
        precision: Core ML only, the emulator's precision (fp16 or fp32).
        device: when given, run in a child process under this phone's app memory budget.

    Returns:
        An unjudged verdict (verdict "") carrying the metrics and, in the Core ML emulator,
        the ops that overflowed fp16; `not_run` with the reason when the runtime cannot run
        here; `fail` when the run failed or "would be killed on <device>" (memory budget).
    """
    runtime = session_runtime(artifact.path)
    if runtime == "coreml-emulator":
        precision = precision or "fp16"
    names = (tuple(s.name for s in artifact.inputs), tuple(artifact.outputs))
    try:
        if device is None:
            session = open_session(artifact.path, *names, precision=precision)
            actual, overflow = run_samples(session, samples)
        else:
            run = run_under_budget(artifact.path, samples, device, *names, precision=precision)
            actual, overflow = run.outputs, run.overflow
    except RuntimeUnavailable as exc:
        return ParityVerdict(runtime, "not_run", str(exc).split(": ", 1)[-1])
    except WouldBeKilled as exc:
        return ParityVerdict(runtime, "fail", str(exc), precision=precision)
    except EdgekitError as exc:
        return ParityVerdict(runtime, "fail", f"run failed: {exc}", precision=precision)
    is_logits = any(name == "logits" for name in student.output_names)
    peak = max((float(np.abs(r).max(initial=0.0)) for sample in reference
                for r in sample.values()), default=0.0)
    return ParityVerdict(runtime, "", "", compare(reference, actual, logits=is_logits),
                         precision, overflow, reference_peak=peak)


def fp16_range_note(peak: float | None) -> str:
    """Why an fp16 run of a student with such small outputs cannot match it, and what to do
    (empty when the outputs are within fp16's normal range)."""
    if peak is None or peak >= FP16_SMALLEST_NORMAL:
        return ""
    return (f"fp16 range: the student's outputs peak at {peak:.1e}, below fp16's smallest "
            f"normal (about {FP16_SMALLEST_NORMAL:.1e}), where the GPU and Neural Engine "
            "flush values to zero or keep few bits (random-init students do this, trained "
            "ones rarely); scale the outputs into range in the model, or leave Core ML out "
            "(--target android,web)")


def verdict_under(measured: ParityVerdict, tolerance: Tolerance) -> ParityVerdict:
    """Judge a measurement under a target's tolerance (already judged ones pass through).

    fp16 overflow fails the verdict whatever the metrics: on the device those values are inf.
    """
    if measured.verdict:
        return measured
    verdict, reason = judge(measured.metrics, tolerance)
    note = fp16_range_note(measured.reference_peak) if measured.precision == "fp16" else ""
    if verdict == "fail" and note:
        reason = f"{reason}; {note}"
    if measured.overflow:
        first, more = measured.overflow[0], len(measured.overflow) - 1
        overflow = f"fp16 overflow in {first}" + (f" and {more} more" if more else "")
        verdict, reason = "fail", overflow if verdict == "pass" else f"{overflow}; {reason}"
    return dataclasses.replace(measured, verdict=verdict, reason=reason)
