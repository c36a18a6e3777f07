"""One self-contained HTML page for one or more runs: `mimo report --html FILE`, and ``report.html`` in every run
directory. A page to share: no network needed (no external CSS, scripts, fonts or addresses; the run's SVG
pictures inline as ``data:`` URIs), every string escaped, written atomically.

It holds the runs table (``mimo report``'s), then per run: what the run says (headline, intervals, notes and
warnings), its metrics by part (and by mutation count), the per-fold figures under cross-validation, `fit auto`'s
leaderboard, every picture of the run directory, and a design run's plate (``proposal.csv``) as a table.

To look at a page as a reader will (the check made before a change to it is called done)::

    apt-get install -y chromium
    chromium --headless --no-sandbox --disable-gpu --screenshot=/tmp/report.png --window-size=1200,2000 \\
        file:///path/report.html
"""
from __future__ import annotations

import base64
import math
from datetime import datetime
from html import escape
from pathlib import Path

import pandas as pd

from mimo.models.report.summary import is_cv
from mimo.pipeline.writes import write_text

REPORT_FILE = "report.html"
PICTURES = ("test_predictions.svg", "loss_curve.svg", "scan.svg")  # first, in this order; any other .svg after
STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-top: 1px solid #ccc; padding-top: .8em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
table { border-collapse: collapse; font-size: .85em; margin: .4em 0 1em; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; }
th { background: #f2f2f2; } td.text { text-align: left; }
.scroll { overflow-x: auto; max-height: 32em; overflow-y: auto; }
.warning { color: #a00; } .note { color: #555; } .lines p { margin: .2em 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .8em; color: #555; }
"""


def cell(value) -> str:
    """A table cell's text: numbers to 4 significant digits; missing (None, NaN) as a dash."""
    if value is None or value is pd.NA:
        return "\u2013"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "\u2013"
    return escape(str(value))


def html_table(frame: pd.DataFrame) -> str:
    """An escaped table of ``frame`` (numbers right-aligned, text left)."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        body.append("<tr>" + "".join(
            f'<td class="text">{cell(v)}</td>' if isinstance(v, str) else f"<td>{cell(_plain(v))}</td>"
            for v in row) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _plain(value):
    """numpy scalars as Python numbers (a float NaN stays a float)."""
    return value.item() if hasattr(value, "item") else value


def picture(path: Path) -> str:
    """An SVG file as an image inline (a ``data:`` URI: its ids cannot clash with another picture's)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{escape(path.name)}" src="data:image/svg+xml;base64,{data}"/>'
            f"<figcaption>{escape(path.name)}</figcaption></figure>")


def _lines(lines: list[str]) -> str:
    kinds = ("warning", "note")
    return '<div class="lines">' + "".join(
        f'<p class="{next((k for k in kinds if line.startswith(k)), "line")}">{escape(line)}</p>'
        for line in lines) + "</div>"


def metrics_table(metrics: dict) -> pd.DataFrame:
    """n, MSE, Spearman, Pearson and (where calibrated) 95% interval coverage and width, per part."""
    intervals = metrics.get("uncertainty", {}).get("interval", {})
    rows = []
    for part in ("train", "valid", "test"):
        if part in metrics:
            m, i = metrics[part], intervals.get(part, {})
            name = "out-of-fold (pooled)" if part == "test" and is_cv(metrics) else part
            rows.append({"part": name, "n": m.get("n"), "MSE": m.get("mse"), "Spearman": m.get("spearman"),
                         "Pearson": m.get("pearson"), "95% interval coverage": i.get("coverage"),
                         "95% interval width": i.get("mean_width")})
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def by_mutations_table(metrics: dict) -> pd.DataFrame | None:
    by = metrics.get("test", {}).get("by_mutations")
    if not by:
        return None
    return pd.DataFrame([{"mutations": k, "n": v.get("n"), "MSE": v.get("mse"), "Spearman": v.get("spearman")}
                         for k, v in by.items()])


def leaderboard_table(metrics: dict) -> pd.DataFrame | None:
    """`fit auto`'s candidates, best first, with what happened to each (chosen, skipped and why)."""
    auto = metrics.get("auto")
    if not auto or not auto.get("candidates"):
        return None
    from mimo.models.estimators.auto import describe

    chosen = describe(auto["chosen"]) if auto.get("chosen") else None
    rows = [{"candidate": describe(c), "valid Spearman": c.get("valid_spearman"), "seconds": c.get("seconds"),
             "": "chosen" if describe(c) == chosen else c.get("skipped", "")} for c in auto["candidates"]]
    table = pd.DataFrame(rows)
    order = table["valid Spearman"].astype(float).fillna(-math.inf).sort_values(ascending=False, kind="stable")
    return table.loc[order.index]


def _section(title: str, body: str | None) -> str:
    return f"<h3>{escape(title)}</h3>{body}" if body else ""


def _optional_table(frame: pd.DataFrame | None) -> str | None:
    return None if frame is None or frame.empty else html_table(frame)


def run_section(run, name: str) -> str:
    """One run (a ``Run``: its directory, metrics and source): what it says, its tables, its pictures, its plate."""
    from mimo.models.report.summary import run_notes, summary_line, uncertainty_lines

    directory = Path(run.directory)
    m = run.metrics
    per_fold = pd.DataFrame(m["per_fold"]) if m.get("per_fold") else None
    plate = directory / "proposal.csv"
    selection = m.get("auto", {}).get("selection")
    parts = [f'<h2 id="{escape(name)}">{escape(name)}</h2>',
             _lines([summary_line(m), *uncertainty_lines(m), *run_notes(m, run.source)]),
             _section("metrics", html_table(metrics_table(m))),
             _section("test rows by mutation count" if "cv" not in m else "out-of-fold rows by mutation count",
                      _optional_table(by_mutations_table(m))),
             _section("per fold", _optional_table(per_fold)),
             _section("fit auto: candidates" + (f" (scored by {selection})" if selection else ""),
                      _optional_table(leaderboard_table(m))),
             _section("pictures", "".join(picture(p) for p in _pictures(directory))),
             _section("plate (proposal.csv)", html_table(_read_plate(plate)) if plate.is_file() else None)]
    return "\n".join(p for p in parts if p)


def _pictures(directory: Path) -> list[Path]:
    found = sorted(directory.glob("*.svg"))
    return sorted(found, key=lambda p: PICTURES.index(p.name) if p.name in PICTURES else len(PICTURES))


def _read_plate(path: Path) -> pd.DataFrame:
    from mimo.pipeline.errors import DataError

    try:
        return pd.read_csv(path, dtype={"well": str, "mutations": str}, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the run's plate ({exc})", path) from None


def report_page(runs: list, names: list[str] | None = None) -> str:
    """The whole page for ``runs`` (``Run`` objects, shown under ``names``, default each directory's name)."""
    from mimo._version import __version__
    from mimo.models.report.tables import runs_table

    names = names or [Path(run.directory).name for run in runs]
    table = runs_table(runs).assign(run=names)
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    title = f"mimo report: {names[0]}" if len(names) == 1 else f"mimo report: {len(names)} runs"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"/>', f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>",
        f'<p class="note">written {stamp} by mimo {escape(str(__version__))}; figures are the runs\' own '
        f"(metrics.json, predictions.csv), pictures as the run directories hold them</p>",
        "<h2>runs</h2>", html_table(table),
        *(run_section(r, n) for r, n in zip(runs, names)), "</body></html>", ""])


def write_html_report(runs: list, path: str | Path, names: list[str] | None = None) -> Path:
    """``report_page`` written atomically at ``path``, in ASCII (any other character as a reference: the page
    reads the same whatever the locale's encoding)."""
    return write_text(path, report_page(runs, names).encode("ascii", "xmlcharrefreplace").decode("ascii"))
