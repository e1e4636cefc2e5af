"""report.md: the run as a readable page (and a CI step summary)."""

from __future__ import annotations

from typing import Any


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _metric(metrics: dict[str, float], key: str, fmt: str) -> str:
    return format(metrics[key], fmt) if key in metrics else "-"


def artifact_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per artifact: target, format, file, size, quant, verdict, key metrics."""
    rows = []
    for item in report["artifacts"]:
        parity = item["parity"]
        metrics = parity.get("metrics", {})
        rows.append([
            item["target"], item["format"], item["path"], _size(item["bytes"]), item["quant"],
            parity["verdict"], _metric(metrics, "max_rel", ".2e"),
            _metric(metrics, "cosine_min", ".6f"), _metric(metrics, "top1_agreement", ".3f"),
        ])
    return rows


HEADER = ["target", "format", "path", "size", "quant", "parity", "max_rel", "cosine", "top1"]


CHECK_HEADER = ["target", "format", "check", "value", "budget", "verdict"]


def check_rows(checks: list[dict[str, Any]]) -> list[list[str]]:
    """One row per check: target, format, check name, value, budget, verdict."""
    from edgekit.report.checks import format_number

    return [[c["target"], c["format"], c["name"], format_number(c["value"]),
             format_number(c["budget"]), c["verdict"]] for c in checks]


def _checks_section(report: dict[str, Any]) -> list[str]:
    from edgekit.report.checks import counts

    checks = report["checks"]
    n = counts(checks)
    status = "FAILED" if n["fail"] else "passed"
    lines = [f"**edgekit check {status}**: {n['pass']} passed, {n['fail']} failed, "
             f"{n['not_run']} not run", "", "## Checks", "",
             "| " + " | ".join(CHECK_HEADER) + " |", "|" + "---|" * len(CHECK_HEADER)]
    lines += ["| " + " | ".join(_cell(x) for x in row) + " |" for row in check_rows(checks)]
    problems = [c for c in checks if c["verdict"] != "pass"]
    if problems:
        lines += [""]
        lines += [f"- **{c['verdict']}** {c['target']}/{c['format']} `{c['name']}`: "
                  f"{_cell(c['message'])}" for c in problems]
    return lines + [""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


LATENCY_HEADER = ["target", "format", "device", "host p50 ms", "host p90 ms", "load ms",
                  "peak MiB", "estimated ms (low / mid / high)"]


def latency_rows(report: dict[str, Any]) -> list[list[str]]:
    """Per artifact with a `latency` object: measured-on-host figures and the estimate."""
    rows = []
    for item in report["artifacts"]:
        latency = item.get("latency")
        if not isinstance(latency, dict):
            continue
        measured = latency.get("measured") or {}
        projected = latency.get("projected") or {}
        host = ([_ms(measured.get(k)) for k in ("p50_ms", "p90_ms", "load_ms")]
                + [_ms(measured.get("peak_rss_mib"))]
                if "status" not in measured else ["not run", "-", "-", "-"])
        estimate = (" / ".join(_ms(projected.get(k)) for k in ("low_ms", "mid_ms", "high_ms"))
                    if "status" not in projected else "not run")
        device = measured.get("device") or projected.get("device") or "-"
        rows.append([item["target"], item["format"], str(device), *host, estimate])
    return rows


def _ms(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def _latency_section(report: dict[str, Any]) -> list[str]:
    rows = latency_rows(report)
    if not rows:
        return []
    labels = sorted({str(item["latency"]["measured"]["label"]) for item in report["artifacts"]
                     if isinstance(item.get("latency"), dict)
                     and isinstance(item["latency"].get("measured"), dict)
                     and "label" in item["latency"]["measured"]})
    lines = ["", "## Latency", "",
             "Host columns are " + (", ".join(labels) or "measured on host")
             + " under the device profile's limits; the last column is estimated for the "
               "phone, never measured.", "",
             "| " + " | ".join(LATENCY_HEADER) + " |", "|" + "---|" * len(LATENCY_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    reasons = {str(p.get("reason")) for item in report["artifacts"]
               if isinstance(item.get("latency"), dict)
               for p in item["latency"].values() if isinstance(p, dict) and "status" in p}
    if reasons:
        lines += ["", *(f"- not run: {reason}" for reason in sorted(reasons))]
    return lines


DECODE_HEADER = ["target", "format", "path", "size", "generation", "host prefill ms",
                 "host decode tok/s", "estimated decode tok/s (low / mid / high)",
                 "estimated prefill ms (low / mid / high)"]


def decode_rows(report: dict[str, Any]) -> list[list[str]]:
    """Per decode artifact (`edgekit export --decode`): generation parity, prefill and decode
    speed measured on host, and the estimate for the target's device."""
    rows = []
    for item in report.get("decode", []):
        if "path" not in item:
            continue
        latency = item.get("latency") or {}
        measured, projected = latency.get("measured") or {}, latency.get("projected") or {}
        host = ([f"{_ms(measured.get('prefill_ms'))} ({measured.get('prompt_tokens', '-')} "
                 "tokens)", _rate(measured.get("decode_tok_s"))]
                if "status" not in measured else ["not run", "-"])
        estimate = ([" / ".join(show(projected[k].get(end)) for end in ("low", "mid", "high"))
                     for k, show in (("decode_tok_s", _rate), ("prefill_ms", _ms))]
                    if "decode_tok_s" in projected else ["not run", "-"])
        rows.append([item["target"], item["format"], item["path"], _size(item["bytes"]),
                     item["parity"]["verdict"], *host, *estimate])
    return rows


