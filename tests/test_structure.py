"""A structure the user brings (--structure, --chain, --sites): reading and mapping onto the parent, the structure
featurizer, Kermut's structure kernel in the GP, and every bad input refused in one line with nothing written."""
import json

import gemmi
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import refused
from mimo.models.data import feature_blocks
from mimo.models.estimators.gp.kernels import SiteKernel, kernels_for
from mimo.models.estimators.gp.structure import DistanceKernel, StructureSiteKernel
from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers import featurizer_from_manifest, get_featurizer
from mimo.pipeline.featurizers.structure import StructureFeaturizer, columns_for
from mimo.pipeline.io.structure import parse_sites, read_structure
from mimo.pipeline.io.variantset import VariantSet
from test_generalize import PARENT, write_proteingym_like
from test_profile import write_mpnn


def helix(n: int) -> np.ndarray:
    """CA positions of an ideal alpha helix (3.6 residues a turn, 1.5 A rise)."""
    t = np.radians(100.0) * np.arange(n)
    return np.column_stack([2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * np.arange(n)])


def make_structure(sequence: str, start: int = 1, chain: str = "A", ca_only: bool = False, plddt: bool = True,
                   models: int = 1, icode_at: int | None = None, skip: tuple = (), het_chain: str | None = None):
    """A gemmi Structure of ``sequence`` on a helix, residues numbered from ``start`` (``icode_at``: that residue
    gets insertion code A and the numbering does not advance), ``skip``: indices left out (missing residues);
    B-factors one per residue (a pLDDT-like 50-99) when ``plddt``, else varying per atom."""
    structure = gemmi.Structure()
    for m in range(models):
        model = gemmi.Model(str(m + 1))
        ch = gemmi.Chain(chain)
        ca = helix(len(sequence)) + m * 0.3
        number = start
        for i, letter in enumerate(sequence):
            if i in skip:
                number += 1
                continue
            residue = gemmi.Residue()
            residue.name = gemmi.expand_one_letter(letter, gemmi.ResidueKind.AA)
            residue.seqid = gemmi.SeqId(number, "A" if i == icode_at else " ")
            number += 0 if i == icode_at else 1
            outward = np.array([ca[i, 0], ca[i, 1], 0.0]) / 2.3
            atoms = [("CA", ca[i])] if ca_only else [
                ("N", ca[i] + [0.0, 0.0, -1.0]), ("CA", ca[i]), ("C", ca[i] + [0.0, 0.0, 1.0]),
                ("CB", ca[i] + 1.5 * outward)]
            for k, (name, xyz) in enumerate(atoms):
                atom = gemmi.Atom()
                atom.name, atom.element = name, gemmi.Element(name[0])
                atom.pos = gemmi.Position(*map(float, xyz))
                atom.b_iso = 50.0 + (i * 7) % 49 if plddt else 20.0 + k + i
                atom.occ = 1.0
                residue.add_atom(atom)
            ch.add_residue(residue)
        model.add_chain(ch)
        if het_chain:
            het = gemmi.Chain(het_chain)
            for k in range(3):
                water = gemmi.Residue()
                water.name, water.het_flag = "HOH", "H"
                water.seqid = gemmi.SeqId(k + 1, " ")
                atom = gemmi.Atom()
                atom.name, atom.element, atom.pos = "O", gemmi.Element("O"), gemmi.Position(20.0 + k, 0, 0)
                water.add_atom(atom)
                het.add_residue(water)
            model.add_chain(het)
        structure.add_model(model)
    structure.setup_entities()
    return structure


def write_pdb(path, structure):
    path.write_text(structure.make_pdb_string())
    return path


def dataset(frame=None, parent=PARENT):
    return VariantSet("p", pd.DataFrame() if frame is None else frame, parent)


def aligned(*mutations):
    """The parent-aligned sequence of 1-based substitutions like (5, 'W')."""
    seq = list(PARENT)
    for position, letter in mutations:
        seq[position - 1] = letter
    return "".join(seq)


# ------------------------------------------------------------------------------------------------ reading

def test_other_numbering_insertion_codes_missing_residues_and_tails_map_by_alignment(tmp_path):
    chain = "GSHM" + PARENT[:30] + PARENT[34:]  # a tag in front, four residues never built
    path = write_pdb(tmp_path / "s.pdb", make_structure(chain, start=101, icode_at=10))
    mapped = read_structure(path, PARENT)
    covered = mapped.covered
    assert covered.sum() == len(PARENT) - 4 and not covered[30:34].any() and covered[:30].all()
    first = mapped.summary().splitlines()[0]
    assert first.startswith("chain A residues 105-146 cover parent positions 1-47")  # the tag maps nowhere
    assert "4 positions have no coordinates" in first
    # residues after the insertion code and after the gap sit where the parent says, whatever their numbers
    built = helix(len(chain))
    np.testing.assert_allclose(mapped.ca[[0, 20, 35]], built[[4, 24, 35]], atol=1e-3)


