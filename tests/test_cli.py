"""The `mimo` command end to end on small real data."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from mimo.cli import main


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_onehot_build_then_ridge(tmp_path, small_gfp_dir):
    out = run("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache", tmp_path / "c", "--quiet")
    assert "601 sequences, 0 already cached, 601 embedded" in out.output
    again = run("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache", tmp_path / "c")
    assert "601 already cached, 0 embedded" in again.output
    for split in ("tape", "balanced"):
        fit = run("fit", "ridge", "--cache", tmp_path / "c", "--split", split, "--out", tmp_path / split)
        assert f"ridge on gfp/onehot ({split} split): test Spearman" in fit.output
        assert json.loads((tmp_path / split / "metrics.json").read_text())["split"] == split


def test_esm_weights_build_then_ridge(tmp_path, small_gfp_dir, tiny_esm):
    run("embed", "build", "--weights", tiny_esm, "--data", small_gfp_dir, "--cache", tmp_path / "c", "--quiet")
    fit = run("fit", "ridge", "--cache", tmp_path / "c", "--features", "esm2_t2_tiny_L2", "--out", tmp_path / "r")
    assert "ridge on gfp/esm2_t2_tiny_L2 (tape split)" in fit.output


def test_data_show_json_and_figure(tmp_path, small_gfp_dir):
    out = run("data", "show", "--data", small_gfp_dir, "--split", "tape", "--json", "--figure-dir", tmp_path)
    summary = json.loads(out.stdout)[0]
    assert summary["split"] == "tape"
    assert sum(p["n"] for p in summary["parts"].values()) == 601
    assert all(int(k) >= 4 for k in summary["parts"]["test"]["by_mutations"])
    assert (tmp_path / "gfp-tape-split.png").read_bytes()[:4] == b"\x89PNG"


def test_user_csv_with_parent_and_split_file(tmp_path):
    parent = "MKTAYIAKQRQISFVKSHFSRQ"
    rows = ["mutant,DMS_score"]
    for i in range(2, 20):
        for new in "ACDG":
            if parent[i - 1] != new:
                rows.append(f"{parent[i - 1]}{i}{new},{(i % 5) * 0.3 + ord(new) / 100}")
    (tmp_path / "dms.csv").write_text("\n".join(rows) + "\n")
    run("embed", "build", "--input", tmp_path / "dms.csv", "--parent", parent, "--model", "onehot",
        "--cache", tmp_path / "c", "--quiet")
    fit = run("fit", "ridge", "--dataset", "dms", "--cache", tmp_path / "c", "--out", tmp_path / "r")
    assert "ridge on dms/onehot (random split)" in fit.output
    split = ["key,split"] + [f"{line.split(',')[0]},{'train' if k % 3 else 'valid'}" for k, line in enumerate(rows[1:40])]
    split += [f"{line.split(',')[0]},test" for line in rows[40:]]
    (tmp_path / "split.csv").write_text("\n".join(split) + "\n")
    fit = run("fit", "ridge", "--dataset", "dms", "--cache", tmp_path / "c", "--split-file", tmp_path / "split.csv",
              "--out", tmp_path / "r2")
    metrics = json.loads((tmp_path / "r2" / "metrics.json").read_text())
    assert metrics["split"] == "split.csv" and metrics["test"]["n"] == len(rows) - 40


@pytest.mark.parametrize("args, message", [
    (["embed", "build", "--model", "onehot", "--data", "/nonexistent"], "/nonexistent: no amino_acid_genotypes_to_brightness.tsv here (--data)"),
    (["embed", "build", "--weights", "/nonexistent/w.pt"], "/nonexistent/w.pt: weights file not found"),
    (["fit", "ridge", "--cache", "/nonexistent"], "nothing cached for dataset 'gfp'"),
])
def test_bad_input_exits_with_clear_message(args, message, small_gfp_dir):
    if "--weights" in args:
        args = args + ["--data", str(small_gfp_dir)]
    result = run(*args, ok=False)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_malformed_token_in_user_file(tmp_path):
    (tmp_path / "v.csv").write_text("mutant,score\nK2R,1.0\nK2,2.0\n")
    result = run("embed", "build", "--input", tmp_path / "v.csv", "--parent", "MKTAYIAK", "--model", "onehot",
                 "--cache", tmp_path / "c", ok=False)
    assert result.exit_code == 1
    assert "v.csv:3: malformed mutation token 'K2'" in result.output
    assert not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def onehot_cache(tmp_path_factory, small_gfp_dir):
    root = tmp_path_factory.mktemp("cache")
    run("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache", root, "--quiet")
    return root


FAST = ["--epochs", "3", "--batch-size", "32", "--min-steps", "60"]  # a short step schedule


@pytest.mark.slow
def test_every_head_then_report(tmp_path, onehot_cache):
    runs = []
    for head, extra in (("ridge", []), ("mlp", FAST + ["--hidden", "16"]), ("cnn", FAST + ["--channels", "4"]),
                        ("ge", FAST), ("mimo", FAST + ["--routing", "mutations", "--repeat", "2"]),
                        ("mimo", FAST + ["--routing", "random", "--rho", "0.3"]),
                        ("mimo", FAST + ["--routing", "random", "--output", "monotone"])):
        out = tmp_path / f"{head}-{len(runs)}"
        result = run("fit", head, *extra, "--cache", onehot_cache, "--out", out)
        assert f"{head} on gfp/onehot (tape split): test Spearman" in result.output
        runs.append(out)
    assert "95% intervals (calibrated on valid): coverage on valid" in result.output  # not the raw 2-std spread
    assert "coverage of mean +/- 2 std" not in result.output
    csv = tmp_path / "table.csv"
    table = run("report", *runs, "--csv", csv).output
    lines = table.strip().splitlines()
    assert lines[0].startswith("| run | model | params | dataset | features | split | epochs & lr | train loss | "
                               "valid loss | test loss")
    assert len(lines) == 2 + len(runs)
    import pandas as pd
    frame = pd.read_csv(csv)
    assert list(frame["model"]) == ["ridge", "mlp", "cnn", "ge", "mimo", "mimo", "mimo"]
    metrics = json.loads((runs[1] / "metrics.json").read_text())
    assert frame["test loss"][1] == pytest.approx(metrics["test"]["mse"])
    assert frame["test Spearman, ties broken"][1] == pytest.approx(metrics["test"]["spearman_ties_broken"])
    assert json.loads((runs[-1] / "metrics.json").read_text())["params"]["output"] == "monotone"


def test_predict_new_variants_and_fasta(tmp_path, onehot_cache):
    run("fit", "mimo", *FAST, "--repeat", "2", "--cache", onehot_cache, "--out", tmp_path / "mimo")
    variants = tmp_path / "new.txt"
    variants.write_text("SA108D\nSK1R:SE4G:SL5P:SF6L:SV10A\n#\n")
    out = tmp_path / "pred.csv"
    run("predict", "--run", tmp_path / "mimo", "--variants", variants, "--out", out)
    import pandas as pd
    table = pd.read_csv(out)
    assert list(table.columns) == ["id", "mutations", "n_mutations", "prediction", "sd", "lower", "upper",
                                   "member_spread", "unseen", "unseen_sites", "no_signal", "unlike_training",
                                   "shift_p", "in_cache"]  # one uncertainty to read (sd), the raw spread named so
    assert table["n_mutations"].tolist() == [1, 5, 0]
    assert table["in_cache"].tolist()[2]  # the parent is in every GFP cache
    assert (table["member_spread"] > 0).all() and table["prediction"].between(0, 6).all()
    assert (table["sd"] > table["member_spread"]).all()  # MIMO's raw spread is too narrow: calibration widens it
    # a cached row is predicted exactly as in the run's own predictions
    fit_predictions = pd.read_csv(tmp_path / "mimo" / "predictions.csv").set_index("id")
    parent = table.iloc[2]
    assert parent["prediction"] == pytest.approx(fit_predictions.loc[parent["id"], "prediction"], rel=1e-4)
    for column in ("lower", "upper"):  # the run's own valid-calibrated interval
        assert parent[column] == pytest.approx(fit_predictions.loc[parent["id"], column], rel=1e-4, abs=1e-6)
    assert (table["lower"] < table["prediction"]).all() and (table["prediction"] < table["upper"]).all()
    fasta = tmp_path / "x.fasta"
    fasta.write_text(">short\nMKTAYIAK\n")
    bad = run("predict", "--run", tmp_path / "mimo", "--fasta", fasta, ok=False)
    assert bad.exit_code == 1 and "not a substitution variant of the 237-residue parent" in bad.output
    bad = run("predict", "--run", tmp_path, "--variants", variants, ok=False)
    assert bad.exit_code == 1 and "not a run directory" in bad.output


def test_predict_with_esm_run_embeds_missing_sequences(tmp_path, small_gfp_dir, tiny_esm):
    run("embed", "build", "--weights", tiny_esm, "--data", small_gfp_dir, "--cache", tmp_path / "c", "--quiet")
    run("fit", "ridge", "--cache", tmp_path / "c", "--out", tmp_path / "r")
    fasta = tmp_path / "x.fasta"
    fasta.write_text(">short\nMKTAYIAKQRQISFVKSHFSRQ\n")
    out = run("predict", "--run", tmp_path / "r", "--fasta", fasta).stdout
    assert out.splitlines()[0] == "id,mutations,n_mutations,prediction,unseen,unseen_sites,no_signal,unlike_training,shift_p,in_cache"
    assert out.splitlines()[1].endswith(",False") and ",short,-1," in out
    tiny_moved = tmp_path / "moved.pt"
    tiny_esm_copy = tmp_path / "esm2_copy.pt"
    tiny_esm_copy.write_bytes(tiny_esm.read_bytes())
    run("embed", "build", "--weights", tiny_esm_copy, "--data", small_gfp_dir, "--cache", tmp_path / "c2", "--quiet")
    run("fit", "ridge", "--cache", tmp_path / "c2", "--out", tmp_path / "r2")
    tiny_esm_copy.rename(tiny_moved)
    bad = run("predict", "--run", tmp_path / "r2", "--fasta", fasta, ok=False)
    assert bad.exit_code == 1 and "cannot rebuild the featurizer esm2_copy_L2" in bad.output


def test_joined_features_fit_and_predict(tmp_path, small_gfp_dir, tiny_esm):
    cache = tmp_path / "c"
    run("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache", cache, "--quiet")
    run("embed", "build", "--weights", tiny_esm, "--data", small_gfp_dir, "--cache", cache, "--quiet")
    joined = "onehot+esm2_t2_tiny_L2"
    fit = run("fit", "ge", *FAST, "--features", joined, "--cache", cache, "--out", tmp_path / "ge")
    assert f"ge on gfp/{joined} (tape split)" in fit.output
    from mimo.models.data import load_split_data
    data = load_split_data(cache, "gfp", joined, "tape")
    onehot = load_split_data(cache, "gfp", "onehot", "tape")
    assert data.rows.embeddings.shape[1] == onehot.rows.embeddings.shape[1] + 32
    variants = tmp_path / "new.txt"
    variants.write_text("SK1R:SE4G:SL5P:SF6L:SV10A\n#\n")
    out = run("predict", "--run", tmp_path / "ge", "--variants", variants).stdout.splitlines()
    assert out[1].endswith(",False") and out[2].endswith(",True")  # new variant embedded, parent from cache


def test_one_command_from_a_lab_csv_to_a_run(tmp_path):
    """`mimo fit HEAD --input FILE --parent P`: builds what is missing, says which columns it read, then fits;
    later commands name the dataset only."""
    from conftest import run_cli

    parent = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTAEW"
    rng = np.random.default_rng(3)
    rows = [f"{wt}{i + 1}{aa},{rng.normal():.3f},0.1" for i, wt in enumerate(parent) for aa in "AGLD" if aa != wt]
    lab = tmp_path / "tem1.csv"
    lab.write_text("variant,fitness,replicate_sd\n" + "\n".join(rows) + "\n")
    cache = tmp_path / "cache"
    result = run_cli("fit", "ridge", "--input", lab, "--parent", parent, "--cache", cache, "--cv", "modulo5",
                     "--out", tmp_path / "run", "--quiet")
    assert "mutant from column 'variant', score from column 'fitness'" in result.output
    assert "ridge on tem1/onehot-sites+aaprops (modulo5, 5 folds): pooled out-of-fold Spearman" in result.output
    assert {p.name for p in (cache / "tem1").iterdir() if p.is_dir()} == {"onehot-sites", "aaprops"}
    again = run_cli("fit", "ridge", "--dataset", "tem1", "--features", "onehot-sites+aaprops", "--cache", cache,
                    "--out", tmp_path / "run2", "--quiet")
    assert "ridge on tem1/onehot-sites+aaprops (random split)" in again.output
    stray = run_cli("fit", "ridge", "--mutant-col", "variant", "--cache", cache, ok=False)
    assert "--mutant-col describes a file: give it with --input FILE" in stray.output
