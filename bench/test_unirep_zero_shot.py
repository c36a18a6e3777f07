"""The UniRep zero-shot bench's evaluation sets (bench/unirep_zero_shot.py) on small synthetic files."""
from pathlib import Path

import pandas as pd
import pytest

from bench.unirep_zero_shot import DNJA1, apply_mutant, dnja1_full, sarkisyan_to_proteingym
from mimo.pipeline.io.gfp import GFP_PARENT
from mimo.pipeline.io.variants import SARKISYAN_FORMAT, apply_mutations, parse_mutations


def test_sarkisyan_tokens_become_proteingym_numbering():
    tokens = "SA108D:SK1R:SK236N"
    ours = apply_mutant("M" + GFP_PARENT, sarkisyan_to_proteingym(tokens))
    assert sarkisyan_to_proteingym(tokens) == "A110D:K3R:K238N"
    assert ours == "M" + apply_mutations(GFP_PARENT, parse_mutations(tokens, GFP_PARENT, SARKISYAN_FORMAT))


def test_apply_mutant_refuses_a_wrong_wild_type():
    with pytest.raises(AssertionError, match="K1R"):
        apply_mutant("MSKG", "K1R")


def write(path: Path, rows: list[tuple], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)


def test_dnja1_full_takes_the_singles_file_label_and_the_rest_from_esm_if1(tmp_path):
    write(tmp_path / f"{DNJA1}.csv", [("A1C", "CK", 1.0), ("K2R", "AR", 2.0)],
          ["mutant", "mutated_sequence", "DMS_score"])
    write(tmp_path / "zero_shot" / "TranceptEVE" / f"{DNJA1}.csv",
          [("CK", 0.1, "A1C"), ("AR", 0.2, "K2R"), ("AG", 0.3, "K2G"), ("CR", 0.4, "A1C:K2R")],
          ["mutated_sequence", "avg_score", "mutant"])
    write(tmp_path / "zero_shot" / "ESM_IF1" / f"{DNJA1}.csv",  # a repeated single with another label, a WT row
          [("A1C", "CK", 9.0, -1), ("A1C", "CK", 8.0, -1), (None, "AK", 0.0, -1), ("K2G", "AG", 3.0, -1),
           ("A1C:K2R", "CR", 4.0, -1)], ["mutant", "mutated_sequence", "DMS_score", "esmif1_ll"])
    entry = dnja1_full(tmp_path, tmp_path)
    full = pd.read_csv(entry.csv).set_index("mutant")
    assert full.DMS_score.to_dict() == {"A1C": 1.0, "K2R": 2.0, "K2G": 3.0, "A1C:K2R": 4.0}
    assert entry.what == "4 (3 singles + 1 doubles)"


def test_dnja1_full_refuses_a_variant_without_a_label(tmp_path):
    write(tmp_path / f"{DNJA1}.csv", [("A1C", "CK", 1.0)], ["mutant", "mutated_sequence", "DMS_score"])
    write(tmp_path / "zero_shot" / "TranceptEVE" / f"{DNJA1}.csv", [("CK", "A1C"), ("AG", "K2G")],
          ["mutated_sequence", "mutant"])
    write(tmp_path / "zero_shot" / "ESM_IF1" / f"{DNJA1}.csv", [("A1C", "CK", 1.0)],
          ["mutant", "mutated_sequence", "DMS_score"])
    with pytest.raises(AssertionError, match="no label"):
        dnja1_full(tmp_path, tmp_path)
