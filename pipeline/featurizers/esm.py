"""ESM embeddings: the featurizer (mean-pooled or at the mutated positions) over fair-esm's or our own forward;
loading is ``esm_load``, batching ``batching``."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from mimo.pipeline.io.conventions import ESM_MAX_RESIDUES, MUTPOS, data_home, pooling_of
from mimo.pipeline.errors import DataError
from mimo.pipeline.runtime.ranks import resolve_device
from mimo.pipeline.io.variants import check_aligned, expressed_positions
from mimo.pipeline.featurizers.batching import bucket_batches, bucket_shape, check_lengths, default_dtype, token_batches
from mimo.pipeline.featurizers.esm_fast import FastEsm2
from mimo.pipeline.featurizers.esm_load import checkpoint_fingerprint, load_esm

ENGINES = ("fast", "fair-esm", "compiled")


def esm_featurizer_from_manifest(manifest: dict, device: str = "auto", toks_per_batch: int | None = None,
                                 parent: str | None = None) -> "EsmFeaturizer":
    """Rebuild the featurizer a cache was built with (same model, layer, precision and pooling)."""
    weights = manifest.get("weights")
    net, alphabet, name = load_esm(None if weights else manifest["model"], weights)
    mutated = pooling_of(manifest) == "mutated"
    return EsmFeaturizer(net, alphabet, name, manifest["layer"], device, manifest["dtype"], toks_per_batch, weights,
                         bool(manifest.get("truncate")), pooling="mutated" if mutated else "mean", parent=parent)


class Tokenizer:
    """The token tensor of fair-esm's ``BatchConverter``, from a byte lookup table.

    fair-esm's converter spends about 0.8 ms of Python on each GFP sequence, more than an H100 needs to embed
    it; the table does the same in microseconds. A string with anything but one-letter tokens (``<mask>``,
    spaces, an unknown letter) goes through ``alphabet.encode``, so every output equals the converter's.
    """

    def __init__(self, alphabet):
        self.alphabet = alphabet
        self.table = np.full(256, -1, np.int64)
        for token in alphabet.all_toks:
            if len(token) == 1 and not token.isspace():
                self.table[ord(token)] = alphabet.get_idx(token)

    def encode(self, sequence: str) -> np.ndarray:
        codes = self.table[np.frombuffer(sequence.encode(), np.uint8)]
        if (codes < 0).any():
            return np.array(self.alphabet.encode(sequence), np.int64)
        return codes

    def __call__(self, sequences: list[str]) -> torch.Tensor:
        """(B, T) int64: BOS, residues, EOS (as the alphabet has them), then padding."""
        alphabet = self.alphabet
        encoded = [self.encode(s) for s in sequences]
        bos, eos = int(alphabet.prepend_bos), int(alphabet.append_eos)
        tokens = np.full((len(encoded), max(len(e) for e in encoded) + bos + eos), alphabet.padding_idx, np.int64)
        for row, codes in enumerate(encoded):
            if bos:
                tokens[row, 0] = alphabet.cls_idx
            tokens[row, bos:bos + len(codes)] = codes
            if eos:
                tokens[row, bos + len(codes)] = alphabet.eos_idx
        return torch.from_numpy(tokens)


class EsmFeaturizer:
    """Mean-pooled ESM representations over residue positions (no BOS, EOS or padding).

    ``engine="fast"`` (ESM-2 only) runs ``FastEsm2`` (fused QKV, scaled_dot_product_attention) over the same
    weights; ``engine="fair-esm"`` runs fair-esm's own forward.
    """

    kind = "esm"

    def __init__(self, net, alphabet, model_name: str, layer: int | None = None, device: str = "auto",
                 dtype: str = "auto", toks_per_batch: int | None = None, weights: str | Path | None = None,
                 truncate: bool = False, engine: str = "fast", pooling: str = "mean", parent: str | None = None):
        self.device = resolve_device(device)
        if dtype == "auto":
            dtype = default_dtype(self.device)
        self.dtype = dtype
        self.torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        num_layers = net.num_layers
        self.layer = num_layers if layer is None else (layer if layer >= 0 else num_layers + 1 + layer)
        if not 0 <= self.layer <= num_layers:
            raise DataError(f"--layer {layer} is out of range for {model_name} (0..{num_layers})")
        self.net = net.to(self.device, self.torch_dtype).eval()
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
        if engine != "fair-esm" and not hasattr(net, "emb_layer_norm_after"):
            engine = "fair-esm"  # FastEsm2 covers ESM-2; ESM-1 models use fair-esm's forward
        self.engine = engine
        self.fast = FastEsm2(self.net).eval() if engine != "fair-esm" else None
        self._compiled = None
        self.alphabet = alphabet
        self.model_name = model_name
        # A GPU needs larger batches to be busy; fused attention keeps their memory linear in length.
        self.toks_per_batch = toks_per_batch or (32768 if self.device.type == "cuda" else 4096)
        self.weights = None if weights is None else str(Path(weights).resolve())
        self.fingerprint = checkpoint_fingerprint(model_name, self.weights)
        self.truncate = truncate
        if pooling not in ("mean", "mutated"):
            raise ValueError(f"pooling must be 'mean' or 'mutated', not {pooling!r}")
        if pooling == "mutated" and not parent:
            raise DataError("ESM at the mutated positions needs the parent sequence")
        self.pooling, self.parent = pooling, parent
        self.name = f"{model_name}_L{self.layer}" + (MUTPOS if pooling == "mutated" else "")
        self.dim = net.embed_dim

    def manifest(self) -> dict:
        return {"features": self.name, "kind": self.kind, "model": self.model_name, "layer": self.layer,
                "pooling": self.pooling, "dtype": self.dtype, "dim": self.dim, "columns": None,
                "weights": self.weights, "weights_fingerprint": self.fingerprint, "truncate": self.truncate,
                "engine": self.engine}

    def check(self, frame: pd.DataFrame, warn: bool = True) -> None:
        """Refuse sequences past ESM's limit, or (``truncate``) warn that their first residues are used."""
        if self.pooling == "mutated":
            check_aligned(frame, self.parent, "ESM at the mutated positions")
        check_lengths(frame, ESM_MAX_RESIDUES, "ESM", self.truncate, warn)

    @torch.inference_mode()
    def embed_tokens(self, tokens: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) tokens -> (B, D) float32 mean over positions that are neither BOS, EOS nor padding, or with
        ``weights`` (B, T) the weighted sum of the hidden states.

        On a GPU this returns once the work is queued; reading the result waits for it."""
        padded = bool((tokens == self.alphabet.padding_idx).any())  # on the host, before the copy
        tokens = tokens.to(self.device, non_blocking=True)
        if self.engine == "compiled":
            try:
                hidden = self.compiled()(tokens, self.layer, True)  # one graph per bucket shape, mask always on
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:  # no C compiler, an unsupported op or device: a clear way out
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise DataError(f"--engine compiled: torch.compile failed ({type(exc).__name__}: {detail[:200]}); "
                                f"use --engine fast") from None
        elif self.fast is not None:
            hidden = self.fast(tokens, self.layer, padded)
        else:
            hidden = self.net(tokens, repr_layers=[self.layer])["representations"][self.layer]
        if weights is not None:
            return (hidden.float() * weights.to(self.device).unsqueeze(-1)).sum(dim=1)
        mask = ((tokens != self.alphabet.padding_idx) & (tokens != self.alphabet.cls_idx)
                & (tokens != self.alphabet.eos_idx))
        summed = (hidden.float() * mask.unsqueeze(-1)).sum(dim=1)
        return summed / mask.sum(dim=1, keepdim=True)

    def embed_batch(self, tokens: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``embed_tokens``, halving a batch that runs out of GPU memory until it fits."""
        try:
            return self.embed_tokens(tokens, weights)
        except torch.OutOfMemoryError:
            if len(tokens) == 1:
                raise DataError(f"one sequence of {int((tokens != self.alphabet.padding_idx).sum()) - 2} residues "
                                f"does not fit in {self.device} memory; try --dtype bfloat16, a smaller model, or "
                                f"--device cpu") from None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        half = len(tokens) // 2
        first, second = (None, None) if weights is None else (weights[:half], weights[half:])
        return torch.cat([self.embed_batch(tokens[:half], first), self.embed_batch(tokens[half:], second)])

    def embed(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row positions in ``frame``, float32 embeddings), batched by the token budget.

        A sequence longer than the budget goes alone in its batch."""
        self.check(frame, warn=False)  # build_cache has checked (and warned) before writing anything
        sequences = [s[:ESM_MAX_RESIDUES] for s in frame["sequence"]]
        tokenize = Tokenizer(self.alphabet)
        aligned = frame["aligned"].to_numpy()
        # One batch in flight: the GPU runs batch i+1 while the caller stores batch i.
        pending = None
        lengths = np.array([len(s) for s in sequences])
        compiled = self.engine == "compiled"
        batches = bucket_batches(lengths, self.toks_per_batch) if compiled else token_batches(lengths,
                                                                                              self.toks_per_batch)
        for batch in batches:
            tokens = tokenize([sequences[i] for i in batch])
            weights = None
            if self.pooling == "mutated":  # the hidden states at the substituted residues (after BOS)
                weights = torch.zeros(tokens.shape, dtype=torch.float32)
                for row, i in enumerate(batch):
                    where = [p + 1 for p in expressed_positions(aligned[i], self.parent) if p < ESM_MAX_RESIDUES]
                    weights[row, where] = 1.0
            if compiled:  # the bucket's fixed shape: padding columns, and rows holding only BOS and EOS
                tokens, weights = self.to_bucket(tokens, weights, int(lengths[batch[0]]))
            result = self.to_host(self.embed_batch(tokens, weights)[:len(batch)])
            if pending is not None:
                yield pending[0], pending[1]()
            pending = (batch, result)
        if pending is not None:
            yield pending[0], pending[1]()

    def compiled(self):
        """FastEsm2 under ``torch.compile`` (fixed shapes), built on first use; the compiled code is kept on disk
        (``$TORCHINDUCTOR_CACHE_DIR``, default ``$MIMO_HOME/inductor``) for later runs."""
        if self._compiled is None:
            import os

            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(data_home() / "inductor"))
            self._compiled = torch.compile(self.fast, dynamic=False)
        return self._compiled

    def to_bucket(self, tokens: torch.Tensor, weights: torch.Tensor | None, longest: int):
        """Pad a batch to its bucket's shape: ``bucket_shape`` of its longest sequence."""
        rows, width = bucket_shape(longest, self.toks_per_batch)
        padded = torch.full((rows, width), self.alphabet.padding_idx, dtype=tokens.dtype)
        padded[:tokens.shape[0], :tokens.shape[1]] = tokens
        padded[tokens.shape[0]:, 0] = self.alphabet.cls_idx   # filler rows: BOS, EOS (no empty attention)
        padded[tokens.shape[0]:, 1] = self.alphabet.eos_idx
        if weights is not None:
            weights = torch.nn.functional.pad(weights, (0, width - weights.shape[1], 0, rows - weights.shape[0]))
        return padded, weights

    def to_host(self, result: torch.Tensor) -> Callable[[], np.ndarray]:
        """Start copying ``result`` to host memory; returns a function that waits and gives the array."""
        if self.device.type != "cuda":
            return result.numpy
        host = torch.empty(result.shape, dtype=result.dtype, pin_memory=True)
        host.copy_(result, non_blocking=True)
        done = torch.cuda.Event()
        done.record()

        def wait() -> np.ndarray:
            done.synchronize()
            return host.numpy()
        return wait
