"""A small horizontal chart drawn as an SVG string: rows of marks over one shared x axis.

The HTML report's plots are built from these few marks (bars, ticks, lollipops, whiskers and
budget lines) so that the page needs no script and no library.
"""

from __future__ import annotations

import math
from html import escape

BUDGET_COLOR = "#d62728"

# Geometry in SVG units: width, label column, note column, row height, top and axis margins.
_W, _LABEL, _RIGHT, _ROW, _TOP, _AXIS = 1040, 210, 215, 26, 14, 34


class LinearScale:
    """A linear x axis from `low` to `high`."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high if high > low else low + 1.0

    def fraction(self, value: float) -> float:
        return min(max((value - self.low) / (self.high - self.low), 0.0), 1.0)

    def beyond(self, value: float) -> bool:
        return value > self.high

    def ticks(self) -> list[tuple[float, str]]:
        span = self.high - self.low
        step = 10 ** math.floor(math.log10(span / 5))
        for factor in (1, 2, 5, 10):
            if span / (step * factor) <= 6:
                step *= factor
                break
        first = math.ceil(self.low / step) * step
        count = int((self.high - first) / step) + 1
        return [(first + i * step, f"{first + i * step:g}") for i in range(count)]


class LogScale:
    """A log10 x axis from 10**low_decade to 10**high_decade."""

    def __init__(self, low_decade: int, high_decade: int) -> None:
        self.low, self.high = low_decade, high_decade

    def fraction(self, value: float) -> float:
        exponent = math.log10(value) if value > 0 else self.low
        return min(max((exponent - self.low) / (self.high - self.low), 0.0), 1.0)

    def beyond(self, value: float) -> bool:
        return value > 10.0 ** self.high

    def ticks(self) -> list[tuple[float, str]]:
        return [(10.0 ** d, f"1e{d}") for d in range(self.low, self.high + 1)]


class BarChart:
    """Rows of horizontal marks over one shared x axis, drawn as an SVG string."""

    def __init__(self, key: str, rows: int, scale: LinearScale | LogScale, unit: str) -> None:
        self.key, self.rows, self.scale, self.unit = key, rows, scale, unit
        self.height = _TOP + rows * _ROW + _AXIS
        self.parts: list[str] = []

    def x(self, value: float) -> float:
        return _LABEL + self.scale.fraction(value) * (_W - _LABEL - _RIGHT)

    def y(self, row: int) -> float:
        return _TOP + row * _ROW + _ROW / 2

    def label(self, row: int, text: str, keep: str = "start", title: str | None = None) -> None:
        """The row's name left of the axis, cut to fit: `keep` "start" keeps its beginning,
        "end" its end (where a module path says which layer it is); the whole of `title`
        (default: `text`) shows on hover."""
        shown = _clip(text, 30) if keep == "start" else _clip_start(text, 30)
        self.parts.append(f'<text x="{_LABEL - 8}" y="{self.y(row) + 4:.1f}" '
                          f'text-anchor="end"><title>{escape(title or text)}</title>'
                          f"{escape(shown)}</text>")

    def bar(self, row: int, start: float, end: float, color: str,
            opacity: float = 1.0) -> None:
        x0, x1 = self.x(start), self.x(end)
        width = max(x1 - x0, 2.0)
        self.parts.append(f'<rect x="{x0:.1f}" y="{self.y(row) - 8:.1f}" width="{width:.1f}" '
                          f'height="16" fill="{color}" fill-opacity="{opacity}"/>')

    def tick(self, row: int, value: float, color: str) -> None:
        x = self.x(value)
        self.parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.y(row) - 10:.1f}" '
                          f'y2="{self.y(row) + 10:.1f}" stroke="{color}" stroke-width="3"/>')

    def lollipop(self, row: int, value: float, color: str) -> None:
        x, y = self.x(value), self.y(row)
        self.parts.append(f'<line x1="{_LABEL}" x2="{x:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                          f'stroke="{color}" stroke-width="4"/>'
                          f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{color}"/>')

    def whisker(self, row: int, p50: float, p90: float, color: str) -> None:
        x50, x90, y = self.x(p50), self.x(p90), self.y(row)
        self.parts.append(f'<line x1="{x50:.1f}" x2="{x90:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                          f'stroke="{color}" stroke-width="2"/>'
                          f'<line x1="{x90:.1f}" x2="{x90:.1f}" y1="{y - 5:.1f}" '
                          f'y2="{y + 5:.1f}" stroke="{color}" stroke-width="2"/>'
                          f'<circle cx="{x50:.1f}" cy="{y:.1f}" r="6" fill="{color}"/>')

    def budget(self, row: int, value: float) -> None:
        x, y = self.x(value), self.y(row)
        if self.scale.beyond(value):  # off the axis: an arrow at its end, the value on hover
            self.parts.append(f'<path d="M{x - 9:.1f},{y - 7:.1f} L{x:.1f},{y:.1f} '
                              f'L{x - 9:.1f},{y + 7:.1f} Z" fill="{BUDGET_COLOR}">'
                              f"<title>budget {value:g}, off the axis</title></path>")
            return
        self.parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 12:.1f}" '
                          f'y2="{y + 12:.1f}" stroke="{BUDGET_COLOR}" stroke-width="3" '
                          f'stroke-dasharray="4 2"><title>budget {value:g}</title></line>')

    def note(self, row: int, text: str) -> None:
        self.parts.append(f'<text x="{_W - _RIGHT + 8}" y="{self.y(row) + 4:.1f}">'
                          f"{escape(_clip(text, 34))}</text>")

    def text(self, row: int, text: str, color: str) -> None:
        self.parts.append(f'<text x="{_LABEL + 6}" y="{self.y(row) + 4:.1f}" '
                          f'style="fill:{color};font-style:italic">'
                          f"{escape(_clip(text, 110))}</text>")

    def svg(self) -> str:
        axis_y = _TOP + self.rows * _ROW + 4
        grid = []
        for value, text in self.scale.ticks():
            x = self.x(value)
            grid.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" '
                        f'y2="{axis_y}"/><text class="tick" x="{x:.1f}" y="{axis_y + 16}" '
                        f'text-anchor="middle">{escape(text)}</text>')
        axis = (f'<line class="axis" x1="{_LABEL}" x2="{_W - _RIGHT}" y1="{axis_y}" '
                f'y2="{axis_y}"/><text class="tick" x="{_W - _RIGHT + 24}" '
                f'y="{axis_y + 16}">{escape(self.unit)}</text>')
        return (f'<svg xmlns="http://www.w3.org/2000/svg" data-plot="{self.key}" '
                f'width="100%" viewBox="0 0 {_W} {self.height}" '
                f'role="img">{"".join(grid)}{axis}{"".join(self.parts)}</svg>')


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_start(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1:]
