"""A campaign's page (`mimo design report CAMPAIGN`): per round the best measured value, each plate's hit rate,
and each plate's predicted against measured values; a figure of both. Built with the run page's helpers
(mimo.models.report.html: escaping, tables, inline SVG, an atomic ASCII write), so it reads like it."""
from __future__ import annotations

import tempfile
from datetime import datetime
from html import escape
from pathlib import Path

import pandas as pd

from mimo.campaign import Campaign, history
from mimo.models.report.html import STYLE, html_table, picture
from mimo.pipeline.writes import write_text


def campaign_figure(campaign: Campaign, path: Path) -> Path:
    """Two panels: best measured so far per round; each measured plate's predicted against measured values."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    table = history(campaign)
    figure = Figure(figsize=(9, 3.8))
    left, right = figure.subplots(1, 2)
    left.plot(table["round"], table["best measured"], marker="o", color="#1f77b4")
    left.set_xlabel("round")
    left.set_ylabel(f"best {campaign.assay} measured so far")
    left.set_xticks(table["round"].tolist())
    left.set_title("best measured per round", fontsize=10)
    shown = False
    for entry in campaign.rounds:
        if not entry.get("measured"):
            continue
        got = pd.read_csv(campaign.folder / entry["measured"]["copy"], dtype={"mutant": str}, keep_default_na=False)
        plate = campaign.plate(entry["round"] - 1).set_index("well")
        right.scatter(plate.loc[got["well"], "prediction"], got[campaign.assay], s=14, alpha=0.7,
                      label=f"plate {entry['round'] - 1}")
        shown = True
    right.set_xlabel("predicted")
    right.set_ylabel(f"measured {campaign.assay}")
    right.set_title("each plate: predicted vs measured", fontsize=10)
    if shown:
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "no plate measured yet", ha="center", va="center", transform=right.transAxes)
    figure.tight_layout()
    figure.savefig(path, format=path.suffix.lstrip(".") or "svg")
    return path


def campaign_page(campaign: Campaign) -> str:
    from mimo._version import __version__

    table = history(campaign)
    title = f"mimo campaign: {campaign.folder.resolve().name}"
    settings = campaign.record["settings"]
    with tempfile.TemporaryDirectory() as scratch:
        drawn = campaign_figure(campaign, Path(scratch) / "campaign.svg")
        figure = picture(drawn.name, "image/svg+xml", drawn.read_bytes())
    rounds = []
    for entry in campaign.rounds:
        plate = campaign.plate(entry["round"])
        counts = plate["why"].value_counts().to_dict() if "why" in plate else {}
        rounds.append({"round": entry["round"], "rows": entry["rows"], "plate": entry["plate"],
                       "wells": len(plate), "singles": int((plate["n_mutations"] == 1).sum()),
                       "multi": int((plate["n_mutations"] > 1).sum()),
                       "exploit/explore/diversity": "/".join(str(counts.get(k, 0))
                                                             for k in ("exploit", "explore", "diversity")),
                       "data SHA-256": entry["data_sha256"][:12], "plate SHA-256": entry["plate_sha256"][:12]})
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"/>', f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>",
        f'<p class="note">written {datetime.now():%Y-%m-%d %H:%M} by mimo {escape(str(__version__))} from '
        f"{escape(str(campaign.folder))}/campaign.json; head {escape(settings['head'])} on "
        f"{escape(settings['features'])}, settings hash {escape(campaign.record['settings_hash'])}</p>",
        "<h2>per round</h2>", html_table(table), figure,
        '<p class="note">hit rate: the share of a plate\'s measured wells above the parent\'s value (where the data '
        "has the parent) and above the best measured before that plate</p>",
        "<h2>plates</h2>", html_table(pd.DataFrame(rounds)), "</body></html>", ""])


def write_campaign_page(campaign: Campaign, path: str | Path) -> Path:
    """``campaign_page`` written atomically at ``path`` in ASCII."""
    return write_text(path, campaign_page(campaign).encode("ascii", "xmlcharrefreplace").decode("ascii"))


