"""Small SVG charts (a run's loss curve, its predicted-vs-measured plot, a saturation-scan heatmap) without
matplotlib's 0.6 s of import and rendering. Hand-written because the charts are few and simple, and a run is
written in a fraction of a second: legends sit outside the plotted area, axes are padded so nothing is cut at
the edges, and every string is escaped."""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

from mimo.pipeline.writes import write_text

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
GROUP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf")
CHAR_WIDTH = 6.6  # about the width of a character of 12 px sans-serif, to size legends


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


def padded(low: float, high: float, share: float = 0.04) -> tuple[float, float]:
    """[low, high] widened by ``share`` of its span on each side (a point at the edge is not cut in half)."""
    if high <= low:
        return low - 0.5, low + 0.5
    pad = share * (high - low)
    return low - pad, high + pad


@dataclass(frozen=True)
class Key:
    """One legend entry: ``kind`` is line, point, ring (an open circle) or bar (a vertical interval)."""

    name: str
    kind: str
    color: str
    dash: str = ""


def legend_width(keys: list[Key]) -> int:
    return int(40 + CHAR_WIDTH * max((len(k.name) for k in keys), default=0)) if keys else 0


def _glyph(key: Key, x: float, y: float) -> str:
    if key.kind == "line":
        return f'<line x1="{x}" x2="{x + 25}" y1="{y}" y2="{y}" stroke="{key.color}" stroke-width="1.8"{key.dash}/>'
    if key.kind == "ring":
        return f'<circle cx="{x + 12}" cy="{y}" r="3.5" fill="none" stroke="{key.color}" stroke-width="1.2"/>'
    if key.kind == "bar":
        return f'<line x1="{x + 12}" x2="{x + 12}" y1="{y - 6}" y2="{y + 6}" stroke="{key.color}" stroke-width="1.2"/>'
    return f'<circle cx="{x + 12}" cy="{y}" r="4" fill="{key.color}"/>'


class _Axes:
    """Plot area, scales, ticks, labels, title (and subtitle) of one SVG chart; the legend, if any, to the right of
    the plotted area, so it never hides a line or a point."""

    def __init__(self, x_range, y_range, title, xlabel, ylabel, width=720, height=420, subtitle="", legend=0):
        self.left, self.right, self.top, self.bottom = 70, 20 + legend, 42 + (16 if subtitle else 0), 50
        self.width, self.height = width, height
        (self.x_low, self.x_high), (self.y_low, self.y_high) = x_range, y_range
        self.x_high = self.x_high if self.x_high > self.x_low else self.x_low + 1
        self.y_high = self.y_high if self.y_high > self.y_low else self.y_low + 1
        middle = (self.top + height - self.bottom) / 2
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text class="title" x="{width / 2}" y="22" text-anchor="middle" font-size="13">{escape(title)}</text>',
            f'<text class="subtitle" x="{width / 2}" y="40" text-anchor="middle" fill="#444">{escape(subtitle)}</text>'
            if subtitle else "",
            f'<text x="{(self.left + width - self.right) / 2}" y="{height - 12}" text-anchor="middle">'
            f'{escape(xlabel)}</text>',
            f'<text x="16" y="{middle}" text-anchor="middle" transform="rotate(-90 16 {middle})">'
            f'{escape(ylabel)}</text>',
            f'<rect class="frame" x="{self.left}" y="{self.top}" width="{width - self.left - self.right}" '
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

    def legend(self, keys: list[Key]) -> None:
        """The keys in a column to the right of the plotted area."""
        x = self.width - self.right + 14
        self.parts.append('<g class="legend">')
        for i, key in enumerate(keys):
            y = self.top + 12 + 20 * i
            self.parts.append(_glyph(key, x, y) + f'<text x="{x + 32}" y="{y + 4}">{escape(key.name)}</text>')
        self.parts.append("</g>")

    def write(self, path: str | Path) -> Path:
        return write_svg(self.parts, path)


def write_svg(parts: list[str], path: str | Path) -> Path:
    """The parts and a closing tag, atomically, in ASCII (other characters as references, whatever the locale)."""
    path = Path(path)
    text = "\n".join(p for p in parts if p) + "\n</svg>\n"
    write_text(path, text.encode("ascii", "xmlcharrefreplace").decode("ascii"))
    return path


