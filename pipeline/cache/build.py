"""`mimo embed build`: featurize a dataset once into the cache, resuming where a previous run stopped."""
from __future__ import annotations

import platform
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.io.conventions import mutation_format_record
from mimo.pipeline.runtime.progress import StatusLine
from mimo.pipeline.runtime import threads
from mimo.pipeline.runtime.ranks import Ranks
from mimo.pipeline.io.variantset import VariantSet


@dataclass
class BuildReport:
    features: str
    directory: Path
    total: int
    skipped: int
    embedded: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else float("nan")


class Progress:
    """A one-line progress display on stderr: count, sequences/s, time left."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, every: float = 0.5):
        self.total, self.label, self.every = total, label, every
        self.line = StatusLine(stream)
        self.tty = self.line.tty
        self.done = 0
        self.start = self.last = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= (self.every if self.tty else 10 * self.every) or self.done >= self.total:
            self.last = now
            self._show(now)

    def _show(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        text = (f"{self.label}: {self.done}/{self.total} sequences, {rate:,.0f} seq/s, "
                f"{elapsed:.0f}s elapsed, {left:.0f}s left")
        self.line.show(text)

    def close(self) -> None:
        self.line.close()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("torch", "fair-esm", "h5py", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def rebuild_options(manifest: dict) -> str:
    """The `mimo embed build` options that build (or complete) the cache a manifest describes: ``--weights FILE``
    for a checkpoint (never the name mimo gave its features), ``--model profile:PATH``, ``--model
    scores:PATH:COL``, else ``--model NAME``; joined features, each part's separated by ``;``."""
    from mimo.pipeline.io.conventions import MUTPOS, pooling_of

    if "parts" in manifest:
        return "; ".join(rebuild_options(part) for part in manifest["parts"])
    kind, weights, name = manifest.get("kind"), manifest.get("weights"), manifest.get("features", "?")
    if kind == "profile" and weights:
        return f"--model profile:{weights}" + (" --profile-columns scalars" if name.endswith("-scalars") else "")
    if kind == "scores" and weights:
        columns = ",".join(manifest.get("score_columns") or [])
        return f"--model scores:{weights}:{columns}" + (" --allow-missing" if manifest.get("allow_missing") else "")
    if kind == "esm":
        layer = f" --layer {manifest['layer']}" if manifest.get("layer") is not None else ""
        if pooling_of(manifest) == "mutated":
            return f"--model {weights or manifest.get('model')}{MUTPOS}{layer}"
        return (f"--weights {weights}" if weights else f"--model {manifest.get('model')}") + layer
    return f"--model {name}"


def build_cache(dataset: VariantSet, featurizer, cache_root: str | Path, flush_every: int = 4096,
                progress: bool = True, on_flush: Callable[[int], None] | None = None,
                ranks: Ranks | None = None) -> BuildReport:
    """Featurize every sequence of ``dataset`` not yet cached, writing complete part files as it goes.

    Under torchrun each rank embeds every world_size-th missing sequence (ordered by id) into its own part
    files; rank 0 holds the lock, prepares the cache and merges the parts at the end.
    """
    start = time.perf_counter()
    ranks = ranks or Ranks()
    cache = EmbeddingCache(cache_root, dataset.name, featurizer.name)
    frame = dataset.frame
    check = getattr(featurizer, "check", None)
    if check is not None:  # refuse what the featurizer cannot embed before anything is written
        check(frame)
    with cache.lock() if ranks.is_main else nullcontext():
        if ranks.is_main:
            checksum = dataset.checksum()  # hashes the whole frame: once
            cache.write_dataset(dataset.name, checksum, dataset.splits_frame(),
                                {"rows": len(frame), "parent": dataset.parent,
                                 **mutation_format_record(dataset.mutation_format), "load": dataset.options,
                                 "columns": dataset.columns,
                                 **({"structure": dataset.structure} if dataset.structure else {})})
            cache.ensure_manifest({**featurizer.manifest(), "dataset": dataset.name,
                                   "dataset_checksum": checksum, "versions": package_versions()})
            for path in cache.repair():
                print(f"warning: an unreadable shard was set aside as {path}; its rows are embedded again",
                      file=sys.stderr)
        ranks.barrier()
        done = cache.existing_ids()
        todo = frame[~frame["id"].isin(done)].sort_values("id", kind="stable")
        todo = todo.iloc[ranks.share(len(todo))].reset_index(drop=True)
        label = f"embed {dataset.name}/{featurizer.name}" + (f" rank {ranks.rank}" if ranks.world_size > 1 else "")
        bar = Progress(len(todo), label) if progress and len(todo) else None
        pending_rows: list[np.ndarray] = []
        pending_emb: list[np.ndarray] = []

        def flush() -> None:
            rows = np.concatenate(pending_rows)
            part = todo.iloc[rows]
            cache.write_rows(part["id"].to_numpy(), np.concatenate(pending_emb), part["label"].to_numpy(),
                             part["n_mutations"].to_numpy(), part["mutations"].to_numpy())
            pending_rows.clear()
            pending_emb.clear()
            if on_flush is not None:
                on_flush(len(rows))

        buffered = 0
        threads.adapt()
        for rows, embeddings in featurizer.embed(todo) if len(todo) else ():
            threads.adapt()  # follows the machine's load (rate-limited)
            pending_rows.append(rows)
            pending_emb.append(embeddings)
            buffered += len(rows)
            if bar is not None:
                bar.update(len(rows))
            if buffered >= flush_every:
                flush()
                buffered = 0
        if pending_rows:
            flush()
        if bar is not None:
            bar.close()
        ranks.barrier()
        if ranks.is_main:
            cache.compact()
        ranks.barrier()
    embedded = len(frame) - len(done)
    return BuildReport(featurizer.name, cache.directory, len(frame), len(done), embedded,
                       time.perf_counter() - start)
