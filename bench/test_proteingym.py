"""bench/proteingym.py on a tiny fake ProteinGym folder: discovery, the n/a rule, one cheap run end to end."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.proteingym import block_specs, discover, main, resolve

AA = "ACDEFGHIKLMNPQRSTVWY"
PARENT = "MKTAYIAKQRQISFVKSHFS"  # 20 residues
HYDROPHOBIC = dict(zip(AA, [1.8, 2.5, -3.5, -3.5, 2.8, -0.4, -3.2, 4.5, -3.9, 3.8, 1.9, -3.5, -1.6, -3.5, -4.5,
                            -0.8, -0.7, 4.2, -0.9, -1.3]))  # Kyte-Doolittle
A, B = "AAAA_TEST_Smith_2020", "BBBB_TEST_Jones_2021"


def write_assay(folder: Path, dms_id: str, n: int, seed: int, fasta: bool) -> pd.DataFrame:
    """n distinct single substitutions of PARENT, labelled by the new residue's hydrophobicity (plus noise),
    with ProteinGym's three fold columns."""
    rng = np.random.default_rng(seed)
    singles = [(p, a) for p in range(len(PARENT)) for a in AA if a != PARENT[p]]
    picked = [singles[i] for i in rng.choice(len(singles), n, replace=False)]
    rows = []
    for p, a in picked:
        sequence = PARENT[:p] + a + PARENT[p + 1:]
        rows.append({"mutant": f"{PARENT[p]}{p + 1}{a}", "mutated_sequence": sequence,
                     "DMS_score": HYDROPHOBIC[a] + rng.normal(scale=0.5), "DMS_score_bin": 1,
                     "fold_random_5": int(rng.integers(5)), "fold_modulo_5": p % 5,
                     "fold_contiguous_5": p // 4})
    table = pd.DataFrame(rows)
    table.to_csv(folder / f"{dms_id}.csv", index=False)
    if fasta:
        (folder / f"{dms_id}_wt.fasta").write_text(f">{dms_id}\n{PARENT}\n")
    return table


@pytest.fixture
def gym(tmp_path):
    """Two assays (A with its wild-type FASTA and an ESM-IF1 profile, B with a TranceptEVE file and its parent
    reconstructed from the rows), the published leaderboard, and a CSV that is not an assay."""
    write_assay(tmp_path, A, 60, 0, fasta=True)
    b = write_assay(tmp_path, B, 50, 1, fasta=False)
    (tmp_path / "profiles").mkdir()
    probs = np.random.default_rng(2).dirichlet(np.ones(20), len(PARENT))
    np.save(tmp_path / "profiles" / "AAAA_TEST_ESM_IF1.npy", probs)
    (tmp_path / "zero_shot" / "TranceptEVE").mkdir(parents=True)
    pd.DataFrame({"mutated_sequence": b["mutated_sequence"], "avg_score": b["DMS_score"] * 0.1,
                  "mutant": b["mutant"]}).to_csv(tmp_path / "zero_shot" / "TranceptEVE" / f"{B}.csv", index=False)
    (tmp_path / "anchors").mkdir()
    for scheme, value in (("random", 0.5), ("modulo", 0.2), ("contiguous", 0.1)):
        pd.DataFrame({"DMS_id": [A, "OTHER"], "Kermut": [value, 0.9], "One-Hot Encodings": [value / 2, 0.8]}).to_csv(
            tmp_path / "anchors" / f"DMS_substitutions_Spearman_DMS_level_fold_{scheme}_5.csv", index=False)
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "notes.csv", index=False)
    return tmp_path


def test_discovery_finds_the_assays_and_their_files(gym):
    assays = discover(gym)
    assert [a.dms_id for a in assays] == [A, B]  # notes.csv is not an assay
    a, b = assays
    assert a.parent == str((gym / f"{A}_wt.fasta").resolve()) and b.parent is None
    assert a.protein == "AAAA_TEST"
    specs_a, specs_b = block_specs(a), block_specs(b)
    assert specs_a["profile"] is None and specs_a["profile-if1"].endswith("AAAA_TEST_ESM_IF1.npy")
    assert specs_a["scores"] is None
    assert specs_b["scores"] == f"scores:{gym / 'zero_shot' / 'TranceptEVE' / (B + '.csv')}:avg_score"
    assert block_specs(b, "ESM_IF1")["scores"] is None
    # named by DMS id or by path; a name that is neither is refused, naming it
    assert [x.dms_id for x in discover(gym, f"{B},{gym / (A + '.csv')}")] == [B, A]
    with pytest.raises(SystemExit, match="'CCCC_TEST'.*neither"):
        discover(gym, "CCCC_TEST")
    with pytest.raises(SystemExit, match="notes.csv has no DMS_score"):
        discover(gym, str(gym / "notes.csv"))


def test_a_missing_file_makes_the_configuration_not_applicable_and_an_optional_block_is_left_out(gym):
    a, b = discover(gym)
    assert resolve("ridge:onehot-sites+profile-if1", block_specs(b)) == ([], "no profile", [])
    assert resolve("gp:onehot-sites+scores", block_specs(a)) == ([], "no zero-shot file", [])
    features, missing, dropped = resolve("auto:onehot-sites+aaprops+scores?", block_specs(a))
    assert (features, missing, dropped) == (["onehot-sites", "aaprops"], None, ["scores"])
    features, missing, dropped = resolve("auto:onehot-sites+scores?", block_specs(b))
    assert features[1].startswith("scores:") and missing is None and dropped == []


def test_one_cheap_configuration_end_to_end(gym, tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("out")
    main(["--root", str(gym), "--configs", "ridge:onehot-sites+aaprops,ridge:onehot-sites+profile-if1",
          "--markdown", str(out / "table.md"), "--csv", str(out / "cells.csv")])
    cells = pd.read_csv(out / "cells.csv")
    ours = cells[~cells["config"].str.startswith("published")]
    assert len(ours) == 2 * 2 * 3  # assays x configurations x schemes, none dropped
    ran = ours[ours["config"] == "ridge:onehot-sites+aaprops"]
    assert ran["spearman"].notna().all() and ran["spearman"].between(-1, 1).all()
    # the labels follow the new residue's hydrophobicity, which aaprops describes: found on every scheme
    assert (ran["spearman"] > 0.3).all()
    for stage in ("load", "featurize", "fit", "write"):
        assert (ran[f"{stage} min"] >= 0).all() and (ran[f"{stage} median"] >= ran[f"{stage} min"]).all()
    na = ours[(ours["config"] == "ridge:onehot-sites+profile-if1") & (ours["assay"] == B)]
    assert len(na) == 3 and na["spearman"].isna().all() and (na["note"] == "n/a (no profile)").all()
    assert ours[(ours["config"] == "ridge:onehot-sites+profile-if1") & (ours["assay"] == A)]["spearman"].notna().all()
    published = cells[cells["config"].str.startswith("published")]
    assert set(published["assay"]) == {A}  # B is not on the leaderboard
    assert dict(zip(published["config"] + " " + published["scheme"], published["spearman"]))[
        "published: Kermut modulo"] == 0.2
    text = (out / "table.md").read_text()
    assert "| assay | config | random | modulo | contiguous | mean |" in text
    assert "| assay | scheme | config | spearman | features | note | load s | featurize s | fit s | write s | load average |" in text
    assert "n/a (no profile)" in text and "published: Kermut" in text
    # resumable: a second run with --resume keeps both assays and fits nothing
    main(["--root", str(gym), "--configs", "ridge:onehot-sites+aaprops", "--csv", str(out / "cells.csv"),
          "--resume"])
    assert "skipped" in capsys.readouterr().err and len(pd.read_csv(out / "cells.csv")) == len(cells)


def test_structures_are_found_beside_profiles_and_missing_ones_are_not_applicable(gym):
    import gemmi

    (gym / "structures").mkdir()
    chain = gemmi.Chain("A")
    for i, letter in enumerate(PARENT):
        residue = gemmi.Residue()
        residue.name, residue.seqid = gemmi.expand_one_letter(letter, gemmi.ResidueKind.AA), gemmi.SeqId(i + 1, " ")
        atom = gemmi.Atom()
        atom.name, atom.element, atom.pos = "CA", gemmi.Element("C"), gemmi.Position(3.8 * i, 0, 0)
        residue.add_atom(atom)
        chain.add_residue(residue)
    model = gemmi.Model("1")
    model.add_chain(chain)
    structure = gemmi.Structure()
    structure.add_model(model)
    (gym / "structures" / "AAAA_TEST.pdb").write_text(structure.make_pdb_string())
    a, b = discover(gym)
    assert block_specs(a)["structure"] == f"structure:{gym / 'structures' / 'AAAA_TEST.pdb'}"
    assert resolve("gp:onehot-sites+structure", block_specs(b)) == ([], "no structure", [])
    from bench.proteingym import published

    best = [r for r in published(a) if r["config"] == "published: best"]
    assert [r["spearman"] for r in best] == [0.5, 0.2, 0.1] and best[0]["note"] == "best of every column: Kermut"
