"""Per-layer errors in report.json, worst first: report.md shows the worst 10 of each,
report.html draws the worst 20 and folds the rest; report.json keeps every layer.

Three places carry them: a failed artifact's `parity.localization.errors`, an artifact's
`layers` list, and each quantization plan's `compression[].plan.layers` (weight SQNR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekit.report.checks import format_number
from edgekit.report.digest import is_number, label


@dataclass(frozen=True)
class LayerRow:
    """One layer: `error` ranks it (larger is worse), `cells` show it."""

    name: str
    precision: str
    error: float
    cells: tuple[str, ...]
    tied: tuple[str, ...] = ()  # other module paths sharing this weight

    @property
    def title(self) -> str:
        """The module path, with the paths tied to it."""
        return self.name + (f" (tied: {', '.join(self.tied)})" if self.tied else "")


@dataclass(frozen=True)
class LayerTable:
    """Per-layer errors from one place in report.json, worst first."""

    title: str
    ranked_by: str  # what orders the rows, for the reader
    where: str  # where report.json keeps every layer
    columns: tuple[str, ...]  # headers of `cells`
    rows: tuple[LayerRow, ...]


def layer_tables(report: dict[str, Any]) -> list[LayerTable]:
    """Every per-layer error the report carries, one table per source, rows worst first:
    failed artifacts' localization errors, each quantization plan's weight error, and an
    artifact's `layers` list."""
    tables = []
    for item in report["artifacts"]:
        where = item["parity"].get("localization") or {}
        errors = {k: v for k, v in (where.get("errors") or {}).items() if is_number(v)}
        if errors:
            rows = [LayerRow(name, "-", float(err), (format_number(err),))
                    for name, err in errors.items()]
            tables.append(_table(f"{label(item)}: where parity failed ({where.get('cause')})",
                                 "relative error", "parity.localization.errors",
                                 ("relative error",), rows))
    seen: set[Any] = set()
    for index, item in enumerate(report["artifacts"]):
        layers = [lay for lay in item.get("layers") or []
                  if isinstance(lay, dict) and is_number(lay.get("error"))]
        if layers and item.get("sha256") not in seen:
            seen.add(item.get("sha256"))
            rows = [LayerRow(str(lay.get("name", "?")), str(lay.get("precision", "-")),
                             float(lay["error"]), (str(lay.get("precision", "-")),
                                                   format_number(lay["error"])))
                    for lay in layers]
            tables.append(_table(label(item), "error", f"artifacts[{index}].layers",
                                 ("precision", "error"), rows))
    for index, recipe in enumerate(report.get("compression") or []):
        table = _plan_table(index, recipe)
        if table is not None:
            tables.append(table)
    return tables


def _plan_table(index: int, recipe: dict[str, Any]) -> LayerTable | None:
    """Relative weight error 10^(-SQNR/20) of each quantized weight against its fp32 value;
    layers kept in float have no error and are counted in the notes instead."""
    layers = [lay for lay in (recipe.get("plan") or {}).get("layers") or []
              if isinstance(lay, dict) and is_number(lay.get("weight_sqnr_db"))]
    if not layers:
        return None
    rows = []
    for lay in layers:
        sqnr = float(lay["weight_sqnr_db"])
        error = 10.0 ** (-sqnr / 20.0)
        names = [str(n) for n in lay.get("names") or ["?"]]
        rows.append(LayerRow(names[0], str(lay.get("precision", "-")), error, (
            str(lay.get("precision", "-")), f"{sqnr:.1f}", format_number(error),
            format_number(lay.get("sensitivity"))), tuple(names[1:])))
    title = f"{recipe.get('quant')} plan for {', '.join(recipe.get('targets', []))}"
    measure = ((recipe.get("plan") or {}).get("mixed_precision") or {}).get("measure", "error")
    return _table(title, "weight SQNR (lowest first)", f"compression[{index}].plan.layers",
                  ("precision", "weight SQNR dB", "relative weight error",
                   f"output {measure} at 4 bits"), rows)


def _table(title: str, ranked_by: str, where: str, columns: tuple[str, ...],
           rows: list[LayerRow]) -> LayerTable:
    ranked = sorted(rows, key=lambda row: -row.error)  # stable: ties keep report order
    return LayerTable(title, ranked_by, where, columns, tuple(ranked))


def no_layers_text(report: dict[str, Any]) -> str:
    """What the per-layer section says when the report has no per-layer error."""
    quants = sorted({a["quant"] for a in report["artifacts"]}) or ["none"]
    return ("No per-layer error in this report: it is recorded for quantization plans and "
            f"for artifacts that failed parity, and this run's quant is {', '.join(quants)}.")
