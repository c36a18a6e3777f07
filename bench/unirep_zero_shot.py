"""UniRep's zero-shot score through the project's own path, against ProteinGym's published "Unirep" column.

    python -m bench.unirep_zero_shot [--size 1900] [--gfp-sample 1500] [--out bench/results/cpu-unirep_zero_shot.md]

ProteinGym scores each assay on its FULL file (multi-mutants included); the shared files hold only singles. This
rebuilds the full evaluation sets into a temporary directory, scores every set with
``mimo.zero_shot_scores(mimo.load_dataset(csv), "unirep<size>")`` (a fresh cache, so the wall time is the real
cost) and prints one Spearman per set beside the published figure:

- DNJA1 full (2,264 variants, singles + doubles): the variant list of ProteinGym's own TranceptEVE score file
  (no labels there); labels from the shared singles file, and for what it lacks (Y4K, the doubles) from the
  ESM-IF1 score file, which has DMS_score but repeats 111 singles with other labels (the shared file's wins).
- pilin: the shared file is the whole assay (922 singles).
- GFP full: ProteinGym's 51,714 variants are every stop-free genotype of Sarkisyan's table; a seeded random
  --gfp-sample of them, labelled with the table's medianBrightness (ProteinGym's mean_medianBrightness_per_aaseq
  is close to it but not equal: Spearman 0.976 on the singles), with a bootstrap 95% interval.
- the shared singles-only files of DNJA1 and GFP, for comparison (pilin's is its full row).
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import mimo
from mimo.pipeline import threads

DNJA1, PILIN, GFP = "DNJA1_HUMAN_Tsuboyama_2023_2LO1", "A0A1I9GEU1_NEIME_Kennouche_2019", "GFP_AEQVI_Sarkisyan_2016"
GFP_FULL_SIZE = 51_714  # ProteinGym's DMS_total_number_mutants for GFP_AEQVI_Sarkisyan_2016
REPO = Path(__file__).resolve().parents[1]


@dataclass
class EvalSet:
    """One evaluation set: a ProteinGym-format CSV, the assay it stands for, and what it holds."""
    label: str
    assay: str
    csv: Path
    what: str


def dnja1_full(root: Path, out: Path) -> EvalSet:
    """DNJA1's full assay as ProteinGym scores it, rebuilt from the shared singles and the zero-shot files."""
    singles = pd.read_csv(root / f"{DNJA1}.csv")
    variants = pd.read_csv(root / "zero_shot" / "TranceptEVE" / f"{DNJA1}.csv")[["mutant", "mutated_sequence"]]
    esmif = pd.read_csv(root / "zero_shot" / "ESM_IF1" / f"{DNJA1}.csv").dropna(subset=["mutant"])
    extra = esmif[~esmif.mutant.isin(singles.mutant)]
    assert not extra.mutant.duplicated().any(), "the ESM-IF1 file repeats a variant the singles file lacks"
    labels = pd.concat([singles[["mutant", "DMS_score"]], extra[["mutant", "DMS_score"]]])
    full = variants.merge(labels, on="mutant", how="left", validate="one_to_one")
    assert full.DMS_score.notna().all(), "a DNJA1 variant has no label"
    path = out / f"{DNJA1}_full.csv"
    full.to_csv(path, index=False)
    doubles = int(full.mutant.str.contains(":").sum())
    return EvalSet("DNJA1 full assay", DNJA1, path, f"{len(full):,} ({len(full) - doubles:,} singles + {doubles:,} doubles)")


def sarkisyan_to_proteingym(tokens: str) -> str:
    """Sarkisyan's ``SA108D:SK3R`` (0-based on the parent without its initial M) as ProteinGym's ``A110D:K5R``."""
    return ":".join(f"{t[1]}{int(t[2:-1]) + 2}{t[-1]}" for t in tokens.split(":"))


def apply_mutant(parent: str, mutant: str) -> str:
    sequence = list(parent)
    for m in mutant.split(":"):
        position = int(m[1:-1]) - 1
        assert sequence[position] == m[0], f"{m} does not match the parent"
        sequence[position] = m[-1]
    return "".join(sequence)


