"""Hugging Face protein encoders through ``transformers`` (the ``hf`` extra): ESM-2 (``EsmModel``), ProtT5
(``T5EncoderModel``) and ProtBert (``BertModel``), by hub id (``facebook/esm2_t33_650M_UR50D``, from the Hugging
Face cache, downloaded there when missing) or a local directory saved with ``save_pretrained``.

The representation: the chosen layer's hidden states (default the last), mean over residue positions (no
special tokens, no padding), or with ``-mutpos`` their sum at the mutated positions. ProtT5 and ProtBert read
residues separated by spaces, with the rare residues U, Z, O and B written as X (as their model cards say);
ESM reads the sequence as it is. ``convert_fair_esm`` writes a fair-esm ESM-2 checkpoint as a Hugging Face
``EsmModel`` directory (the same network: tested equal to the fair-esm path).
"""
from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from mimo.pipeline.io.conventions import ESM_MAX_RESIDUES, MUTPOS, pooling_of
from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers.batching import check_lengths, default_dtype, token_batches
from mimo.pipeline.featurizers.esm_load import weights_fingerprint
from mimo.pipeline.runtime.ranks import resolve_device
from mimo.pipeline.io.variants import check_aligned, expressed_positions

HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
ENCODERS = {"esm": "EsmModel", "t5": "T5EncoderModel", "bert": "BertModel"}  # model_type -> class
SPACED = {"t5", "bert"}        # tokenisers that read one residue per space-separated word
RARE = re.compile(r"[UZOB]")   # ProtT5/ProtBert map these to X


def is_hf_model(text: str) -> bool:
    """A directory with a Hugging Face ``config.json``, or a hub id (``owner/name``) that is not a local path."""
    path = Path(text)
    if path.is_dir():
        return (path / "config.json").is_file()
    return bool(HF_ID.match(text)) and not path.exists() and not text.endswith(".pt")


