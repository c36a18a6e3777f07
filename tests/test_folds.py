"""ProteinGym's fold schemes made for any dataset (`--cv modulo5` etc.), checked against its published columns."""
from pathlib import Path

import pandas as pd
import pytest

from mimo.models.data import load_cv_data
from mimo.pipeline.io.splits import parse_fold_scheme, position_folds, random_folds

from conftest import PROTEINGYM
ASSAYS = ["GFP_AEQVI_Sarkisyan_2016", "A0A1I9GEU1_NEIME_Kennouche_2019", "DNJA1_HUMAN_Tsuboyama_2023_2LO1"]


def first_position(mutant: str) -> int:
    return int(mutant.split(":")[0][1:-1])


@pytest.mark.parametrize("assay", ASSAYS)
@pytest.mark.parametrize("scheme", ["modulo", "contiguous"])
def test_position_folds_equal_proteingyms_columns(assay, scheme):
    table = pd.read_csv(PROTEINGYM / f"{assay}.csv")
    folds = position_folds([first_position(m) for m in table["mutant"]], scheme, 5)
    assert (folds == table[f"fold_{scheme}_5"].to_numpy()).all()


def test_random_folds_draw_as_proteingym_drew_them():
    """ProteinGym drew one generator (seed 42) across all assays; DNJA1's column starts 774,083 words in."""
    table = pd.read_csv(PROTEINGYM / "DNJA1_HUMAN_Tsuboyama_2023_2LO1.csv")
    assert (random_folds(len(table), 5, rng_offset=774083) == table["fold_random_5"].to_numpy()).all()
    assert not (random_folds(len(table), 5) == table["fold_random_5"].to_numpy()).all()


def test_multi_mutants_take_the_fold_of_their_first_position():
    positions = [3, 7, 3, 12, 9, 1]  # rows: K3R, L7A, K3R:L7A (first position 3), ...
    modulo = position_folds(positions, "modulo", 3)
    assert modulo[2] == modulo[0] == 0 and modulo[1] == 1
    contiguous = position_folds(positions, "contiguous", 3)  # distinct, first-seen order: 3, 7, 12, 9, 1
    assert contiguous.tolist() == [0, 0, 0, 1, 1, 2]  # blocks of 2, 2, 1 positions
    assert position_folds([None, 4, 5, 6], "modulo", 3).tolist() == [-1, 1, 2, 0]


def test_too_few_positions_for_k_is_refused():
    with pytest.raises(ValueError, match="2 mutated positions cannot make 5 position folds"):
        position_folds([1, 2, 1], "contiguous", 5)


def test_scheme_names():
    assert parse_fold_scheme("modulo5") == ("modulo", 5)
    assert parse_fold_scheme("contiguous10") == ("contiguous", 10)
    assert parse_fold_scheme("fold_modulo_5") is None and parse_fold_scheme("5") is None


def test_cv_modulo5_on_a_cached_assay_equals_the_file_columns(tmp_path, cli):
    assay = PROTEINGYM / "DNJA1_HUMAN_Tsuboyama_2023_2LO1.csv"
    cli("embed", "build", "--input", assay, "--model", "onehot-sites", "--cache", tmp_path, "--quiet")
    for scheme in ("modulo5", "contiguous5"):
        made = load_cv_data(tmp_path, assay.stem, cv=scheme)
        published = load_cv_data(tmp_path, assay.stem, cv=f"fold_{scheme[:-1]}_5")
        assert (made.split == published.split).all()
        assert made.split_name == scheme
    result = cli("fit", "ridge", "--dataset", assay.stem, "--cache", tmp_path, "--cv", "modulo5",
                 "--out", tmp_path / "run", "--quiet")
    assert "modulo5, 5 folds" in result.output
    result = cli("fit", "ridge", "--dataset", assay.stem, "--cache", tmp_path, "--cv", "contiguous5",
                 "--out", tmp_path / "run2", "--quiet")
    assert "not sorted by position" in result.output  # DNJA1's file is sorted as text
