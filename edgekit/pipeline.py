"""The six stages in order: load, prune, quantize, export, validate, report."""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import __version__
from edgekit.compress import prune, quantize
from edgekit.compress.calib import calibration_inputs
from edgekit.compress.plan import QuantSettings
from edgekit.compress.prune import check_spec, save_pruned
from edgekit.compress.quantize import QuantPlan, check_scheme, settings_for
from edgekit.config import Config
from edgekit.console import say, stage
from edgekit.devices import DeviceProfile, devices_dir, get_device, resolve_devices
from edgekit.errors import ConfigError, EdgekitError
from edgekit.export import Artifact, export, place, trace
from edgekit.llm.decode import check_decoder
from edgekit.llm.stage import decode_length, not_exported, run_decode
from edgekit.model import Student, load, sample_inputs
from edgekit.model.load import source_name
from edgekit.model.samples import read_inputs
from edgekit.report import SCHEMA_VERSION, render_markdown, write_report
from edgekit.report.html import render_html
from edgekit.runtimes import coreml_precision, session_runtime
from edgekit.runtimes.budget import mark_over_budget
from edgekit.targets import Target, resolve_targets
from edgekit.validate import ParityVerdict, measure, reference_outputs, verdict_under
from edgekit.validate.localize import localize_failure
from edgekit.validate.parity import compare


def run(config: Config, student: Student | None = None) -> dict[str, Any]:
    """Run the whole trip for `config` and return the report (also written to the out folder).

    Args:
        config: the run's configuration.
        student: an already loaded student (e.g. a torch.nn.Module through edgekit.load);
            when None, config.model is loaded.

    Returns:
        The report.json content.

    Raises:
        EdgekitError: bad input; nothing is left at the output path.
    """
    targets = resolve_targets(config.export.targets)
    recipes = {t.name: _recipe(config, t) for t in targets}
    devices = _devices(config, targets)
    name = student.name if student is not None else source_name(config.model.path)
    out = Path(config.export.out or Path("edgekit-out") / name)
    _check_out(out, config.export.force)

    if student is None:
        with stage(f"load {config.model.path}"):
            student = load(config.model.path, task=config.model.task,
                           seq_len=config.model.seq_len)
    say(f"[edgekit] student {student.name}: {student.task}, "
        f"{student.parameter_count() / 1e6:.1f}M parameters")
    decoding = _decoding(config, student)
    samples, inputs_info = _parity_inputs(config, student)
    reference = reference_outputs(student, samples)
    fp32_bytes = 4 * student.parameter_count()  # the fp32 student's weights

    entries: list[dict[str, Any]] = []
    compression: list[dict[str, Any]] = []
    calibration: list[dict[str, np.ndarray]] | None = None  # read once, when first needed
    decode: list[dict[str, Any]] = []  # decode-ready LM artifacts (text-generation students)
    with _staging(out) as staging:
        for (quant, prune_spec), group in _group_by_recipe(targets, recipes).items():
            calibration = _calibration(config, student, quant, prune_spec, calibration)
            pruned = prune(student, prune_spec, calibration, config.prune.importance)
            with stage(f"quantization plan ({quant})"):
                plan = quantize(pruned, quant, quant_settings(config, quant), calibration)
            recipe: dict[str, Any] = {"targets": [t.name for t in group], "quant": quant,
                                      "prune": prune_spec, "plan": plan.to_json()}
            if calibration is not None:
                recipe["calibration"] = {"source": config.compress.calib or "built-in",
                                         "samples": len(calibration)}
            parity_reference = reference
            if pruned.pruning is not None:
                # Pruning changes the model on purpose: artifacts are checked against the
                # pruned fp32 student, and what pruning itself changed is reported apart.
                parity_reference = reference_outputs(pruned, samples)
                recipe["pruning"] = _pruning_record(pruned, staging, len(compression))
                recipe["pruning"]["effect"] = compare(
                    reference, parity_reference,
                    logits=any(n == "logits" for n in student.output_names))
            compression.append(recipe)
            with stage("trace (torch.export, once for every format)"):
                program = trace(pruned)
            formats = _formats_in_order(group)
            build = staging / f".build-{quant}"  # each format once; placed per target below
            artifacts = export(pruned, plan, formats, build, program)
            measured: dict[tuple[str, str | None], ParityVerdict] = {}  # format, precision
            by_format = {a.format: a for a in artifacts}
            timings: dict[tuple[str, int], dict[str, Any]] = {}  # once per artifact and threads
            costs: dict[str, Any] = {}  # graph cost per artifact, projected per device
            for target in group:
                for fmt in target.formats:
                    artifact = by_format[fmt]
                    path = staging / target.name / artifact.path.name
                    if not path.exists():
                        place(artifact.path, path)
                    judged: dict[tuple[str, str | None], ParityVerdict] = {}
                    for device in devices[target.name]:  # one entry per device
                        key = _parity_key(artifact, device)
                        if key not in measured:
                            with stage(f"parity {fmt} in {session_runtime(artifact.path)}"
                                       + (f" ({key[1]})" if key[1] else "")):
                                measured[key] = measure(artifact, pruned, samples,
                                                        parity_reference, key[1])
                        if key not in judged:
                            verdict = verdict_under(measured[key], target.tolerance(quant, fmt))
                            judged[key] = localize_failure(verdict, artifact, pruned, plan,
                                                           samples[0], program)
                        entry = _entry(target, artifact, path, staging, judged[key])
                        entry["bytes_vs_fp32"] = round(entry["bytes"] / fp32_bytes, 4)
                        entry["latency"] = _latency(artifact, device, program, recipe["plan"],
                                                    samples[0], timings, costs)
                        mark_over_budget(entry, device)
                        entries.append(entry)
            shutil.rmtree(build)
            if decoding:
                decode += _decode(config, pruned, plan, group, staging, devices)
        report = _report(student, targets, entries, inputs_info)
        report["compression"] = compression
        if decoding:
            report["decode"] = decode
        write_report(report, staging / "report.json")
        (staging / "report.md").write_text(render_markdown(report))
        (staging / "report.html").write_text(render_html(report))
    report["out"] = str(out)
    return report


