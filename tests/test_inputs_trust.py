"""Trust at the input boundary: no label taken as a feature, no checkpoint unpickled with code, nothing outside the
cache touched through a link, one dataset record under concurrent builds (issue 30 High 3, 5, 6 and mediums)."""
from __future__ import annotations

import fcntl
import threading

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SHORT_PARENT, refused, run_cli, write_singles
from mimo.pipeline.cache.store import CachedEmbeddings, EmbeddingCache
from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers.scores import ScoresFeaturizer

PARENT = SHORT_PARENT


def singles(tmp_path, name="d.csv", seed=0):
    write_singles(tmp_path / name, seed=seed)
    return pd.read_csv(tmp_path / name)


# ------------------------------------------------------------------------------------------ label leaks

def test_a_scores_file_holding_the_label_never_gives_it_as_a_feature(tmp_path):
    frame = singles(tmp_path)
    scores = frame.assign(model=np.arange(len(frame)) % 7, fitness=frame["score"])
    scores.to_csv(tmp_path / "s.csv", index=False)  # mutant, score, model, fitness
    featurizer = ScoresFeaturizer(tmp_path / "s.csv", PARENT)
    assert featurizer.score_columns == ["model"]
    for label in ("score", "fitness"):
        with pytest.raises(DataError, match=f"column '{label}' is named as an assay's label"):
            ScoresFeaturizer(tmp_path / "s.csv", PARENT, [label])


def test_the_dataset_file_or_its_own_label_column_as_scores_is_refused(tmp_path):
    frame = singles(tmp_path)
    frame.rename(columns={"score": "yield_pct"}).to_csv(tmp_path / "lab.csv", index=False)
    result = run_cli("embed", "build", "--input", tmp_path / "lab.csv", "--parent", PARENT, "--score-col",
                     "yield_pct", "--model", f"scores:{tmp_path / 'lab.csv'}", "--cache", tmp_path / "c", "--quiet",
                     ok=False)
    refused(result, "the dataset's own file given as a scores file")
    frame.rename(columns={"score": "yield_pct"}).assign(other=1.0).to_csv(tmp_path / "copy.csv", index=False)
    result = run_cli("embed", "build", "--input", tmp_path / "lab.csv", "--parent", PARENT, "--score-col",
                     "yield_pct", "--model", f"scores:{tmp_path / 'copy.csv'}", "--cache", tmp_path / "c", "--quiet")
    manifest = (tmp_path / "c" / "lab" / "scores-copy" / "manifest.json").read_text()
    assert '"score_columns": [\n    "other"\n  ]' in manifest  # the dataset's label column stayed out


def test_label_leaks_finds_a_column_that_is_the_label():
    from mimo.pipeline.cache.store import label_leaks

    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    X = np.column_stack([rng.normal(size=200), 3 * y + 1 + rng.normal(0, 0.01, 200), np.ones(200)])
    rows = CachedEmbeddings(np.arange(200).astype(str), X.astype(np.float32), y, np.ones(200, int),
                            np.array([""] * 200, dtype=object),
                            {"features": "scores-x", "columns": ["noise", "copy", "constant"], "dim": 3})
    assert [leak.split(" ")[0] for leak in label_leaks(rows, np.ones(200, bool))] == ["scores-x:copy"]
    assert label_leaks(rows, np.arange(200) < 10) == []  # too few rows to tell


def test_fit_warns_when_a_feature_is_a_copy_of_the_label(tmp_path):
    frame = singles(tmp_path)
    frame.assign(pred=frame["score"] * 2).drop(columns="score").to_csv(tmp_path / "s.csv", index=False)
    run_cli("embed", "build", "--input", tmp_path / "d.csv", "--parent", PARENT, "--model",
            f"scores:{tmp_path / 's.csv'}", "--cache", tmp_path / "c", "--quiet")
    result = run_cli("fit", "ridge", "--dataset", "d", "--cache", tmp_path / "c", "--out", tmp_path / "run")
    assert "warning: 1 feature column(s) correlate with the label above 0.99" in result.output
    assert "scores-s:pred (r = 1.000)" in result.output


