"""UniRep's zero-shot score through the project's own path, against ProteinGym's published "Unirep" column.

    python -m bench.unirep_zero_shot [--size 1900] [--gfp-sample 1500] [--out bench/results/cpu-unirep_zero_shot.md]
    python -m bench.unirep_zero_shot --sets dnja1-full,dnja1-singles --pre-fix   # also the score before 28bcd8b

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

``--pre-fix`` adds the score as ``unirep<size>-llr`` computed it before commit 28bcd8b (output class = token id,
log-likelihood summed over the residues and a stop token), from the same model's logits, for comparison.
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
from mimo.pipeline.runtime import threads

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
    what = f"{len(full):,} ({len(full) - doubles:,} singles + {doubles:,} doubles)"
    return EvalSet("DNJA1 full assay", DNJA1, path, what)


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
    median = int(mutants.str.count(":").median()) + 1
    return EvalSet("GFP full assay, random sample", GFP, path,
                   f"{len(frame):,} of {GFP_FULL_SIZE:,} (seed {seed}; median {median} mutations)")


def gfp_label_agreement(root: Path, table: Path) -> str:
    """How far the genotype table's medianBrightness agrees with ProteinGym's DMS_score on the shared singles."""
    genotypes = pd.read_csv(table, sep="\t")
    singles = genotypes[~genotypes.aaMutations.str.contains(r"[:*#]")]
    merged = pd.read_csv(root / f"{GFP}.csv").merge(
        pd.DataFrame({"mutant": singles.aaMutations.map(sarkisyan_to_proteingym), "median": singles.medianBrightness}),
        on="mutant", validate="one_to_one")
    return (f"GFP labels: the genotype table's medianBrightness against ProteinGym's DMS_score "
            f"(mean_medianBrightness_per_aaseq) on the {len(merged):,} shared singles: Spearman "
            f"{spearmanr(merged['median'], merged.DMS_score).correlation:.3f}, largest difference "
            f"{(merged['median'] - merged.DMS_score).abs().max():.3f}.")


def read_parent(fasta: Path) -> str:
    return "".join(line.strip() for line in fasta.read_text().splitlines() if not line.startswith(">"))


def score(entry: EvalSet, root: Path, size: int, cache: Path) -> tuple[pd.DataFrame, float]:
    """The set scored by the public path (fresh cache): its table (with each variant's sequence) and the wall
    time."""
    start = time.perf_counter()
    dataset = mimo.load_dataset(entry.csv, parent=str(root / f"{entry.assay}_wt.fasta"), name=entry.csv.stem)
    table = mimo.zero_shot_scores(dataset, f"unirep{size}", cache_root=cache)
    seconds = time.perf_counter() - start
    assert np.isfinite(table.score).all() and len(table) == len(dataset.frame)
    table = table.merge(dataset.frame[["id", "sequence"]], on="id", validate="one_to_one")
    table.attrs["parent"] = dataset.parent
    return table, seconds


def bootstrap_ci(x: np.ndarray, y: np.ndarray, rounds: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of Spearman over rows resampled with replacement."""
    rng = np.random.default_rng(seed)
    draws = [spearmanr(x[i], y[i]).correlation for i in (rng.integers(0, len(x), len(x)) for _ in range(rounds))]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def pre_fix_scores(sequences: list[str], size: int, parent: str) -> np.ndarray:
    """The score before commit 28bcd8b: sum over residues and a stop token of log p at class = token id (the
    output layer's classes are token id - 1: this reads each residue's neighbour in the alphabet)."""
    import torch
    from mimo.pipeline.featurizers.zeroshot import UniRepZeroShot

    model = UniRepZeroShot(size, parent, "cpu")
    out = []
    for start in range(0, len(sequences), model.rep.batch_size):
        logits, tokens, lengths = model.logits(sequences[start:start + model.rep.batch_size])
        log_probs = torch.log_softmax(logits, dim=-1).cpu()
        targets = torch.cat([tokens[:, 1:], torch.zeros(len(tokens), 1, dtype=torch.long)], dim=1)
        targets[torch.arange(len(tokens)), lengths - 1] = 25  # stop
        targets = torch.where(targets >= 24, targets - 1, targets)
        picked = log_probs.gather(2, targets.unsqueeze(-1)).squeeze(-1).double()
        out.append((picked * (torch.arange(targets.shape[1])[None, :] < lengths[:, None])).sum(1).numpy())
    return np.concatenate(out)


SETS = ("dnja1-full", "pilin", "gfp-full", "dnja1-singles", "gfp-singles")


def evaluation_sets(args, out: Path) -> list[EvalSet]:
    root = args.proteingym
    makers = {
        "dnja1-full": lambda: dnja1_full(root, out),
        "pilin": lambda: EvalSet("pilin (shared file = full assay)", PILIN, root / f"{PILIN}.csv", "922 singles"),
        "gfp-full": lambda: gfp_full_sample(root, args.gfp_table, args.gfp_sample, args.seed, out),
        "dnja1-singles": lambda: EvalSet("DNJA1 singles only (shared file)", DNJA1, root / f"{DNJA1}.csv",
                                         "1,215 singles"),
        "gfp-singles": lambda: EvalSet("GFP singles only (shared file)", GFP, root / f"{GFP}.csv", "1,084 singles"),
    }
    return [makers[name]() for name in args.sets]


def machine() -> str:
    return (f"{platform.processor() or platform.machine()} CPU, {threads.available_cpus()} CPUs available "
            f"(shared with other work), torch threads as mimo's policy sets them")


def spearman_cells(score: np.ndarray, label: np.ndarray, ref: float, args) -> str:
    """``rho | CI | published | difference`` cells of one score."""
    rho = spearmanr(score, label).correlation
    low, high = bootstrap_ci(score, label, args.bootstrap, args.seed)
    return f"{rho:+.3f} | {low:+.3f} .. {high:+.3f} | {ref:+.3f} | {rho - ref:+.3f}"


def run(args) -> list[str]:
    published = pd.read_csv(args.proteingym / "anchors" / "zero_shot_DMS_substitutions_Spearman_DMS_level.csv")
    published = published.set_index("DMS ID")["Unirep"]
    lines = [f"UniRep-{args.size} zero-shot (`mimo.zero_shot_scores(..., 'unirep{args.size}')`) against ProteinGym's "
             f"published Unirep column; {machine()}.", "",
             "| evaluation set | score | variants scored | ours | bootstrap 95% CI | published (full assay) | "
             "ours - published | wall s |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory(prefix="unirep_zs_") as tmp:
        for entry in evaluation_sets(args, Path(tmp)):
            table, seconds = score(entry, args.proteingym, args.size, Path(tmp) / "cache")
            label, ref = table.label.to_numpy(), float(published[entry.assay])
            lines.append(f"| {entry.label} | fixed | {entry.what} | "
                         f"{spearman_cells(table.score.to_numpy(), label, ref, args)} | {seconds:,.0f} |")
            print(lines[-1], flush=True)
            if args.pre_fix:
                start = time.perf_counter()
                old = pre_fix_scores(table.sequence.tolist(), args.size, table.attrs["parent"])
                lines.append(f"| {entry.label} | pre-fix | {entry.what} | {spearman_cells(old, label, ref, args)} | "
                             f"{time.perf_counter() - start:,.0f} |")
                print(lines[-1], flush=True)
    if "gfp-full" in args.sets:
        lines += ["", gfp_label_agreement(args.proteingym, args.gfp_table)]
        print(lines[-1])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1900, choices=(64, 256, 1900))
    parser.add_argument("--gfp-sample", type=int, default=1500, help="GFP full-assay variants to score")
    parser.add_argument("--seed", type=int, default=0, help="GFP sample and bootstrap seed")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the intervals")
    parser.add_argument("--proteingym", type=Path, default=REPO / "../shared/data/proteingym")
    parser.add_argument("--gfp-table", type=Path,
                        default=REPO / "../shared/data/gfp/amino_acid_genotypes_to_brightness.tsv")
    parser.add_argument("--sets", type=lambda v: v.split(","), default=list(SETS), help=f"of {','.join(SETS)}")
    parser.add_argument("--pre-fix", action="store_true", help="also the score before commit 28bcd8b")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (markdown)")
    args = parser.parse_args()
    if unknown := set(args.sets) - set(SETS):
        parser.error(f"--sets: unknown {sorted(unknown)}; the sets are {','.join(SETS)}")
    command = (f"python -m bench.unirep_zero_shot --size {args.size} --gfp-sample {args.gfp_sample} "
               f"--sets {','.join(args.sets)}" + (" --pre-fix" if args.pre_fix else ""))
    lines = run(args)
    if args.out:
        args.out.write_text(f"`{command}`\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
