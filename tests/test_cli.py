"""The `mimo` command end to end on small real data."""
import json

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
    summary = json.loads(out.output)[0]
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
    (["embed", "build", "--model", "onehot", "--data", "/nonexistent"], "no amino_acid_genotypes_to_brightness.tsv found"),
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