def exit_code(report: dict[str, Any]) -> int:
    """0 when no artifact failed parity (decode artifacts: generation parity), 1 otherwise."""
    decode_failed = any(d["parity"]["verdict"] == "fail" for d in report.get("decode", []))
    return 1 if report["summary"]["fail"] or decode_failed else 0


def quant_settings(config: Config, quant: str) -> QuantSettings | None:
    """The plan's settings: the scheme's defaults with the `[quantize]` section applied."""
    if quant == "none":
        return None
    q = config.quantize
    return settings_for(quant, method=q.method, group_size=q.group_size, symmetric=q.symmetric,
                        embeddings=q.embeddings, keep_float=q.keep_float or None,
                        mixed_precision=q.mixed_precision, error_budget=q.error_budget,
                        max_extra_bytes=q.max_extra_bytes,
                        onnx_int8_activations=q.onnx_int8_activations)


def _devices(config: Config, targets: list[Target]) -> dict[str, list[DeviceProfile]]:
    """The phones each target is measured under and projected for: `export.devices` when
    given (built-in names or the user's .toml profiles), else the target's default device."""
    chosen = resolve_devices(config.export.devices)
    for device in chosen:
        where = "built in" if device.source.parent == devices_dir() else str(device.source)
        say(f"[edgekit] device {device.key}: {device.name} ({where})")
        if device.from_template:
            say(f"[edgekit] {device.source}: still holds the template's placeholder values; "
                "its estimates describe a made-up phone until you fill in your phone's")
    return {t.name: chosen or [get_device(t.device)] for t in targets}


