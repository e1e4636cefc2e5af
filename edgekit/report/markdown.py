"""report.md: the run as a readable page (and a CI step summary)."""

from __future__ import annotations

from typing import Any

from edgekit.report.checks import format_number
from edgekit.report.digest import (
    notes,
    status_line,
    summary_header,
    summary_rows,
)
from edgekit.report.digest import size_text as _size
from edgekit.report.layers import layer_tables, no_layers_text


def _metric(metrics: dict[str, float], key: str, fmt: str) -> str:
    return format(metrics[key], fmt) if key in metrics else "-"


def artifact_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per artifact for the console (`edgekit export` / `check`): target, format,
    file, size, quant, verdict, key metrics."""
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
    return [[c["target"], c["format"], c["name"], format_number(c["value"]),
             format_number(c["budget"]), c["verdict"]] for c in checks]


def _checks_section(report: dict[str, Any]) -> list[str]:
    checks = report["checks"]
    lines = ["## Checks", "",
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
    """The report as Markdown: the status line, one summary table (a row per artifact), the
    checks (for `edgekit check`), latency and decode details, notes as short lines, then the
    worst layers per per-layer error in the report (the rest stay in report.json)."""
    _, head, tail = status_line(report)
    header = summary_header(report)
    lines = [f"# edgekit report: {report['model']['name']}", "", f"**{head}**: {tail}", "",
             _row(header), "|" + "---|" * len(header),
             *(_row(row) for row in summary_rows(report)), ""]
    lines += _checks_section(report) if "checks" in report else []
    lines += _latency_section(report)
    lines += _decode_section(report)
    lines += ["", "## Notes", ""]
    lines += [f"- {_cell(note.subject)}: {_cell(note.text)}" for note in notes(report)]
    lines += ["", "## Per-layer error", "", *_layers_section(report)]
    return "\n".join(lines) + "\n"


MD_LAYER_ROWS = 10  # worst layers per table in report.md; report.json keeps every layer


def _layers_section(report: dict[str, Any]) -> list[str]:
    tables = layer_tables(report)
    if not tables:
        return [no_layers_text(report)]
    lines: list[str] = []
    for table in tables:
        shown = table.rows[:MD_LAYER_ROWS]
        header = ["#", "layer", *table.columns]
        lines += [f"### {_cell(table.title)}", "",
                  f"Worst {len(shown)} of {len(table.rows)} layers by {table.ranked_by}.", "",
                  _row(header), "|" + "---|" * len(header)]
        lines += [_row([str(rank), f"`{row.name}`" + (f" (tied: {', '.join(row.tied)})"
                                                       if row.tied else ""), *row.cells])
                  for rank, row in enumerate(shown, start=1)]
        rest = len(table.rows) - len(shown)
        lines += ["", f"{rest} more layers in report.json (`{table.where}`)." if rest
                  else "Every layer is shown.", ""]
    return lines


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"
