"""Embedding into the cache: onehot and ESM, resume, manifest checks, equality with fair-esm."""
import importlib.metadata
import warnings

import h5py
import numpy as np
import pytest
import torch

import esm.pretrained
from mimo.pipeline.cache.build import build_cache
from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.io.datasets import load_gfp
from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers.batching import token_batches
from mimo.pipeline.featurizers.esm import EsmFeaturizer, Tokenizer
from mimo.pipeline.featurizers.esm_load import load_esm, resolve_weights
from mimo.pipeline.featurizers.onehot import OneHotFeaturizer


@pytest.fixture(scope="module")
def small_gfp(small_gfp_dir):
    return load_gfp(small_gfp_dir)


def onehot_for(dataset):
    return OneHotFeaturizer.for_dataset(dataset.parent, dataset.frame["aligned"])


def test_onehot_cache_has_one_shard_per_mutation_count(tmp_path, small_gfp):
    report = build_cache(small_gfp, onehot_for(small_gfp), tmp_path, progress=False)
    assert report.embedded == len(small_gfp) and report.skipped == 0
    cache = EmbeddingCache(tmp_path, "gfp", "onehot")
    counts = sorted(set(small_gfp.frame["n_mutations"]))
    assert [p.name for p in cache.shard_paths()] == [f"m{c:02d}.h5" for c in counts]
    with h5py.File(cache.directory / "m02.h5") as f:
        assert set(f) == {"embedding", "id", "label", "n_mutations", "mutations"}
        assert (f["n_mutations"][:] == 2).all()
        assert (f["embedding"][:].sum(axis=1) == 2).all()  # two substitutions, two ones
    rows = cache.load()
    by_id = small_gfp.frame.set_index("id")
    assert sorted(rows.ids) == sorted(small_gfp.frame["id"])
    assert np.array_equal(rows.labels, by_id.loc[rows.ids, "label"].to_numpy())
    assert cache.read_manifest()["dataset_checksum"] == small_gfp.checksum()
    parent = rows.embeddings[rows.n_mutations == 0]
    assert parent.shape[0] == 1 and parent.sum() == 0


def test_onehot_sites_adds_one_column_per_mutated_position(small_gfp):
    subs = onehot_for(small_gfp)
    sites = OneHotFeaturizer.for_dataset(small_gfp.parent, small_gfp.frame["aligned"], "sites")
    assert sites.name == "onehot-sites" and sites.columns[:subs.dim] == subs.columns
    positions = sorted({int(c[:-1]) for c in subs.columns})
    assert sites.columns[subs.dim:] == [str(i) for i in positions]
    aligned = small_gfp.frame["aligned"].tolist()
    X_subs, X_sites = subs.encode(aligned), sites.encode(aligned)
    assert np.array_equal(X_sites[:, :subs.dim], X_subs)
    assert np.array_equal(X_sites[:, subs.dim:].sum(1), small_gfp.frame["n_mutations"].to_numpy())
    # a residue never seen at a mutated site still sets that site's column
    i = positions[0]
    seen = {c[-1] for c in subs.columns if int(c[:-1]) == i}
    new = next(a for a in "ACDEFGHIKLMNPQRSTVWY" if a not in seen and a != small_gfp.parent[i])
    variant = small_gfp.parent[:i] + new + small_gfp.parent[i + 1:]
    row = sites.encode([variant])[0]
    assert row.sum() == 1 and row[sites.columns.index(str(i))] == 1
    rebuilt = OneHotFeaturizer.from_manifest(sites.manifest(), small_gfp.parent)
    assert rebuilt.name == "onehot-sites" and np.array_equal(rebuilt.encode([variant]), [row])


def test_rerun_on_finished_cache_does_nothing(tmp_path, small_gfp):
    build_cache(small_gfp, onehot_for(small_gfp), tmp_path, progress=False)
    cache = EmbeddingCache(tmp_path, "gfp", "onehot")
    before = {p.name: p.stat().st_mtime_ns for p in cache.shard_paths()}
    report = build_cache(small_gfp, onehot_for(small_gfp), tmp_path, progress=False)
    assert report.embedded == 0 and report.skipped == len(small_gfp)
    assert {p.name: p.stat().st_mtime_ns for p in cache.shard_paths()} == before


class Interrupted(Exception):
    pass