def _decoding(config: Config, student: Student) -> bool:
    """Whether this run exports decode-ready artifacts: by default for text-generation
    students, never with export.decode = false (--forward-only).

    Raises:
        ConfigError: export.decode = true (--decode) for a student that is not a decoder LM.
        ExportError: export.decode = true for a decoder the decode exporters refuse (checked
            before any export, so bad input costs nothing).
    """
    if config.export.decode is True:
        if student.task != "text-generation":
            raise ConfigError(f"--decode needs a decoder LM (task text-generation); "
                              f"{student.name} is {student.task}")
        check_decoder(student, decode_length(student, config.export.max_seq_len))
    return config.export.decode is not False and student.task == "text-generation"


def _decode(config: Config, student: Student, plan: QuantPlan, group: list[Target], staging: Path,
            devices: dict[str, list[DeviceProfile]]) -> list[dict[str, Any]]:
    """Decode artifacts of one recipe's targets. When decode was not asked for by name, a
    student the decode exporters refuse keeps its forward artifacts: each decode format is
    reported not run, with the reason."""
    length = decode_length(student, config.export.max_seq_len)
    try:
        return run_decode(student, plan, group, staging, length, devices)
    except EdgekitError as exc:
        if config.export.decode:
            raise
        say(f"[edgekit] not exported decode-ready: {exc} (--forward-only skips decode)")
        return not_exported(group, f"not exported decode-ready: {exc}; --forward-only skips "
                                   "decode")


def _pruning_record(pruned: Student, staging: Path, index: int) -> dict[str, Any]:
    """What pruning did; a structurally pruned student is also saved as a HF folder."""
    record = dict(pruned.pruning or {})
    if any(key in record for key in ("mlp", "heads", "layers_removed")):
        folder = staging / ("pruned-student" + (f"-{index}" if index else ""))
        with stage(f"save the pruned student to {folder.name}/"):
            save_pruned(pruned, folder)
        record["saved_student"] = folder.name
    say(f"[edgekit] pruned {record['spec']}: {record['parameters_before'] / 1e6:.2f}M -> "
        f"{record['parameters_after'] / 1e6:.2f}M parameters")
    return record


def _calibration(config: Config, student: Student, quant: str, prune_spec: str,
                 known: list[dict[str, np.ndarray]] | None) -> list[dict[str, np.ndarray]] | None:
    """Calibration inputs when the recipe uses them (read once per run)."""
    if known is not None or (quant == "none" and not prune_spec.strip()):
        return known
    with stage("calibration data"):
        calibration = calibration_inputs(student, config.compress.calib,
                                         config.quantize.calib_samples)
    say(f"[edgekit] calibrating on {len(calibration)} input sets from "
        f"{config.compress.calib or 'built-in samples'}")
    return calibration


def _recipe(config: Config, target: Target) -> tuple[str, str]:
    quant = config.compress.quant or target.quant
    prune_spec = config.compress.prune if config.compress.prune is not None else target.prune
    check_scheme(quant)
    check_spec(prune_spec)
    quant_settings(config, quant)
    target.tolerance(quant)
    return quant, prune_spec


def _group_by_recipe(
    targets: list[Target], recipes: dict[str, tuple[str, str]]
) -> dict[tuple[str, str], list[Target]]:
    groups: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        groups.setdefault(recipes[target.name], []).append(target)
    return groups


def _formats_in_order(group: list[Target]) -> tuple[str, ...]:
    wanted = dict.fromkeys(f for t in group for f in t.formats)
    order = ("onnx", "ort", "executorch", "coreml")  # ort is converted from onnx
    return tuple(f for f in order if f in wanted)


