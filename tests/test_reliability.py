"""Crash safety, concurrency, bad input and scale-out of `mimo embed build`."""
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import mimo.pipeline.cache.store as cache_module
from mimo.pipeline.cache.build import build_cache
from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.io.datasets import load_gfp
from mimo.pipeline.io.tables import load_table
from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers.esm import EsmFeaturizer
from mimo.pipeline.featurizers.esm_load import load_esm
from mimo.pipeline.featurizers.onehot import OneHotFeaturizer

MIMO = str(Path(sys.executable).with_name("mimo"))


def build_command(data_dir, weights, cache_dir):
    return [MIMO, "embed", "build", "--data", str(data_dir), "--weights", str(weights), "--cache", str(cache_dir),
            "--quiet", "--flush-every", "16", "--toks-per-batch", "2000", "--device", "cpu", "--dtype", "float32"]


def features_dir(cache_dir, weights):
    return EmbeddingCache(cache_dir, "gfp", f"{Path(weights).stem}_L2")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_gfp_dir, tiny_esm):
    """An uninterrupted build."""
    root = tmp_path_factory.mktemp("reference")
    subprocess.run(build_command(small_gfp_dir, tiny_esm, root), check=True, capture_output=True)
    return features_dir(root, tiny_esm).load()


@pytest.mark.slow
def test_kill_9_at_start_up_and_mid_build_then_resume_equals_uninterrupted(tmp_path, small_gfp_dir, tiny_esm, reference):
    expected = reference
    cache = features_dir(tmp_path, tiny_esm)
    seen_partial = 0
    for attempt in range(5):
        before = set(cache.parts_dir.glob("*.h5")) if cache.parts_dir.exists() else set()
        process = subprocess.Popen(build_command(small_gfp_dir, tiny_esm, tmp_path),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt == 0:  # during start-up, before anything is written
            pass
        else:  # as soon as a new part lands: the build is mid-way, whatever the machine's speed
            while process.poll() is None and not (set(cache.parts_dir.glob("*.h5")) - before
                                                  if cache.parts_dir.exists() else False):
                time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if cache.read_manifest() is not None and cache.shard_paths():
            rows = cache.load()  # what a killed build leaves is always readable and self-consistent
            assert len(np.unique(rows.ids)) == len(rows.ids) <= len(expected)
            by_id = dict(zip(expected.ids, expected.embeddings))
            np.testing.assert_allclose(rows.embeddings, np.stack([by_id[i] for i in rows.ids]), atol=1e-5)
            seen_partial += len(rows.ids) < len(expected)
    assert seen_partial >= 1  # at least one kill landed in the middle of embedding
    result = subprocess.run(build_command(small_gfp_dir, tiny_esm, tmp_path), check=True, capture_output=True,
                            text=True)
    assert "already cached" in result.stdout
    final = cache.load()
    assert np.array_equal(final.ids, expected.ids)
    np.testing.assert_allclose(final.embeddings, expected.embeddings, atol=1e-5)
    assert not list(cache.parts_dir.iterdir()) and not list(cache.directory.glob(".*.tmp"))


def test_fit_reading_during_a_build_sees_only_whole_shards(tmp_path, small_gfp_dir, tiny_esm, reference):
    expected = reference
    cache = features_dir(tmp_path, tiny_esm)
    process = subprocess.Popen(build_command(small_gfp_dir, tiny_esm, tmp_path),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reads = 0
    while process.poll() is None:
        try:
            rows = cache.load()
        except DataError as exc:
            assert any(text in str(exc) for text in ("no cached features", "no shards", "writing this cache right now"))
            continue
        assert len(np.unique(rows.ids)) == len(rows.ids) and rows.embeddings.shape == (len(rows.ids), 32)
        reads += 1
    assert process.returncode == 0 and reads > 0
    assert len(cache.load().ids) == len(expected.ids)


@pytest.fixture(scope="module")
def small_gfp(small_gfp_dir):
    return load_gfp(small_gfp_dir)


def onehot_for(dataset, batch_size=100):
    featurizer = OneHotFeaturizer.for_dataset(dataset.parent, dataset.frame["aligned"])
    featurizer.batch_size = batch_size
    return featurizer


def test_full_disk_loses_nothing_and_rerun_completes(tmp_path, small_gfp, monkeypatch):
    real_file = h5py.File
    writes = {"n": 0}

    def failing_file(name, mode="r", *args, **kwargs):
        if mode == "w":
            writes["n"] += 1
            if writes["n"] >= 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(name))
        return real_file(name, mode, *args, **kwargs)

    monkeypatch.setattr(cache_module.h5py, "File", failing_file)
    with pytest.raises(DataError, match="No space left on device.*rows cached before are intact"):
        build_cache(small_gfp, onehot_for(small_gfp), tmp_path, flush_every=100, progress=False)
    monkeypatch.setattr(cache_module.h5py, "File", real_file)
    cache = EmbeddingCache(tmp_path, "gfp", "onehot")
    assert not list(cache.parts_dir.glob(".*.tmp"))
    assert len(cache.existing_ids()) > 0  # the parts written before the disk filled are intact
    report = build_cache(small_gfp, onehot_for(small_gfp), tmp_path, progress=False)
    assert report.skipped > 0
    clean = build_cache(small_gfp, onehot_for(small_gfp), tmp_path / "clean", progress=False)
    assert clean.embedded == len(small_gfp)
    a, b = cache.load(), EmbeddingCache(tmp_path / "clean", "gfp", "onehot").load()
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.embeddings, b.embeddings)


