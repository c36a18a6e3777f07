"""Hugging Face protein encoders (the `hf` extra, installed by the test command): ESM-2 converted from a fair-esm
checkpoint equals the fair-esm path; tiny random ProtBert and ProtT5 saved with save_pretrained embed through
the registry, cache and manifest like every featurizer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mimo
from mimo.pipeline.cache.build import build_cache
from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers import featurizer_from_manifest, get_featurizer
from mimo.pipeline.featurizers.hf import HuggingFaceFeaturizer, convert_fair_esm, is_hf_model

import transformers  # noqa: E402  (the test extra installs it: never skipped)

RESIDUES = "ACDEFGHIKLMNPQRSTVWYXBZUO"
SEQUENCES = ["MKTAYIAKQR", "MSKGEELFTGVVPILVELDGDVNGHKF", "MKUAYZ", "GG"]


@pytest.fixture(scope="module")
def hf_esm(tiny_esm, tmp_path_factory):
    return convert_fair_esm(tiny_esm, tmp_path_factory.mktemp("hf") / "esm2_tiny")


@pytest.fixture(scope="module")
def tiny_protbert(tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "protbert_tiny"
    out.mkdir()
    # the files of Rostlab/prot_bert's tokenizer: vocab.txt and a config that keeps upper case
    (out / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *RESIDUES]) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "tokenizer_class": "BertTokenizer"}))
    config = transformers.BertConfig(vocab_size=30, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=48, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_prott5(tmp_path_factory):
    import sentencepiece as spm

    out = tmp_path_factory.mktemp("hf") / "prott5_tiny"
    out.mkdir()
    text = out / "corpus.txt"
    rng = np.random.default_rng(0)
    text.write_text("\n".join(" ".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWYX"), 40)) for _ in range(200)) + "\n")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(out / "spiece"), vocab_size=24,
                                   model_type="word", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   minloglevel=2)
    # the files of Rostlab/prot_t5_xl_uniref50's tokenizer: spiece.model and its config
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0,
                                                           "do_lower_case": False}))
    config = transformers.T5Config(vocab_size=24, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                                   is_encoder_decoder=True)
    torch.manual_seed(0)
    transformers.T5EncoderModel(config).save_pretrained(out)
    return out


def test_esm2_converted_from_fair_esm_gives_the_fair_esm_embeddings(tiny_esm, hf_esm):
    assert is_hf_model(str(hf_esm)) and not is_hf_model(str(tiny_esm))
    fair = get_featurizer(tiny_esm, device="cpu", dtype="float32", engine="fair-esm")
    ours = get_featurizer(str(hf_esm), device="cpu", dtype="float32")
    assert isinstance(ours, HuggingFaceFeaturizer) and ours.dim == fair.dim == 32
    sequences = SEQUENCES[:2] + ["MKTAYIAKQRQISFVKSHFSRQ"]
    tokens = fair  # the fair-esm path's own tokenisation and pooling
    from mimo.pipeline.featurizers.esm import Tokenizer

    expected = tokens.embed_tokens(Tokenizer(fair.alphabet)(sequences)).numpy()
    got = ours.embed_sequences(sequences)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # an inner layer too
    inner_fair = get_featurizer(tiny_esm, device="cpu", dtype="float32", engine="fair-esm", layer=1)
    inner_ours = get_featurizer(str(hf_esm), device="cpu", dtype="float32", layer=1)
    np.testing.assert_allclose(inner_ours.embed_sequences(sequences),
                               inner_fair.embed_tokens(Tokenizer(fair.alphabet)(sequences)).numpy(), atol=1e-4)


@pytest.mark.parametrize("which", ["protbert", "prott5"])
def test_spaced_residue_encoders_mean_over_residues_only(which, tiny_protbert, tiny_prott5):
    path = {"protbert": tiny_protbert, "prott5": tiny_prott5}[which]
    featurizer = get_featurizer(str(path), device="cpu", dtype="float32")
    assert featurizer.model_type == {"protbert": "bert", "prott5": "t5"}[which]
    assert featurizer.text("MKUAB") == "M K X A X"
    batch = featurizer.embed_sequences(SEQUENCES)
    alone = np.concatenate([featurizer.embed_sequences([s]) for s in SEQUENCES])
    np.testing.assert_allclose(batch, alone, atol=1e-5)  # padding changes nothing
    # by hand: the model's last hidden state at the residue tokens, averaged
    encoded = featurizer.tokenizer(featurizer.text(SEQUENCES[0]), return_tensors="pt")
    ids = encoded["input_ids"]
    with torch.no_grad():
        hidden = featurizer.net(input_ids=ids).last_hidden_state[0]
    unk = featurizer.tokenizer.unk_token_id
    special = torch.tensor([t in featurizer.tokenizer.all_special_ids for t in ids[0].tolist()])
    assert unk not in ids[0].tolist()  # every residue is in the vocabulary
    assert int((~special).sum()) == len(SEQUENCES[0])  # one token a residue
    np.testing.assert_allclose(batch[0], hidden[special == 0].mean(0).numpy(), atol=1e-5)


def test_hf_cache_builds_resumes_and_rebuilds_from_its_manifest(tmp_path, small_gfp_dir, tiny_protbert):
    dataset = mimo.load_dataset(data=small_gfp_dir).sample(40, seed=0)
    featurizer = get_featurizer(str(tiny_protbert), dataset, device="cpu", dtype="float32")
    # GFP is 238 residues, longer than the tiny model's 62 positions: refused, then --truncate
    with pytest.raises(DataError, match="longer than .* pass --truncate"):
        build_cache(dataset, featurizer, tmp_path, progress=False)
    featurizer = get_featurizer(str(tiny_protbert), dataset, device="cpu", dtype="float32", truncate=True)
    report = build_cache(dataset, featurizer, tmp_path, progress=False)
    assert report.embedded == 40
    cache = EmbeddingCache(tmp_path, dataset.name, featurizer.name)
    manifest = cache.read_manifest()
    assert manifest["kind"] == "huggingface" and manifest["weights_fingerprint"]
    rebuilt = featurizer_from_manifest(manifest, dataset.parent, "cpu")
    rows = cache.load()
    again = rebuilt.embed_sequences([s[:62] for s in dataset.frame.set_index("id").loc[rows.ids[:3], "sequence"]])
    np.testing.assert_allclose(again, rows.embeddings[:3], atol=1e-5)
    assert build_cache(dataset, featurizer, tmp_path, progress=False).embedded == 0  # resumable: nothing left


def test_hf_mutpos_sums_the_mutated_residues(tmp_path, small_gfp_dir, hf_esm):
    dataset = mimo.load_dataset(data=small_gfp_dir)
    featurizer = get_featurizer(f"{hf_esm}-mutpos", dataset, device="cpu", dtype="float32")
    assert featurizer.name.endswith("-mutpos")
    row = dataset.frame[dataset.frame["n_mutations"] == 2].iloc[0]
    (_, got), = list(featurizer.embed(row.to_frame().T.reset_index(drop=True)))
    full = featurizer.tokenizer([row["sequence"]], return_tensors="pt")
    with torch.no_grad():
        hidden = featurizer.net(**full).last_hidden_state[0]
    from mimo.pipeline.io.variants import expressed_positions

    where = [p + 1 for p in expressed_positions(row["aligned"], dataset.parent)]  # after <cls>
    np.testing.assert_allclose(got[0], hidden[where].sum(0).numpy(), atol=1e-5)


def test_hf_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot load Hugging Face model 'nobody/no-such-model'.*(cannot be reached|"
                                        "from the hub)"):
        get_featurizer("nobody/no-such-model", device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="not a Hugging Face model directory"):
        get_featurizer(str(empty), device="cpu")
    other = tmp_path / "gpt"
    transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(other)
    with pytest.raises(DataError, match="is a 'gpt2' model; mimo embeds with protein encoders"):
        get_featurizer(str(other), device="cpu")


def test_damaged_hf_weights_are_one_clear_error(tmp_path, hf_esm):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(hf_esm, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(DataError, match="cannot load Hugging Face model .*broken"):
        get_featurizer(str(broken), device="cpu")


def test_a_model_that_asks_to_run_its_own_code_is_refused(tmp_path, hf_esm, cli, small_gfp_dir):
    import json
    import shutil

    custom = tmp_path / "custom"
    shutil.copytree(hf_esm, custom)
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (custom / "config.json").write_text(json.dumps(config))
    (custom / "modeling_evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('ran')\n")
    result = cli("embed", "build", "--model", custom, "--data", small_gfp_dir, "--cache", tmp_path / "c", ok=False)
    assert result.exit_code == 1 and "never runs code from a model folder" in result.output.strip().splitlines()[-1]
    assert not (tmp_path / "ran").exists()