def _parity_key(artifact: Artifact, device: DeviceProfile) -> tuple[str, str | None]:
    """Parity runs once per format, and for Core ML once per emulated precision (fp16 where
    the device's GPU / Neural Engine runs Core ML, fp32 on a CPU-only one)."""
    return artifact.format, coreml_precision(device) if artifact.format == "coreml" else None


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: output path exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out}: output folder is not empty; pass --force to replace it "
                          "or choose another --out")


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """Build the output in a hidden sibling folder; replace `out` with it only on success."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _parity_inputs(
    config: Config, student: Student
) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
    if config.validate.inputs:
        samples = read_inputs(Path(config.validate.inputs), student)
        return samples, {"kind": "file", "source": config.validate.inputs,
                         "samples": len(samples)}
    samples = sample_inputs(student, config.validate.samples, config.validate.seed)
    if student.examples:
        kind = "example_inputs"
    elif "input_ids" in student.input_names:
        kind = "corpus"
    elif "pixel_values" in student.input_names:
        kind = "natural_images"
    else:
        kind = "synthetic"
    return samples, {"kind": kind, "samples": len(samples), "seed": config.validate.seed}


def _entry(target: Target, artifact: Artifact, path: Path, root: Path,
           verdict: ParityVerdict) -> dict[str, Any]:
    placed = Artifact(artifact.format, path, artifact.runtime, artifact.quant, artifact.inputs,
                      artifact.outputs, artifact.notes)
    return {
        "target": target.name,
        "format": artifact.format,
        "path": str(path.relative_to(root)),
        "bytes": placed.bytes,
        "sha256": placed.sha256(),
        "quant": artifact.quant,
        "runtime": artifact.runtime,
        "inputs": [spec.to_json() for spec in artifact.inputs],
        "outputs": list(artifact.outputs),
        "notes": artifact.notes,
        "parity": verdict.to_json(),
    }


def _latency(artifact: Artifact, device: DeviceProfile, program: Any, plan: dict[str, Any],
             sample: dict[str, np.ndarray], timings: dict[tuple[str, int], dict[str, Any]],
             costs: dict[str, Any]) -> dict[str, Any]:
    """Measured-on-host and projected latency of one artifact for one device, kept apart."""
    from edgekit.runtimes.limits import limits_for, over_budget
    from edgekit.validate.artifacts import cost_for_artifact
    from edgekit.validate.latency import measure_latency
    from edgekit.validate.project import project

    limits = limits_for(device)
    key = (artifact.format, limits.threads)
    if key not in timings:
        with stage(f"latency {artifact.format} on host ({limits.threads} threads)"):
            try:
                timings[key] = measure_latency(
                    artifact.path, device, sample,
                    input_names=tuple(s.name for s in artifact.inputs),
                    output_names=artifact.outputs)
            except EdgekitError as exc:
                timings[key] = {"status": "not_run", "reason": f"run failed: {exc}"}
    measured = dict(timings[key])
    if "status" not in measured:
        measured.update(device=device.key, memory_budget_mib=limits.memory_budget_mib,
                        over_memory_budget=over_budget(measured["peak_rss_mib"], limits))
    try:
        if artifact.format not in costs:
            costs[artifact.format] = cost_for_artifact(artifact.path, program, plan)
        projected = project(costs[artifact.format], device, artifact.format)
    except EdgekitError as exc:
        projected = {"status": "not_run", "reason": str(exc)}
    return {"measured": measured, "projected": projected}


def _report(student: Student, targets: list[Target], entries: list[dict[str, Any]],
            inputs_info: dict[str, Any]) -> dict[str, Any]:
    verdicts = [e["parity"]["verdict"] for e in entries]
    return {
        "schema_version": SCHEMA_VERSION,
        "edgekit_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": {
            "name": student.name,
            "source": student.source,
            "task": student.task,
            "parameters": student.parameter_count(),
            "inputs": [spec.to_json() for spec in student.inputs],
            "outputs": list(student.output_names),
        },
        "targets": [t.name for t in targets],
        "parity_inputs": inputs_info,
        "artifacts": entries,
        "summary": {v: verdicts.count(v) for v in ("pass", "fail", "not_run")},
    }