def test_corrupted_shard_is_reported_then_repaired(tmp_path, small_gfp):
    build_cache(small_gfp, onehot_for(small_gfp), tmp_path, progress=False)
    cache = EmbeddingCache(tmp_path, "gfp", "onehot")
    expected = cache.load()
    shard = cache.directory / "m02.h5"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # truncated, as by a failing disk
    with pytest.raises(DataError, match=r"m02.h5: unreadable cache shard .*rerun `mimo embed build`"):
        cache.load()
    report = build_cache(small_gfp, onehot_for(small_gfp), tmp_path, progress=False)
    assert report.embedded == int((small_gfp.frame["n_mutations"] == 2).sum())
    assert len(list(cache.directory.glob("m02.h5.*.corrupt"))) == 1
    repaired = cache.load()
    assert np.array_equal(repaired.ids, expected.ids) and np.array_equal(repaired.embeddings, expected.embeddings)


def test_unwritable_cache_directory(tmp_path, small_gfp):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache should go")
    with pytest.raises(DataError, match="cannot write to the cache directory"):
        build_cache(small_gfp, onehot_for(small_gfp), blocker, progress=False)


def test_out_of_memory_batches_are_split_and_retried(tmp_path, small_gfp, tiny_esm, monkeypatch):
    subset = small_gfp.sample(40)
    net, alphabet, name = load_esm(weights=tiny_esm)
    normal = EsmFeaturizer(net, alphabet, name, device="cpu", toks_per_batch=4000)
    build_cache(subset, normal, tmp_path / "a", progress=False)
    squeezed = EsmFeaturizer(net, alphabet, name, device="cpu", toks_per_batch=4000)
    real = squeezed.embed_tokens
    sizes = []

    def small_memory(tokens, weights=None):
        sizes.append(len(tokens))
        if len(tokens) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(tokens, weights)

    monkeypatch.setattr(squeezed, "embed_tokens", small_memory)
    build_cache(subset, squeezed, tmp_path / "b", progress=False)
    assert max(sizes) > 3 and min(sizes) <= 3
    a = EmbeddingCache(tmp_path / "a", subset.name, normal.name).load()
    b = EmbeddingCache(tmp_path / "b", subset.name, squeezed.name).load()
    assert np.array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)

    monkeypatch.setattr(squeezed, "embed_tokens",
                        lambda tokens, weights=None: (_ for _ in ()).throw(torch.OutOfMemoryError("")))
    with pytest.raises(DataError, match="one sequence of .* residues does not fit in cpu memory"):
        build_cache(subset, squeezed, tmp_path / "c", progress=False)


def test_over_long_sequences_refused_or_truncated(tmp_path, tiny_esm):
    long = "M" + "ACDEFGHIKLMNPQRSTVWY" * 55  # 1,101 residues
    path = tmp_path / "long.csv"
    path.write_text(f"sequence,score\n{long},1.0\nMKTAYIAK,2.0\n")
    dataset = load_table(path)
    net, alphabet, name = load_esm(weights=tiny_esm)
    with pytest.raises(DataError, match="1 sequence\\(s\\) are longer than ESM's 1022 residues.*--truncate"):
        build_cache(dataset, EsmFeaturizer(net, alphabet, name, device="cpu"), tmp_path / "c", progress=False)
    featurizer = EsmFeaturizer(net, alphabet, name, device="cpu", truncate=True)
    with pytest.warns(UserWarning, match="embedding their first 1022 residues only"):
        build_cache(dataset, featurizer, tmp_path / "t", progress=False)
    rows = EmbeddingCache(tmp_path / "t", "long", name + "_L2").load()
    _, _, tokens = alphabet.get_batch_converter()([("x", long[:1022])])
    expected = featurizer.embed_tokens(tokens).numpy()[0]
    long_id = dataset.frame["id"][0]
    np.testing.assert_allclose(rows.embeddings[list(rows.ids).index(long_id)], expected, atol=1e-5)


def test_torchrun_two_processes_equal_one(tmp_path, small_gfp_dir, tiny_esm, reference):
    expected = reference
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--no-python",
               *build_command(small_gfp_dir, tiny_esm, tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("601 sequences, 0 already cached, 601 embedded") == 1  # rank 0 reports
    cache = features_dir(tmp_path, tiny_esm)
    rows = cache.load()
    assert np.array_equal(rows.ids, expected.ids)
    np.testing.assert_allclose(rows.embeddings, expected.embeddings, atol=1e-5)
    assert not list(cache.parts_dir.iterdir())


def test_the_atomic_writer_keeps_the_old_file_and_no_temporary_one_on_any_error(tmp_path):
    import json

    from mimo.pipeline.writes import write_atomic, write_json

    target = write_json(tmp_path / "record.json", {"a": 1}, indent=2)
    assert json.loads(target.read_text()) == {"a": 1} and target.read_text().endswith("\n")

    def half_then(exc):
        def write(tmp):
            tmp.write_text('{"a": ')
            raise exc
        return write

    for exc in (RuntimeError("killed half way"), OSError(errno.ENOSPC, "No space left on device")):
        with pytest.raises((RuntimeError, DataError)):
            write_atomic(target, half_then(exc))
        assert json.loads(target.read_text()) == {"a": 1}
        assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
