"""The embedding cache: HDF5 shards keyed by mutation count, a manifest, the dataset's splits.

Layout under the cache root::

    <dataset>/dataset.json          name, checksum, size, parent of the dataset
    <dataset>/splits.csv            id plus one column per named split (train/valid/test/none)
    <dataset>/<features>/manifest.json
    <dataset>/<features>/m04.h5     the rows with 4 mutations (mNA.h5: count unknown)
    <dataset>/<features>/parts/     shards of a build in progress, merged into the m*.h5 at its end

Every file is written under a temporary name and renamed into place, so a killed build leaves only
complete files; a rerun skips the ids already present.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pandas as pd

from mimo.pipeline.io.conventions import LEGACY_POOLING, check_name
from mimo.pipeline.errors import DataError
from mimo.pipeline.writes import write_csv, write_json

ID_DTYPE = "S16"
# Fields of the manifest that must agree for two builds to share a cache directory.
MANIFEST_KEYS = ("features", "kind", "model", "layer", "pooling", "dtype", "dim", "dataset_checksum", "columns",
                 "truncate")


@dataclass
class CachedEmbeddings:
    """Rows of a features cache, ordered by mutation count then id."""

    ids: np.ndarray          # (n,) str
    embeddings: np.ndarray   # (n, d) float32
    labels: np.ndarray       # (n,) float64
    n_mutations: np.ndarray  # (n,) int64
    mutations: np.ndarray    # (n,) str: the genotype as written in the source
    manifest: dict

    def __len__(self) -> int:
        return len(self.ids)


LEAK_MIN_ROWS = 20
LEAK_CORRELATION = 0.99  # a feature column this close to the label on training rows is the label, not a signal


def label_leaks(rows: CachedEmbeddings, train: np.ndarray, threshold: float = LEAK_CORRELATION) -> list[str]:
    """The feature columns whose Pearson correlation with the label over the ``train`` rows reaches
    ``threshold`` in absolute value, as ``block: column (r = 0.998)``: a label that became a feature (a scores
    file holding the assay's own measurements), which would print a test Spearman near 1 with no warning.
    Constant columns are skipped, and so are fewer than ``LEAK_MIN_ROWS`` labelled rows (where chance alone
    can line a column up with the label)."""
    rows_at = np.flatnonzero(np.asarray(train, dtype=bool) & np.isfinite(rows.labels))
    y = np.asarray(rows.labels, dtype=np.float64)[rows_at]
    if len(y) < LEAK_MIN_ROWS or np.ptp(y) == 0:
        return []
    yc = y - y.mean()
    dim = rows.embeddings.shape[1]
    total, squares, cross = np.zeros(dim), np.zeros(dim), np.zeros(dim)
    for start in range(0, len(rows_at), 8192):  # a chunk at a time: memory flat in the cache's size
        block = np.asarray(rows.embeddings[rows_at[start:start + 8192]], dtype=np.float32)
        total += block.sum(axis=0, dtype=np.float64)
        squares += np.square(block).sum(axis=0, dtype=np.float64)
        cross += block.T @ yc[start:start + 8192].astype(np.float32)  # yc is centred: X needs no centring here
    n = len(y)
    variance = np.maximum(squares / n - (total / n) ** 2, 0.0)
    norms = np.sqrt(variance * n) * np.sqrt((yc ** 2).sum())
    r = np.divide(cross, norms, out=np.zeros(dim), where=variance > 1e-9 * np.maximum(squares / n, 1e-30))
    names = _column_names(rows.manifest)
    return [f"{names[j]} (r = {r[j]:.3f})" for j in np.flatnonzero(np.abs(r) >= threshold)]


def _column_names(manifest: dict) -> list[str]:
    """``block:column`` for every feature column of a (joined) manifest; ``block:#j`` where columns are unnamed."""
    out = []
    for part in manifest.get("parts", [manifest]):
        columns = part.get("columns") or [f"#{j}" for j in range(int(part.get("dim", 0)))]
        out += [f"{part.get('features', '?')}:{c}" for c in columns]
    return out


def shard_name(n_mutations: int) -> str:
    return "mNA" if n_mutations < 0 else f"m{n_mutations:02d}"


def _unreadable(path: Path, exc: Exception) -> DataError:
    return DataError(f"unreadable cache shard ({exc}); rerun `mimo embed build` with the same options: it sets "
                     f"the file aside and embeds its rows again", path)


def _write_atomic_h5(path: Path, ids, embeddings, labels, n_mutations, mutations) -> None:
    """Write under a temporary name, then rename: a reader or a crash never sees half a file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    compression = "lzf" if np.issubdtype(embeddings.dtype, np.integer) else None
    embeddings = np.ascontiguousarray(embeddings)
    need = embeddings.nbytes + 64 * len(embeddings) + (1 << 20)  # ids, labels, strings, HDF5's own
    if shutil.disk_usage(path.parent).free < 2 * need:  # HDF5 may crash, not fail, when the disk fills under it
        raise DataError(f"no space left on the device for the next {len(embeddings)} rows (about "
                        f"{need / 2**20:,.1f} MiB); the rows cached before are intact: free space, then rerun the "
                        f"same command to continue", path.parent)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["embedding_crc32"] = zlib.crc32(embeddings.data)
            f.create_dataset("embedding", data=embeddings, compression=compression)
            f.create_dataset("id", data=np.asarray(ids, dtype=ID_DTYPE))
            f.create_dataset("label", data=np.asarray(labels, dtype=np.float64))
            f.create_dataset("n_mutations", data=np.asarray(n_mutations, dtype=np.int32))
            f.create_dataset("mutations", data=np.asarray(mutations, dtype=object), dtype=h5py.string_dtype())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise DataError(f"cannot write cache file ({reason}); the rows cached before are intact: free space or "
                        f"fix permissions, then rerun the same command to continue", path) from None


def _check_content(path: Path, stored, embeddings: np.ndarray) -> None:
    """The embeddings read back are the ones written (CRC-32 recorded at write time) and finite."""
    if stored is not None and zlib.crc32(np.ascontiguousarray(embeddings).data) != int(stored):
        raise _unreadable(path, "its embeddings do not match the checksum written with them: the file is damaged")
    if embeddings.dtype.kind == "f" and not np.isfinite(embeddings).all():
        raise _unreadable(path, "it holds non-finite embeddings")


def _read_shards(paths: list[Path], keep_dtype: bool = False) -> dict[str, np.ndarray]:
    """Every shard's rows, embeddings read straight into one float32 array (large copies cost page faults), or
    with ``keep_dtype`` in the shards' own type when they share one (one-hot's uint8, for compaction); each
    file's content checked against its checksum."""
    meta = []
    dtypes = set()
    for path in paths:
        try:
            with h5py.File(path, "r") as f:
                dtypes.add(f["embedding"].dtype)
                meta.append((f["embedding"].shape, {
                    "ids": f["id"][:].astype(str), "labels": f["label"][:],
                    "n_mutations": f["n_mutations"][:].astype(np.int64),
                    "mutations": f["mutations"].asstr()[:].astype(object)}))
                if not all(len(meta[-1][1][k]) == meta[-1][0][0] for k in ("ids", "labels", "n_mutations")):
                    raise OSError("its datasets disagree in length")
        except (OSError, KeyError) as exc:
            raise _unreadable(path, exc) from None
    widths = {shape[1] for shape, _ in meta}
    if len(widths) != 1:
        raise DataError(f"cache shards disagree on the embedding width ({sorted(widths)})", paths[0].parent)
    dtype = dtypes.pop() if keep_dtype and len(dtypes) == 1 else np.dtype(np.float32)
    embeddings = np.empty((sum(shape[0] for shape, _ in meta), widths.pop()), dtype=dtype)
    start = 0
    for path, (shape, _) in zip(paths, meta):
        rows = np.s_[start:start + shape[0]]
        try:
            with h5py.File(path, "r") as f:
                stored = f.attrs.get("embedding_crc32")
                if f["embedding"].dtype == dtype and shape[0]:
                    f["embedding"].read_direct(embeddings, dest_sel=rows)
                    _check_content(path, stored, embeddings[rows])
                else:
                    raw = f["embedding"][:]
                    _check_content(path, stored, raw)
                    embeddings[rows] = raw
        except (OSError, KeyError) as exc:
            raise _unreadable(path, exc) from None
        start += shape[0]
    rows = _concat([fields for _, fields in meta])
    rows["embeddings"] = embeddings
    return rows


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _dedupe_sorted(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keep the first row of each id, ordered by (mutation count, id)."""
    _, first = np.unique(rows["ids"], return_index=True)
    keep = first[np.lexsort((rows["ids"][first], rows["n_mutations"][first]))]
    return {key: value[keep] for key, value in rows.items()}


def _comparable(key: str, value):
    """A manifest value as compared between builds (pooling as earlier versions wrote it reads the same)."""
    return LEGACY_POOLING.get(value, value) if key == "pooling" and isinstance(value, str) else value


@contextmanager
def _flocked(path: Path, folder: Path, busy: str | None = None) -> Iterator[None]:
    """An exclusive lock on the file ``path`` (``folder`` made first) while the block runs: with ``busy``, fail at
    once with that message when another process holds it; without, wait for it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    except OSError as exc:
        raise DataError(f"cannot write to the cache directory ({exc.strerror})", path.parent) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise DataError(busy, path.parent) from None
        yield
    finally:
        handle.close()


class EmbeddingCache:
    """One dataset's features in ``root/<dataset>/<features>``."""

    def __init__(self, root: str | Path, dataset: str, features: str):
        self.root = Path(root)
        self.dataset = check_name(dataset, "dataset name")
        self.features = check_name(features, "features name")
        self.dataset_dir = self.root / dataset
        self.directory = self.dataset_dir / features
        self.parts_dir = self.directory / "parts"
        self.manifest_path = self.directory / "manifest.json"

    def check_links(self, *files: Path) -> None:
        """Refuse a symbolic link inside the cache (the dataset's and features' folders, ``parts/``, and
        ``files``): a build deletes and renames files there, and nothing outside what the user named is touched
        or read. The cache root itself may be a link (a cache kept on another disk)."""
        for path in (self.dataset_dir, self.directory, self.parts_dir, *files):
            if path.is_symlink():
                raise DataError(f"is a symbolic link (to {os.readlink(path)}): mimo never follows a link inside its "
                                f"cache, where it deletes and renames files; replace it with the folder or file itself",
                                path)

    # ------------------------------------------------------------------ writing
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this cache for one build; a second build fails with a clear message."""
        self.check_links()
        with _flocked(self.directory / ".lock", self.parts_dir,
                      busy="another `mimo embed build` is writing this cache; wait for it to finish"):
            yield

    def build_running(self) -> bool:
        """Whether a build holds this cache's lock now (without taking it)."""
        try:
            with open(self.directory / ".lock") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                return False
        except OSError:
            return False

    def write_dataset(self, name: str, checksum: str, splits: pd.DataFrame, info: dict) -> None:
        """Record the dataset and its splits, refusing to mix in a different dataset of the same name.

        A split is written once: a split already recorded stays as it is (one with the same name but other
        content is refused); a new name is added beside the others. ``dataset.json`` lists every split's
        content hash (``split_hash``). A structure recorded before (``--structure``: path, sha256, chain, sites) is
        kept when ``info`` gives none."""
        meta_path = self.dataset_dir / "dataset.json"
        self.check_links(meta_path, self.dataset_dir / "splits.csv")
        with self._dataset_lock():  # builds of other features of this dataset read and rewrite these files too
            self._write_dataset(name, checksum, splits, info, meta_path)

    @contextmanager
    def _dataset_lock(self) -> Iterator[None]:
        """Held while ``dataset.json`` and ``splits.csv`` are read and rewritten: concurrent builds of one dataset
        (other features, or the same name from another file) take turns, so none loses a split or mixes data."""
        with _flocked(self.dataset_dir / ".dataset.lock", self.dataset_dir):
            yield

    def _write_dataset(self, name: str, checksum: str, splits: pd.DataFrame, info: dict, meta_path: Path) -> None:
        from mimo.pipeline.io.splits import split_hash

        old = json.loads(meta_path.read_text()) if meta_path.exists() else None
        if old is not None and old.get("checksum") != checksum:
            raise DataError(f"this cache holds a different dataset named {name!r} (checksum "
                            f"{old.get('checksum', '?')[:12]}, new data {checksum[:12]}); use another "
                            f"--name or --cache", meta_path)
        ids = splits["id"].to_numpy()
        new_hashes = {c: split_hash(ids, splits[c].to_numpy()) for c in splits.columns if c != "id"}
        recorded = self.load_splits() if (self.dataset_dir / "splits.csv").exists() else None
        merged = recorded.copy() if recorded is not None else splits[["id"]].copy()
        if recorded is not None and not np.array_equal(recorded["id"].to_numpy(), ids):
            raise DataError("the recorded splits list other rows than the dataset; delete the dataset's cache "
                            "folder to start over", self.dataset_dir / "splits.csv")
        hashes = {c: split_hash(ids, merged[c].to_numpy()) for c in merged.columns if c != "id"}
        for column, digest in new_hashes.items():
            if column in hashes and hashes[column] != digest:
                raise DataError(f"split {column!r} is already recorded with other content (hash {hashes[column]}, "
                                f"now {digest}); a split never changes under its name: pass another --seed to "
                                f"add a new named split", self.dataset_dir / "splits.csv")
            if column not in hashes:
                merged[column] = splits[column].to_numpy()
                hashes[column] = digest
        self.dataset_dir.mkdir(parents=True, exist_ok=True)
        if recorded is None or len(merged.columns) != len(recorded.columns):
            write_csv(merged, self.dataset_dir / "splits.csv")
        kept = {"structure": old["structure"]} if old and old.get("structure") and "structure" not in info else {}
        _write_json(meta_path, {"name": name, "checksum": checksum, **kept, **info, "splits": hashes})

    def ensure_manifest(self, manifest: dict) -> None:
        """Write the manifest, or check that an existing one describes the same features."""
        old = self.read_manifest()
        if old is not None:
            differ = [k for k in MANIFEST_KEYS if _comparable(k, old.get(k)) != _comparable(k, manifest.get(k))]
            # caches written before weights were fingerprinted have none to compare
            differ += [k for k in ("weights_fingerprint",) if k in old and old[k] != manifest.get(k)]
            if differ:
                detail = "; ".join(f"{k}: cached {_short(old.get(k))}, now {_short(manifest.get(k))}" for k in differ)
                changed = (" (the weights file changed since the cache was started: its rows would mix two models)"
                           if "weights_fingerprint" in differ else "")
                raise DataError(f"the cache was built with other settings{changed} ({detail}); build into another "
                                f"--cache, or delete {self.directory} to start over", self.manifest_path)
            manifest = {**old, **{k: v for k, v in manifest.items() if k not in MANIFEST_KEYS}}
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_json(self.manifest_path, manifest)

    def write_rows(self, ids, embeddings, labels, n_mutations, mutations) -> None:
        """Append rows as new part files, one per mutation count."""
        n_mutations = np.asarray(n_mutations)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        for count in np.unique(n_mutations):
            m = n_mutations == count
            path = self.parts_dir / f"{shard_name(int(count))}-{uuid.uuid4().hex[:12]}.h5"
            _write_atomic_h5(path, np.asarray(ids)[m], embeddings[m], np.asarray(labels)[m],
                             n_mutations[m], np.asarray(mutations, dtype=object)[m])

    @contextmanager
    def _readers_lock(self, exclusive: bool) -> Iterator[None]:
        """Readers share it; merging parts into shards takes it alone, so no reader sees half a merge."""
        try:
            handle = open(self.directory / ".readers.lock", "a")
        except OSError:  # a read-only cache has no writer to wait for
            yield
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            handle.close()

    def compact(self) -> None:
        """Merge part files into one shard per mutation count, then delete the parts."""
        with self._readers_lock(exclusive=True):
            self._compact()

    def _compact(self) -> None:
        groups: dict[str, list[Path]] = {}
        for part in sorted(self.parts_dir.glob("m*.h5")):
            groups.setdefault(part.name.split("-")[0], []).append(part)
        for shard, parts in groups.items():
            target = self.directory / f"{shard}.h5"
            sources = ([target] if target.exists() else []) + parts
            rows = _dedupe_sorted(_read_shards(sources, keep_dtype=True))
            _write_atomic_h5(target, rows["ids"], rows["embeddings"], rows["labels"], rows["n_mutations"],
                             rows["mutations"])
            for part in parts:
                part.unlink()

    # ------------------------------------------------------------------ reading
    def read_manifest(self) -> dict | None:
        self.check_links(self.manifest_path)
        if not self.manifest_path.exists():
            return None
        return json.loads(self.manifest_path.read_text())

    def shard_paths(self) -> list[Path]:
        self.check_links()
        shards = sorted(self.directory.glob("m*.h5"))
        parts = sorted(self.parts_dir.glob("m*.h5")) if self.parts_dir.exists() else []
        self.check_links(*shards, *parts)
        return shards + parts

    def repair(self) -> list[Path]:
        """Under the build lock: delete temporary files of killed writers and set unreadable shards aside
        (renamed ``*.corrupt``) so that their rows are embedded again. Returns the files set aside."""
        self.check_links()
        for stale in list(self.directory.glob(".*.tmp")) + list(self.parts_dir.glob(".*.tmp")):
            stale.unlink(missing_ok=True)  # a link is removed, never what it points to
        set_aside = []
        for path in self.shard_paths():
            try:
                with h5py.File(path, "r") as f:
                    n = len(f["id"])
                    if not all(len(f[key]) == n for key in ("embedding", "label", "n_mutations", "mutations")):
                        raise OSError("its datasets disagree in length")
                    _check_content(path, f.attrs.get("embedding_crc32"), f["embedding"][:])
            except (OSError, KeyError, DataError):
                target = path.with_name(path.name + f".{uuid.uuid4().hex[:6]}.corrupt")
                os.replace(path, target)
                set_aside.append(target)
        return set_aside

    def existing_ids(self) -> set[str]:
        ids: set[str] = set()
        for path in self.shard_paths():
            try:
                with h5py.File(path, "r") as f:
                    ids.update(f["id"][:].astype(str))
            except (OSError, KeyError) as exc:
                raise _unreadable(path, exc) from None
        return ids

    def load(self) -> CachedEmbeddings:
        """All rows of this features cache (embeddings as float32), ordered by mutation count then id."""
        manifest = self.read_manifest()
        if manifest is None:
            raise DataError(f"no cached features here; run `mimo embed build` first "
                            f"(cached: {', '.join(list_features(self.root, self.dataset)) or 'none'})",
                            self.directory)
        # Merging parts into shards holds the readers' lock alone, so the listing and the reads agree.
        with self._readers_lock(exclusive=False):
            paths = self.shard_paths()
            if not paths:
                if self.build_running():
                    raise DataError("`mimo embed build` is writing this cache right now and has not written its "
                                    "first rows yet; wait for it (or fit with --allow-partial once it has)",
                                    self.directory)
                raise DataError("the cache has a manifest but no shards; rerun `mimo embed build`", self.directory)
            rows = _read_shards(paths)
        order_ok = (np.all(rows["n_mutations"][1:] >= rows["n_mutations"][:-1])
                    and len(np.unique(rows["ids"])) == len(rows["ids"]))
        if not order_ok or any(p.parent == self.parts_dir for p in paths):
            rows = _dedupe_sorted(rows)
        return CachedEmbeddings(rows["ids"], rows["embeddings"], rows["labels"], rows["n_mutations"],
                                rows["mutations"], manifest)

    def lookup(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """(found, embeddings) for ``ids``: the cached rows of just those ids, read shard by shard (only the ids
        and the matching rows are read, so predicting a few variants does not load a whole cache). Partial reads
        cannot check a shard's checksum: the rows read are checked to be finite."""
        manifest = self.read_manifest()
        if manifest is None:
            raise DataError("no cached features here; run `mimo embed build` first", self.directory)
        wanted: dict[str, int] = {}
        for k, i in enumerate(ids):
            wanted.setdefault(str(i), k)
        found = np.zeros(len(ids), dtype=bool)
        out = np.zeros((len(ids), int(manifest["dim"])), dtype=np.float32)
        with self._readers_lock(exclusive=False):
            for path in self.shard_paths():
                try:
                    with h5py.File(path, "r") as f:
                        shard_ids = f["id"][:].astype(str)
                        hits = [(row, wanted[i]) for row, i in enumerate(shard_ids) if i in wanted]
                        if not hits:
                            continue
                        rows = np.array([r for r, _ in hits])
                        values = np.asarray(f["embedding"][rows], dtype=np.float32)
                except (OSError, KeyError) as exc:
                    raise _unreadable(path, exc) from None
                if not np.isfinite(values).all():
                    raise _unreadable(path, "it holds non-finite embeddings")
                targets = np.array([k for _, k in hits])
                out[targets] = values
                found[targets] = True
        for i, k in ((str(i), k) for k, i in enumerate(ids)):  # repeated ids share the first one's row
            if not found[k] and found[wanted[i]]:
                out[k], found[k] = out[wanted[i]], True
        return found, out

    def read_dataset_info(self) -> dict:
        path = self.dataset_dir / "dataset.json"
        self.check_links(path)
        if not path.exists():
            raise DataError("no dataset recorded here; run `mimo embed build` first", path)
        return json.loads(path.read_text())

    def load_splits(self) -> pd.DataFrame:
        path = self.dataset_dir / "splits.csv"
        self.check_links(path)
        if not path.exists():
            raise DataError("no splits recorded for this dataset; run `mimo embed build` first", path)
        return pd.read_csv(path, dtype=str, keep_default_na=False)


def list_features(root: str | Path, dataset: str) -> list[str]:
    """Names of the features cached for a dataset."""
    directory = Path(root) / dataset
    if not directory.exists():
        return []
    return sorted(p.parent.name for p in directory.glob("*/manifest.json"))


def _write_json(path: Path, data: dict) -> None:
    write_json(path, data, indent=2, sort_keys=True)


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) < 60 else text[:57] + "..."
