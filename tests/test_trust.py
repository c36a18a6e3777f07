"""Trust what it prints: no silent wrong results, no lost runs, a one-line error for every bad input."""
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from mimo.pipeline.testing import save_random_esm2
from conftest import refused, run_cli as cli

FAST = ["--epochs", "3", "--batch-size", "64", "--min-steps", "60", "--quiet"]  # a short step schedule




@pytest.fixture(scope="module")
def cache(onehot_cache):
    return onehot_cache


# ------------------------------------------------------------------------------------ silent wrong results

def test_unseen_substitutions_are_marked_with_a_warning(tmp_path, ridge_run):
    support = json.loads((ridge_run / "support.json").read_text())
    assert "1W" not in support["substitutions"] and "1C" not in support["substitutions"]
    variants = tmp_path / "v.txt"
    variants.write_text("SK1W\nSK1C\n#\n")
    result = cli("predict", "--run", ridge_run, "--variants", variants)
    table = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert table["unseen"].tolist() == [1, 1, 0] and table["no_signal"].tolist() == [True, True, False]
    assert "warning: 2 of 3 variants carry substitutions never measured in training" in result.stderr
    predictions = pd.read_csv(ridge_run / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    assert (test["unseen"] > 0).any() and (predictions.loc[predictions["split"] == "train", "unseen"] == 0).all()
    metrics = json.loads((ridge_run / "metrics.json").read_text())
    assert metrics["support"]["test_rows_without_signal"] == int(test["no_signal"].sum()) > 0


def test_fit_refuses_a_partial_cache_unless_asked(tmp_path, small_gfp_dir):
    root = tmp_path / "c"
    cli("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache", root, "--quiet")
    shard = root / "gfp" / "onehot" / "m05.h5"
    with h5py.File(shard) as f:
        lost = len(f["id"])
    shard.unlink()  # as if the build had stopped before these rows
    message = refused(cli("fit", "ridge", "--cache", root, "--out", tmp_path / "r", ok=False),
                      f"holds {601 - lost} of its 601 rows ({lost} missing", "--model onehot", "--allow-partial")
    assert "mimo embed build" in message and not (tmp_path / "r").exists()
    cli("fit", "ridge", "--cache", root, "--out", tmp_path / "r", "--allow-partial")
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["partial_cache"] == {"cached_rows": 601 - lost, "dataset_rows": 601, "missing_rows": lost}


def test_weights_changed_at_the_same_path_are_refused(tmp_path, small_gfp_dir):
    weights = save_random_esm2(tmp_path / "w.pt", 2, 32, 4, seed=1)
    build = ["embed", "build", "--weights", weights, "--data", small_gfp_dir, "--cache", tmp_path / "c", "--quiet",
             "--device", "cpu", "--dtype", "float32"]
    cli(*build)
    save_random_esm2(weights, 2, 32, 4, seed=2)  # retrained, same path and shape
    refused(cli(*build, ok=False), "the weights file changed since the cache was started", "weights_fingerprint")


def test_labels_too_large_are_refused_at_read(tmp_path):
    """Beyond float32 (the heads' precision), a label is refused naming its line, before anything is cached
    (labels of 1e300 were cached before, and only the fit refused them)."""
    rows = ["mutant,DMS_score"] + [f"K2{a},{1e300 * (i % 3 + 1)}" for i, a in enumerate("ACDEFGHILMNPQRSTVWY")]
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    refused(cli("embed", "build", "--input", tmp_path / "big.csv", "--parent", "MKTAYIAK", "--model", "onehot",
                "--cache", tmp_path / "c", "--quiet", ok=False), "big.csv:2: label '1e+300' is beyond float32's range")
    assert not (tmp_path / "c").exists()


def test_non_finite_predictions_or_metrics_are_errors():
    from mimo.models.runs.evaluate import check_finite, check_finite_metrics
    from mimo.pipeline.errors import DataError

    with pytest.raises(DataError, match="1 non-finite value"):
        check_finite(np.array([[1.0], [np.nan]]), "the model's predictions")
    with pytest.raises(DataError, match=r"metric test.spearman is nan"):
        check_finite_metrics({"test": {"spearman": float("nan"), "mse": 1.0}, "valid": {"spearman": None}})
    check_finite_metrics({"test": {"spearman": None, "mse": 1.0}})


def test_corrupted_bytes_in_a_shard_are_caught_then_repaired(tmp_path, small_gfp_dir, tiny_esm):
    build = ["embed", "build", "--weights", tiny_esm, "--data", small_gfp_dir, "--cache", tmp_path / "c",
             "--quiet", "--device", "cpu", "--dtype", "float32"]
    cli(*build)
    features = tmp_path / "c" / "gfp" / f"{tiny_esm.stem}_L2"
    shard = features / "m04.h5"
    with h5py.File(shard, "r") as f:
        offset, expected = f["embedding"].id.get_offset(), f["embedding"][:]
    with open(shard, "r+b") as handle:  # flip bytes inside the data, leaving HDF5's structure intact
        handle.seek(offset + 40)
        handle.write(b"\x13\x37" * 8)
    with h5py.File(shard, "r") as f:
        assert not np.array_equal(f["embedding"][:], expected)  # h5py reads it without complaint
    refused(cli("fit", "ridge", "--cache", tmp_path / "c", "--out", tmp_path / "r", ok=False),
            "m04.h5", "do not match the checksum")
    cli(*build)
    assert len(list(features.glob("m04.h5.*.corrupt"))) == 1
    with h5py.File(shard, "r") as f:
        np.testing.assert_array_equal(f["embedding"][:], expected)
    cli("fit", "ridge", "--cache", tmp_path / "c", "--out", tmp_path / "r")


# ------------------------------------------------------------------------------------ lost or mixed work

def test_out_onto_an_existing_run_is_refused_and_force_replaces_it(tmp_path, cache):
    out = tmp_path / "run"
    cli("fit", "ridge", "--cache", cache, "--out", out)
    before = (out / "metrics.json").read_text()
    refused(cli("fit", "mlp", *FAST, "--cache", cache, "--out", out, ok=False), "--out is not empty", "--force")
    assert (out / "metrics.json").read_text() == before and not (out / "loss_curve.svg").exists()
    cli("fit", "mlp", *FAST, "--cache", cache, "--out", out, "--force")
    assert json.loads((out / "metrics.json").read_text())["model"] == "mlp"
    assert sorted(p.name for p in out.iterdir()) == ["loss_curve.png", "loss_curve.svg", "metrics.json", "model.npz",
                                                      "predictions.csv", "report.html", "source.json",
                                                      "support.json", "test_predictions.png", "test_predictions.svg"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_a_bad_out_is_refused_before_training(tmp_path, cache, monkeypatch):
    import mimo.models.runs.fit

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking --out")
    monkeypatch.setattr(mimo.models.runs.fit, "timed", no_training)
    refused(cli("fit", "ridge", "--cache", cache, "--out", "/proc/self/x", ok=False), "/proc/self/x",
            "cannot write the run directory")
    (tmp_path / "file").write_text("x")
    result = cli("fit", "ridge", "--cache", cache, "--out", tmp_path / "file", ok=False)
    assert result.exit_code == 2 and "is a file" in result.output


def test_refused_long_input_writes_nothing_and_truncate_then_works(tmp_path, tiny_esm):
    (tmp_path / "long.fasta").write_text(">long\n" + "M" + "A" * 4999 + "\n>short\nMKTAYIAK\n")
    build = ["embed", "build", "--input", tmp_path / "long.fasta", "--weights", tiny_esm, "--cache", tmp_path / "c",
             "--quiet", "--device", "cpu"]
    message = refused(cli(*build, ok=False), "longer than ESM's 1022 residues", "--truncate")
    assert "--features" not in message and not (tmp_path / "c").exists()
    result = cli(*build, "--truncate")
    assert "2 sequences, 0 already cached, 2 embedded" in result.output


# ------------------------------------------------------------------------------------ bad input matrix

def _files(tmp_path: Path) -> dict:
    (tmp_path / "latin1.csv").write_bytes("mutant,score\nK2R,1.0\nK2A,caf\xe9\n".encode("latin-1"))
    (tmp_path / "adir").mkdir()
    (tmp_path / "seqs.fasta").write_text(">a\nMKTAYIAK\n>b\nMKTAYIAR\n")
    (tmp_path / "dup_split.csv").write_text("key,split\n#,train\n#,test\n")
    (tmp_path / "stop.csv").write_text("mutated_sequence,score\nMKT*YIAK,1.0\n")
    (tmp_path / "counts.csv").write_text("sequence,score\n" + "".join(f"MKTAYIA{a},{i}\n" for i, a in
                                                                         enumerate("ACDEFGHIKLMNPQRSTVWY")))
    (tmp_path / "pg.csv").write_text("mutant,mutated_sequence,DMS_score\nK2R,MRTAYIAK,1.0\nT3A,MKAAYIAK,2.0\n"
                                     "A4G,MKTGYIAQ,3.0\n")
    return {"t": tmp_path}


BAD = [
    (["embed", "build", "--model", "onehot", "--input", "{t}/latin1.csv", "--parent", "MKTAYIAK"],
     1, ["latin1.csv:3", "not UTF-8"]),
    (["embed", "build", "--model", "onehot", "--input", "{t}/adir"], 1, ["adir", "is a directory", "--input"]),
    (["embed", "build", "--model", "onehot", "--input", "{t}/pg.csv", "--parent", "{t}/adir"], 1,
     ["adir", "is a directory", "--parent"]),
    (["predict", "--run", "{run}", "--variants", "{t}/adir"], 1, ["adir", "is a directory", "--variants"]),
    (["predict", "--run", "{run}", "--variants", "{t}/latin1.csv"], 1, ["latin1.csv", "not UTF-8"]),
    (["fit", "mlp", "--cache", "{cache}", "--device", "cuda", "--out", "{t}/r"], 1, ["--device cuda"]),
    (["embed", "build", "--model", "onehot", "--data", "{gfp}", "--sample", "-5"], 2, ["--sample"]),
    (["embed", "build", "--model", "onehot", "--data", "{gfp}", "--sample", "0"], 2, ["--sample"]),
    (["fit", "ridge", "--dataset", "seqs", "--cache", "{t}/fc"], 1, ["no scores", "nothing to fit"]),
    (["predict", "--run", "{run}", "--variants", "{t}/v.txt", "--out", "{t}/nodir/x.csv"], 1, ["nodir", "--out"]),
    (["fit", "mlp", "--cache", "{cache}", "--epochs", "0"], 2, ["--epochs"]),
    (["fit", "mlp", "--cache", "{cache}", "--epochs", "-3"], 2, ["--epochs"]),
    (["fit", "mlp", "--cache", "{cache}", "--lr", "-0.01"], 2, ["--lr"]),
    (["fit", "mlp", "--cache", "{cache}", "--batch-size", "0"], 2, ["--batch-size"]),
    (["fit", "mimo", "--cache", "{cache}", "--members", "0"], 2, ["--members"]),
    (["fit", "ridge", "--cache", "{cache}", "--split-file", "{t}/dup_split.csv", "--out", "{t}/r"], 1,
     ["dup_split.csv:3", "same sequence as line 2"]),
    (["embed", "build", "--model", "onehot", "--input", "{t}/stop.csv"], 1, ["stop.csv:2", "'*' is a stop"]),
    (["embed", "build", "--model", "onehot", "--weights", "{t}/w.pt", "--data", "{gfp}"], 1,
     ["--model or --weights, not both"]),
    (["fit", "mimo", "--routing", "mutations", "--dataset", "counts", "--cache", "{t}/fc", "--out", "{t}/r"], 1,
     ["mutation count", "--routing random"]),
    (["embed", "build", "--model", "onehot", "--input", "{t}/pg.csv", "--cache", "{t}/pgc"], 1,
     ["pg.csv:4", "another parent than line 2", "--parent"]),
]


@pytest.mark.parametrize("args, status, fragments", BAD, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _, _) in
                                                               enumerate(BAD)])
