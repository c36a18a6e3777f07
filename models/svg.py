"""A small SVG line chart: the loss curve of a run, without matplotlib's 0.6 s of import and rendering."""
from __future__ import annotations

import math
from html import escape
from pathlib import Path

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


def line_chart(x: list[float], series: dict[str, list[float]], path: str | Path, title: str = "",
               xlabel: str = "", ylabel: str = "", marker: tuple[float, str] | None = None,
               dashed: tuple[str, ...] = (), width: int = 720, height: int = 420) -> Path:
    """Write one SVG with a line per series over ``x``; ``marker`` = (x, label) draws a dotted vertical line."""
    left, right, top, bottom = 70, 20, 40, 50
    values = [v for ys in series.values() for v in ys if v == v]  # NaN-free
    y_low, y_high = (min(values), max(values)) if values else (0.0, 1.0)
    x_low, x_high = (min(x), max(x)) if x else (0.0, 1.0)
    x_high = x_high if x_high > x_low else x_low + 1
    y_high = y_high if y_high > y_low else y_low + 1

    def px(v: float) -> float:
        return left + (v - x_low) / (x_high - x_low) * (width - left - right)

    def py(v: float) -> float:
        return height - bottom - (v - y_low) / (y_high - y_low) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="13">{escape(title)}</text>',
             f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">{escape(xlabel)}</text>',
             f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
             f'transform="rotate(-90 16 {(top + height - bottom) / 2})">{escape(ylabel)}</text>',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
             f'fill="none" stroke="black"/>']
    for t in nice_ticks(y_low, y_high):
        parts.append(f'<line x1="{left - 4}" x2="{left}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="black"/>'
                     f'<text x="{left - 7}" y="{py(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in nice_ticks(x_low, x_high):
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{height - bottom}" y2="{height - bottom + 4}" '
                     f'stroke="black"/><text x="{px(t):.1f}" y="{height - bottom + 17}" '
                     f'text-anchor="middle">{t:g}</text>')
    legend = []
    for i, (name, ys) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        dash = ' stroke-dasharray="6 4"' if name in dashed else ""
        points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, ys) if b == b)
        parts.append(f'<polyline class="series" fill="none" stroke="{color}" stroke-width="1.8"{dash} '
                     f'points="{points}"/>')
        legend.append((name, color, dash))
    if marker is not None:
        parts.append(f'<line class="marker" x1="{px(marker[0]):.1f}" x2="{px(marker[0]):.1f}" y1="{top}" '
                     f'y2="{height - bottom}" stroke="grey" stroke-dasharray="2 3"/>')
        legend.append((marker[1], "grey", ' stroke-dasharray="2 3"'))
    for i, (name, color, dash) in enumerate(legend):
        y = top + 16 + 18 * i
        parts.append(f'<line x1="{width - right - 230}" x2="{width - right - 205}" y1="{y - 4}" y2="{y - 4}" '
                     f'stroke="{color}" stroke-width="1.8"{dash}/><text x="{width - right - 198}" y="{y}">'
                     f'{escape(name)}</text>')
    parts.append("</svg>")
    path = Path(path)
    path.write_text("\n".join(parts) + "\n")
    return path