def _rate(value: Any) -> str:
    if isinstance(value, int | float) and value >= 1000:
        return f"{value:,.0f}"
    return _ms(value)


def _decode_section(report: dict[str, Any]) -> list[str]:
    if "decode" not in report:
        return []
    lines = ["", "## Decode", "",
             "Host columns are measured on host (a greedy generation under the device profile's "
             "threads); the estimated columns are for the phone, never measured.", "",
             "| " + " | ".join(DECODE_HEADER) + " |", "|" + "---|" * len(DECODE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in decode_rows(report)]
    reasons = [f"- {item['target']}/{item['format']}: {item['parity']['verdict']}: "
               f"{_cell(str(item['parity'].get('reason', '')))}"
               for item in report["decode"] if "path" not in item]
    for item in report["decode"]:
        for part in (item.get("latency") or {}).values():
            if isinstance(part, dict) and "status" in part:
                reasons.append(f"- {item['target']}/{item['format']}: not run: "
                               f"{_cell(str(part.get('reason')))}")
    return lines + (["", *reasons] if reasons else [])


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: student, checks (when present), artifacts, parity, notes."""
    model = report["model"]
    lines = [
        f"# edgekit report: {model['name']}",
        "",
        f"- source: `{model['source']}`",
        f"- task: {model['task']}, parameters: {model['parameters']:,}",
        "- inputs: " + ", ".join(f"`{i['name']}` {i['shape']} {i['dtype']}"
                                  for i in model["inputs"]),
        f"- edgekit {report['edgekit_version']}, targets: {', '.join(report['targets'])}",
        "",
        *(_checks_section(report) if "checks" in report else []),
        "## Artifacts",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in artifact_rows(report)]
    lines += _latency_section(report)
    lines += _decode_section(report)
    lines += ["", "## Parity", ""]
    for item in report["artifacts"]:
        parity = item["parity"]
        lines.append(f"- **{item['target']}/{item['format']}** ({parity['runtime']}): "
                     f"{parity['verdict']}: {parity['reason']}")
    lines += ["", "## Export notes", ""]
    seen = set()
    for item in report["artifacts"]:
        key = (item["format"], item["sha256"])
        if key in seen or not item.get("notes"):
            continue
        seen.add(key)
        for name, value in item["notes"].items():
            if name == "mobile_usability" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k != "log"}
            lines.append(f"- {item['format']} `{name}`: {value}")
    return "\n".join(lines) + "\n"