def line_chart(x: list[float], series: dict[str, list[float]], path: str | Path, title: str = "",
               xlabel: str = "", ylabel: str = "", marker: tuple[float, str] | None = None,
               dashed: tuple[str, ...] = (), width: int = 660, height: int = 420, subtitle: str = "") -> Path:
    """Write one SVG with a line per series over ``x``; ``marker`` = (x, label) draws a dotted vertical line. The
    legend is added to the right of ``width``."""
    values = [v for ys in series.values() for v in ys if v == v]  # NaN-free
    keys = [Key(name, "line", COLORS[i % len(COLORS)], ' stroke-dasharray="6 4"' if name in dashed else "")
            for i, name in enumerate(series)]
    if marker is not None:
        keys.append(Key(marker[1], "line", "grey", ' stroke-dasharray="2 3"'))
    axes = _Axes((min(x), max(x)) if x else (0.0, 1.0), padded(min(values), max(values)) if values else (0.0, 1.0),
                 title, xlabel, ylabel, width + legend_width(keys), height, subtitle, legend_width(keys))
    for key, ys in zip(keys, series.values()):
        points = " ".join(f"{axes.px(a):.1f},{axes.py(b):.1f}" for a, b in zip(x, ys) if b == b)
        axes.parts.append(f'<polyline class="series" fill="none" stroke="{key.color}" stroke-width="1.8"{key.dash} '
                          f'points="{points}"/>')
    if marker is not None:
        axes.parts.append(f'<line class="marker" x1="{axes.px(marker[0]):.1f}" x2="{axes.px(marker[0]):.1f}" '
                          f'y1="{axes.top}" y2="{height - axes.bottom}" stroke="grey" stroke-dasharray="2 3"/>')
    axes.legend(keys)
    return axes.write(path)


@dataclass
class Points:
    """What a scatter chart draws: points (x, y) in groups, optionally a vertical interval (lower, upper; NaN: none
    drawn) per point, and points ``flagged`` (drawn open: e.g. no signal)."""

    x: list
    y: list
    groups: list
    lower: list | None = None
    upper: list | None = None
    flagged: list | None = None

    def extent(self, intervals: bool = False) -> tuple[float, float]:
        """The smallest and largest of x and y (and, with ``intervals``, of the interval ends)."""
        ends = [*(self.lower or []), *(self.upper or [])] if intervals else []
        values = [v for v in [*self.x, *self.y, *ends] if v == v]
        return (min(values), max(values)) if values else (0.0, 1.0)


def _interval_range(points: Points) -> tuple[float, float]:
    """The vertical range: the points', widened to take in the interval bars, but by at most the points' own span
    on each side (wider bars are cut at the frame, and the legend says how many)."""
    low, high = points.extent()
    ends_low, ends_high = points.extent(intervals=True)
    span = high - low
    return padded(max(ends_low, low - span), min(ends_high, high + span))


