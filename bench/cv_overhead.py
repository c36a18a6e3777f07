"""Cross-validation overhead: `mimo fit ridge --cv` on a ProteinGym-sized singles assay, its wall time (process
start included) against the time inside the head's fits, and where the rest goes (cProfile).

    python -m bench.cv_overhead [--cache /tmp/mimo-cv-cache] [--repeats 3] [--cv random5 modulo5] [--before DIR]
                                [--profile 25]

The assay is synthetic (no such one is in the shared data): a random 306-residue parent, all 5,814 single
substitutions minus 89 drawn at random (5,725 rows, DNJA1's and many ProteinGym assays' shape), labels from an
additive model (a per-site scale times a per-substitution effect, plus noise), in ProteinGym's CSV format with
``fold_random_5``, ``fold_modulo_5``, ``fold_contiguous_5`` made by the project's own fold functions
(``mimo.pipeline.io.splits``). Features: onehot-sites+aaprops (built once into --cache, ~5,900 columns).

Each `mimo fit ridge --cv SCHEME` runs as its own process (`bench.fit_speed.run_python`: the checkout measured,
from an empty folder); `fit s` is the time inside ``Estimator.fit`` and `predict s` inside
``predict_members`` (outermost calls), timed in that process. Targets: wall <= 10 s; wall outside fits <= 20%
of it.
`--profile N`: the N functions with most cumulative time among those no fit calls (the fits' callers, which
hold them, included), per scheme (of the code now).
`--before DIR`: the same with a checkout of the code before (interleaved, now first).
"""
import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.fit_speed import ROOT, run_python
from mimo.pipeline.io.splits import position_folds, random_folds

AMINO = "ACDEFGHIKLMNPQRSTVWY"
LENGTH, DROPPED, NAME = 306, 89, "synthetic306"
FEATURES = "onehot-sites+aaprops"


def assay(seed: int = 0) -> tuple[str, pd.DataFrame]:
    """The parent and a ProteinGym-format table of its singles (mutant, mutated_sequence, DMS_score, folds)."""
    rng = np.random.default_rng(seed)
    parent = "".join(rng.choice(list(AMINO), LENGTH))
    site = rng.gamma(2.0, 0.5, LENGTH)  # how much a site matters
    rows = []
    for i, wt in enumerate(parent):
        for aa in AMINO:
            if aa != wt:
                rows.append((f"{wt}{i + 1}{aa}", parent[:i] + aa + parent[i + 1:], i + 1,
                             -site[i] * rng.exponential(1.0)))
    keep = np.sort(rng.choice(len(rows), len(rows) - DROPPED, replace=False))
    table = pd.DataFrame([rows[i] for i in keep], columns=["mutant", "mutated_sequence", "position", "effect"])
    table["DMS_score"] = table["effect"] + rng.normal(0, 0.3, len(table))
    table["DMS_score_bin"] = (table["DMS_score"] > table["DMS_score"].median()).astype(int)
    positions = table["position"].tolist()
    table["fold_random_5"] = random_folds(len(table), 5)
    table["fold_modulo_5"] = position_folds(positions, "modulo", 5)
    table["fold_contiguous_5"] = position_folds(positions, "contiguous", 5)
    return parent, table.drop(columns=["position", "effect"])


def build(cache: Path) -> None:
    """The assay's CSV and its onehot-sites+aaprops cache under ``cache`` (once)."""
    if (cache / NAME / "onehot-sites").exists() and (cache / NAME / "aaprops").exists():
        return
    cache.mkdir(parents=True, exist_ok=True)
    parent, table = assay()
    path = cache / f"{NAME}.csv"
    table.to_csv(path, index=False)
    fasta = cache / f"{NAME}_wt.fasta"  # a file: a 306-letter --parent given as text is taken for a path
    fasta.write_text(f">{NAME}\n{parent}\n")
    for model in FEATURES.split("+"):
        subprocess.run([sys.executable, "-c", "from mimo.cli import main; main()", "embed", "build", "--input",
                        str(path), "--parent", str(fasta), "--name", NAME, "--model", model, "--cache", str(cache)],
                       check=True, capture_output=True)


def command(cache: Path, cv: str, out: Path) -> list[str]:
    return ["fit", "ridge", "--cache", str(cache), "--dataset", NAME, "--features", FEATURES, "--cv", cv,
            "--out", str(out), "--force", "--quiet"]


TIMED = """
import json, sys, time
start = time.perf_counter()
sys.argv = ["mimo"] + {args!r}
from mimo.models.estimators.base import Estimator
spent = {{"fit": 0.0, "predict": 0.0}}
depth = {{"fit": 0, "predict": 0}}


def timed(kind, method):
    def wrapper(*args, **kwargs):
        depth[kind] += 1
        began = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            depth[kind] -= 1
            if depth[kind] == 0:  # outermost calls only (a head may fit or predict others inside)
                spent[kind] += time.perf_counter() - began
    return wrapper


Estimator.fit = timed("fit", Estimator.fit)
Estimator.predict_members = timed("predict", Estimator.predict_members)
from mimo.cli import main
try:
    main()
except SystemExit as exc:
    if exc.code:
        raise
with open({times!r}, "w") as f:
    json.dump(spent, f)
"""


