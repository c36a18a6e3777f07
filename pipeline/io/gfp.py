"""The avGFP data (Sarkisyan 2016): its genotype table, TAPE's validation list and split, and the avGFP report's
balanced split, read from the files; where the files come from is ``fetch``, the dataset is
``datasets.load_gfp``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError, read_text
from mimo.pipeline.io.variants import SARKISYAN_FORMAT, apply_mutations, expressed_sequence, parse_mutations, sequence_id
from mimo.pipeline.io.variantset import FRAME_COLUMNS, make_frame, parse_label

GFP_PARENT = (
    "SKGEELFTGVVPILVELDGDVNGHKFSVSGEGEGDATYGKLTLKFICTTGKLPVPWPTLVTTLSYGVQCFSRYPDHMKQHDFFKSAMPEGYVQERTIFFK"
    "DDGNYKTRAEVKFEGDTLVNRIELKGIDFKEDGNILGHKLEYNYNSHNVYIMADKQKNGIKVNFKIRHNIEDGSVQLADHYQQNTPIGDGPVLLPDNH"
    "YLSTQSALSKDPNEKRDHMVLLEFVTAAGITHGMDELYK"
)
GFP_GENOTYPES = "amino_acid_genotypes_to_brightness.tsv"
GFP_VALID_LIST = "tape_fluorescence_valid_genotypes.txt"


def read_genotypes(path: str | Path, parent: str = GFP_PARENT) -> pd.DataFrame:
    """Read Sarkisyan's genotype TSV into a dataset frame (stops deleted from ``sequence``)."""
    path = Path(path)
    lines = iter(read_text(path).splitlines())
    rows: dict[str, list] = {c: [] for c in FRAME_COLUMNS}
    seen: dict[str, int] = {}
    header = next(lines, "").rstrip("\n").split("\t")
    if not header or header[0] == "":
        raise DataError("empty file: expected a header with aaMutations and medianBrightness", path, 1)
    missing = {"aaMutations", "medianBrightness"} - set(header)
    if missing:
        raise DataError(f"missing column(s) {sorted(missing)} in header {header}", path, 1)
    geno_col, label_col = header.index("aaMutations"), header.index("medianBrightness")
    for number, raw in enumerate(lines, start=2):
        if not raw.strip():
            continue
        cells = raw.split("\t")
        if len(cells) <= max(geno_col, label_col):
            raise DataError(f"expected at least {max(geno_col, label_col) + 1} tab-separated fields, "
                            f"found {len(cells)}", path, number)
        genotype = cells[geno_col].strip()
        mutations = parse_mutations(genotype, parent, SARKISYAN_FORMAT, path, number)
        label = parse_label(cells[label_col], path, number)
        aligned = apply_mutations(parent, mutations)
        sequence = expressed_sequence(aligned)
        sid = sequence_id(sequence)
        if sid in seen:
            raise DataError(f"genotype {genotype!r} gives the same sequence as line {seen[sid]}", path, number)
        seen[sid] = number
        for key, value in zip(FRAME_COLUMNS, (sid, genotype, len(mutations), aligned, sequence, label)):
            rows[key].append(value)
    if not rows["id"]:
        raise DataError("no genotype rows in file", path)
    return make_frame(rows)


def read_genotype_list(path: str | Path) -> list[str]:
    """One genotype string a line (TAPE's validation list)."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def tape_split(frame: pd.DataFrame, valid_genotypes: list[str], valid_path: str | Path | None = None) -> np.ndarray:
    """TAPE's fluorescence split: test = 4+ substitutions, valid = the listed genotypes, train = the rest."""
    index = {g: i for i, g in enumerate(frame["mutations"])}
    split = np.where(frame["n_mutations"].to_numpy() >= 4, "test", "train").astype(object)
    for number, genotype in enumerate(valid_genotypes, start=1):
        row = index.get(genotype)
        if row is None:
            raise DataError(f"validation genotype {genotype!r} is not in the genotype table", valid_path, number)
        if split[row] == "test":
            raise DataError(f"validation genotype {genotype!r} has 4+ mutations", valid_path, number)
        split[row] = "valid"
    return split
