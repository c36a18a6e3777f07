"""Batching sequences for a transformer encoder (ESM through fair-esm, Hugging Face encoders): length checks,
token-budget batches, the compiled engine's fixed shapes, and the default precision of a device."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError

if TYPE_CHECKING:  # aaprops uses this module and needs no torch
    import torch


def check_lengths(frame: pd.DataFrame, limit: int, model: str, truncate: bool, warn: bool = True) -> None:
    """Refuse sequences longer than a model's ``limit`` residues, or (``truncate``) warn that their first
    ``limit`` residues are embedded."""
    lengths = frame["sequence"].str.len()
    too_long = lengths > limit
    if not too_long.any():
        return
    row = int(np.flatnonzero(too_long.to_numpy())[0])
    detail = (f"{int(too_long.sum())} sequence(s) are longer than {model}'s {limit} residues "
              f"(first: {frame['mutations'].iloc[row] or frame['id'].iloc[row]!r}, {lengths.iloc[row]} residues)")
    if not truncate:
        raise DataError(detail + "; pass --truncate to embed their first residues only")
    if warn:
        warnings.warn(detail + f"; embedding their first {limit} residues only", stacklevel=3)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX), where bf16 beats fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_dtype(device: torch.device) -> str:
    """bfloat16 on GPUs and on CPUs with native bf16 (embeddings agree with fp32 to cosine >= 0.999), else fp32."""
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return "bfloat16"
    return "float32"


def token_batches(lengths: np.ndarray, toks_per_batch: int) -> list[np.ndarray]:
    """Indices grouped so that (longest sequence + 2) x batch size stays within the token budget.

    Sequences are taken longest first so that the first batch shows the peak memory.
    """
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        width = int(lengths[order[start]]) + 2
        size = max(1, toks_per_batch // width)
        batches.append(order[start:start + size])
        start += size
    return batches


BUCKET = 64  # token widths of the compiled engine's shapes: multiples of this


def bucket_shape(longest: int, toks_per_batch: int) -> tuple[int, int]:
    """(rows, tokens) of the compiled engine's batch for sequences up to ``longest`` residues: the width rounded
    up to a multiple of ``BUCKET``, as many rows as the token budget allows."""
    width = -(-(longest + 2) // BUCKET) * BUCKET
    return max(1, toks_per_batch // width), width


def bucket_batches(lengths: np.ndarray, toks_per_batch: int) -> list[np.ndarray]:
    """Indices grouped by bucket (``bucket_shape``), longest first, at most a bucket's rows each: a handful of
    shapes, so that compiled graphs are reused instead of recompiled for every batch."""
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        rows, width = bucket_shape(int(lengths[order[start]]), toks_per_batch)
        same = order[start:start + rows]
        same = same[-(-(lengths[same] + 2) // BUCKET) * BUCKET == width]  # stay within the bucket
        batches.append(same)
        start += len(same)
    return batches


def encoded_in_chunks(encode, aligned: list[str], size: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row indices, ``encode(rows)``) for each chunk of ``size`` parent-aligned sequences: what a featurizer
    computed from the aligned sequences alone (aaprops, a profile) yields."""
    for start in range(0, len(aligned), size):
        stop = min(start + size, len(aligned))
        yield np.arange(start, stop), encode(aligned[start:stop])
