"""`mimo design scan|propose`: choose the next experiment from a fitted run."""
from __future__ import annotations

from pathlib import Path

import click

from mimo.pipeline.writes import write_csv

from mimo.cli._common import DataError, ensure_writable, main, reports_data_errors


@main.group()
def design() -> None:
    """Choose the next experiment from a fitted run."""


def _refresh_report(run_dir: str) -> None:
    """The run's report.html again, now with the scan or the plate (only where the run has its page)."""
    from mimo.models.report.html import REPORT_FILE, write_html_report
    from mimo.models.runs.fit import load_run

    page = Path(run_dir) / REPORT_FILE
    if page.exists():
        write_html_report([load_run(run_dir)], page, names=[Path(run_dir).resolve().name])


def _share(record: dict) -> str:
    """--max-share as the plate applied it: at least one well (design.choose_plate), so on a small plate more."""
    share, n = record["max_share"], record["requested"]
    wells = max(1, int(share * n))
    if wells <= share * n + 1e-9:
        return f"{share:.0%}"
    return f"{wells} well ({wells / n:.0%}; --max-share {share:g} of {n} wells rounds up to one)"


def _one_run(argument, option) -> str:
    if (argument is None) == (option is None):
        raise DataError("name the run once: as the argument RUN or with --run")
    run = argument or option
    if not Path(run).is_dir():  # before any output path under it is checked (it would blame --out)
        raise DataError("no such run directory (a folder `mimo fit` wrote)", run)
    return run


def _best_line(record: dict) -> str:
    """Best predicted against best measured, worded for what a prediction above every label can mean."""
    best, measured = record["best_predicted"], record["best_measured"]
    if best <= measured:
        return f"best predicted {best:.3f}, not above the best measured {measured:.3f}"
    why = ("; the best is unlike the training rows (column unlike_training), where the interval is not calibrated"
           if record.get("best_predicted_unlike_training") else "")
    return (f"best predicted {best:.3f} against best measured {measured:.3f}: {record['above_best_measured']} "
            f"well(s) predicted above it, a guess to test, not evidence that any is better than every measured "
            f"variant{why}")


def _shift_lines(shift: dict, what: str) -> None:
    """The run-level line of the check of rows unlike the training rows (mimo.models.runs.shift), if any."""
    from mimo.predict import left_empty_note

    if shift.get("warning"):
        click.echo(f"warning: {shift['warning']}", err=True)
    elif shift.get("not_checked"):
        click.echo(f"note: not checked whether these {what} are drawn like the training rows: "
                   f"{shift['not_checked']} (column unlike_training left empty)", err=True)
    elif left_empty_note(shift, what):
        click.echo(left_empty_note(shift, what), err=True)


@design.command("scan")
@click.argument("run_path", required=False, type=click.Path(file_okay=False))
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="A run directory of `mimo fit` (or the argument).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="CSV to write (default: RUN/scan.csv).")
@click.option("--figure", type=click.Path(dir_okay=False), default=None,
              help="Heatmap to write, .svg, .png or .pdf (default: RUN/scan.svg).")
@click.option("--device", default="auto", show_default=True, help="Device for any embedding needed.")
@reports_data_errors
def design_scan(run_path, run_dir, out, figure, device) -> None:
    """Score every single substitution of the parent (19 x length): CSV and heatmap."""
    from mimo.design import is_measured, measured_keys, plot_scan, saturation_scan
    from mimo.models.runs.fit import load_run

    from mimo.models.runs.directory import check_outside_run
    from mimo.pipeline.runtime import threads

    run_dir = _one_run(run_path, run_dir)
    out = out or str(Path(run_dir) / "scan.csv")
    figure = figure or str(Path(run_dir) / "scan.svg")
    for path, option in ((out, "--out"), (figure, "--figure")):
        ensure_writable(path, option)  # first: it says a name too long for the file system in one line
        check_outside_run(path, run_dir, option)
    threads.adapt()  # the command's thread policy (the library never sets threads)
    table = saturation_scan(run_dir, device)
    write_csv(table, out)
    plot_scan(run_dir, table, figure)
    run = load_run(run_dir)
    measured = is_measured(table["mutations"], measured_keys(run.predictions(["mutations"])["mutations"]))
    best = table[~measured].sort_values("prediction", ascending=False).head(5)
    left = f" ({int(measured.sum())} measured singles left out of this list)" if measured.any() else ""
    click.echo(f"{len(table)} single substitutions scored ({int(table['no_signal'].sum())} without signal from the "
               f"features); best not yet measured: {', '.join(best['mutations'])}{left}")
    _shift_lines(table.attrs.get("shift", {}), "substitutions")
    _refresh_report(run_dir)
    click.echo(f"written: {out}, {figure}")


