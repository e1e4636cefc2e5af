"""What report.md and report.html show a reader, read from report.json: the status line, one
summary row per artifact and notes as short lines (per-layer errors: layers.py).

Both pages render these; report.json keeps everything (every layer, every log line).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from edgekit.report.checks import checks_of, counts, format_number

LINE_CHARS = 200  # a note's line ("- subject: text") is cut to this
# Parity metrics a reader compares first, in this order: (key in metrics, column, format).
KEY_METRICS = (("top1_agreement", "top1", ".3f"), ("cosine_min", "cosine", ".6f"),
               ("max_rel", "max_rel", ".2e"), ("kl", "KL", ".3g"))


def size_text(n: float) -> str:
    """Bytes as B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def status_line(report: dict[str, Any]) -> tuple[str, str, str]:
    """(kind "pass" | "fail", head, counts) of the status line, e.g. ("fail", "edgekit check
    FAILED", "4 passed, 1 failed, 3 not run"): an `edgekit check` report counts its checks,
    an `edgekit export` report its artifacts' parity verdicts."""
    n = counts(checks_of(report))
    kind = "fail" if n["fail"] else "pass"
    title = "edgekit check" if "checks" in report else "edgekit export parity"
    word = "FAILED" if n["fail"] else "passed"
    tail = f"{n['pass']} passed, {n['fail']} failed, {n['not_run']} not run"
    return kind, f"{title} {word}", tail


# -- the summary table -------------------------------------------------------------------


def summary_header(report: dict[str, Any]) -> list[str]:
    """Columns of the summary table; metric columns only for metrics some artifact has."""
    return ["target", "format", "runtime", "quant", "parity",
            *(column for key, column, _ in _metrics_present(report)),
            "size", "host p50 ms (measured)", "phone ms (estimated)"]


def summary_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per artifact, in the order of `summary_header`."""
    keys = _metrics_present(report)
    rows = []
    for item in report["artifacts"]:
        metrics = item["parity"].get("metrics", {})
        cells = [format(metrics[key], fmt) if isinstance(metrics.get(key), int | float)
                 else "-" for key, _, fmt in keys]
        size = size_text(item["bytes"])
        if isinstance(item.get("bytes_vs_fp32"), int | float):
            size += f" ({item['bytes_vs_fp32']:.2f}x fp32)"
        measured, projected = _latency_parts(item)
        rows.append([item["target"], item["format"], runtime_name(item), item["quant"],
                     item["parity"]["verdict"], *cells, size, _host(measured),
                     _phone(projected)])
    return rows


def runtime_name(item: dict[str, Any]) -> str:
    """What ran the artifact for parity, e.g. `executorch/xnnpack`, `coreml emulator (fp16)`."""
    parity = item["parity"]
    runtime = str(parity.get("runtime") or item.get("runtime", "-"))
    backend = (item.get("notes") or {}).get("backend")
    if runtime == "executorch" and isinstance(backend, str):
        return f"executorch/{backend.lower()}"
    if parity.get("emulated"):
        runtime = runtime.replace("-", " ")
        return f"{runtime} ({parity['precision']})" if parity.get("precision") else runtime
    return runtime


def _metrics_present(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    present = {key for item in report["artifacts"]
               for key in item["parity"].get("metrics", {})}
    return [metric for metric in KEY_METRICS if metric[0] in present]


def _latency_parts(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    latency = item.get("latency")
    parts = [latency.get(name) if isinstance(latency, dict) else None
             for name in ("measured", "projected")]
    measured, projected = (part if isinstance(part, dict) else {} for part in parts)
    return measured, projected


def _host(measured: dict[str, Any]) -> str:
    if measured.get("status") == "not_run":
        return "not run"
    return format_number(measured["p50_ms"]) if is_number(measured.get("p50_ms")) else "-"


def _phone(projected: dict[str, Any]) -> str:
    if projected.get("status") == "not_run":
        return "not run"
    if not (is_number(projected.get("low_ms")) and is_number(projected.get("high_ms"))):
        return "-"
    return (f"{projected['low_ms']:.3g}-{projected['high_ms']:.3g} on "
            f"{projected.get('device', 'unknown device')}")


def is_number(value: Any) -> bool:
    """A real number in report.json (not a bool, not a missing value)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- notes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """One fact for a reader: what it is about (`subject`) and the fact, short."""

    subject: str
    text: str


