"""`edgekit validate OUT_DIR`: re-run parity for every artifact of an export folder.

The student is loaded again from report.json's `model.source` (an nn.Module student cannot
be: use `revalidate(out_dir, student)` from Python), the parity inputs are rebuilt as the
export made them, each artifact runs in its runtime (Core ML in the emulator at the target
device's precision) in a child process under the device's app memory budget, and the
report's parity verdicts, bytes and digests are rewritten, each report file atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError


def register(commands: Any) -> None:
    validate = commands.add_parser("validate", help="re-run parity for an export folder and "
                                                    "rewrite its report")
    validate.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                          help="an output folder written by `edgekit export`")
    validate.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    report = revalidate(args.out_dir)
    for item in report["artifacts"]:
        parity = item["parity"]
        print(f"{item['target']}/{item['format']} ({parity['runtime']}): "
              f"{parity['verdict']}: {parity['reason']}")
    return 1 if report["summary"]["fail"] else 0


def revalidate(out_dir: Path, student: Any = None) -> dict[str, Any]:
    """Re-run parity for the artifacts listed in `out_dir`/report.json and rewrite it.

    Args:
        out_dir: an export folder holding report.json and the artifacts it lists.
        student: the student (edgekit.load result); loaded from the report when None.

    Returns:
        The rewritten report.

    Raises:
        EdgekitError: no report, an artifact is missing, or the student cannot be loaded.
    """
    from edgekit.devices import get_device
    from edgekit.export import Artifact
    from edgekit.model import load
    from edgekit.model.student import TensorSpec
    from edgekit.report.files import FILES, write_reports
    from edgekit.runtimes import coreml_precision
    from edgekit.targets import get_target
    from edgekit.validate.parity import measure, reference_outputs, verdict_under

    report = _read(out_dir)
    if student is None:
        student = _load_student(report, load)
    samples = _samples(report, student)
    reference = reference_outputs(student, samples)
    measured: dict[tuple[Any, ...], Any] = {}
    localizing = _Localizing(report, student, samples[0])
    for item in report["artifacts"]:
        path = out_dir / item["path"]
        if not path.exists():
            raise EdgekitError(f"{path}: listed in report.json but missing")
        target = get_target(item["target"])
        device = get_device(target.device)
        precision = coreml_precision(device) if item["format"] == "coreml" else None
        specs = tuple(TensorSpec(s["name"], tuple(s["shape"]), _torch_dtype(s["dtype"]))
                      for s in item["inputs"])
        artifact = Artifact(item["format"], path, item["runtime"], item["quant"], specs,
                            tuple(item["outputs"]), item["notes"])
        key = (item["path"], device.key, precision)
        if key not in measured:
            measured[key] = measure(artifact, student, samples, reference, precision, device)
        verdict = verdict_under(measured[key], target.tolerance(item["quant"], item["format"]))
        verdict = localizing.failure(verdict, artifact)
        item.update(bytes=artifact.bytes, sha256=artifact.sha256(), parity=verdict.to_json())
    verdicts = [item["parity"]["verdict"] for item in report["artifacts"]]
    report["summary"] = {v: verdicts.count(v) for v in ("pass", "fail", "not_run")}
    formats = [fmt for fmt, name in FILES.items()
               if fmt in ("json", "md") or (out_dir / name).is_file()]
    write_reports(report, out_dir, formats)
    return report


class _Localizing:
    """Localize failures; the program and quantization plan are rebuilt on the first one."""

    def __init__(self, report: dict[str, Any], student: Any, sample: dict[str, Any]) -> None:
        self.report, self.student, self.sample = report, student, sample
        self.program: Any = None
        self.plans: dict[str, Any] = {}

    def failure(self, verdict: Any, artifact: Any) -> Any:
        from edgekit.export import trace
        from edgekit.validate.localize import localize_failure

        if verdict.verdict != "fail" or not verdict.metrics:
            return verdict
        plan = self._plan(artifact.quant)
        if isinstance(plan, str):
            return dataclasses.replace(verdict, localization={
                "cause": None, "layer": None, "reason": plan, "errors": {}})
        if self.program is None:
            self.program = trace(self.student)
        return localize_failure(verdict, artifact, self.student, plan, self.sample,
                                self.program)

    def _plan(self, quant: str) -> Any:
        """The export's plan, rebuilt, or why it cannot be (calibration, pruning, settings)."""
        from edgekit.compress.quantize import quantize

        if quant not in self.plans:
            recipe: dict[str, Any] = next((r for r in self.report.get("compression", ())
                           if r.get("quant") == quant), {})
            if recipe.get("calibration") or recipe.get("pruning") or recipe.get("prune"):
                self.plans[quant] = ("not localized: the export pruned or calibrated the "
                                     "student, which validate does not rebuild")
            else:
                plan = quantize(self.student, quant)
                same = not recipe or plan.to_json() == recipe.get("plan")
                self.plans[quant] = plan if same else (
                    "not localized: the rebuilt quantization plan differs from the export's")
        return self.plans[quant]


def _read(out_dir: Path) -> dict[str, Any]:
    from edgekit.report import read_report

    if not out_dir.is_dir():
        raise EdgekitError(f"{out_dir}: no such output folder")
    report = read_report(out_dir / "report.json")
    if not isinstance(report.get("artifacts"), list) or not isinstance(report.get("model"),
                                                                       dict):
        raise EdgekitError(f"{out_dir / 'report.json'}: not an edgekit export report "
                           "(no 'model' or 'artifacts')")
    return report


def _load_student(report: dict[str, Any], load: Any) -> Any:
    model = report["model"]
    source = str(model.get("source", ""))
    if source.startswith("torch.nn.Module"):
        raise EdgekitError(f"the student was a {source}, which report.json cannot bring back: "
                           "call edgekit.commands.validate.revalidate(out_dir, student) from "
                           "Python with it")
    if not source or not Path(source).exists():
        raise EdgekitError(f"the student's source '{source}' (report.json model.source) is "
                           "not available here; run validate where the student is")
    seq_len = next((s["shape"][-1] for s in model["inputs"] if s["name"] == "input_ids"), 64)
    return load(source, task=model["task"], seq_len=seq_len, name=model["name"])


def _samples(report: dict[str, Any], student: Any) -> list[dict[str, Any]]:
    from edgekit.model import sample_inputs
    from edgekit.pipeline import read_inputs

    info = report.get("parity_inputs", {})
    if info.get("kind") == "file":
        return read_inputs(Path(info["source"]), student)
    return sample_inputs(student, int(info.get("samples", 2)), int(info.get("seed", 0)))


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)