@design.command("propose")
@click.argument("run_path", required=False, type=click.Path(file_okay=False))
@click.option("--run", "run_dir", type=click.Path(file_okay=False),
              help="A run directory of `mimo fit` (or give it as the argument RUN).")
@click.option("--n", "n", type=click.IntRange(min=1), default=96, show_default=True, help="Variants to propose.")
@click.option("--max-mutations", type=click.IntRange(min=1, max=6), default=None,
              help="Most substitutions in a proposed variant (combinations of the best singles). Default: the most "
              "the run was trained on; more is extrapolation, allowed with a warning.")
@click.option("--measured", type=click.Path(), default=None,
              help="More variants already measured (mutation strings, one a line or a CSV/TSV column): never "
              "proposed.")
@click.option("--mutant-col", default=None, help="The column of --measured holding mutation strings (default: "
              "mutant, mutations, variant, ...).")
@click.option("--acquisition", type=click.Choice(["ucb", "greedy", "ei", "ts"]), default="ucb", show_default=True,
              help="ucb: mean + beta x sd; greedy: mean; ei: expected improvement over the best measured label; "
              "ts: batch Thompson sampling on a gp run's joint posterior (wells that account for each other). "
              "Variants without signal are ranked by their mean alone and get the --explore wells.")
@click.option("--beta", type=float, default=2.0, show_default=True, help="UCB's weight on the calibrated sd.")
@click.option("--max-share", type=click.FloatRange(min=0, min_open=True, max=1), default=0.25, show_default=True,
              help="No substitution in more than this share of the batch.")
@click.option("--max-per-position", type=click.IntRange(min=1), default=4, show_default=True,
              help="No position in more than this many wells.")
@click.option("--explore", type=click.IntRange(min=0), default=4, show_default=True,
              help="Wells for variants the run has no signal for (never more, however wide their interval).")
@click.option("--multi-share", type=click.FloatRange(min=0, max=1), default=0.5, show_default=True,
              help="With --max-mutations above 1: the share of the other wells for multi-mutants (the rest "
              "singles; one kind short, the other fills).")
@click.option("--top-singles", type=click.IntRange(min=1), default=40, show_default=True,
              help="Combinations are made of this many best singles with signal (by the acquisition), and the "
              "measured singles above the median label.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of --acquisition ts.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Plate CSV (default: RUN/proposal.csv).")
