"""The decode stage of `edgekit export` (text-generation students, unless --forward-only):
decode-ready artifacts for each target's formats, their generation parity, and their speed
(measured on host and projected) for each device."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgekit.compress.quantize import QuantPlan
from edgekit.console import stage
from edgekit.devices import DeviceProfile, get_device
from edgekit.errors import ConfigError, EdgekitError
from edgekit.export import Artifact, place
from edgekit.llm.export import DEFAULT_MAX_SEQ_LEN, decode_parity, export_decode, parity_prompt
from edgekit.model.student import Student
from edgekit.targets import Target

# target format -> decode format that serves it (.ort apps run the ONNX graph's runtime)
_DECODE_FOR = {"executorch": "executorch", "onnx": "onnx", "ort": "onnx", "coreml": "coreml"}
DECODE_DIR = "decode"
EMULATOR_NOT_TIMED = ("not timed: the Core ML emulator is a numpy interpreter, its speed says "
                      "nothing about Core ML on a phone (see projected)")


def decode_formats(targets: list[Target]) -> tuple[str, ...]:
    """The decode formats the targets need, in export order."""
    wanted = {_DECODE_FOR[f] for t in targets for f in t.formats if f in _DECODE_FOR}
    return tuple(f for f in ("executorch", "onnx", "coreml") if f in wanted)


def decode_length(student: Student, wanted: int | None) -> int:
    """The KV cache length: `wanted` when set, else 512 capped at the student's
    max_position_embeddings (a small-context student is still decode-ready by default)."""
    if wanted is not None:
        return wanted
    limit = int(getattr(student.hf_config, "max_position_embeddings", 0) or 0)
    return min(DEFAULT_MAX_SEQ_LEN, limit) if limit >= 2 else DEFAULT_MAX_SEQ_LEN


def run_decode(student: Student, plan: QuantPlan, targets: list[Target], staging: Path,
               max_seq_len: int, devices: dict[str, list[DeviceProfile]] | None = None
               ) -> list[dict[str, Any]]:
    """Export, check and time the decode artifacts of `targets`, placed under
    `<target>/decode/` in `staging`.

    Args:
        devices: target name -> the phones its artifacts are timed under and projected for
            (one entry per device); a target not in it gets its default device.

    Returns:
        One report entry per (target, decode artifact, device).

    Raises:
        ConfigError: the student is not a decoder LM.
        ExportError: the decode exporters refuse the student or fail.
    """
    if student.task != "text-generation":
        raise ConfigError(f"--decode needs a decoder LM (task text-generation); "
                          f"{student.name} is {student.task}")
    formats = decode_formats(targets)
    if not formats:
        return []
    build = staging / f".decode-{plan.scheme}"
    try:
        artifacts = export_decode(student, plan, formats, build, max_seq_len)
        prompt = parity_prompt(student)
        checked: dict[str, dict[str, Any]] = {}
        for artifact in artifacts:
            with stage(f"generation parity {artifact.format} ({artifact.quant})"):
                checked[artifact.format] = decode_parity(artifact, student, plan, max_seq_len)
        entries = []
        timed: dict[tuple[str, int], dict[str, Any]] = {}
        for target in targets:
            folder = staging / target.name / DECODE_DIR
            for artifact in artifacts:
                if artifact.format not in {_DECODE_FOR.get(f) for f in target.formats}:
                    continue
                _place_with_tokenizer(artifact.path, build, folder)
                for device in (devices or {}).get(target.name) or [get_device(target.device)]:
                    entry = _entry(artifact, target, folder / artifact.path.name, staging,
                                   checked[artifact.format])
                    entry["latency"] = _speed(artifact, student, plan, device, prompt, timed)
                    entries.append(entry)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return entries


def not_exported(targets: list[Target], reason: str) -> list[dict[str, Any]]:
    """Report entries for decode formats that were not exported: parity not run, with why."""
    return [{"target": target.name, "format": fmt,
             "parity": {"verdict": "not_run", "reason": reason}}
            for target in targets for fmt in decode_formats([target])]


def _place_with_tokenizer(path: Path, build: Path, folder: Path) -> None:
    """Put one decode artifact, and the tokenizer files beside it, into `folder`."""
    for item in [path, *(p for p in build.iterdir() if p.is_file())]:
        if not (folder / item.name).exists():
            place(item, folder / item.name)


def _entry(artifact: Artifact, target: Target, path: Path, root: Path,
           parity: dict[str, Any]) -> dict[str, Any]:
    notes = dict(artifact.notes)
    return {"target": target.name, "format": artifact.format,
            "path": str(path.relative_to(root)), "bytes": artifact.bytes,
            "quant": artifact.quant, "runtime": artifact.runtime,
            "max_seq_len": notes.pop("max_seq_len"), "export_s": notes.pop("export_s"),
            "notes": notes, "parity": parity}


def _speed(artifact: Artifact, student: Student, plan: QuantPlan, device: DeviceProfile,
           prompt: list[int], timed: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
    from edgekit.runtimes.limits import limits_for
    from edgekit.validate.decode_latency import measure_generation, project_generation

    key = (artifact.format, limits_for(device).threads)
    if artifact.format == "coreml":
        timed[key] = {"status": "not_run", "reason": EMULATOR_NOT_TIMED}
    if key not in timed:
        with stage(f"decode speed {artifact.format} on host ({key[1]} threads)"):
            try:
                timed[key] = measure_generation(artifact.path, device, prompt)
            except EdgekitError as exc:
                timed[key] = {"status": "not_run", "reason": f"run failed: {exc}"}
    projected = project_generation(student, plan, device, artifact.format, len(prompt),
                                   len(prompt) + timed[key].get("generated_tokens", 0) // 2)
    return {"measured": timed[key], "projected": projected}
