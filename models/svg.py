"""Small SVG charts (a run's loss curve, its predicted-vs-measured plot) without matplotlib's 0.6 s of import and
rendering."""
from __future__ import annotations

import math
from html import escape
from pathlib import Path

from mimo.pipeline.writes import write_text

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high]."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


class _Axes:
    """Plot area, scales, ticks, labels and title of one SVG chart."""

    def __init__(self, x_range, y_range, title, xlabel, ylabel, width=720, height=420):
        self.left, self.right, self.top, self.bottom = 70, 20, 40, 50
        self.width, self.height = width, height
        (self.x_low, self.x_high), (self.y_low, self.y_high) = x_range, y_range
        self.x_high = self.x_high if self.x_high > self.x_low else self.x_low + 1
        self.y_high = self.y_high if self.y_high > self.y_low else self.y_low + 1
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="13">{escape(title)}</text>',
            f'<text x="{(self.left + width - self.right) / 2}" y="{height - 12}" text-anchor="middle">'
            f'{escape(xlabel)}</text>',
            f'<text x="16" y="{(self.top + height - self.bottom) / 2}" text-anchor="middle" '
            f'transform="rotate(-90 16 {(self.top + height - self.bottom) / 2})">{escape(ylabel)}</text>',
            f'<rect x="{self.left}" y="{self.top}" width="{width - self.left - self.right}" '
            f'height="{height - self.top - self.bottom}" fill="none" stroke="black"/>']
        for t in nice_ticks(self.y_low, self.y_high):
            self.parts.append(f'<line x1="{self.left - 4}" x2="{self.left}" y1="{self.py(t):.1f}" '
                              f'y2="{self.py(t):.1f}" stroke="black"/><text x="{self.left - 7}" '
                              f'y="{self.py(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
        for t in nice_ticks(self.x_low, self.x_high):
            self.parts.append(f'<line x1="{self.px(t):.1f}" x2="{self.px(t):.1f}" y1="{height - self.bottom}" '
                              f'y2="{height - self.bottom + 4}" stroke="black"/><text x="{self.px(t):.1f}" '
                              f'y="{height - self.bottom + 17}" text-anchor="middle">{t:g}</text>')

    def px(self, v: float) -> float:
        return self.left + (v - self.x_low) / (self.x_high - self.x_low) * (self.width - self.left - self.right)

    def py(self, v: float) -> float:
        return self.height - self.bottom - (v - self.y_low) / (self.y_high - self.y_low) * (
            self.height - self.top - self.bottom)

    def legend(self, entries: list[tuple[str, str, str]], marker: str = "line") -> None:
        if entries:
            self.parts.append(f'<rect x="{self.width - self.right - 236}" y="{self.top + 4}" width="230" '
                              f'height="{18 * len(entries) + 6}" fill="white" fill-opacity="0.85"/>')
        for i, (name, color, dash) in enumerate(entries):
            y, x = self.top + 16 + 18 * i, self.width - self.right - 230
            if marker == "line":
                self.parts.append(f'<line x1="{x}" x2="{x + 25}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" '
                                  f'stroke-width="1.8"{dash}/>')
            else:
                self.parts.append(f'<circle cx="{x + 12}" cy="{y - 4}" r="4" fill="{color}"/>')
            self.parts.append(f'<text x="{x + 32}" y="{y}">{escape(name)}</text>')

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        write_text(path, "\n".join(self.parts + ["</svg>"]) + "\n")
        return path


def line_chart(x: list[float], series: dict[str, list[float]], path: str | Path, title: str = "",
               xlabel: str = "", ylabel: str = "", marker: tuple[float, str] | None = None,
               dashed: tuple[str, ...] = (), width: int = 720, height: int = 420) -> Path:
    """Write one SVG with a line per series over ``x``; ``marker`` = (x, label) draws a dotted vertical line."""
    values = [v for ys in series.values() for v in ys if v == v]  # NaN-free
    axes = _Axes((min(x), max(x)) if x else (0.0, 1.0), (min(values), max(values)) if values else (0.0, 1.0),
                 title, xlabel, ylabel, width, height)
    legend = []
    for i, (name, ys) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        dash = ' stroke-dasharray="6 4"' if name in dashed else ""
        points = " ".join(f"{axes.px(a):.1f},{axes.py(b):.1f}" for a, b in zip(x, ys) if b == b)
        axes.parts.append(f'<polyline class="series" fill="none" stroke="{color}" stroke-width="1.8"{dash} '
                          f'points="{points}"/>')
        legend.append((name, color, dash))
    if marker is not None:
        axes.parts.append(f'<line class="marker" x1="{axes.px(marker[0]):.1f}" x2="{axes.px(marker[0]):.1f}" '
                          f'y1="{axes.top}" y2="{height - axes.bottom}" stroke="grey" stroke-dasharray="2 3"/>')
        legend.append((marker[1], "grey", ' stroke-dasharray="2 3"'))
    axes.legend(legend)
    return axes.write(path)


GROUP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf")


def scatter_chart(x, y, groups, path: str | Path, title: str = "", xlabel: str = "", ylabel: str = "",
                  width: int = 720, height: int = 520) -> Path:
    """Write one SVG of points (x, y) coloured by group label, with the diagonal y = x for reference."""
    low = min(min(x), min(y)) if len(x) else 0.0
    high = max(max(x), max(y)) if len(x) else 1.0
    axes = _Axes((low, high), (low, high), title, xlabel, ylabel, width, height)
    axes.parts.append(f'<line x1="{axes.px(low):.1f}" y1="{axes.py(low):.1f}" x2="{axes.px(high):.1f}" '
                      f'y2="{axes.py(high):.1f}" stroke="grey" stroke-dasharray="4 3"/>')
    labels = list(dict.fromkeys(groups))
    colors = {label: GROUP_COLORS[i % len(GROUP_COLORS)] for i, label in enumerate(labels)}
    for a, b, g in zip(x, y, groups):
        axes.parts.append(f'<circle class="point" cx="{axes.px(a):.1f}" cy="{axes.py(b):.1f}" r="2" '
                          f'fill="{colors[g]}" fill-opacity="0.5"/>')
    axes.legend([(label, colors[label], "") for label in labels], marker="point")
    return axes.write(path)


def _diverging(value: float, centre: float, spread: float) -> str:
    """Blue below ``centre``, white at it, red above (saturated at ``spread`` away)."""
    t = max(-1.0, min(1.0, (value - centre) / spread)) if spread > 0 else 0.0
    if t < 0:
        r, g, b = 255 + t * (255 - 33), 255 + t * (255 - 102), 255 + t * (255 - 172)
    else:
        r, g, b = 255 - t * (255 - 178), 255 - t * (255 - 24), 255 - t * (255 - 43)
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


def heatmap_chart(positions: list[int], letters: str, values: dict, parent: dict, path: str | Path,
                  centre: float, title: str = "", blind: set | None = None, per_row: int = 60) -> Path:
    """A positions x letters grid, wrapped every ``per_row`` positions: ``values[(position, letter)]`` coloured on
    a diverging scale centred on ``centre``; ``parent[position]`` marked with a dot; ``blind`` cells grey."""
    cell, left, top, gap = 11, 30, 50, 34
    blocks = [positions[i:i + per_row] for i in range(0, len(positions), per_row)]
    width = left + cell * min(per_row, len(positions)) + 20
    height = top + len(blocks) * (cell * len(letters) + gap) + 30
    finite = [v for v in values.values() if v == v]
    spread = max((abs(v - centre) for v in finite), default=1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="9">', f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="18" font-size="13">{escape(title)}</text>',
             f'<text x="{left}" y="34" font-size="10">blue: below the parent\'s prediction ({centre:.3g}), red: above '
             f'(full colour at +/- {spread:.3g}); dot: parent residue; grey: no signal from the features</text>']
    blind = blind or set()
    for b, block in enumerate(blocks):
        y0 = top + b * (cell * len(letters) + gap)
        for j, letter in enumerate(letters):
            parts.append(f'<text x="{left - 4}" y="{y0 + j * cell + 8}" text-anchor="end">{letter}</text>')
        for k, position in enumerate(block):
            x = left + k * cell
            if k % 10 == 0:
                parts.append(f'<text x="{x}" y="{y0 + len(letters) * cell + 10}">{position}</text>')
            for j, letter in enumerate(letters):
                key = (position, letter)
                if parent.get(position) == letter:
                    parts.append(f'<circle cx="{x + cell / 2}" cy="{y0 + j * cell + cell / 2}" r="2.5" fill="black"/>')
                    continue
                value = values.get(key)
                color = "#cccccc" if key in blind or value is None else _diverging(value, centre, spread)
                parts.append(f'<rect class="cell" x="{x}" y="{y0 + j * cell}" width="{cell - 1}" height="{cell - 1}" '
                             f'fill="{color}"/>')
    parts.append("</svg>")
    path = Path(path)
    write_text(path, "\n".join(parts) + "\n")
    return path