# --------------------------------------------------------------------------------------- scores as labs write

def test_a_scores_file_keyed_by_variant_is_joined(tmp_path):
    frame = singles(tmp_path)
    pd.DataFrame({"variant": frame["mutant"], "tranceptEVE": np.arange(len(frame), dtype=float)}).to_csv(
        tmp_path / "t.csv", index=False)
    featurizer = ScoresFeaturizer(tmp_path / "t.csv", PARENT)
    assert featurizer.join == "variant" and featurizer.score_columns == ["tranceptEVE"]
    pd.DataFrame({"id": frame["mutant"], "tranceptEVE": 1.0}).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(DataError, match=r"no column to join the scores on.*the header has \['id', 'tranceptEVE'\].*"
                                        r"mutant_col="):
        ScoresFeaturizer(tmp_path / "u.csv", PARENT)


def test_a_scores_file_joins_on_the_column_the_dataset_was_read_from(tmp_path):
    frame = singles(tmp_path)
    frame.rename(columns={"mutant": "Variant ID"}).to_csv(tmp_path / "lab.csv", index=False)
    pd.DataFrame({"Variant ID": frame["mutant"], "ev": 1.0}).to_csv(tmp_path / "ev.csv", index=False)
    run_cli("embed", "build", "--input", tmp_path / "lab.csv", "--parent", PARENT, "--mutant-col", "Variant ID",
            "--model", f"scores:{tmp_path / 'ev.csv'}", "--cache", tmp_path / "c", "--quiet")


def test_scores_beyond_float32_are_refused_naming_line_and_value(tmp_path):
    frame = singles(tmp_path)
    values = np.zeros(len(frame))
    values[3] = 1e39
    pd.DataFrame({"mutant": frame["mutant"], "m": values}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DataError, match=r"s.csv:5: column 'm' holds '1e\+39', not a number a feature can hold"):
        ScoresFeaturizer(tmp_path / "s.csv", PARENT)


# ------------------------------------------------------------------------------------------- checkpoints

class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_a_crafted_pickle_in_the_hub_cache_never_runs(tmp_path, monkeypatch):
    from mimo.pipeline.featurizers.esm_load import load_esm

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    marker = tmp_path / "marker"
    torch.save({"model": Payload(marker), "cfg": {}}, tmp_path / "hub" / "checkpoints" / "esm2_t6_8M_UR50D.pt")
    with pytest.raises(DataError, match="holds more than tensors.*never unpickles one fully"):
        load_esm("esm2_t6_8M_UR50D")
    assert not marker.exists()


def test_a_fasta_as_weights_is_said_to_be_text(tmp_path):
    from mimo.pipeline.featurizers.esm_load import load_esm

    (tmp_path / "parent.fasta").write_text(f">p\n{PARENT}\n")
    with pytest.raises(DataError, match=r"not a PyTorch checkpoint: the file holds text \(a FASTA file\?\)"):
        load_esm(weights=tmp_path / "parent.fasta")


def test_the_advice_to_complete_a_cache_names_the_options_that_built_it():
    from mimo.pipeline.cache.build import rebuild_options

    assert rebuild_options({"kind": "esm", "weights": "/w/esm_t6.pt", "layer": 6, "pooling": "mean",
                            "features": "esm_t6_L6"}) == "--weights /w/esm_t6.pt --layer 6"
    assert rebuild_options({"kind": "esm", "weights": None, "model": "esm2_t6_8M_UR50D", "layer": 6,
                            "pooling": "mutated"}) == "--model esm2_t6_8M_UR50D-mutpos --layer 6"
    assert rebuild_options({"kind": "scores", "weights": "/s.csv", "score_columns": ["a"],
                            "features": "scores-s"}) == "--model scores:/s.csv:a"
    assert rebuild_options({"kind": "onehot", "features": "onehot-sites"}) == "--model onehot-sites"