def notes(report: dict[str, Any]) -> list[Note]:
    """The report's facts as short notes: the student, the parity reasons, each quantization
    plan (per-layer choices as counts), then each artifact's export notes."""
    model = report["model"]
    inputs = ", ".join(f"{i['name']} {i['shape']} {i['dtype']}" for i in model.get("inputs", []))
    found = [Note("student", f"{model.get('source', '-')}, {model.get('task', '-')}, "
                             f"{model.get('parameters', 0):,} parameters, inputs {inputs}"),
             Note("edgekit", f"{report.get('edgekit_version', '-')}, targets "
                             f"{', '.join(report.get('targets', []))}")]
    found += _parity_notes(report)
    recipes = report.get("compression") or []
    for recipe in recipes:
        found += _recipe_notes(recipe, len(recipes) > 1)
    found += _artifact_notes(report)
    return [Note(n.subject, clip(n.text, room(n.subject))) for n in found]


def room(subject: str) -> int:
    """Characters left for a note's text on a line of LINE_CHARS after its subject."""
    return max(LINE_CHARS - len(subject) - 4, 40)


def _fit(subject: str, value: Any) -> Note:
    return Note(subject, brief(value, room(subject)))


def _parity_notes(report: dict[str, Any]) -> list[Note]:
    groups: dict[tuple[str, str], list[str]] = {}
    found = []
    for item in report["artifacts"]:
        parity = item["parity"]
        groups.setdefault((parity["verdict"], parity["reason"]), []).append(label(item))
        where = parity.get("localization")
        if isinstance(where, dict):
            found.append(Note(f"{label(item)} localization",
                              f"cause {where.get('cause') or 'not found'}, layer "
                              f"{where.get('layer') or '-'}: {where.get('reason', '')}"))
        if parity.get("overflow"):
            found.append(_fit(f"{label(item)} fp16 overflow", parity["overflow"]))
    grouped = [Note(f"parity {verdict}", f"{reason}: {', '.join(labels)}")
               for (verdict, reason), labels in groups.items()]
    return grouped + found


def _recipe_notes(recipe: dict[str, Any], several: bool) -> list[Note]:
    targets = ", ".join(recipe.get("targets", []))
    subject = f"{recipe.get('quant', '-')} plan" + (f" ({targets})" if several else "")
    plan = recipe.get("plan") or {}
    found = []
    layers = [layer for layer in plan.get("layers") or [] if isinstance(layer, dict)]
    if layers:
        parts = [f"for {targets}: {precision_counts(layers)}"]
        if is_number(plan.get("bits_per_weight")):
            parts.append(f"{plan['bits_per_weight']:.2f} bits per weight")
        if is_number(plan.get("weight_bytes")):
            parts.append(f"{size_text(plan['weight_bytes'])} of weights")
        found.append(Note(subject, "; ".join(parts)))
    if isinstance(plan.get("settings"), dict):
        found.append(_fit(f"{subject} settings", plan["settings"]))
    mixed = plan.get("mixed_precision")
    if isinstance(mixed, dict):
        found.append(Note(f"{subject} mixed precision", _mixed_text(mixed)))
        if mixed.get("stop"):
            found.append(Note(f"{subject} mixed precision stopped", str(mixed["stop"])))
    for key, value in recipe.items():
        if key not in ("targets", "quant", "plan") and value not in ("", None, {}, []):
            found.append(_fit(f"{subject} {key}", value))
    return found


def precision_counts(layers: list[dict[str, Any]]) -> str:
    """Layers per precision, most first; a precision with one or two layers names them,
    e.g. `int4 on 180 layers, int8 on 30, fp32 on 1 (lm_head)`."""
    by_precision: dict[str, list[str]] = {}
    for layer in layers:
        names = layer.get("names") or [layer.get("name", "?")]
        by_precision.setdefault(str(layer.get("precision", "?")), []).append(str(names[0]))
    parts = []
    for index, (precision, names) in enumerate(sorted(by_precision.items(),
                                                      key=lambda kv: -len(kv[1]))):
        unit = " layers" if index == 0 and len(names) > 1 else " layer" if index == 0 else ""
        named = f" ({', '.join(short_name(n) for n in names)})" if len(names) <= 2 else ""
        parts.append(f"{precision} on {len(names)}{unit}{named}")
    return ", ".join(parts)