def scatter_chart(points: Points, path: str | Path, title: str = "", xlabel: str = "", ylabel: str = "",
                  subtitle: str = "", names: dict | None = None, colors: dict | None = None,
                  interval_name: str = "interval", flagged_name: str = "flagged", width: int = 600,
                  height: int = 560) -> Path:
    """Write one SVG of points coloured by group (legend: ``names[group]`` in that order, default the groups),
    with the diagonal y = x for reference, vertical interval bars, flagged points drawn open. The horizontal axis
    spans the points, the vertical one the points and (within limits, see ``_interval_range``) the bars; both
    padded. The legend is added to the right of ``width``."""
    labels = list(names) if names else list(dict.fromkeys(points.groups))  # the legend's order
    colors = colors or {label: GROUP_COLORS[i % len(GROUP_COLORS)] for i, label in enumerate(labels)}
    keys = [Key((names or {}).get(label, str(label)), "point", colors[label]) for label in labels]
    bars = [i for i in range(len(points.x)) if points.lower is not None and points.lower[i] == points.lower[i]]
    flagged = {i for i in range(len(points.x)) if points.flagged is not None and points.flagged[i]}
    low, high = padded(*points.extent())
    y_low, y_high = _interval_range(points)
    cut = sum(points.lower[i] < y_low or points.upper[i] > y_high for i in bars)
    keys += [Key(interval_name + (f"; {cut} cut at the frame" if cut else ""), "bar", "#555")] if bars else []
    keys += [Key(flagged_name, "ring", "#444")] if flagged else []
    width += legend_width(keys)
    axes = _Axes((low, high), (y_low, y_high), title, xlabel, ylabel, width, height, subtitle, legend_width(keys))
    axes.parts.append(f'<clipPath id="mimo-frame"><rect x="{axes.left}" y="{axes.top}" '
                      f'width="{width - axes.left - axes.right}" height="{height - axes.top - axes.bottom}"/>'
                      f'</clipPath><g clip-path="url(#mimo-frame)">')
    axes.parts.append(f'<line x1="{axes.px(low):.1f}" y1="{axes.py(low):.1f}" x2="{axes.px(high):.1f}" '
                      f'y2="{axes.py(high):.1f}" stroke="grey" stroke-dasharray="4 3"/>')
    for i in bars:
        axes.parts.append(f'<line class="interval" x1="{axes.px(points.x[i]):.1f}" x2="{axes.px(points.x[i]):.1f}" '
                          f'y1="{axes.py(points.lower[i]):.1f}" y2="{axes.py(points.upper[i]):.1f}" '
                          f'stroke="{colors[points.groups[i]]}" stroke-opacity="0.3"/>')
    for i, (a, b, g) in enumerate(zip(points.x, points.y, points.groups)):
        look = (f'r="3" fill="none" stroke="{colors[g]}" stroke-width="0.9"' if i in flagged else
                f'r="2.2" fill="{colors[g]}" fill-opacity="0.6"')
        circle = f'<circle class="point" {look} cx="{axes.px(a):.1f}" cy="{axes.py(b):.1f}"/>'
        axes.parts.append(f'<g class="flagged">{circle}</g>' if i in flagged else circle)
    axes.parts.append("</g>")
    axes.legend(keys)
    return axes.write(path)


def diverging(value: float, centre: float, spread: float) -> str:
    """Blue below ``centre``, white at it, red above (saturated at ``spread`` away)."""
    t = max(-1.0, min(1.0, (value - centre) / spread)) if spread > 0 else 0.0
    if t < 0:
        r, g, b = 255 + t * (255 - 33), 255 + t * (255 - 102), 255 + t * (255 - 172)
    else:
        r, g, b = 255 - t * (255 - 178), 255 - t * (255 - 24), 255 - t * (255 - 43)
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


@dataclass
class ScanMarks:
    """What a heatmap marks beside the colours: ``parent`` residue per position (a dot), ``blind`` cells (grey: no
    signal from the features), ``measured`` cells (outlined: the substitution is in a training row), ``unmeasured``
    positions (hatched: no training row mutated there), the ``centre`` of the colours and what it is, and a ``note``
    for the subtitle (e.g. why nothing is outlined)."""

    parent: dict
    centre: float
    centre_label: str
    blind: set = frozenset()
    measured: set = frozenset()
    unmeasured: set = frozenset()
    note: str = ""


HATCH = "mimo-hatch"


def _defs(centre: float, spread: float) -> str:
    stops = "".join(f'<stop offset="{t / 10:g}" '
                    f'stop-color="{diverging(centre + (t / 5 - 1) * spread, centre, spread)}"/>' for t in range(11))
    return (f'<defs><pattern id="{HATCH}" patternUnits="userSpaceOnUse" width="4" height="4" '
            f'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="4" stroke="#222" stroke-width="1"/>'
            f'</pattern><linearGradient id="mimo-colorbar">{stops}</linearGradient></defs>')


def _key_row(x: float, y: float) -> list[str]:
    """The heatmap's key: parent dot, outlined, hatched and grey cells, each with what it means."""
    items = [("parent residue", f'<circle cx="{{x}}" cy="{y - 4}" r="2.5" fill="black"/>'),
             ("substitution in a training row", f'<rect x="{{x0}}" y="{y - 9}" width="10" height="10" fill="white" '
              f'stroke="black"/>'),
             ("position never mutated in training", f'<rect x="{{x0}}" y="{y - 9}" width="10" height="10" '
              f'fill="url(#{HATCH})" stroke="#999"/>'),
             ("no signal from the features", f'<rect x="{{x0}}" y="{y - 9}" width="10" height="10" fill="#cccccc"/>')]
    parts = []
    for name, glyph in items:
        parts.append(glyph.format(x=x + 5, x0=x) + f'<text x="{x + 14}" y="{y}">{escape(name)}</text>')
        x += 24 + 5.4 * len(name)
    return parts


