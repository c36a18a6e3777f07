"""Every picture mimo draws, made from small real runs, to LOOK at before a change to a picture is called done.

    python -m bench.pictures [--out /tmp/pictures] [--proteingym /work/shared/data/proteingym]

Runs (one-hot sites features, seconds each on a 2-core CPU): MIMO on DNJA1 (random split; then `design scan`
and `design propose`), the same under ProteinGym's modulo-5 folds, and MIMO on 1,500 GFP genotypes with the
wild type among them ($MIMO_DATA). Then `mimo data show` of both datasets, `mimo report --html` of every run,
and a page of 24 run directories (8 copies of each run: the size of a 24-run page). Every run writes each picture
as SVG and PNG (matplotlib); the PNGs are gathered under OUT/png and the page is screenshotted at 1,400 px wide
with headless chromium where it is installed (``apt-get install -y chromium``). The paths are printed, with the
pages' sizes and the seconds they took to write.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mimo.pipeline.io.fetch import resolve_data_dir
from mimo.pipeline.io.gfp import GFP_GENOTYPES, GFP_VALID_LIST

DNJA1 = "DNJA1_HUMAN_Tsuboyama_2023_2LO1"


def mimo(*args) -> None:
    """The `mimo` command of this Python's environment."""
    command = [sys.executable, "-c", "from mimo.cli import main; main()", *map(str, args)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def gfp_slice(out: Path, rows: int = 1500) -> Path:
    """The GFP parent (its measured wild type) and a seeded sample of ``rows`` genotypes."""
    source = resolve_data_dir(None, download=False)
    out.mkdir(parents=True, exist_ok=True)
    lines = (source / GFP_GENOTYPES).read_text().splitlines()
    picked = sorted(np.random.default_rng(0).choice(len(lines) - 2, rows, replace=False))
    (out / GFP_GENOTYPES).write_text("\n".join(lines[:2] + [lines[2 + i] for i in picked]) + "\n")
    kept = {lines[2 + i].split("\t")[0] for i in picked}
    valid = [g for g in (source / GFP_VALID_LIST).read_text().split() if g in kept]
    (out / GFP_VALID_LIST).write_text("\n".join(valid) + "\n")
    return out


def make_runs(out: Path, proteingym: Path) -> list[Path]:
    cache, table = out / "cache", proteingym / f"{DNJA1}.csv"
    mimo("embed", "build", "--model", "onehot-sites", "--input", table, "--cache", cache, "--quiet")
    mimo("embed", "build", "--model", "onehot-sites", "--data", gfp_slice(out / "gfp"), "--cache", cache, "--quiet")
    dnja1 = ("fit", "mimo", "--routing", "random", "--dataset", DNJA1, "--cache", cache, "--quiet")
    mimo(*dnja1, "--out", out / "dnja1")
    mimo(*dnja1, "--cv", "fold_modulo_5", "--out", out / "dnja1-modulo5")
    mimo("fit", "mimo", "--routing", "random", "--cache", cache, "--quiet", "--out", out / "gfp-tape")
    for run in ("dnja1", "gfp-tape"):
        mimo("design", "scan", out / run)
        mimo("design", "propose", out / run, "--n", "24")
    mimo("data", "show", "--input", table, "--split", "fold_contiguous_5", "--figure-dir", out / "figures")
    mimo("data", "show", "--data", out / "gfp", "--split", "tape", "--figure-dir", out / "figures")
    return [out / "dnja1", out / "dnja1-modulo5", out / "gfp-tape"]


def look(out: Path, runs: list[Path]) -> None:
    """Every run's PNGs gathered under OUT/png, and a screenshot of the page, 1,400 px wide, where chromium is
    installed."""
    (out / "png").mkdir(exist_ok=True)
    for png in sorted(p for run in runs for p in run.glob("*.png")):
        shutil.copyfile(png, out / "png" / f"{png.parent.name}-{png.name}")
        print(out / "png" / f"{png.parent.name}-{png.name}")
    print(*sorted((out / "figures").glob("*.png")), sep="\n")
    if shutil.which("chromium"):
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={out}/report.png",
                        "--window-size=1400,2400", f"file://{out}/report.html"], check=True, capture_output=True)
        print(out / "report.png")


def page(out: Path, runs: list[Path], name: str) -> None:
    """`mimo report --html` of ``runs`` as OUT/``name``: its size and the seconds the command took."""
    start = time.perf_counter()
    mimo("report", *runs, "--html", out / name)
    seconds = time.perf_counter() - start
    print(f"{out / name}: {(out / name).stat().st_size / 1e6:.2f} MB; `mimo report --html` of {len(runs)} runs: "
          f"{seconds:.1f}s (the command's start included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/pictures"))
    parser.add_argument("--proteingym", type=Path, default=Path("/work/shared/data/proteingym"))
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    runs = make_runs(args.out, args.proteingym)
    page(args.out, runs, "report.html")
    copies = [shutil.copytree(run, args.out / "copies" / f"{run.name}-{i}") for i in range(8) for run in runs]
    page(args.out, copies, "report-24.html")
    look(args.out, runs)


if __name__ == "__main__":
    main()