def gfp_full_sample(root: Path, table: Path, n: int, seed: int, out: Path) -> EvalSet:
    """A seeded random sample of GFP's full assay (every stop-free Sarkisyan genotype), medianBrightness labels."""
    genotypes = pd.read_csv(table, sep="\t")
    genotypes = genotypes[(genotypes.aaMutations.str.strip() != "#") & ~genotypes.aaMutations.str.contains(r"\*")]
    assert len(genotypes) == GFP_FULL_SIZE, f"{table}: {len(genotypes)} stop-free genotypes, not {GFP_FULL_SIZE}"
    sample = genotypes.sample(n=min(n, len(genotypes)), random_state=seed)
    parent = read_parent(root / f"{GFP}_wt.fasta")
    mutants = sample.aaMutations.map(sarkisyan_to_proteingym)
    frame = pd.DataFrame({"mutant": mutants, "mutated_sequence": [apply_mutant(parent, m) for m in mutants],
                          "DMS_score": sample.medianBrightness.to_numpy()})
    path = out / f"{GFP}_full_sample{len(frame)}.csv"
    frame.to_csv(path, index=False)
    return EvalSet("GFP full assay, random sample", GFP, path,
                   f"{len(frame):,} of {GFP_FULL_SIZE:,} (seed {seed}; median {int(mutants.str.count(':').median()) + 1} mutations)")


def read_parent(fasta: Path) -> str:
    return "".join(line.strip() for line in fasta.read_text().splitlines() if not line.startswith(">"))


def score(entry: EvalSet, root: Path, size: int, cache: Path) -> tuple[pd.DataFrame, float]:
    """The set scored by the public path (fresh cache): its table and the wall time."""
    start = time.perf_counter()
    dataset = mimo.load_dataset(entry.csv, parent=str(root / f"{entry.assay}_wt.fasta"), name=entry.csv.stem)
    table = mimo.zero_shot_scores(dataset, f"unirep{size}", cache_root=cache)
    seconds = time.perf_counter() - start
    assert np.isfinite(table.score).all() and len(table) == len(dataset.frame)
    return table, seconds


def bootstrap_ci(x: np.ndarray, y: np.ndarray, rounds: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of Spearman over rows resampled with replacement."""
    rng = np.random.default_rng(seed)
    draws = [spearmanr(x[i], y[i]).correlation for i in (rng.integers(0, len(x), len(x)) for _ in range(rounds))]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def evaluation_sets(args, out: Path) -> list[EvalSet]:
    root = args.proteingym
    return [
        dnja1_full(root, out),
        EvalSet("pilin (shared file = full assay)", PILIN, root / f"{PILIN}.csv", "922 singles"),
        gfp_full_sample(root, args.gfp_table, args.gfp_sample, args.seed, out),
        EvalSet("DNJA1 singles only (shared file)", DNJA1, root / f"{DNJA1}.csv", "1,215 singles"),
        EvalSet("GFP singles only (shared file)", GFP, root / f"{GFP}.csv", "1,084 singles"),
    ]


def machine() -> str:
    return (f"{platform.processor() or platform.machine()} CPU, {threads.available_cpus()} CPUs available "
            f"(shared with other work), torch threads as mimo's policy sets them")


def run(args) -> list[str]:
    published = pd.read_csv(args.proteingym / "anchors" / "zero_shot_DMS_substitutions_Spearman_DMS_level.csv")
    published = published.set_index("DMS ID")["Unirep"]
    lines = [f"UniRep-{args.size} zero-shot (`mimo.zero_shot_scores(..., 'unirep{args.size}')`) against ProteinGym's "
             f"published Unirep column; {machine()}.", "",
             "| evaluation set | variants scored | ours | bootstrap 95% CI | published (full assay) | ours - published | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory(prefix="unirep_zs_") as tmp:
        for entry in evaluation_sets(args, Path(tmp)):
            table, seconds = score(entry, args.proteingym, args.size, Path(tmp) / "cache")
            rho = spearmanr(table.score, table.label).correlation
            low, high = bootstrap_ci(table.score.to_numpy(), table.label.to_numpy(), args.bootstrap, args.seed)
            ref = float(published[entry.assay])
            lines.append(f"| {entry.label} | {entry.what} | {rho:+.3f} | {low:+.3f} .. {high:+.3f} | {ref:+.3f} | "
                         f"{rho - ref:+.3f} | {seconds:,.0f} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1900, choices=(64, 256, 1900))
    parser.add_argument("--gfp-sample", type=int, default=1500, help="GFP full-assay variants to score")
    parser.add_argument("--seed", type=int, default=0, help="GFP sample and bootstrap seed")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the intervals")
    parser.add_argument("--proteingym", type=Path, default=REPO / "../shared/data/proteingym")
    parser.add_argument("--gfp-table", type=Path, default=REPO / "../shared/data/gfp/amino_acid_genotypes_to_brightness.tsv")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (markdown)")
    args = parser.parse_args()
    command = "python -m bench.unirep_zero_shot " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (("size", args.size), ("gfp_sample", args.gfp_sample)))
    lines = run(args)
    if args.out:
        args.out.write_text(f"`{command}`\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