def _transformers():
    try:
        import transformers
    except ImportError:
        raise DataError("Hugging Face models need the transformers package: pip install 'mimo-protein[hf]'") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # mimo shows its own progress line
    return transformers


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers at all (the hub's client retries for half a minute otherwise)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def refuse_custom_code(model: str) -> None:
    """A local model directory whose config asks to run its own code (``auto_map``) is refused: mimo never runs
    code that comes with a model."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return
    try:
        asks = "auto_map" in json.loads(config.read_text())
    except (OSError, ValueError):
        return  # transformers reports a damaged config in its own words
    if asks:
        raise DataError("this model's config asks to run custom code shipped with it (auto_map); mimo never runs "
                        "code from a model folder: use a model transformers implements itself (ESM-2's EsmModel, "
                        "ProtT5's T5EncoderModel, ProtBert's BertModel)", config)


def load_hf(model: str):
    """(encoder module, tokenizer, config) of a hub id or a local directory; a DataError says what is missing.
    Code shipped with a model is never run (``trust_remote_code=False`` everywhere; a config that asks for it is
    refused in one line, with no prompt)."""
    transformers = _transformers()
    refuse_custom_code(model)
    try:  # a local directory, or a hub id already in the Hugging Face cache: no network
        config = transformers.AutoConfig.from_pretrained(model, local_files_only=True, trust_remote_code=False)
        local = True
    except (OSError, ValueError) as exc:
        local = False
        if Path(model).is_dir() or not hub_reachable():
            where = "" if Path(model).is_dir() else ", and huggingface.co cannot be reached to download it"
            raise DataError(f"cannot load Hugging Face model {model!r}: not a local directory with config.json and "
                            f"not in the Hugging Face cache{where} ({str(exc).splitlines()[0]})") from None
        try:
            config = transformers.AutoConfig.from_pretrained(model, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot load Hugging Face model {model!r} from the hub: "
                            f"{str(exc).splitlines()[0]}") from None
    kind = config.model_type
    cls_name = ENCODERS.get(kind)
    if cls_name is None:
        raise DataError(f"Hugging Face model {model!r} is a {kind!r} model; mimo embeds with protein encoders of "
                        f"type {', '.join(ENCODERS)} (ESM-2, ProtT5, ProtBert)")
    cls = getattr(transformers, cls_name)
    kwargs = {"add_pooling_layer": False} if kind in ("esm", "bert") else {}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model, local_files_only=local, trust_remote_code=False)
        net = cls.from_pretrained(model, local_files_only=local, trust_remote_code=False, **kwargs)
    except Exception as exc:  # transformers and safetensors raise many types for missing or damaged files
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot load Hugging Face model {model!r}: {detail}") from None
    return net.eval(), tokenizer, config


def model_fingerprint(model: str) -> str | None:
    """Fingerprint of a local model directory's weight files (a hub id is pinned by the cache itself)."""
    path = Path(model)
    if not path.is_dir():
        return None
    files = sorted(list(path.glob("*.safetensors")) + list(path.glob("*.bin")))
    return ";".join(f"{f.name}:{weights_fingerprint(f)}" for f in files) or None


class HuggingFaceFeaturizer:
    """Per-sequence representation of a Hugging Face protein encoder (see the module's docstring)."""

    kind = "huggingface"

    def __init__(self, model: str, device: str = "auto", layer: int | None = None, dtype: str = "auto",
                 toks_per_batch: int | None = None, truncate: bool = False, pooling: str = "mean",
                 parent: str | None = None):
        self.device = resolve_device(device)
        self.dtype = default_dtype(self.device) if dtype == "auto" else dtype
        self.torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[self.dtype]
        self.model = str(Path(model).resolve()) if Path(model).is_dir() else model
        net, self.tokenizer, config = load_hf(self.model)
        self.model_type = config.model_type
        self.num_layers = num_layers = int(getattr(config, "num_hidden_layers", None) or config.num_layers)
        self.layer = num_layers if layer is None else (layer if layer >= 0 else num_layers + 1 + layer)
        if not 0 <= self.layer <= num_layers:
            raise DataError(f"--layer {layer} is out of range for {model} (0..{num_layers})")
        self.net = net.to(self.device, self.torch_dtype)
        self.dim = int(getattr(config, "hidden_size", None) or config.d_model)
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        self.max_residues = ESM_MAX_RESIDUES if self.model_type == "esm" else (int(limit) - 2 if limit else None)
        self.toks_per_batch = toks_per_batch or (32768 if self.device.type == "cuda" else 4096)
        self.truncate = truncate
        if pooling not in ("mean", "mutated"):
            raise ValueError(f"pooling must be 'mean' or 'mutated', not {pooling!r}")
        if pooling == "mutated" and not parent:
            raise DataError(f"{model}{MUTPOS} needs the parent sequence")
        self.pooling, self.parent = pooling, parent
        self.fingerprint = model_fingerprint(self.model)
        stem = Path(self.model).name if Path(self.model).is_dir() else self.model.replace("/", "--")
        self.name = f"{stem}_L{self.layer}" + (MUTPOS if pooling == "mutated" else "")

    @classmethod
    def from_manifest(cls, manifest: dict, device: str = "auto", parent: str | None = None) -> "HuggingFaceFeaturizer":
        featurizer = cls(manifest["model"], device, manifest["layer"], manifest["dtype"],
                         truncate=bool(manifest.get("truncate")),
                         pooling=pooling_of(manifest),
                         parent=parent)
        if manifest.get("weights_fingerprint") != featurizer.fingerprint:
            raise DataError(f"the weights of {manifest['model']} changed since the cache was built")
        return featurizer

    def manifest(self) -> dict:
        return {"features": self.name, "kind": self.kind, "model": self.model, "model_type": self.model_type,
                "layer": self.layer, "pooling": self.pooling, "dtype": self.dtype, "dim": self.dim, "columns": None,
                "weights_fingerprint": self.fingerprint, "truncate": self.truncate}

    def check(self, frame: pd.DataFrame, warn: bool = True) -> None:
        if self.pooling == "mutated":
            check_aligned(frame, self.parent, f"{self.model}{MUTPOS}")
        if self.max_residues is not None:
            check_lengths(frame, self.max_residues, self.model, self.truncate, warn)

    def text(self, sequence: str) -> str:
        """What the tokenizer reads: ESM the sequence itself; ProtT5/ProtBert spaced residues, rare ones as X."""
        if self.model_type in SPACED:
            return " ".join(RARE.sub("X", sequence))
        return sequence

    def residue_mask(self, encoded) -> torch.Tensor:
        """(B, T) 1 at residue tokens, 0 at special tokens and padding."""
        special = torch.as_tensor(encoded["special_tokens_mask"])
        return (1 - special) * torch.as_tensor(encoded["attention_mask"])

    @torch.inference_mode()
    def embed_sequences(self, sequences: list[str], positions: list[list[int]] | None = None) -> np.ndarray:
        encoded = self.tokenizer([self.text(s) for s in sequences], padding=True, return_tensors="pt",
                                 return_special_tokens_mask=True)
        residues = self.residue_mask(encoded)
        inputs = {"input_ids": encoded["input_ids"].to(self.device),
                  "attention_mask": encoded["attention_mask"].to(self.device)}
        out = self.net(**inputs, output_hidden_states=self.layer != self.num_layers)
        hidden = out.last_hidden_state if self.layer == self.num_layers else out.hidden_states[self.layer]
        hidden = hidden.float()
        if positions is not None:  # residue i is the i-th residue token of its row
            weights = torch.zeros(residues.shape)
            for row, where in enumerate(positions):
                columns = torch.nonzero(residues[row]).flatten()
                weights[row, columns[[p for p in where if p < len(columns)]]] = 1.0
        else:
            weights = residues.float() / residues.sum(1, keepdim=True).clamp(min=1)
        return (hidden * weights.to(self.device).unsqueeze(-1)).sum(1).cpu().numpy()

    def embed(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row positions in ``frame``, float32 embeddings), batched by the token budget."""
        self.check(frame, warn=False)
        limit = self.max_residues or max(len(s) for s in frame["sequence"])
        sequences = [s[:limit] for s in frame["sequence"]]
        aligned = frame["aligned"].to_numpy()
        for batch in token_batches(np.array([len(s) for s in sequences]), self.toks_per_batch):
            positions = None
            if self.pooling == "mutated":
                positions = [[p for p in expressed_positions(aligned[i], self.parent) if p < limit] for i in batch]
            yield batch, self.embed_sequences([sequences[i] for i in batch], positions)


# ------------------------------------------------------------------------------- fair-esm -> Hugging Face

FAIR_TO_HF = {
    "self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value", "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.LayerNorm", "fc1": "intermediate.dense", "fc2": "output.dense",
    "final_layer_norm": "LayerNorm",
}


def convert_fair_esm(weights: str | Path, out: str | Path) -> Path:
    """Write a fair-esm ESM-2 checkpoint (``.pt``) as a Hugging Face ``EsmModel`` directory with its tokenizer;
    returns the directory."""
    transformers = _transformers()
    from mimo.pipeline.featurizers.esm_load import load_esm

    net, alphabet, _ = load_esm(weights=weights)
    if not hasattr(net, "emb_layer_norm_after"):
        raise DataError("only ESM-2 checkpoints convert to Hugging Face's EsmModel", weights)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(alphabet.all_toks) + "\n")
    tokenizer = transformers.EsmTokenizer(vocab_file=str(vocab))
    config = transformers.EsmConfig(
        vocab_size=len(alphabet.all_toks), hidden_size=net.embed_dim, num_hidden_layers=net.num_layers,
        num_attention_heads=net.attention_heads, intermediate_size=net.layers[0].fc1.out_features,
        position_embedding_type="rotary", token_dropout=net.token_dropout, emb_layer_norm_before=False,
        mask_token_id=alphabet.mask_idx, pad_token_id=alphabet.padding_idx, max_position_embeddings=1026,
        layer_norm_eps=1e-5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = transformers.EsmModel(config, add_pooling_layer=False)
    state = {"embeddings.word_embeddings.weight": net.embed_tokens.weight,
             "encoder.emb_layer_norm_after.weight": net.emb_layer_norm_after.weight,
             "encoder.emb_layer_norm_after.bias": net.emb_layer_norm_after.bias,
             "contact_head.regression.weight": net.contact_head.regression.weight,
             "contact_head.regression.bias": net.contact_head.regression.bias}
    for i, layer in enumerate(net.layers):
        for fair, hf in FAIR_TO_HF.items():
            module = layer.get_submodule(fair)
            state[f"encoder.layer.{i}.{hf}.weight"] = module.weight
            state[f"encoder.layer.{i}.{hf}.bias"] = module.bias
    missing, unexpected = model.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=False)
    left = [k for k in missing if "rotary" not in k and "position_ids" not in k]
    if left or unexpected:
        raise DataError(f"fair-esm and Hugging Face ESM-2 disagree (missing {left}, unexpected {unexpected})", weights)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