def test_interrupted_build_resumes_and_equals_uninterrupted(tmp_path, small_gfp):
    featurizer = onehot_for(small_gfp)
    featurizer.batch_size = 100

    def stop_after_two(n):
        stop_after_two.calls += 1
        if stop_after_two.calls == 2:
            raise Interrupted
    stop_after_two.calls = 0
    with pytest.raises(Interrupted):
        build_cache(small_gfp, featurizer, tmp_path / "a", flush_every=100, progress=False, on_flush=stop_after_two)
    partial = EmbeddingCache(tmp_path / "a", "gfp", "onehot")
    assert len(partial.existing_ids()) == 200  # two complete flushes survived
    report = build_cache(small_gfp, featurizer, tmp_path / "a", progress=False)
    assert report.skipped == 200 and report.embedded == len(small_gfp) - 200
    build_cache(small_gfp, featurizer, tmp_path / "b", progress=False)
    resumed, clean = partial.load(), EmbeddingCache(tmp_path / "b", "gfp", "onehot").load()
    assert np.array_equal(resumed.ids, clean.ids)
    assert np.array_equal(resumed.embeddings, clean.embeddings)
    assert not list(partial.parts_dir.iterdir())


def test_other_settings_are_never_mixed_in(tmp_path, small_gfp):
    build_cache(small_gfp, onehot_for(small_gfp), tmp_path, progress=False)
    other = OneHotFeaturizer(small_gfp.parent, ["1A", "2C"])
    with pytest.raises(DataError, match="built with other settings"):
        build_cache(small_gfp, other, tmp_path, progress=False)
    changed = type(small_gfp)(small_gfp.name, small_gfp.frame.assign(label=small_gfp.frame["label"] + 1),
                              small_gfp.parent, small_gfp.mutation_format, small_gfp.splits)
    with pytest.raises(DataError, match="holds a different dataset named 'gfp'"):
        build_cache(changed, onehot_for(changed), tmp_path, progress=False)


def test_second_build_on_same_cache_is_refused(tmp_path, small_gfp):
    cache = EmbeddingCache(tmp_path, "gfp", "onehot")
    with cache.lock():
        with pytest.raises(DataError, match="another `mimo embed build` is writing this cache"):
            build_cache(small_gfp, onehot_for(small_gfp), tmp_path, progress=False)


def test_token_batches_respect_budget():
    lengths = np.array([10, 300, 50, 298, 12, 100])
    batches = token_batches(lengths, 700)
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))
    for batch in batches:
        assert (lengths[batch].max() + 2) * len(batch) <= 700 or len(batch) == 1