def _colour_bar(x: float, y: float, centre: float, spread: float) -> list[str]:
    """A 240-px bar of the diverging scale, its ends and centre labelled with the values they stand for."""
    labels = ((x, "start", centre - spread), (x + 120, "middle", centre), (x + 240, "end", centre + spread))
    return [f'<rect class="colorbar" x="{x}" y="{y}" width="240" height="10" fill="url(#mimo-colorbar)" '
            f'stroke="#888"/>'] + [
        f'<line x1="{tx}" x2="{tx}" y1="{y + 10}" y2="{y + 13}" stroke="black"/><text x="{tx}" y="{y + 23}" '
        f'text-anchor="{anchor}">{value:.3g}</text>' for tx, anchor, value in labels] + [
        f'<text x="{x + 252}" y="{y + 9}">predicted score: blue below the centre, red above; full colour at '
        f'+/- {spread:.3g}</text>']


def _cell(x: float, y: float, size: int, key, value, marks: ScanMarks, spread: float) -> str:
    if marks.parent.get(key[0]) == key[1]:
        return f'<circle cx="{x + size / 2}" cy="{y + size / 2}" r="2.5" fill="black"/>'
    color = "#cccccc" if key in marks.blind or value is None else diverging(value, marks.centre, spread)
    outline = ' class="cell measured" stroke="#111" stroke-width="0.8"' if key in marks.measured else ' class="cell"'
    return f'<rect{outline} x="{x}" y="{y}" width="{size - 1}" height="{size - 1}" fill="{color}"/>'


def heatmap_chart(positions: list[int], letters: str, values: dict, marks: ScanMarks, path: str | Path,
                  title: str = "", per_row: int = 80) -> Path:
    """A positions x letters grid, wrapped into rows of at most ``per_row`` positions (of equal length):
    ``values[(position, letter)]`` coloured on a diverging scale centred on ``marks.centre``, with a colour bar
    and a key for what ``marks`` marks."""
    cell, left, top, gap = 11, 30, 112, 34
    rows = max(1, math.ceil(len(positions) / per_row))
    per_row = max(1, math.ceil(len(positions) / rows))
    blocks = [positions[i:i + per_row] for i in range(0, len(positions), per_row)]
    width = max(left + cell * per_row + 20, 860)
    height = top + len(blocks) * (cell * len(letters) + gap) + 10
    spread = max((abs(v - marks.centre) for v in values.values() if v == v), default=1.0) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="9">', _defs(marks.centre, spread), f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text class="title" x="{left}" y="18" font-size="13">{escape(title)}</text>',
             f'<text class="subtitle" x="{left}" y="36" font-size="11">centre: {escape(marks.centre_label)}'
             f'{escape(marks.note)}</text>',
             *_key_row(left, 58), *_colour_bar(left, 72, marks.centre, spread)]
    for b, block in enumerate(blocks):
        y0 = top + b * (cell * len(letters) + gap)
        parts += [f'<text x="{left - 4}" y="{y0 + j * cell + 8}" text-anchor="end">{letter}</text>'
                  for j, letter in enumerate(letters)]
        for k, position in enumerate(block):
            x = left + k * cell
            if position % 10 == 0 or (k == 0 and position % 10 < 7):  # first of a row, unless near a tenth
                parts.append(f'<text x="{x}" y="{y0 + len(letters) * cell + 10}">{position}</text>')
            parts += [_cell(x, y0 + j * cell, cell, (position, letter), values.get((position, letter)), marks, spread)
                      for j, letter in enumerate(letters)]
            if position in marks.unmeasured:
                parts.append(f'<rect class="unmeasured" x="{x}" y="{y0}" width="{cell - 1}" '
                             f'height="{cell * len(letters) - 1}" fill="url(#{HATCH})"/>')
    return write_svg(parts, path)
