"""Nothing the user owns is deleted, no run file runs code, runs are written whole or not at all, and a damaged
run is one line (issue: trust, round 2)."""
import errno
import json
import os
import pickle
import subprocess
import sys

import pytest

from mimo.models.runs.directory import prepare_run_dir, release_run_dir
from conftest import SHORT_PARENT, write_singles
from conftest import refused as one_line
from mimo.pipeline.errors import DataError


@pytest.fixture(scope="module")
def cache(onehot_cache):
    return onehot_cache


@pytest.fixture(scope="module")
def run(ridge_run):
    return ridge_run


def test_force_replaces_only_a_mimo_run(tmp_path, cache, cli):
    documents = tmp_path / "mydocs"
    documents.mkdir()
    (documents / "thesis.txt").write_text("four years")
    result = cli("fit", "ridge", "--cache", cache, "--out", documents, "--force", ok=False)
    one_line(result, "replaces only a run directory")
    assert (documents / "thesis.txt").read_text() == "four years"
    result = cli("fit", "ridge", "--cache", cache, "--out", cache, "--force", ok=False)
    one_line(result, "replaces only a run directory")
    assert any(cache.iterdir())


def test_a_crafted_legacy_pickle_does_not_run(tmp_path, run, cli):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("metrics.json", "source.json"):
        (legacy / name).write_text((run / name).read_text())
    (legacy / "model.pkl").write_bytes(pickle.dumps(Payload()))
    result = cli("predict", "--run", legacy, "--variants", tmp_path / "v.txt", ok=False)
    (tmp_path / "v.txt").write_text("SA108D\n")
    result = cli("predict", "--run", legacy, "--variants", tmp_path / "v.txt", ok=False)
    one_line(result, "model.pkl", "format 1")  # refused by its name: never opened
    assert not (tmp_path / "pwned").exists()


def test_a_second_fit_to_the_same_out_is_refused_while_the_first_runs(tmp_path):
    out = tmp_path / "race"
    staging = prepare_run_dir(out)
    code = ("import sys; from mimo.models.runs.directory import prepare_run_dir\n"
            "try:\n    prepare_run_dir(sys.argv[1])\nexcept Exception as e:\n    print(e); sys.exit(3)")
    other = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert other.returncode == 3 and "another fit is writing this --out" in other.stdout
    release_run_dir(staging)
    assert not staging.exists() and not list(tmp_path.iterdir())  # no staging, no lock file left
    staging = prepare_run_dir(out)  # free again
    release_run_dir(staging)


def test_stale_staging_is_not_a_run_and_the_next_fit_removes_it(tmp_path, run, cache, cli):
    stale = tmp_path / ".half.1234abcd.tmp"
    stale.mkdir()
    for name in ("metrics.json", "source.json"):
        (stale / name).write_text((run / name).read_text())
    from mimo.models.runs.directory import is_run_dir

    assert not is_run_dir(stale)
    cli("fit", "ridge", "--cache", cache, "--out", tmp_path / "half")
    assert not stale.exists()


def test_out_a_symlink_loop_is_refused_before_training(tmp_path, cache, cli):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    one_line(cli("fit", "ridge", "--cache", cache, "--out", loop, ok=False), "--out cannot be resolved")


