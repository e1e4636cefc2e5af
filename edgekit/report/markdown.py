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


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: student, artifacts table, parity reasons, export notes."""
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
        "## Artifacts",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in artifact_rows(report)]
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