def test_bad_input_gets_one_line_and_writes_nothing(tmp_path, args, status, fragments, cache, ridge_run,
                                                    small_gfp_dir):
    names = {**_files(tmp_path), "run": ridge_run, "cache": cache, "gfp": small_gfp_dir}
    (tmp_path / "v.txt").write_text("SA108D\n")
    cli("embed", "build", "--input", tmp_path / "seqs.fasta", "--model", "onehot-full", "--parent", "MKTAYIAK",
        "--cache", tmp_path / "fc", "--quiet")
    cli("embed", "build", "--input", tmp_path / "counts.csv", "--model", "unirep64", "--cache", tmp_path / "fc",
        "--quiet")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = cli(*[a.format(**names) for a in args], ok=False)
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written


def test_proteingym_csv_needs_no_options(tmp_path):
    (tmp_path / "pg.csv").write_text("mutant,mutated_sequence,DMS_score\nK2R,MRTAYIAK,1.0\nT3A:A4G,MKAGYIAK,2.0\n"
                                     "Y5W,MKTAWIAK,0.5\n")
    result = cli("embed", "build", "--input", tmp_path / "pg.csv", "--model", "onehot", "--cache", tmp_path / "c",
                 "--quiet")
    assert "3 sequences" in result.output
    info = json.loads((tmp_path / "c" / "pg" / "dataset.json").read_text())
    assert info["parent"] == "MKTAYIAK"


