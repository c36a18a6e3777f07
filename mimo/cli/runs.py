"""`mimo report` and `mimo predict`: read fitted runs."""
from __future__ import annotations

from pathlib import Path

import click

from mimo.pipeline.writes import write_csv, write_text

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
    """Gather run directories into one table (default: every run under ./runs)."""
    from mimo.models.report.tables import csv_safe, runs_table, to_markdown
    from mimo.models.runs.fit import DEFAULT_ROOT, is_run_dir, load_run

    for path, option in ((csv_path, "--csv"), (md_path, "--markdown"), (html_path, "--html")):
        if path:
            ensure_writable(path, option)  # before the table is printed

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
    loaded = [load_run(r) for r in runs]
    table = runs_table(loaded)
    markdown = to_markdown(table)
    click.echo(markdown)
    if csv_path:
        write_csv(csv_safe(table), csv_path)
    if md_path:
        write_text(md_path, markdown + "\n")
    if html_path:
        from mimo.models.report.html import write_html_report

        write_html_report(loaded, html_path)
        click.echo(f"written: {html_path}", err=True)


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
    from mimo.predict import predict_variants

    if out:
        ensure_writable(out, "--out")
    table = predict_variants(run_dir, variants, fasta, device, mutant_col, scores)
    unseen = int((table["unseen"].fillna(0) > 0).sum())
    if unseen:
        blind = int(table["no_signal"].sum())
        detail = (f"; {blind} of them get no signal from the run's features (no_signal: those substitutions "
                  f"add nothing to the prediction, so a single one is predicted at the training labels' mean; its "
                  f"interval spans the training labels)" if blind else
                  "; their predictions extrapolate from the features")
        click.echo(f"warning: {unseen} of {len(table)} variants carry substitutions never measured in training "
                   f"(column unseen){detail}", err=True)
    from mimo.models.runs.fit import load_run

    top = load_run(run_dir).support.label_range[1]
    above = int((table["prediction"] > top).sum())
    if above:
        click.echo(f"note: {above} of {len(table)} variants are predicted above the best training label ({top:.3f}): "
                   f"a guess to test, not evidence that they are better than every measured variant", err=True)
    shift = table.attrs.get("shift", {})
    if shift.get("warning"):
        click.echo(f"warning: {shift['warning']}", err=True)
    elif shift.get("not_checked"):
        click.echo(f"note: not checked whether these variants are drawn like the training rows: "
                   f"{shift['not_checked']} (column unlike_training left empty)", err=True)
    if out:
        write_csv(table, out)
        click.echo(f"{len(table)} predictions ({int(table['in_cache'].sum())} from the cache) written to {out}")
    else:
        click.echo(table.to_csv(index=False), nl=False)