@click.option("--device", default="auto", show_default=True, help="Device for any embedding needed.")
@reports_data_errors
def design_propose(run_path, run_dir, n, max_mutations, measured, mutant_col, acquisition, beta, max_share,
                   max_per_position, explore, multi_share, top_singles, seed, out, device) -> None:
    """Propose a diverse batch of unmeasured variants, ranked by an acquisition using the run's uncertainty.

    Under torchrun (e.g. `torchrun --nproc_per_node=4 -- $(which mimo) design propose RUN ...`; the `--` keeps
    torchrun from reading --n and --run as its own options) the candidates are scored across the processes, one
    GPU each; rank 0 writes the plate.
    """
    from mimo.design import propose
    from mimo.pipeline.runtime.ranks import Ranks

    from mimo.models.runs.directory import check_outside_run
    from mimo.pipeline.runtime import threads

    run_dir = _one_run(run_path, run_dir)
    out = out or str(Path(run_dir) / "proposal.csv")
    ensure_writable(out, "--out")  # first: it says a name too long for the file system in one line
    check_outside_run(out, run_dir, "--out")
    threads.adapt()  # the command's thread policy (the library never sets threads)
    ranks = Ranks.from_environment()
    try:
        batch, record = propose(run_dir, n, max_mutations, measured, acquisition, beta, max_share, device,
                                top_singles, ranks, max_per_position=max_per_position, explore=explore,
                                multi_share=multi_share, seed=seed, mutant_col=mutant_col)
    finally:
        ranks.close()
    if not ranks.is_main:
        return
    write_csv(batch, out)
    plate_lines(record)
    _refresh_report(run_dir)
    click.echo(f"written: {out}")


def plate_lines(record: dict) -> None:
    """What a plate's record says, on the terminal (propose, and each campaign round)."""
    max_share = record["max_share"]
    if record["max_mutations"] > record["trained_max_mutations"]:
        click.echo(f"warning: --max-mutations {record['max_mutations']} but the run was trained on at most "
                   f"{record['trained_max_mutations']} substitution(s): the {record['extrapolation']} wells with more "
                   f"(column extrapolation) are predicted for variants unlike any the model saw", err=True)
    click.echo(f"{record['filled']} variants proposed from {record['candidates_scored']:,} candidates "
               f"(acquisition {record['acquisition']}; uncertainty: {record['uncertainty']}; no substitution in "
               f"more than {_share(record)} of the batch; {record['measured_excluded']:,} measured variants excluded)")
    shift = record["unlike_training"]
    unlike = "" if shift["flagged"] is None else f", {shift['flagged']} unlike the training rows"
    why = ", ".join(f"{v} {k}" for k, v in record["why"].items())
    click.echo(f"plate: {record['singles']} singles, {record['multi']} multi-mutants; {why}; at most "
               f"{record['most_per_position']} wells per position; {record['without_signal']} of {record['filled']} "
               f"without signal, {record['extrapolation']} extrapolated{unlike}; {_best_line(record)}")
    if record.get("batch"):
        click.echo(record["batch"])
    _shift_lines(shift, "wells")
    if record["without_signal"]:
        click.echo(f"note: {record['without_signal']} wells (column why: explore) carry substitutions or positions "
                   f"the run's features give no signal for (column no_signal): their predictions are the training "
                   f"mean; they are there to learn, at most --explore {record['explore']} of them", err=True)
    if "short" in record:
        click.echo(f"warning: {record['short']}", err=True)


_PLATE_FLAGS = {"n": "--n", "max_mutations": "--max-mutations", "acquisition": "--acquisition", "beta": "--beta",
                "max_share": "--max-share", "max_per_position": "--max-per-position", "explore": "--explore",
                "multi_share": "--multi-share", "top_singles": "--top-singles", "seed": "--seed"}


def _round_lines(campaign, batch, record, k: int) -> None:
    plate_lines(record)
    click.echo(f"round {k}: {campaign.rounds[-1]['rows']} variants measured so far; plate: "
               f"{campaign.folder / campaign.rounds[-1]['plate']}")


@design.command("start")
@click.argument("campaign_dir", type=click.Path(file_okay=False))
@click.option("--input", "input_file", type=click.Path(), required=True,
              help="CSV/TSV of the variants measured so far with the assay's score (a handful is enough).")
@click.option("--parent", required=True, help="The parent sequence (FASTA file or sequence).")
@click.option("--mutant-col", default=None, help="The column of mutation strings (default: mutant, mutations, ...).")
@click.option("--score-col", default=None, help="The assay's column (default: DMS_score, score, fitness, ...); "
              "results files give it under the same name.")