def _mixed_text(mixed: dict[str, Any]) -> str:
    promoted = mixed.get("promoted") or []
    parts = [f"{mixed.get('measure', 'error')} on {mixed.get('measured_layers', '?')}"
             f" of {mixed.get('planned_layers', '?')} layers",
             f"promoted {len(promoted)}"
             + (f" ({', '.join(short_name(str(n)) for n in promoted[:2])}"
                + (f" and {len(promoted) - 2} more)" if len(promoted) > 2 else ")")
                if promoted else "")]
    if is_number(mixed.get("all_4bit_error")) and is_number(mixed.get("estimated_error")):
        parts.append(f"error {format_number(mixed['all_4bit_error'])} all 4-bit -> "
                     f"{format_number(mixed['estimated_error'])}")
    return "; ".join(parts)


def _artifact_notes(report: dict[str, Any]) -> list[Note]:
    targets: dict[tuple[str, str], list[str]] = {}
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for item in report["artifacts"]:
        key = (item["format"], item.get("sha256", item["path"]))
        targets.setdefault(key, []).append(item["target"])
        first.setdefault(key, item)
    found = []
    for key, item in first.items():
        subject = f"{item['format']} ({', '.join(targets[key])})"
        for name, value in (item.get("notes") or {}).items():
            if isinstance(value, dict) and value and all(
                    isinstance(v, dict | list) for v in value.values()):
                found += [_fit(f"{subject} {name}.{sub}", part) for sub, part in value.items()]
            else:
                found.append(_fit(f"{subject} {name}", value))
    return found


def brief(value: Any, limit: int = 150) -> str:
    """`value` in one short line: scalars as they are, collections summarised (counts per
    kind, the first few entries, how many more); verbatim logs are left to report.json."""
    if isinstance(value, dict):
        return clip(_brief_dict(value, limit), limit)
    if isinstance(value, list | tuple):
        if not value:
            return "none"
        shown = [brief(v, limit // min(len(value), 3)) for v in value[:3]]
        more = f" and {len(value) - 3} more" if len(value) > 3 else ""
        return clip("; ".join(shown) + more, limit)
    if isinstance(value, bool):
        return "true" if value else "false"
    return clip(format_number(value) if is_number(value) else str(value), limit)


def _brief_dict(value: dict[str, Any], limit: int) -> str:
    if not value:
        return "none"
    if all(is_number(v) for v in value.values()):  # e.g. op -> count
        ranked = sorted(value.items(), key=lambda kv: (-kv[1], kv[0]))
        head = f"{len(value)} kinds, {format_number(sum(value.values()))} in all: " \
            if len(value) > 5 else ""
        return head + _listing([f"{k} {format_number(v)}" for k, v in ranked],
                               limit - len(head))
    if len(value) > 5 and all(isinstance(v, list | dict) for v in value.values()):
        # a per-layer collection: how many layers share each value
        shared = Counter(item for v in value.values()
                         for item in (v if isinstance(v, list) else [brief(v, 40)]))
        kind = "layers" if all("." in str(k) for k in value) else "entries"
        head = f"{len(value)} {kind}: "
        return head + _listing([f"{k} on {n}" for k, n in shared.most_common()],
                               limit - len(head))
    shown = [f"{k} {brief(v, limit // 2)}" for k, v in value.items() if k != "log"]
    if "log" in value:
        shown.append("log in report.json")
    return _listing(shown, limit)


def _listing(parts: list[str], limit: int) -> str:
    """Parts joined with commas, as many as fit in `limit`, then how many were left out."""
    text = ""
    for index, part in enumerate(parts):
        more = f" and {len(parts) - index} more" if index < len(parts) - 1 else ""
        candidate = f"{text}, {part}" if text else part
        if len(candidate) + len(more) > limit and index:
            return text + more
        text = candidate
    return text


def clip(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def label(item: dict[str, Any]) -> str:
    """`target/format` of an artifact."""
    return f"{item['target']}/{item['format']}"


def short_name(name: str) -> str:
    """A module path without the wrappers' `model.` prefixes: `layers.3.mlp.up_proj`,
    `lm_head`."""
    while name.startswith("model."):
        name = name[len("model."):]
    return name