def test_split_file_leaving_rows_out_says_how_many(tmp_path, cache, small_gfp_dir):
    frame = pd.read_csv(cache / "gfp" / "splits.csv", dtype=str)
    keys = frame["id"].tolist()
    split = ["key,split"] + [f"{k},{'train' if i % 3 else 'valid'}" for i, k in enumerate(keys[:300])]
    split += [f"{k},test" for k in keys[300:500]]
    (tmp_path / "s.csv").write_text("\n".join(split) + "\n")
    result = cli("fit", "ridge", "--cache", cache, "--split-file", tmp_path / "s.csv", "--out", tmp_path / "r")
    assert "note: 101 rows of the dataset are in no part of split s.csv" in result.stderr
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["split_unused_rows"] == 101


# ------------------------------------------------------------------------------------ usability

def test_report_skips_non_runs_lists_runs_and_tells_them_apart(tmp_path, cache, small_gfp_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli("data", "show", "--data", small_gfp_dir, "--split", "tape")
    assert (tmp_path / "figures" / "gfp-tape-split.png").exists() and not (tmp_path / "runs").exists()
    cli("fit", "mimo", *FAST, "--cache", cache, "--routing", "mutations", "--out", "runs/a")
    cli("fit", "mimo", *FAST, "--cache", cache, "--routing", "random", "--output", "monotone", "--out", "runs/b")
    (tmp_path / "runs" / "figures").mkdir()
    result = cli("report", *sorted(str(p) for p in (tmp_path / "runs").iterdir()))
    assert "runs/figures is not a run directory" in result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| a") or line.startswith("| b")]
    assert len(rows) == 2 and rows[0] != rows[1].replace("| b", "| a", 1)
    assert "routing=mutations" in rows[0] and "output=monotone" in rows[1] and "| gfp |" in rows[0]
    everything = cli("report").stdout
    assert "| a |" in everything and "| b |" in everything


def test_mimo_cache_sets_the_cache_root(tmp_path, cache, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("fit", "ridge", "--out", tmp_path / "r", env={"MIMO_CACHE": str(cache)})
    assert "ridge on gfp/onehot" in result.output


def test_every_run_plots_test_predictions(ridge_run):
    from mimo.models.report.plots import predictions_figure

    assert (ridge_run / "test_predictions.svg").read_text().lstrip().startswith("<?xml")
    assert (ridge_run / "test_predictions.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((ridge_run / "metrics.json").read_text())
    ax = predictions_figure(metrics, pd.read_csv(ridge_run / "predictions.csv")).axes[0]
    assert f"test Spearman {metrics['test']['spearman']:.3f}" in ax.get_title()
    assert sum(len(c.get_offsets()) for c in ax.collections if c.__class__.__name__ == "PathCollection") == \
        metrics["test"]["n"]
    assert any("4 mut." in t.get_text() for t in ax.get_legend().get_texts())


def test_training_reports_progress_per_epoch(cache):
    from mimo.models.data import load_split_data
    from mimo.models.estimators.neural.regressors import MlpRegressor

    data = load_split_data(cache, "gfp", "onehot", "tape")
    lines = []
    MlpRegressor(epochs=3, hidden=(8,)).fit(data.X("train"), data.y("train"), data.X("valid"), data.y("valid"),
                                            log=lines.append)
    assert len(lines) == 3 and lines[0].startswith("epoch   1/3") and "best epoch 1" in lines[0]