def fair_esm_reference(weights, sequences, layer):
    """fair-esm's own forward, one sequence at a time, mean over positions 1..len (as extract.py)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no contact regression weights: contacts are not used
        net, alphabet = esm.pretrained.load_model_and_alphabet_core(
            "esm2_ref", torch.load(weights, map_location="cpu", weights_only=False))
    net.eval()
    convert = alphabet.get_batch_converter()
    out = []
    with torch.no_grad():
        for seq in sequences:
            _, _, tokens = convert([("s", seq)])
            rep = net(tokens, repr_layers=[layer])["representations"][layer]
            out.append(rep[0, 1:len(seq) + 1].mean(0).numpy())
    return np.stack(out)


@pytest.mark.parametrize("layer", [None, 1])
def test_cached_esm_embeddings_equal_fair_esm_forward(tmp_path, small_gfp, tiny_esm, layer):
    subset = type(small_gfp)(small_gfp.name, small_gfp.frame.iloc[:40].reset_index(drop=True), small_gfp.parent,
                             small_gfp.mutation_format, {k: v[:40] for k, v in small_gfp.splits.items()})
    net, alphabet, name = load_esm(weights=tiny_esm)
    featurizer = EsmFeaturizer(net, alphabet, name, layer=layer, device="cpu", dtype="float32", toks_per_batch=1200)
    assert featurizer.name == f"esm2_t2_tiny_L{2 if layer is None else layer}"
    build_cache(subset, featurizer, tmp_path, flush_every=16, progress=False)
    rows = EmbeddingCache(tmp_path, "gfp", featurizer.name).load()
    sequences = subset.frame.set_index("id").loc[rows.ids, "sequence"].tolist()
    reference = fair_esm_reference(tiny_esm, sequences, featurizer.layer)
    assert rows.embeddings.shape == (40, 32)
    np.testing.assert_allclose(rows.embeddings, reference, atol=1e-5, rtol=0)
    manifest = EmbeddingCache(tmp_path, "gfp", featurizer.name).read_manifest()
    assert manifest["model"] == "esm2_t2_tiny" and manifest["layer"] == featurizer.layer
    assert manifest["dtype"] == "float32" and manifest["versions"]["fair-esm"] == importlib.metadata.version("fair-esm")


def test_bad_weights_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing.pt: weights file not found"):
        load_esm(weights=tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(DataError, match=r"junk.pt: not a PyTorch checkpoint"):
        load_esm(weights=junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(DataError, match=r"other.pt: not a fair-esm file: expected a dict with a 'model' entry"):
        load_esm(weights=other)
    torch.save({"model": {"w": torch.zeros(2)}}, other)
    with pytest.raises(DataError, match=r"other.pt: not a fair-esm checkpoint"):
        load_esm(weights=other)
    with pytest.raises(DataError, match="unknown ESM model 'esm3_huge'"):
        resolve_weights("esm3_huge", None)


def test_model_name_resolves_through_torch_hub_cache(tmp_path, tiny_esm, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "esm2_t6_8M_UR50D.pt").write_bytes(tiny_esm.read_bytes())
    net, _, name = load_esm("esm2_t6_8M_UR50D")
    assert name == "esm2_t6_8M_UR50D" and net.num_layers == 2


def test_layer_out_of_range(tiny_esm):
    net, alphabet, name = load_esm(weights=tiny_esm)
    with pytest.raises(DataError, match=r"--layer 5 is out of range"):
        EsmFeaturizer(net, alphabet, name, layer=5)


def test_fast_forward_equals_fair_esm_forward_at_fp32(tiny_esm):
    from mimo.pipeline.featurizers.esm_fast import FastEsm2

    net, alphabet, _ = load_esm(weights=tiny_esm)
    sequences = ["MKTAYIAKQRQISFVKSHFSRQ", "MKT", "ACDEFGHIKLMNPQRSTVWY" * 4, "MKTAYIAK"]
    _, _, tokens = alphabet.get_batch_converter()([(str(i), s) for i, s in enumerate(sequences)])
    tokens[0, 5] = alphabet.mask_idx  # exercises the token-dropout rescaling
    fast = FastEsm2(net).eval()
    real = tokens != alphabet.padding_idx
    with torch.inference_mode():
        for layer in range(net.num_layers + 1):
            expected = net(tokens, repr_layers=[layer])["representations"][layer]
            torch.testing.assert_close(fast(tokens, layer)[real], expected[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("architecture", ["ESM-1b", "ESM-1"])
def test_tokenizer_equals_fair_esm_batch_converter(architecture):
    alphabet = esm.data.Alphabet.from_architecture(architecture)
    convert, tokenize = alphabet.get_batch_converter(), Tokenizer(alphabet)
    pieces = list("ACDEFGHIKLMNPQRSTVWYXBUZO.-") + ["<mask>", "<cls>", "<unk>", " "]
    rng = np.random.default_rng(0)
    for _ in range(200):
        batch = ["".join(rng.choice(pieces, size=rng.integers(1, 40), p=None)) for _ in range(rng.integers(1, 5))]
        expected = convert([(str(i), s) for i, s in enumerate(batch)])[2]
        assert torch.equal(tokenize(batch), expected), batch
    for bad in ["MKTa", "MKT\u00e9"]:  # letters fair-esm does not know: the same error as fair-esm's
        with pytest.raises(KeyError):
            convert([("0", bad)])
        with pytest.raises(KeyError):
            tokenize([bad])


def test_fast_forward_told_about_padding_equals_its_own_check(tiny_esm):
    from mimo.pipeline.featurizers.esm_fast import FastEsm2

    net, alphabet, _ = load_esm(weights=tiny_esm)
    fast = FastEsm2(net).eval()
    for sequences in (["MKTAYIAK", "MKT"], ["MKTAYIAK", "ACDEFGHI"]):
        tokens = Tokenizer(alphabet)(sequences)
        padded = bool((tokens == alphabet.padding_idx).any())
        with torch.inference_mode():
            torch.testing.assert_close(fast(tokens, net.num_layers, padded), fast(tokens, net.num_layers))


def test_bfloat16_embeddings_agree_with_fp32(tmp_path, small_gfp_dir):
    from mimo.pipeline.testing import save_random_esm2

    weights = save_random_esm2(tmp_path / "esm2_t4_small.pt", 4, 64, 4, seed=3)
    frame = load_gfp(small_gfp_dir).frame.iloc[:24].reset_index(drop=True)
    out = {}
    for dtype in ("float32", "bfloat16"):
        net, alphabet, name = load_esm(weights=weights)
        featurizer = EsmFeaturizer(net, alphabet, name, device="cpu", dtype=dtype)
        rows = np.zeros((len(frame), 64), np.float32)
        for positions, embeddings in featurizer.embed(frame):
            rows[positions] = embeddings
        out[dtype] = rows
    a, b = out["float32"], out["bfloat16"]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= 0.999
    assert not np.array_equal(a, b)  # the precision really changed


def test_fair_esm_engine_gives_the_same_embeddings(small_gfp, tiny_esm):
    frame = small_gfp.frame.iloc[:12].reset_index(drop=True)
    results = []
    for engine in ("fast", "fair-esm"):
        net, alphabet, name = load_esm(weights=tiny_esm)
        featurizer = EsmFeaturizer(net, alphabet, name, device="cpu", dtype="float32", engine=engine)
        assert featurizer.manifest()["engine"] == engine
        rows = np.zeros((len(frame), 32), np.float32)
        for positions, embeddings in featurizer.embed(frame):
            rows[positions] = embeddings
        results.append(rows)
    np.testing.assert_allclose(results[0], results[1], atol=1e-5)


def test_bucket_batches_cover_every_sequence_once_in_a_few_shapes():
    from mimo.pipeline.featurizers.batching import BUCKET, bucket_batches, bucket_shape

    lengths = np.random.default_rng(0).integers(5, 400, 300)
    batches = bucket_batches(lengths, 4096)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    shapes = set()
    for batch in batches:
        rows, width = bucket_shape(int(lengths[batch].max()), 4096)
        assert len(batch) <= rows and width % BUCKET == 0 and lengths[batch].max() + 2 <= width
        assert all(bucket_shape(int(n), 4096) == (rows, width) for n in lengths[batch])  # one bucket a batch
        shapes.add((rows, width))
    assert len(shapes) <= 7  # 400 residues in buckets of 64 tokens


@pytest.mark.slow
def test_compiled_engine_gives_the_fast_engines_embeddings(tiny_esm, small_gfp_dir):
    """torch.compile over length buckets (filler rows, padding columns) changes nothing but speed."""
    from mimo.pipeline.featurizers import get_featurizer

    dataset = load_gfp(small_gfp_dir).sample(12, seed=0)
    frame = dataset.frame.copy()
    frame.loc[frame.index[:4], "sequence"] = frame["sequence"].iloc[:4].str[:100]  # a second bucket
    fast = get_featurizer(tiny_esm, device="cpu", dtype="float32", engine="fast")
    compiled = get_featurizer(tiny_esm, device="cpu", dtype="float32", engine="compiled", toks_per_batch=2048)
    assert compiled.engine == "compiled"
    want = np.zeros((12, fast.dim), np.float32)
    got = np.zeros_like(want)
    for rows, emb in fast.embed(frame):
        want[rows] = emb
    for rows, emb in compiled.embed(frame):
        got[rows] = emb
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_compiled_engine_failing_to_compile_is_one_clear_error(tiny_esm, small_gfp_dir):
    from mimo.pipeline.featurizers import get_featurizer

    featurizer = get_featurizer(tiny_esm, device="cpu", dtype="float32", engine="compiled")

    def no_compiler(*_):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")
    featurizer._compiled = no_compiler
    frame = load_gfp(small_gfp_dir).sample(3, seed=0).frame
    with pytest.raises(DataError, match=r"--engine compiled: torch.compile failed \(RuntimeError: InvalidCxxCompiler: "
                                        r"No working C\+\+ compiler found\); use --engine fast"):
        list(featurizer.embed(frame))


def test_a_weights_file_cannot_run_code(tmp_path, small_gfp_dir):
    import os

    from conftest import refused, run_cli

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"model": {}, "cfg": {"model": Payload()}}, tmp_path / "evil.pt")
    result = run_cli("embed", "build", "--weights", tmp_path / "evil.pt", "--data", small_gfp_dir, "--cache",
                     tmp_path / "c", ok=False)
    refused(result, "evil.pt", "without running code")
    assert not (tmp_path / "pwned").exists()
