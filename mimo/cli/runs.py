"""`mimo report` and `mimo predict`: read fitted runs."""
from __future__ import annotations

from pathlib import Path

import click

from mimo.pipeline.writes import write_atomic, write_csv, write_text

from mimo.cli._common import DataError, ensure_writable, main, reports_data_errors


@main.command("report")
@click.argument("runs", nargs=-1, type=click.Path(exists=True))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Also write the table as CSV.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the markdown table to a file.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Also write one self-contained HTML page (table, metrics, per-fold figures, pictures, plates) "
              "to share: it needs no network.")
@reports_data_errors
def report_cmd(runs, csv_path, md_path, html_path) -> None:
    """Gather run directories into one table (default: every run under ./runs); a campaign folder (`mimo design
    start`) alone: its rounds, and with --html its page."""
    from mimo.models.report.tables import runs_table
    from mimo.models.runs.fit import DEFAULT_ROOT, is_run_dir, load_run

    for path, option in ((csv_path, "--csv"), (md_path, "--markdown"), (html_path, "--html")):
        if path:
            ensure_writable(path, option)  # before the table is printed

    if len(runs) == 1 and (Path(runs[0]) / "campaign.json").is_file():  # a campaign: its rounds, not one run
        from mimo.campaign import history, load_campaign
        from mimo.campaign_page import write_campaign_page

        campaign = load_campaign(runs[0])
        _tables(history(campaign), csv_path, md_path)
        if html_path:
            write_campaign_page(campaign, html_path)
            click.echo(f"written: {html_path}", err=True)
        return
    if not runs:
        runs = sorted(str(p) for p in Path(DEFAULT_ROOT).glob("*") if is_run_dir(p))
        if not runs:
            raise DataError(f"no runs under {DEFAULT_ROOT}/; name run directories, or fit one with `mimo fit`")
    skipped = [r for r in runs if not is_run_dir(r)]
    for path in skipped:
        click.echo(f"note: {path} is not a run directory (no metrics.json and source.json); skipped", err=True)
    runs = [r for r in runs if r not in skipped]
    if not runs:
        raise DataError("none of the paths is a run directory")
    loaded = []
    for path in runs:  # one damaged run does not hide the others
        try:
            loaded.append(load_run(path))
        except DataError as exc:
            if len(runs) == 1:
                raise
            click.echo(f"note: skipped, {exc.cli_message()}", err=True)
    if not loaded:
        raise DataError("none of the run directories could be read (see the notes above)")
    _tables(runs_table(loaded), csv_path, md_path)
    if html_path:
        from mimo.models.report.html import write_html_report

        write_html_report(loaded, html_path)
        click.echo(f"written: {html_path}", err=True)


def _tables(table, csv_path, md_path) -> None:
    """The table printed as markdown, and written as CSV (cells safe for a spreadsheet) and markdown if asked."""
    from mimo.models.report.tables import csv_safe, to_markdown

    markdown = to_markdown(table)
    click.echo(markdown)
    if csv_path:
        write_csv(csv_safe(table), csv_path)
    if md_path:
        write_text(md_path, markdown + "\n")


@main.command("predict")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="A run directory of `mimo fit`.")
@click.option("--variants", type=click.Path(), default=None,
              help="Mutation strings against the run's parent: one a line, or a CSV/TSV with a 'mutant' column.")
@click.option("--mutant-col", default=None, help="The column of --variants holding mutation strings (default: mutant, "
              "mutations, variant, ...).")
@click.option("--fasta", type=click.Path(), default=None, help="Full sequences to score.")
@click.option("--scores", type=click.Path(), default=None,
              help="For a run on external scores (scores:FILE): a file with the same score columns for the new "
              "variants (default: the file the cache was built from).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="CSV to write (default: standard output).")
@click.option("--device", default="auto", show_default=True, help="Device for any embedding needed.")
@reports_data_errors
def predict_cmd(run_dir, variants, mutant_col, fasta, scores, out, device) -> None:
    """Predict new variants with a fitted run; embeds whatever is not in the cache."""
    from mimo.models.runs.directory import check_outside_run
    from mimo.pipeline.runtime import threads
    from mimo.pipeline.runtime.progress import StatusLine
    from mimo.predict import PredictionStream

    if out:
        ensure_writable(out, "--out")
        check_outside_run(out, run_dir, "--out")
    threads.adapt()  # the command's thread policy (main turned it on); the library never sets threads
    stream = PredictionStream(run_dir, variants, fasta, device, mutant_col, scores)
    progress = StatusLine(log=False)  # variants predicted so far, on a terminal
    show = bool(out) or not click.get_text_stream("stdout").isatty()  # not between lines of the CSV itself

    def chunks():
        for table in stream:
            threads.adapt()  # the machine's load may have changed (rate-limited)
            yield table
            if show and stream.chunk < stream.n:
                progress.show(f"predicted {stream.counts['rows']:,} of {stream.n:,} variants")

    try:
        if out:
            write_atomic(out, lambda tmp: _write_chunks(chunks(), tmp))
        else:
            for k, table in enumerate(chunks()):
                click.echo(table.to_csv(index=False, header=k == 0), nl=False)
    finally:
        progress.close()
    for line in stream.warnings:
        click.echo(line, err=True)
    if out:
        click.echo(f"{stream.counts['rows']} predictions ({stream.counts['in_cache']} from the cache) written to {out}")


def _write_chunks(tables, path) -> None:
    """Tables into one CSV at ``path``, a chunk at a time."""
    with open(path, "w", newline="") as handle:
        for k, table in enumerate(tables):
            table.to_csv(handle, index=False, header=k == 0)