def test_mmcif_reads_as_the_pdb_does(tmp_path):
    structure = make_structure(PARENT)
    pdb = write_pdb(tmp_path / "s.pdb", structure)
    structure.make_mmcif_document().write_file(str(tmp_path / "s.cif"))
    a, b = read_structure(pdb, PARENT), read_structure(tmp_path / "s.cif", PARENT)
    np.testing.assert_allclose(a.ca, b.ca, atol=1e-3)
    np.testing.assert_allclose(a.plddt, b.plddt, atol=1e-2)


def test_nmr_ensembles_use_the_first_model_and_say_so(tmp_path):
    path = write_pdb(tmp_path / "s.pdb", make_structure(PARENT, models=3))
    mapped = read_structure(path, PARENT)
    np.testing.assert_allclose(mapped.ca, helix(len(PARENT)), atol=1e-3)  # model 2 is shifted by 0.3
    assert "3 models (an NMR ensemble?): the first is used" in mapped.summary()


def test_plddt_read_only_from_alphafold_like_b_factors(tmp_path):
    af = read_structure(write_pdb(tmp_path / "af.pdb", make_structure(PARENT)), PARENT)
    assert af.alphafold and "pLDDT read from the B-factor column" in af.summary()
    np.testing.assert_allclose(af.plddt, [50.0 + (i * 7) % 49 for i in range(len(PARENT))], atol=0.01)
    experimental = read_structure(write_pdb(tmp_path / "x.pdb", make_structure(PARENT, plddt=False)), PARENT)
    assert experimental.alphafold is None and np.isnan(experimental.plddt).all()
    features = StructureFeaturizer(tmp_path / "x.pdb", PARENT).encode([aligned((5, "W"))])
    assert features[0, columns_for(())[:].index("plddt")] == 0  # unknown, not invented


def test_ca_only_structures_say_which_features_fall_back(tmp_path):
    path = write_pdb(tmp_path / "s.pdb", make_structure(PARENT, ca_only=True))
    mapped = read_structure(path, PARENT)
    assert mapped.ca_only and "only CA atoms: neighbour counts use CA for CB" in mapped.summary()
    np.testing.assert_allclose(mapped.cb, mapped.ca)
    values = StructureFeaturizer(path, PARENT).encode([aligned((20, "W"))])
    assert np.isfinite(values).all() and values[0, columns_for(()).index("contacts_12")] > 0


def test_the_best_aligning_chain_is_chosen_and_chain_picks_another(tmp_path):
    structure = make_structure(PARENT)
    other = make_structure("W" * 20, chain="B")
    structure[0].add_chain(other[0]["B"])
    path = write_pdb(tmp_path / "s.pdb", structure)
    assert read_structure(path, PARENT).chain == "A"
    with pytest.raises(DataError, match="chain B's sequence .* does not align .* identity"):
        read_structure(path, PARENT, chain="B")


# ------------------------------------------------------------------------------------------------ bad input

def test_a_sequence_that_does_not_align_reports_the_identity_found(tmp_path):
    path = write_pdb(tmp_path / "s.pdb", make_structure("ACDEFGHIKLMNPQRSTVWY" * 2))
    with pytest.raises(DataError, match=r"does not align to the 47-residue parent: identity \d+% .*at least 70%"):
        read_structure(path, PARENT)


def test_a_missing_chain_names_the_chains_there(tmp_path):
    path = write_pdb(tmp_path / "s.pdb", make_structure(PARENT, het_chain="W"))
    with pytest.raises(DataError, match="chain 'C' is not in the structure; its chains: A, W"):
        read_structure(path, PARENT, chain="C")


def test_a_chain_of_hetatm_records_only_is_refused(tmp_path):
    path = write_pdb(tmp_path / "s.pdb", make_structure(PARENT, het_chain="W"))
    with pytest.raises(DataError, match="chain 'W' holds no amino-acid residue .* only HETATM records \\(HOH\\)"):
        read_structure(path, PARENT, chain="W")
    water = make_structure("A", het_chain="W")
    water[0].remove_chain("A")
    with pytest.raises(DataError, match="the structure's chains hold no amino-acid residue"):
        read_structure(write_pdb(tmp_path / "w.pdb", water), PARENT)