def test_partial_cache_advice_for_a_weights_build(tmp_path, tiny_esm):
    from mimo.models.data import check_complete

    manifest = {"kind": "esm", "weights": str(tiny_esm), "layer": 2, "pooling": "mean", "features": "esm2_t2_L2"}
    with pytest.raises(DataError, match=f"--weights {tiny_esm} --layer 2") as caught:
        check_complete(tmp_path, "d", "esm2_t2_L2", np.array(["a"]), np.array(["a", "b"]), False, manifest)
    assert "--model esm2_t2_L2" not in str(caught.value)


def test_several_cached_features_mention_joining_with_plus(tmp_path):
    singles(tmp_path)
    for model in ("onehot", "onehot-sites"):
        run_cli("embed", "build", "--input", tmp_path / "d.csv", "--parent", PARENT, "--model", model, "--cache",
                tmp_path / "c", "--quiet")
    result = run_cli("fit", "ridge", "--dataset", "d", "--cache", tmp_path / "c", "--out", tmp_path / "r", ok=False)
    refused(result, "pick one with --features", "join several with + (--features onehot+onehot-sites)")


# --------------------------------------------------------------------------------------------- the cache

def test_a_linked_parts_folder_is_refused_and_nothing_outside_is_touched(tmp_path):
    singles(tmp_path)
    build = ("embed", "build", "--input", tmp_path / "d.csv", "--parent", PARENT, "--model", "onehot", "--cache",
             tmp_path / "c", "--quiet")
    run_cli(*build)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".keep.tmp").write_text("mine")
    (outside / "m01-x.h5").write_text("not a shard, but mine")
    parts = tmp_path / "c" / "d" / "onehot" / "parts"
    parts.rmdir()
    parts.symlink_to(outside)
    refused(run_cli(*build, ok=False), "is a symbolic link", "never follows a link inside its cache")
    refused(run_cli("fit", "ridge", "--dataset", "d", "--cache", tmp_path / "c", "--out", tmp_path / "r", ok=False),
            "is a symbolic link")
    assert sorted(p.name for p in outside.iterdir()) == [".keep.tmp", "m01-x.h5"]
    assert (outside / "m01-x.h5").read_text() == "not a shard, but mine"


def test_dataset_records_wait_for_a_concurrent_build(tmp_path):
    """Builds of other features of one dataset rewrite dataset.json and splits.csv in turn (6 of 21 concurrent
    builds lost a split before)."""
    cache = EmbeddingCache(tmp_path, "d", "onehot")
    splits = pd.DataFrame({"id": ["a", "b", "c"], "random": ["train", "valid", "test"]})
    cache.write_dataset("d", "sum", splits, {})
    handle = open(tmp_path / "d" / ".dataset.lock", "a")
    fcntl.flock(handle, fcntl.LOCK_EX)  # another build is in the middle of its update
    writer = threading.Thread(target=cache.write_dataset,
                              args=("d", "sum", splits.assign(**{"random-seed1": ["test", "train", "valid"]}), {}))
    writer.start()
    writer.join(0.5)
    blocked = writer.is_alive()
    handle.close()
    writer.join()
    assert blocked
    assert list(cache.load_splits().columns) == ["id", "random", "random-seed1"]


def test_one_name_from_two_files_is_refused(tmp_path):
    singles(tmp_path, "a.csv", seed=0)
    singles(tmp_path, "b.csv", seed=1)
    for name, ok in (("a.csv", True), ("b.csv", False)):
        result = run_cli("embed", "build", "--input", tmp_path / name, "--parent", PARENT, "--name", "same",
                         "--model", "onehot", "--cache", tmp_path / "c", "--quiet", ok=ok)
    refused(result, "this cache holds a different dataset named 'same'")
