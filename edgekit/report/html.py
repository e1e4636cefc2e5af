"""report.html: one self-contained page (inline CSS and SVG, no script, nothing fetched).

Plots, each drawn here as SVG from report.json:

- size per artifact, with its size budget;
- latency per device: measured on host (p50 dot, p90 whisker) and the estimated phone range
  (low-high bar, mid tick), with latency budgets; never mixed on one mark;
- parity per artifact: max_rel on a log axis, with parity budgets;
- per-layer error, worst HTML_LAYER_ROWS layers drawn and the rest folded in a <details>
  table: each quantization plan's weight error, a failed artifact's localization errors, an
  artifact's `layers` list (`[{"name": str, "error": number, "precision": str}]`).

A plot without data in the report says so in its place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from html import escape
from typing import Any

from edgekit.report.checks import MIB, checks_of, format_number
from edgekit.report.digest import (
    label,
    notes,
    short_name,
    status_line,
    summary_header,
    summary_rows,
)
from edgekit.report.layers import layer_tables, no_layers_text
from edgekit.report.markdown import (
    DECODE_HEADER,
    LATENCY_HEADER,
    decode_rows,
    latency_rows,
)
from edgekit.report.svg import BUDGET_COLOR, BarChart, LinearScale, LogScale

SIZE_COLOR = "#4c78a8"
PARITY_COLOR = "#54a24b"
MEASURED_COLOR = "#2a6f97"
PROJECTED_COLOR = "#f58518"
LAYER_COLOR = "#b279a2"
VERDICT_COLORS = {"pass": "#e3f4e1", "fail": "#fbe0e0", "not_run": "#eeeeee"}
HTML_LAYER_ROWS = 20  # layers drawn per per-layer chart; the rest are folded in a table

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;
margin:24px auto;max-width:1100px;padding:0 16px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:0 0 6px}
.meta{color:#555;margin:0 0 14px}
.status{padding:10px 14px;border-radius:6px;margin:0 0 18px;font-weight:600}
.status.pass{background:#e3f4e1;color:#1d5e1a}.status.fail{background:#fbe0e0;color:#8a1414}
figure{margin:0 0 18px;padding:10px 12px;border:1px solid #ddd;border-radius:6px}
figcaption{color:#555;font-size:12px;margin-top:4px}
.nodata{height:70px;display:flex;align-items:center;justify-content:center;color:#666;
border:1px dashed #bbb;border-radius:4px;background:#fafafa;font-style:italic;padding:0 12px}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin:0 0 18px}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
#summary td{white-space:nowrap}
td.pass{background:#e3f4e1}td.fail{background:#fbe0e0}td.not_run{background:#eeeeee}
svg text{font:12px system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;fill:#222}
svg .axis{stroke:#999;stroke-width:1}svg .grid{stroke:#e6e6e6;stroke-width:1}
svg .tick{fill:#666;font-size:11px}
"""


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page, in report.md's order: the status line, the
    summary table, the checks (for `edgekit check`), the plots, latency and decode tables,
    notes, then the per-layer chart of the worst HTML_LAYER_ROWS layers (the rest folded)."""
    model = report["model"]
    checks = checks_of(report)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>edgekit report: {escape(model['name'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>edgekit report: {escape(model['name'])}</h1>",
        f'<p class="meta">{escape(model["task"])}, {model["parameters"]:,} parameters, '
        f"from <code>{escape(model['source'])}</code><br>targets "
        f"{escape(', '.join(report['targets']))}; edgekit {escape(report['edgekit_version'])}"
        f", {escape(report['created'])}</p>",
        _status(report),
        _summary_table(report),
        *(["<h2>Checks</h2>", _checks_table(checks)] if "checks" in report else []),
        _figure("size", "Artifact size", _size_plot(report, checks),
                "MiB on disk per artifact; red marks: size budgets."),
        _figure("latency", "Latency per device", _latency_plot(report, checks),
                "Dot: p50 measured on host under the device's limits (whisker to p90). "
                "Orange bar: estimated phone range (low to high, tick at mid). "
                "Red marks: latency budgets."),
        _figure("parity", "Parity against the fp32 student", _parity_plot(report, checks),
                "max_rel (max |artifact - student| / max |student|) on a log axis; "
                "red marks: max_rel budgets."),
        *(["<h2>Latency</h2>", _table(LATENCY_HEADER, latency_rows(report))]
          if latency_rows(report) else []),
        *(["<h2>Decode</h2>", "<p>Host columns: measured on host; estimated columns: for the "
           "phone, never measured.</p>", _table(DECODE_HEADER, decode_rows(report))]
          if decode_rows(report) else []),
        '<h2>Notes</h2><ul id="notes">',
        *(f"<li><b>{escape(n.subject)}</b>: {escape(n.text)}</li>" for n in notes(report)),
        "</ul>",
        _figure("layers", "Per-layer error", _layers_plot(report),
                f"The worst {HTML_LAYER_ROWS} layers of each source, largest error on top; "
                "the rest are folded below each chart and kept in report.json."
                if layer_tables(report) else "Per-layer errors would be drawn here."),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _status(report: dict[str, Any]) -> str:
    kind, head, tail = status_line(report)
    return f'<div class="status {kind}">{escape(head)}: {escape(tail)}</div>'


def _figure(key: str, title: str, body: str, caption: str) -> str:
    return (f'<figure id="plot-{key}"><h2>{escape(title)}</h2>{body}'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _nodata(key: str, text: str) -> str:
    return f'<div class="nodata" data-plot="{key}">{escape(text)}</div>'


def _budgets(checks: list[dict[str, Any]], item: dict[str, Any],
             names: Iterable[str]) -> list[float]:
    wanted = set(names)
    return [float(c["budget"]) for c in checks
            if c["name"] in wanted and c["target"] == item["target"]
            and c["format"] == item["format"] and isinstance(c["budget"], int | float)]


# -- plots -------------------------------------------------------------------------------


def _size_plot(report: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    items = report["artifacts"]
    if not items:
        return _nodata("size", "No artifacts in this report.")
    values = [a["bytes"] / MIB for a in items]
    budgets = [[b if c_name == "size.max_mib" else b / MIB for c_name, b in
                _named_budgets(checks, a, ("size.max_mib", "size.max_bytes"))] for a in items]
    chart = BarChart("size", len(items), LinearScale(0.0, _axis_top(values, budgets)), "MiB")
    for row, (item, value, marks) in enumerate(zip(items, values, budgets, strict=True)):
        chart.label(row, label(item))
        chart.bar(row, 0.0, value, SIZE_COLOR)
        chart.note(row, f"{value:.3g} MiB")
        for mark in marks:
            chart.budget(row, mark)
    return chart.svg()


def _axis_top(values: list[float], budgets: list[list[float]]) -> float:
    """The axis end: room for the values and the budgets near them. A budget far above
    every value would squash the bars to nothing; it is drawn as an arrow past the end."""
    top = max(values + [1e-9])
    near = [b for bs in budgets for b in bs if b <= 4 * top]
    return max([top, *near]) * 1.1


def _named_budgets(checks: list[dict[str, Any]], item: dict[str, Any],
                   names: tuple[str, ...]) -> list[tuple[str, float]]:
    return [(c["name"], float(c["budget"])) for c in checks
            if c["name"] in names and c["target"] == item["target"]
            and c["format"] == item["format"] and isinstance(c["budget"], int | float)]


def _parity_plot(report: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    items = report["artifacts"]
    measured = [a["parity"]["metrics"].get("max_rel") for a in items]
    numbers = [v for v in measured if isinstance(v, int | float)]
    marks = [_budgets(checks, a, ("parity.max_rel",)) for a in items]
    if not numbers:
        return _nodata("parity", "No parity was measured in this report: "
                       + "; ".join(f"{label(a)}: {a['parity']['reason']}" for a in items))
    positive = [v for v in numbers + [b for bs in marks for b in bs] if v > 0] or [1e-7]
    low = math.floor(math.log10(min(positive))) - 1
    high = max(math.floor(math.log10(max(positive))) + 1, low + 3)
    chart = BarChart("parity", len(items), LogScale(low, high), "max_rel")
    for row, (item, value, budget_marks) in enumerate(zip(items, measured, marks,
                                                          strict=True)):
        chart.label(row, label(item))
        metrics = item["parity"]["metrics"]
        if isinstance(value, int | float):
            chart.lollipop(row, max(value, 10.0 ** low), PARITY_COLOR)
            chart.note(row, f"{format_number(value)}, cos "
                            f"{format_number(metrics.get('cosine_min'))}")
        elif metrics.get("non_finite"):
            chart.text(row, "NaN or Inf in the outputs", BUDGET_COLOR)
        else:
            chart.text(row, f"{item['parity']['verdict']}: {item['parity']['reason']}", "#777")
        for mark in budget_marks:
            chart.budget(row, mark)
    return chart.svg()


def _latency_plot(report: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    rows: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]] = []
    for item in report["artifacts"]:
        latency = item.get("latency")
        if not isinstance(latency, dict):
            continue
        measured, projected = latency.get("measured"), latency.get("projected")
        measured = measured if isinstance(measured, dict) else None
        projected = projected if isinstance(projected, dict) else None
        if _latency_values(measured, projected):
            device = ((projected or {}).get("device") or (measured or {}).get("device")
                      or "unknown device")
            rows.append((str(device), item, measured, projected))
    if not rows:
        return _nodata("latency", "No latency in this report yet: nothing was measured on "
                                  "the host or projected for a phone.")
    rows.sort(key=lambda r: r[0])
    keys = ("latency.measured_p50_ms", "latency.measured_p90_ms", "latency.projected_mid_ms",
            "latency.projected_high_ms")
    marks = [_budgets(checks, item, keys) for _, item, _, _ in rows]
    shown = [v for _, _, m, p in rows for v in _latency_values(m, p)]
    chart = BarChart("latency", len(rows), LinearScale(0.0, _axis_top(shown, marks)), "ms")
    for row, ((device, item, measured, projected), budget_marks) in enumerate(
            zip(rows, marks, strict=True)):
        chart.label(row, f"{device}: {label(item)}")
        notes = []
        if projected and _numbers(projected, "low_ms", "high_ms"):
            low, high = float(projected["low_ms"]), float(projected["high_ms"])
            chart.bar(row, low, high, PROJECTED_COLOR, opacity=0.45)
            if isinstance(projected.get("mid_ms"), int | float):
                chart.tick(row, float(projected["mid_ms"]), PROJECTED_COLOR)
            notes.append(f"est. {low:.3g}-{high:.3g}")
        if measured and _numbers(measured, "p50_ms"):
            p50 = float(measured["p50_ms"])
            p90 = float(measured["p90_ms"]) if _numbers(measured, "p90_ms") else p50
            chart.whisker(row, p50, p90, MEASURED_COLOR)
            notes.append(f"host {p50:.3g}")
        elif measured and measured.get("status") == "not_run":
            notes.append("host: not run")
        chart.note(row, ", ".join(notes) + (" ms" if notes and notes[-1][-1].isdigit() else ""))
        for mark in budget_marks:
            chart.budget(row, mark)
    labels = sorted({str(m.get("label")) for _, _, m, _ in rows if m and m.get("label")})
    legend = "".join(f"<figcaption>{escape(label)}</figcaption>" for label in labels)
    return chart.svg() + legend


def _latency_values(measured: dict[str, Any] | None,
                    projected: dict[str, Any] | None) -> list[float]:
    picked = [(measured, "p50_ms"), (measured, "p90_ms"), (projected, "low_ms"),
              (projected, "mid_ms"), (projected, "high_ms")]
    return [float(part[key]) for part, key in picked if part and _numbers(part, key)]


def _numbers(part: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(part.get(k), int | float) and not isinstance(part.get(k), bool)
               for k in keys)


def _layers_plot(report: dict[str, Any]) -> str:
    blocks = []
    for index, table in enumerate(layer_tables(report)):
        shown, rest = table.rows[:HTML_LAYER_ROWS], table.rows[HTML_LAYER_ROWS:]
        top = max(row.error for row in shown) * 1.1 or 1.0
        chart = BarChart(f"layers-{index}", len(shown), LinearScale(0.0, top), "error")
        for row_index, row in enumerate(shown):
            text = short_name(row.name) + (f" (+{len(row.tied)} tied)" if row.tied else "")
            chart.label(row_index, text, keep="end", title=row.title)
            chart.bar(row_index, 0.0, row.error, LAYER_COLOR)
            value = format_number(row.error)
            chart.note(row_index, f"{row.precision}, {value}" if row.precision != "-" else value)
        header = ["#", "layer", *table.columns]
        folded = (f"<details><summary>{len(rest)} more layers</summary>"
                  + _table(header, [[str(n), row.title, *row.cells] for n, row in
                                    enumerate(rest, start=len(shown) + 1)]) + "</details>"
                  if rest else "")
        blocks.append(f"<h3>{escape(table.title)}</h3><p>Worst {len(shown)} of "
                      f"{len(table.rows)} layers by {escape(table.ranked_by)}; every layer "
                      f"is in report.json (<code>{escape(table.where)}</code>).</p>"
                      f"{chart.svg()}{folded}")
    if not blocks:
        return _nodata("layers", no_layers_text(report))
    return "".join(blocks)


# -- tables ------------------------------------------------------------------------------


def _checks_table(checks: list[dict[str, Any]]) -> str:
    head = ["target", "format", "check", "value", "budget", "verdict", "message"]
    rows = []
    for c in checks:
        rows.append(
            f"<tr><td>{escape(c['target'])}</td><td>{escape(c['format'])}</td>"
            f"<td>{escape(c['name'])}</td><td class=\"num\">{format_number(c['value'])}</td>"
            f"<td class=\"num\">{format_number(c['budget'])}</td>"
            f"<td class=\"{escape(c['verdict'])}\">{escape(c['verdict'])}</td>"
            f"<td>{escape(c['message'])}</td></tr>")
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + "".join(rows) + "</table>")


def _summary_table(report: dict[str, Any]) -> str:
    """The summary table, one row per artifact, its parity cell coloured by verdict."""
    header = summary_header(report)
    verdict = header.index("parity")
    body = "".join(
        "<tr>" + "".join(f'<td class="{escape(cell)}">{escape(cell)}</td>' if i == verdict
                         else f"<td>{escape(cell)}</td>" for i, cell in enumerate(row))
        + "</tr>" for row in summary_rows(report))
    return ('<table id="summary"><tr>' + "".join(f"<th>{escape(h)}</th>" for h in header)
            + "</tr>" + body + "</table>")


def _table(header: list[str], rows: list[list[str]]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return ("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"
            + body + "</table>")