def test_a_file_neither_pdb_nor_mmcif_is_refused(tmp_path):
    (tmp_path / "s.txt").write_text(">parent\n" + PARENT + "\n")
    with pytest.raises(DataError, match="neither a PDB nor an mmCIF file"):
        read_structure(tmp_path / "s.txt", PARENT)
    (tmp_path / "bad.cif").write_text("data_x\nloop_\n_atom_site.id\n")
    with pytest.raises(DataError, match="empty model|not a readable mmCIF"):
        read_structure(tmp_path / "bad.cif", PARENT)


def test_an_empty_model_is_refused(tmp_path):
    (tmp_path / "e.pdb").write_text("MODEL        1\nENDMDL\nEND\n")
    with pytest.raises(DataError, match="holds no atoms \\(an empty model\\)"):
        read_structure(tmp_path / "e.pdb", PARENT)


def test_sites_outside_the_parent_or_without_coordinates_are_refused(tmp_path):
    assert parse_sites("41, 5", PARENT) == (41, 5)
    with pytest.raises(DataError, match="--sites '41,48': 48 outside the parent \\(positions 1-47\\)"):
        parse_sites("41,48", PARENT)
    with pytest.raises(DataError, match="expected comma-separated parent positions"):
        parse_sites("41;x", PARENT)
    path = write_pdb(tmp_path / "s.pdb", make_structure(PARENT, skip=(3,)))
    with pytest.raises(DataError, match="parent position 4 has no coordinates in chain A"):
        StructureFeaturizer(path, PARENT, sites="4")


def test_cli_refuses_bad_structures_in_one_line_and_writes_nothing(tmp_path, cli):
    write_proteingym_like(tmp_path / "assay.csv")
    write_pdb(tmp_path / "far.pdb", make_structure("ACDEFGHIKLMNPQRSTVWY" * 2))
    (tmp_path / "s.txt").write_text("hello\n")
    write_pdb(tmp_path / "ok.pdb", make_structure(PARENT))
    cache = tmp_path / "c"
    for args, fragment in [(("--structure", tmp_path / "far.pdb"), "identity"),
                           (("--structure", tmp_path / "s.txt"), "neither a PDB nor an mmCIF"),
                           (("--structure", tmp_path / "ok.pdb", "--chain", "Q"), "chain 'Q' is not in the structure"),
                           (("--structure", tmp_path / "ok.pdb", "--sites", "99"), "outside the parent"),
                           (("--chain", "A"), "--chain goes with --structure FILE")]:
        for command in (("embed", "build", "--input", tmp_path / "assay.csv", "--model", "aaprops"),
                        ("fit", "ridge", "--input", tmp_path / "assay.csv", "--out", tmp_path / "run")):
            refused(cli(*command, "--cache", cache, "--quiet", *args, ok=False), fragment)
            assert not cache.exists() and not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ features

@pytest.fixture
def pdb(tmp_path):
    return write_pdb(tmp_path / "s.pdb", make_structure(PARENT))


def test_features_of_singles_and_the_pairs_of_multi_mutants(pdb):
    featurizer = StructureFeaturizer(pdb, PARENT, sites=(10,))
    col = {c: i for i, c in enumerate(featurizer.columns)}
    rows = featurizer.encode([PARENT, aligned((5, "W")), aligned((5, "W"), (9, "A")), aligned((5, "W"), (40, "A"))])
    assert (rows[0, :-1] == 0).all() and rows[0, col["covered"]] == 1
    ca = helix(len(PARENT))
    np.testing.assert_allclose(rows[1, col["site_distance"]], np.linalg.norm(ca[4] - ca[9]), atol=1e-2)
    np.testing.assert_allclose(rows[2, col["min_pair_distance"]], np.linalg.norm(ca[4] - ca[8]), atol=1e-2)
    assert rows[2, col["close_pairs"]] == 1 and rows[3, col["close_pairs"]] == 0  # i, i+4 touch; i, i+35 do not
    np.testing.assert_allclose(rows[2, [col["x"], col["y"], col["z"]]],
                               (ca[4] + ca[8]) / 2 - ca.mean(axis=0), atol=1e-2)
    assert rows[1, col["min_pair_distance"]] == 0  # a single has no pair


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, len(PARENT)), st.sampled_from("ACDEFGHIKLMNPQRSTVWY")), min_size=2,
                max_size=4, unique_by=lambda t: t[0]))
