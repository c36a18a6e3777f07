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
import io
import math
import os
import stat
from datetime import datetime
from html import escape
from pathlib import Path

import pandas as pd

from mimo.models.report.summary import is_cv
from mimo.models.report.tables import held_out_metrics, key_table, messages, runs_table
from mimo.pipeline.writes import write_text

REPORT_FILE = "report.html"
PICTURES = ("test_predictions", "loss_curve", "scan")  # the pictures a run writes, shown in this order
KINDS = (("png", "image/png"), ("svg", "image/svg+xml"))  # the page's PNG, else (runs before it) the SVG
MOST_BYTES = 8_000_000  # a picture larger than this is not one the run wrote
MOST_TABLE_BYTES = 256_000_000  # nor a scan or plate larger than this (a scan of 19 x 10,000 residues is ~40 MB)
STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1320px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-top: 1px solid #ccc; padding-top: .8em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
table { border-collapse: collapse; font-size: .85em; margin: .4em 0 1em; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; }
th { background: #f2f2f2; } td.text { text-align: left; overflow-wrap: anywhere; max-width: 28em; }
table.key { width: 100%; } tr.best td { background: #eef7ee; font-weight: bold; }
.scroll { overflow-x: auto; max-height: 32em; overflow-y: auto; }
details { margin: .3em 0 1em; } summary { cursor: pointer; color: #555; }
.warning { color: #a00; } .note { color: #555; } .lines p { margin: .2em 0; }
.howto { background: #f7f7f7; border-left: 3px solid #999; padding: .5em 1em; font-size: .9em; }
figure { margin: 1em 0; display: inline-block; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .8em; color: #555; }
"""
HOW_TO_READ = (
    "How to read this. Each run is one model fitted on one split of the data. Spearman measures how well the "
    "run ranks variants it never trained on (1 is a perfect order, 0 none): under a fold scheme ('k-fold CV') "
    "every row is predicted by a model that did not see it (out of fold). The 95% interval coverage is the share "
    "of those rows whose measured score fell inside the predicted interval (near 0.95 is honest), and the width "
    "is the interval's mean width in score units (narrower is more decisive). The best run of each split or "
    "scheme on each dataset is marked; runs are comparable only within one scheme, and unseen-position schemes "
    "(modulo, contiguous) are harder than random splits. Warnings sit beside the table or plate they concern: "
    "read them before trusting a number. In the pictures, points on the dashed diagonal are predicted exactly; "
    "in a saturation scan, red is predicted above the centre named under its title and blue below, outlined "
    "cells were measured in training, hatched positions never were.")


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


def run_file(directory: str | Path, name: str, most: int = MOST_BYTES) -> bytes | None:
    """The bytes of the run's own file ``name``: only a regular file directly inside ``directory``, not a symlink,
    not hard-linked elsewhere, not over ``most`` bytes (None for anything else: a FIFO, a directory, a link to
    another file are never opened for reading, let alone embedded). Opened without following a link and without
    blocking, then checked on the open descriptor, so the file checked is the file read."""
    if "/" in name or name in ("", ".", ".."):
        return None
    path = Path(directory) / name
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:  # missing, a symlink (ELOOP), unreadable
        return None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_size > most:
            return None
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            data = handle.read(most + 1)
        return data if len(data) <= most else None
    finally:
        os.close(descriptor)


def pictures(directory: str | Path) -> list[tuple[str, str, bytes]]:
    """The run's pictures to embed, as (file name, media type, bytes), in ``PICTURES`` order: each one's PNG, else
    its SVG; only files ``run_file`` accepts (no other file of the directory is ever read)."""
    found = []
    for stem in PICTURES:
        for suffix, media in KINDS:
            data = run_file(directory, f"{stem}.{suffix}")
            start = data[:8 if suffix == "png" else 512].lstrip()[:5] if data is not None else b""
            if start in ((b"\x89PNG\r",) if suffix == "png" else (b"<?xml", b"<svg ")):  # what its name says
                found.append((f"{stem}.{suffix}", media, data))
                break
    return found


def refused_files(directory: str | Path, shown: set[str]) -> list[str]:
    """The names a run writes (pictures, plate, scan) that are present in ``directory`` but were not read: not
    ``run_file``'s kind of file, or a picture not what its name says."""
    names = [f"{stem}.{suffix}" for stem in PICTURES for suffix, _ in KINDS] + ["proposal.csv", "scan.csv"]
    out = []
    for name in names:
        if name in shown or not os.path.lexists(Path(directory) / name):
            continue
        most = MOST_TABLE_BYTES if name.endswith(".csv") else MOST_BYTES
        if name.endswith(".csv") and run_file(directory, name, most) is not None:
            continue
        if not name.endswith(".csv") and any(name.startswith(s.split(".")[0] + ".") for s in shown):
            continue  # the SVG beside a PNG shown
        out.append(name)
    return out


def picture(name: str, media: str, data: bytes) -> str:
    """A picture inline (a ``data:`` URI: its ids cannot clash with another picture's)."""
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure><img alt="{escape(name)}" src="data:{media};base64,{encoded}"/>'
            f"<figcaption>{escape(name)}</figcaption></figure>")


def _lines(lines: list[str]) -> str:
    kinds = ("warning", "note")
    return '<div class="lines">' + "".join(
        f'<p class="{next((k for k in kinds if line.startswith(k)), "line")}">{escape(line)}</p>'
        for line in lines) + "</div>"


def metrics_table(metrics: dict) -> pd.DataFrame:
    """n, MSE, Spearman, Pearson and (where calibrated) 95% interval coverage and width, per part."""
    intervals = metrics.get("uncertainty", {}).get("interval", {})
    rows = []
    for part in ("train", "valid", "test", "oof"):  # "oof": out-of-fold figures, in runs that name them so
        if part in metrics:
            m, i = metrics[part], intervals.get(part, {})
            name = "out-of-fold (pooled)" if part == "oof" or (part == "test" and is_cv(metrics)) else part
            rows.append({"part": name, "n": m.get("n"), "MSE": m.get("mse"), "Spearman": m.get("spearman"),
                         "Pearson": m.get("pearson"), "95% interval coverage": i.get("coverage"),
                         "95% interval width": i.get("mean_width")})
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def by_mutations_table(metrics: dict) -> pd.DataFrame | None:
    by = held_out_metrics(metrics).get("by_mutations")
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


def plate_messages(plate: pd.DataFrame, record: dict | None) -> list[str]:
    """What `design propose` warned about its plate, read again from the plate's own columns (wells without
    signal, extrapolated, unlike the training rows), and any warnings or notes of a ``proposal.json`` record."""
    lines = list(messages(record or {}))

    def flagged(column: str) -> int:
        if column not in plate:
            return 0
        return int(plate[column].astype(str).str.lower().isin(("true", "1", "1.0")).sum())

    def wells(n: int, one: str, many: str) -> str:
        return f"{n} well {one}" if n == 1 else f"{n} wells {many}"

    if flagged("no_signal"):
        lines.append(f"warning: {flagged('no_signal')} of {len(plate)} wells carry substitutions or positions the "
                     f"run's features give no signal for (column no_signal): their rank comes from the interval alone")
    if flagged("extrapolation"):
        lines.append(f"warning: {wells(flagged('extrapolation'), 'has', 'have')} more substitutions than any training "
                     f"row (column extrapolation): predicted for variants unlike any the model saw")
    if flagged("unlike_training"):
        lines.append(f"warning: {wells(flagged('unlike_training'), 'is', 'are')} unlike the training rows (column "
                     f"unlike_training): the intervals are not calibrated there")
    return list(dict.fromkeys(lines))


def scan_messages(scan: pd.DataFrame | None, record: dict | None) -> list[str]:
    """What `design scan` said about its heatmap: substitutions without signal, and any warnings or notes of a
    ``scan.json`` record."""
    lines = list(messages(record or {}))
    if scan is not None and "no_signal" in scan:
        blind = int(scan["no_signal"].astype(str).str.lower().isin(("true", "1", "1.0")).sum())
        if blind:
            lines.append(f"note: {blind} of {len(scan)} single substitutions get no signal from the features "
                         f"(grey in the heatmap)")
    return lines


def _record(directory: Path, name: str) -> dict | None:
    import json

    data = run_file(directory, name)
    try:
        record = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _table_file(directory: Path, name: str) -> pd.DataFrame | None:
    """A CSV the run wrote (``run_file``'s checks), or None where there is none."""
    from mimo.pipeline.errors import DataError

    data = run_file(directory, name, MOST_TABLE_BYTES)
    if data is None:
        return None
    try:
        return pd.read_csv(io.BytesIO(data), dtype={"well": str, "mutations": str}, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the run's {name} ({exc})", directory / name) from None


def run_section(run, name: str) -> str:
    """One run (a ``Run``: its directory, metrics and source): what it says and warns, its tables, its pictures
    (the scan's notes beside them), its plate (the plate's warnings above it)."""
    from mimo.models.report.summary import summary_line, uncertainty_lines

    directory = Path(run.directory)
    m = run.metrics
    per_fold = pd.DataFrame(m["per_fold"]) if m.get("per_fold") else None
    plate = _table_file(directory, "proposal.csv")
    scan = _table_file(directory, "scan.csv")
    selection = m.get("auto", {}).get("selection")
    shown = pictures(directory)
    refused = [f"note: {n} is not a regular file of this run (a link, a FIFO, a directory, a hard link or too "
               f"large): not shown" for n in refused_files(directory, {n for n, _, _ in shown})]
    cv = is_cv(m)
    parts = [f'<h2 id="{escape(name)}">{escape(name)}</h2>',
             _lines([summary_line(m), *uncertainty_lines(m), *messages(m, run.source), *refused]),
             _section("metrics", html_table(metrics_table(m))),
             _section("out-of-fold rows by mutation count" if cv else "test rows by mutation count",
                      _optional_table(by_mutations_table(m))),
             _section("per fold", _optional_table(per_fold)),
             _section("fit auto: candidates" + (f" (scored by {selection})" if selection else ""),
                      _optional_table(leaderboard_table(m))),
             _section("pictures", (_lines(scan_messages(scan, _record(directory, "scan.json")))
                                   if any(n.startswith("scan.") for n, _, _ in shown) else "")
                      + "".join(picture(*p) for p in shown) if shown else None),
             _section("plate (proposal.csv)", None if plate is None else
                      _lines(plate_messages(plate, _record(directory, "proposal.json"))) + html_table(plate))]
    return "\n".join(p for p in parts if p)


def runs_overview(runs: list, names: list[str]) -> str:
    """The runs table that fits a page (``tables.key_table``: key columns, the best of each scheme marked, each
    run's warning count linking to its section), then every column folded in a <details>."""
    table = runs_table(runs).assign(run=names)
    key = key_table(runs, names)
    best, tied = key.pop("best").to_numpy(), key.pop("tied").to_numpy()
    head = "".join(f"<th>{escape(str(c))}</th>" for c in key.columns)
    body = []
    for row, is_best, ties, anchor in zip(key.itertuples(index=False), best, tied, names):
        mark = (" &#9733; best" + (f" (tied with {ties})" if ties else "")) if is_best else ""
        cells = []
        for column, value in zip(key.columns, row):
            if column == "run":
                cells.append(f'<td class="text"><a href="#{escape(anchor)}">{cell(value)}</a>{mark}</td>')
            elif isinstance(value, str):
                cells.append(f'<td class="text">{cell(value)}</td>')
            else:
                cells.append(f"<td>{cell(_plain(value))}</td>")
        body.append(("<tr class=\"best\">" if is_best else "<tr>") + "".join(cells) + "</tr>")
    return (f'<table class="key"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            f"<details><summary>all columns ({len(table.columns)})</summary>{html_table(table)}</details>")


def report_page(runs: list, names: list[str] | None = None) -> str:
    """The whole page for ``runs`` (``Run`` objects, shown under ``names``, default each directory's name)."""
    from mimo._version import __version__

    names = names or [Path(run.directory).name for run in runs]
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    title = f"mimo report: {names[0]}" if len(names) == 1 else f"mimo report: {len(names)} runs"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"/>', f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>",
        f'<p class="note">written {stamp} by mimo {escape(str(__version__))}; figures are the runs\' own '
        f"(metrics.json, predictions.csv), pictures as the run directories hold them</p>",
        f'<p class="howto">{escape(HOW_TO_READ)}</p>',
        "<h2>runs</h2>", runs_overview(runs, names),
        *(run_section(r, n) for r, n in zip(runs, names)), "</body></html>", ""])


def write_html_report(runs: list, path: str | Path, names: list[str] | None = None) -> Path:
    """``report_page`` written atomically at ``path``, in ASCII (any other character as a reference: the page
    reads the same whatever the locale's encoding)."""
    return write_text(path, report_page(runs, names).encode("ascii", "xmlcharrefreplace").decode("ascii"))