def wall(code: Path, cache: Path, cv: str, out: Path) -> tuple[float, float, float, float]:
    """Wall seconds of the whole process, seconds inside ``Estimator.fit`` and inside ``predict_members``
    (outermost calls, timed in the process), the pooled test Spearman."""
    times = out.with_suffix(".json")
    start = time.perf_counter()
    run_python(code, ["-c", TIMED.format(args=command(cache, cv, out), times=str(times))])
    seconds = time.perf_counter() - start
    spent = json.loads(times.read_text())
    return seconds, spent["fit"], spent["predict"], json.loads((out / "metrics.json").read_text())["test"]["spearman"]


PROFILED = """
import cProfile, sys
sys.argv = ["mimo"] + {args!r}
from mimo.cli import main
profile = cProfile.Profile()
profile.enable()
try:
    main()
except SystemExit:
    pass
profile.disable()
profile.dump_stats({stats!r})
"""


def profile(code: Path, cache: Path, cv: str, out: Path, stats: str) -> pstats.Stats:
    """A cProfile of the fit (imports excluded: they are measured by the wall time and `fit_speed --imports`)."""
    run_python(code, ["-c", PROFILED.format(args=command(cache, cv, out), stats=stats)])
    return pstats.Stats(stats)


def outside_fits(stats: pstats.Stats, top: int) -> list[str]:
    """The functions with most cumulative time, with what inside them is fitting subtracted, roughly: the
    ``top`` entries by cumulative time that are not within the fit (callees of ``Estimator.fit``)."""
    fit_keys = {key for key in stats.stats if key[0].endswith("models/estimators/base.py") and key[2] == "fit"}
    inside: set = set()
    frontier = set(fit_keys)
    callees: dict = {}
    for key, (_, _, _, _, callers) in stats.stats.items():
        for caller in callers:
            callees.setdefault(caller, set()).add(key)
    while frontier:  # everything fit calls, transitively (a function also called outside counts as inside)
        key = frontier.pop()
        inside.add(key)
        frontier |= callees.get(key, set()) - inside
    rows = sorted(((value[3], key) for key, value in stats.stats.items() if key not in inside), reverse=True)
    lines = []
    for cum, (filename, line, name) in rows[:top]:
        short = "/".join(Path(filename).parts[-2:]) if filename != "~" else ""
        lines.append(f"{cum:7.3f} s  {short}:{line} {name}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="/tmp/mimo-cv-cache")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cv", nargs="+", default=["random5", "modulo5"])
    parser.add_argument("--before", default=None)
    parser.add_argument("--profile", type=int, default=0, help="Print the N costliest functions outside the fits.")
    args = parser.parse_args()
    cache = Path(args.cache).resolve()
    build(cache)
    codes = [("now", ROOT)] + ([("before", Path(args.before).resolve())] if args.before else [])
    print(f"`mimo fit ridge --cv SCHEME --features {FEATURES}` on a synthetic {LENGTH}-residue singles assay "
          f"({LENGTH * 19 - DROPPED:,} rows), refit on; wall seconds per process (start included), min / median "
          f"of {args.repeats}, interleaved; fit and predict: seconds inside Estimator.fit and "
          f"predict_members in the median run; load average {os.getloadavg()[0]:.1f} at start")
    header = ["cv", "code", "wall s", "fit s", "predict s", "outside fits", "Spearman"]
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for cv in args.cv:
            runs = {name: [] for name, _ in codes}
            for i in range(args.repeats):
                for name, code in codes:
                    runs[name].append(wall(code, cache, cv, Path(tmp) / f"{name}-{i}"))
            for name, code in codes:
                seconds = [r[0] for r in runs[name]]
                median = statistics.median(seconds)
                at = seconds.index(sorted(seconds)[(len(seconds) - 1) // 2])  # the median run's own split
                _, fits, predicts, spearman = runs[name][at]
                print(f"| {cv} | {name} | {min(seconds):.2f} / {median:.2f} | {fits:.2f} | {predicts:.2f} | "
                      f"{1 - fits / seconds[at]:.0%} | {spearman:.4f} |", flush=True)
            if args.profile:
                stats = profile(ROOT, cache, cv, Path(tmp) / "profile", f"{tmp}/now.prof")
                total = max(value[3] for value in stats.stats.values())
                print("\n".join(["", f"{cv}: costliest outside the fits (cumulative seconds of a profiled run of "
                                     f"{total:.2f} s after imports)"] + outside_fits(stats, args.profile) + [""]))


if __name__ == "__main__":
    main()