def test_site_columns_of_a_multi_mutant_are_the_sum_of_its_singles(tmp_path_factory, mutations):
    featurizer = _shared_featurizer(tmp_path_factory)
    mutations = [(p, a) for p, a in mutations if PARENT[p - 1] != a]
    sites = slice(0, featurizer.columns.index("min_pair_distance"))
    multi = featurizer.encode([aligned(*mutations)])[0, sites]
    singles = featurizer.encode([aligned(m) for m in mutations])[:, sites].sum(axis=0)
    np.testing.assert_allclose(multi, singles, rtol=1e-5, atol=1e-4)


_FEATURIZERS = {}


def _shared_featurizer(factory):
    if "f" not in _FEATURIZERS:
        path = write_pdb(factory.mktemp("hyp") / "s.pdb", make_structure(PARENT))
        _FEATURIZERS["f"] = StructureFeaturizer(path, PARENT)
    return _FEATURIZERS["f"]


def test_sites_without_coordinates_give_no_signal(tmp_path):
    path = write_pdb(tmp_path / "s.pdb", make_structure(PARENT, skip=(19, 20)))
    featurizer = StructureFeaturizer(path, PARENT)
    rows = featurizer.encode([aligned((20, "W")), aligned((20, "W"), (5, "A")), aligned((5, "A"))])
    assert rows[0, -1] == 0 and (rows[0, :-1] == 0).all()
    np.testing.assert_allclose(rows[1, :-1], rows[2, :-1])  # the uncovered site adds nothing
    assert rows[1, -1] == 0 and rows[2, -1] == 1


def test_burial_counts_the_core_above_the_surface(tmp_path):
    pdb = write_pdb(tmp_path / "s.pdb", make_structure(PARENT))
    featurizer = StructureFeaturizer(pdb, PARENT)
    col = featurizer.columns.index("contacts_12")
    end, middle = featurizer.encode([aligned((1, "W")), aligned((24, "W"))])[:, col]
    assert middle > end  # the helix's middle has neighbours on both sides


def test_the_cache_records_the_structure_and_refuses_it_changed(tmp_path, cli):
    write_proteingym_like(tmp_path / "assay.csv")
    pdb = write_pdb(tmp_path / "s.pdb", make_structure(PARENT))
    cache = tmp_path / "c"
    result = cli("embed", "build", "--input", tmp_path / "assay.csv", "--structure", pdb, "--sites", "10",
                 "--cache", cache, "--quiet")
    assert "chain A residues 1-47 cover parent positions 1-47" in result.output
    info = json.loads((cache / "assay" / "dataset.json").read_text())
    assert info["structure"]["path"] == str(pdb.resolve()) and len(info["structure"]["sha256"]) == 64
    manifest = json.loads((cache / "assay" / "structure-s" / "manifest.json").read_text())
    assert manifest["sites"] == [10] and manifest["weights_fingerprint"] == info["structure"]["sha256"]
    cli("embed", "build", "--dataset", "assay", "--model", "aaprops", "--cache", cache, "--quiet")
    assert json.loads((cache / "assay" / "dataset.json").read_text())["structure"] == info["structure"]
    run = tmp_path / "run"
    cli("fit", "ridge", "--dataset", "assay", "--features", "aaprops+structure-s", "--cache", cache, "--out", run)
    (tmp_path / "v.csv").write_text("mutant\nM1W\n")
    cli("predict", "--run", run, "--variants", tmp_path / "v.csv")
    moved = make_structure(PARENT)
    for residue in moved[0]["A"]:
        for atom in residue:
            atom.pos = gemmi.Position(atom.pos.x * 1.1, atom.pos.y, atom.pos.z)
    write_pdb(pdb, moved)
    refused(cli("predict", "--run", run, "--variants", tmp_path / "v.csv", ok=False),
            "the structure file changed since the cache was built")
    with pytest.raises(DataError, match="the structure file changed"):
        featurizer_from_manifest(manifest, PARENT)
    with pytest.raises(DataError, match="the structure file changed"):
        get_featurizer("structure", VariantSet("assay", pd.DataFrame(), PARENT, structure=info["structure"]))


def test_fit_input_with_a_structure_joins_its_features(tmp_path, cli):
    write_proteingym_like(tmp_path / "assay.csv")
    pdb = write_pdb(tmp_path / "s.pdb", make_structure(PARENT))
    result = cli("fit", "ridge", "--input", tmp_path / "assay.csv", "--structure", pdb, "--cache", tmp_path / "c",
                 "--cv", "fold_modulo_5", "--out", tmp_path / "run")
    assert "onehot-sites+aaprops+structure-s" in result.output