@click.option("--head", default="gp", show_default=True, help="The head every round fits (mimo fit HEAD).")
@click.option("--features", default="onehot-sites+aaprops", show_default=True, help="Features, joined with +.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A parameter of the head (repeat).")
@click.option("--n", "n", type=click.IntRange(min=1), default=96, show_default=True, help="Wells per plate.")
@click.option("--max-mutations", type=click.IntRange(min=1, max=6), default=None,
              help="Up to this many substitutions per well (default: the most the data has).")
@click.option("--acquisition", type=click.Choice(["ucb", "greedy", "ei", "ts"]), default="ucb", show_default=True,
              help="As `design propose`; ts (batch Thompson sampling) needs --head gp.")
@click.option("--beta", type=float, default=2.0, show_default=True, help="UCB's weight on the calibrated sd.")
@click.option("--max-share", type=click.FloatRange(min=0, min_open=True, max=1), default=0.25, show_default=True)
@click.option("--max-per-position", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--explore", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--multi-share", type=click.FloatRange(min=0, max=1), default=0.5, show_default=True)
@click.option("--top-singles", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@reports_data_errors
def design_start(campaign_dir, input_file, parent, mutant_col, score_col, head, features, params, **plate) -> None:
    """Start a campaign in CAMPAIGN_DIR: round 0's model and plate (CAMPAIGN_DIR/round-0/plate.csv).

    The settings (head, features, plate options) are kept for every round; run it again to resume an
    interrupted start."""
    from mimo.campaign import start
    from mimo.models.estimators.external import parse_params

    try:
        head_params = parse_params(params)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    options = {"n": plate["n"], "acquisition_kind": plate["acquisition"], "beta": plate["beta"],
               "max_share": plate["max_share"], "top": plate["top_singles"],
               "max_per_position": plate["max_per_position"], "explore": plate["explore"],
               "multi_share": plate["multi_share"], "seed": plate["seed"]}
    if plate["max_mutations"] is not None:
        options["max_mutations"] = plate["max_mutations"]
    campaign, batch, record = start(campaign_dir, input_file, parent, head=head, features=features,
                                    head_params=head_params, mutant_col=mutant_col, score_col=score_col,
                                    plate=options)
    _round_lines(campaign, batch, record, 0)
    click.echo(f"measure the plate, then: mimo design round {campaign_dir} --measured RESULTS.csv "
               f"(columns well or mutant, and {campaign.assay})")


@design.command("round")
@click.argument("campaign_dir", type=click.Path(file_okay=False))
@click.option("--measured", type=click.Path(), required=True,
              help="Results for the last plate: a well or mutant column and the assay's column (wells not "
              "measured left out).")
@reports_data_errors
def design_round(campaign_dir, measured) -> None:
    """Add the last plate's results, refit with the campaign's settings and propose the next plate.

    Run it again after a crash to resume; results already added, or not matching the plate, are refused."""
    from mimo.campaign import next_round

    campaign, batch, record = next_round(campaign_dir, measured)
    _round_lines(campaign, batch, record, campaign.rounds[-1]["round"])


@design.command("report")
@click.argument("campaign_dir", type=click.Path(file_okay=False))
@click.option("--html", "html", type=click.Path(dir_okay=False), default=None,
              help="The page to write (default: CAMPAIGN_DIR/campaign.html).")
@reports_data_errors
def design_report(campaign_dir, html) -> None:
    """The campaign per round: best measured, each plate's hit rate, predicted vs measured (table and page)."""
    from mimo.campaign import history, load_campaign
    from mimo.campaign_page import write_campaign_page
    from mimo.models.report.tables import to_markdown

    campaign = load_campaign(campaign_dir)
    html = html or str(Path(campaign_dir) / "campaign.html")
    ensure_writable(html, "--html")
    click.echo(to_markdown(history(campaign)))
    write_campaign_page(campaign, html)
    click.echo(f"written: {html}")