def test_a_full_disk_while_writing_a_run_is_one_line_and_keeps_the_old_run(tmp_path, cache, cli, monkeypatch):
    out = tmp_path / "run"
    cli("fit", "ridge", "--cache", cache, "--out", out)
    before = (out / "metrics.json").read_text()
    import mimo.models.runs.directory as rundir

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir, "save_model", full)
    line = one_line(cli("fit", "ridge", "--cache", cache, "--out", out, "--force", ok=False), "no space left")
    assert "earlier run at this --out, if any, is unchanged" in line
    assert (out / "metrics.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_full_disk_writing_a_csv_leaves_no_partial_file(tmp_path, monkeypatch):
    import pandas as pd

    from mimo.pipeline.writes import write_csv

    target = tmp_path / "scan.csv"
    target.write_text("earlier\n")

    def full(self, path, **kwargs):
        open(path, "w").write("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(DataError, match="no space left"):
        write_csv(pd.DataFrame({"a": [1]}), target)
    assert target.read_text() == "earlier\n" and sorted(p.name for p in tmp_path.iterdir()) == ["scan.csv"]


@pytest.mark.parametrize("damage", ["not json", "{}", '{"model": "ridge"}'])
def test_a_hand_edited_metrics_file_is_one_line(tmp_path, run, cli, damage):
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(run, copy)
    (copy / "metrics.json").write_text(damage)
    one_line(cli("report", copy, ok=False), "metrics.json", "Fit the run again")
    (tmp_path / "v.txt").write_text("SA108D\n")
    one_line(cli("predict", "--run", copy, "--variants", tmp_path / "v.txt", ok=False), "metrics.json")


def test_a_truncated_model_file_is_one_line(tmp_path, run, cli):
    import shutil

    copy = tmp_path / "cut"
    shutil.copytree(run, copy)
    data = (copy / "model.npz").read_bytes()
    (copy / "model.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "v.txt").write_text("SA108D\n")
    one_line(cli("predict", "--run", copy, "--variants", tmp_path / "v.txt", ok=False), "model.npz")


def test_report_checks_its_output_before_printing(run, cli):
    result = cli("report", run, "--csv", "/nonexistent/x.csv", ok=False)
    one_line(result, "--csv", "does not exist")
    assert "|" not in result.output  # the table was not printed first


def test_predict_reads_variant_files_with_a_csv_parser(tmp_path, run, cli):
    table = tmp_path / "v.csv"
    table.write_text('name,mutant,note\n"a,b",SA108D,x\n"c",SA108D:SK1R,y\n')
    out = cli("predict", "--run", run, "--variants", table).output
    assert "SA108D:SK1R" in out and "a,b" not in out
    lab = tmp_path / "lab.csv"
    lab.write_text('"SK1R,SA108D",0.5\n')
    result = cli("predict", "--run", run, "--variants", lab, "--mutant-col", "genotype", ok=False)
    one_line(result, "--mutant-col 'genotype': no such column")
    named = tmp_path / "named.csv"
    named.write_text('genotype,score\n"SK1R,SA108D",0.5\n')
    assert "SK1R,SA108D" in cli("predict", "--run", run, "--variants", named, "--mutant-col", "genotype").output


def test_predict_refuses_a_cache_rebuilt_with_other_data(tmp_path, cli):
    import shutil

    parent, table = SHORT_PARENT, tmp_path / "mine.csv"
    write_singles(table)
    cache = tmp_path / "cache"
    build = ("embed", "build", "--model", "onehot", "--input", table, "--parent", parent, "--cache", cache, "--quiet")
    cli(*build)
    cli("fit", "ridge", "--dataset", "mine", "--cache", cache, "--out", tmp_path / "run")
    shutil.rmtree(cache / "mine")
    write_singles(table, seed=1, every=2)
    cli(*build)  # the same name, other data
    (tmp_path / "v.txt").write_text("K2A\n")
    one_line(cli("predict", "--run", tmp_path / "run", "--variants", tmp_path / "v.txt", ok=False),
             "rebuilt with other dataset since the run was fitted")


def test_predict_refuses_weights_changed_since_the_fit(tmp_path, small_gfp_dir, tiny_esm, cli):
    import shutil

    from mimo.pipeline.testing import save_random_esm2

    weights = tmp_path / "esm2_t2_tiny.pt"
    shutil.copy(tiny_esm, weights)
    cache = tmp_path / "cache"
    cli("embed", "build", "--weights", weights, "--data", small_gfp_dir, "--cache", cache, "--quiet",
        "--device", "cpu", "--dtype", "float32")
    cli("fit", "ridge", "--cache", cache, "--out", tmp_path / "run")
    save_random_esm2(weights, 2, 32, 4, seed=7)  # another model at the same path
    (tmp_path / "v.txt").write_text("SA108D:SK1R:SL5P\n")  # not in the cache: must be embedded
    one_line(cli("predict", "--run", tmp_path / "run", "--variants", tmp_path / "v.txt", ok=False),
             "the weights changed since the run was fitted")


@pytest.mark.parametrize("name", ["../../escaped", "/abs/path", ".", ".."])
def test_dataset_names_are_names_not_paths(tmp_path, small_gfp_dir, cli, name):
    cache = tmp_path / "cache"
    result = cli("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache", cache, "--name", name,
                 "--quiet", ok=False)
    one_line(result, "is not a name")
    assert not (tmp_path / "escaped").exists() and not list(cache.glob("*/manifest.json"))


def test_features_are_names_each_once_with_the_same_labels(tmp_path, cli, small_gfp_dir):
    other, cache = tmp_path / "other", tmp_path / "cache"
    for root in (other, cache):
        cli("embed", "build", "--model", "onehot-sites", "--data", small_gfp_dir, "--cache", root, "--quiet")
    one_line(cli("fit", "ridge", "--cache", cache, "--features", "../other/gfp/onehot-sites", ok=False),
             "is not a name")
    one_line(cli("fit", "ridge", "--cache", cache, "--features", "onehot-sites+onehot-sites", ok=False),
             "onehot-sites is joined more than once")


def test_mimo_home_a_file_is_one_line(tmp_path, cli):
    home = tmp_path / "home"
    home.write_text("not a folder")
    result = cli("data", "fetch", env={"MIMO_HOME": str(home)}, ok=False)
    one_line(result, "$MIMO_HOME is a file, not a folder")


def test_fitting_while_a_build_writes_the_cache_says_so(tmp_path):
    from mimo.pipeline.cache.store import EmbeddingCache

    cache = EmbeddingCache(tmp_path, "mine", "onehot")
    cache.directory.mkdir(parents=True)
    cache.ensure_manifest({"features": "onehot", "kind": "onehot", "dim": 3})
    with cache.lock():  # a build in progress, before its first part file
        with pytest.raises(DataError, match="is writing this cache right now"):
            cache.load()
    with pytest.raises(DataError, match="manifest but no shards"):
        cache.load()


def test_mimo_on_singles_only_routes_at_random_and_says_so(tmp_path, cli):
    table = tmp_path / "singles.csv"
    write_singles(table, seed=2)
    result = cli("fit", "mimo", "--routing", "mutations", "--input", table, "--parent", SHORT_PARENT, "--features",
                 "onehot-sites", "--epochs", "3",
                 "--cache", tmp_path / "cache", "--out", tmp_path / "run", "--quiet")
    assert "members were given random rows (routing random)" in result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["members"]) == 3 and "interval" in metrics["uncertainty"]


def test_a_model_file_copied_from_another_run_is_refused(tmp_path, small_gfp_dir, run, cli):
    import shutil

    other_cache = tmp_path / "cache"
    cli("embed", "build", "--model", "onehot-sites", "--data", small_gfp_dir, "--cache", other_cache, "--quiet")
    cli("fit", "ridge", "--cache", other_cache, "--out", tmp_path / "other")
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    shutil.copy(tmp_path / "other" / "model.npz", copy / "model.npz")
    (tmp_path / "v.txt").write_text("SA108D\n")
    one_line(cli("predict", "--run", copy, "--variants", tmp_path / "v.txt", ok=False),
             "this model file belongs to another run (features: onehot-sites in the file, onehot in the run)")


def test_a_head_too_large_for_memory_is_one_line(cache, cli, tmp_path):
    result = cli("fit", "mlp", "--hidden", "100000000,100000000", "--epochs", "1", "--cache", cache,
                 "--out", tmp_path / "huge", ok=False)
    one_line(result, "too large for this machine's memory", "GiB")
    assert not (tmp_path / "huge").exists()


def test_a_build_onto_a_full_disk_stops_in_one_line_and_resumes(tmp_path, small_gfp_dir, cli, monkeypatch):
    from collections import namedtuple

    import mimo.pipeline.cache.store as cache_module

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 1024))
    result = cli("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache", tmp_path, "--quiet",
                 ok=False)
    one_line(result, "no space left on the device", "rerun the same command to continue")
    monkeypatch.undo()
    assert "601 sequences" in cli("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache",
                                  tmp_path, "--quiet").output


def test_a_figure_the_model_has_no_signal_for_is_said_so(tmp_path, cli):
    """Position folds on one-hot sites: every out-of-fold row is no-signal, so the pooled Spearman is an artefact
    of the folds' means; the fit says so beside the figure."""
    table = tmp_path / "singles.csv"
    write_singles(table, seed=3)
    result = cli("fit", "ridge", "--input", table, "--parent", SHORT_PARENT, "--features", "onehot-sites",
                 "--cv", "modulo5", "--cache", tmp_path / "cache", "--out", tmp_path / "run")
    assert "get no signal from the features" in result.output
    assert "artefact of the folds' means" in result.output