# ------------------------------------------------------------------------------------------------ the kernel

def _joined(tmp_path, frame_rows):
    """Profile and structure columns of some variants, as the GP sees them joined, and their blocks."""
    write_mpnn(tmp_path / "p.npz")
    pdb = write_pdb(tmp_path / "s.pdb", make_structure(PARENT, skip=(30,)))
    profile = get_featurizer(f"profile:{tmp_path / 'p.npz'}", dataset())
    structure = StructureFeaturizer(pdb, PARENT)
    X = np.hstack([profile.encode(frame_rows), structure.encode(frame_rows)]).astype(np.float64)
    manifest = {"parts": [profile.manifest(), structure.manifest()]}
    return X, feature_blocks(manifest), profile, structure


def test_the_structure_kernel_is_kermuts_product(tmp_path):
    rows = [aligned((5, "W")), aligned((9, "A")), aligned((31, "L")), aligned((40, "G")), PARENT]
    X, blocks, profile, structure = _joined(tmp_path, rows)
    kernels = [k for _, k in kernels_for(blocks, "rbf")]
    assert not any(type(k) is SiteKernel for k in kernels)
    kernel = next(k for k in kernels if isinstance(k, StructureSiteKernel))
    kernel.site.site_lengthscale = [0.5, 2.0]
    kernel.lengthscale = 7.0
    value = kernel(torch.as_tensor(X), torch.as_tensor(X)).to_dense().detach().numpy()
    p = X[:, :profile.dim][:, [profile.columns.index(f"p_{a}") for a in "ACDEFGHIKLMNPQRSTVWY"]]
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
    logp = X[:, profile.columns.index("mt_logp")]
    xyz = X[:, profile.dim + np.array([structure.columns.index(c) for c in "xyz"])]
    placed = X[:, profile.dim + structure.columns.index("covered")] > 0.5
    expected = np.zeros((len(rows), len(rows)))
    for i in range(len(rows)):
        for j in range(len(rows)):
            if i == 4 or j == 4:
                continue  # the parent has no site: 0
            h = np.sqrt(max(0.0, 1 - np.sqrt(p[i] * p[j]).sum()))
            d = np.linalg.norm(xyz[i] - xyz[j]) if placed[i] and placed[j] else 0.0
            expected[i, j] = np.exp(-h / 0.5 - abs(logp[i] - logp[j]) / 2.0 - d / 7.0)
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-9)
    assert not placed[2]  # site 31 has no coordinates: the site kernel alone speaks for it


def test_without_a_profile_the_distance_kernel_stands_alone(tmp_path):
    rows = [aligned((5, "W")), aligned((9, "A")), PARENT]
    X, blocks, profile, structure = _joined(tmp_path, rows)
    only = tuple((name, kind, start - profile.dim, stop - profile.dim, cols) for name, kind, start, stop, cols
                 in blocks[1:])
    kernels = [k for _, k in kernels_for(only, "rbf")]
    distance = next(k for k in kernels if isinstance(k, DistanceKernel))
    distance.lengthscale = 5.0
    value = distance(torch.as_tensor(X[:, profile.dim:]), torch.as_tensor(X[:, profile.dim:])).to_dense()
    ca = helix(len(PARENT))
    assert value[0, 1].item() == pytest.approx(np.exp(-np.linalg.norm(ca[4] - ca[8]) / 5.0), rel=1e-3)
    assert value[2].abs().sum().item() == 0  # the parent


@pytest.mark.slow
def test_gp_fits_with_the_structure_kernel_and_reports_its_length_scale(tmp_path):
    import mimo

    write_proteingym_like(tmp_path / "assay.csv")
    data = mimo.load_dataset(tmp_path / "assay.csv")
    X, blocks, _, _ = _joined(tmp_path, data.frame["aligned"].tolist())
    gp = mimo.get_head("gp", blocks=blocks, steps=20)
    gp.fit(X.astype(np.float32), data.frame["label"].to_numpy())
    kinds = [k["kernel"] for k in gp.hyperparameters()["kernels"]]
    assert "StructureSiteKernel" in kinds
    described = next(k for k in gp.hyperparameters()["kernels"] if k["kernel"] == "StructureSiteKernel")
    assert described["distance_lengthscale_angstrom"] > 0
    assert np.isfinite(gp.predict(X[:5].astype(np.float32))).all()
