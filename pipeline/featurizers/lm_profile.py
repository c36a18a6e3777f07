"""Per-site profiles computed by a protein language model from the parent alone (``--model profile:MODEL[:METHOD]``),
featurized exactly as a profile file is (``profile:PATH``, ``profile.py``: same columns, same meaning).

Specs (the profile of the parent's L sites, an (L, 20) distribution over ``AMINO_ACIDS`` at each):

- ``profile:esm2_t33_650M_UR50D`` or ``profile:esm2_t33_650M_UR50D:wt`` (any fair-esm model name, or a fair-esm
  checkpoint ``profile:FILE.pt``; on the command line ``--model profile:ESM[:METHOD] --weights FILE.pt`` is the
  same as ``profile:FILE.pt[:METHOD]``): the wild-type marginal, ESM's distribution at each site of the unmasked
  parent, one forward pass; features ``profile-<model>-wt``;
- ``profile:esm2_t33_650M_UR50D:masked``: the masked marginal, the distribution at site i with site i masked,
  L forward passes batched by the token budget; features ``profile-<model>-masked``;
- ``profile:unirep64``, ``profile:unirep256``, ``profile:unirep1900``: UniRep's next-residue distribution at
  each site given the residues before it (its trained output layer, the class of token t being t - 1, as
  ``UniRepZeroShot`` reads it), one pass; features ``profile-unirep1900``. UniRep reads left to right only: it
  takes no method.

Each row is the model's softmax restricted to the 20 amino acids and renormalised (special tokens, X, B, Z, U, O
dropped). ``dlogp`` of a single substitution is then ESM's wt-marginal or masked-marginal score (up to the
renormalisation, which cancels in the difference), or for UniRep the new residue's log-probability at its site
less the wild type's, given the left context: ``unirep1900-llr`` differs, as it also counts what the substitution
changes downstream (its mean over the sequence's residues).

The profile is computed ONCE per (model, method, weights, parent) and saved in ``$MIMO_PROFILES``, else
``$MIMO_HOME/profiles/`` (default ``~/.cache/mimo/profiles``), as ``<features>-<key>.npy`` (float64 probabilities,
readable as ``profile:`` reads any (L, 20) matrix) with ``<features>-<key>.json`` beside it: model, method, dtype, the weights file and its content
fingerprint, the parent's checksum and the .npy's own fingerprint. ``key`` hashes all of these but the last, so
every later build (another dataset with the same parent, a rebuild, `mimo predict`) reads the file instead of
running the model; the features cache's manifest records the same provenance. A stored file that no longer matches
its record is computed again.

A weights file that changed since a profile was stored (retrained, converted, replaced at the same path) has
another fingerprint, hence another key: its profile is COMPUTED AGAIN, never read from the old one, because the
spec names a model and the profile is data derived from it (nothing the user wrote is lost). A dataset's features
cache built from the old profile keeps the old fingerprint in its manifest, and ``build_cache`` refuses to mix rows
of the two (as it does for ESM embeddings); rebuilding features from such a cache (`mimo predict`) is refused too.

ESM reads at most 1,022 residues: a longer parent is refused (a profile of windows is not computed, and nothing is
truncated). Precision: float32 by default (``--dtype`` changes it, and the key).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mimo.pipeline.io.conventions import ESM_MAX_RESIDUES, ESM_NAME, data_home
from mimo.pipeline.errors import DataError
from mimo.pipeline.io.profiles import file_fingerprint
from mimo.pipeline.io.variants import AMINO_ACIDS
from mimo.pipeline.featurizers.profile import PROB_FLOOR, ProfileFeaturizer

UNIREP_MODELS = {"unirep64": 64, "unirep256": 256, "unirep1900": 1900}
ESM_METHODS = {"wt": "wt-marginal", "masked": "masked-marginal"}  # spec suffix -> EsmZeroShot's method
METHOD_ALIASES = {"wt-marginal": "wt", "masked-marginal": "masked"}
RECIPE = "profile-lm-v1"  # bump when the computation changes: older stored profiles are then not reused
STORE_ENV = "MIMO_PROFILES"


@dataclass(frozen=True)
class LmSpec:
    """A parsed ``profile:MODEL[:METHOD]``: ``family`` unirep or esm; ``model`` the UniRep or fair-esm name (for a
    checkpoint, its stem); ``weights`` the checkpoint file (resolved) or None; ``method`` next (UniRep), wt or
    masked (ESM)."""

    family: str
    model: str
    method: str
    weights: str | None = None

    @property
    def features(self) -> str:
        return f"profile-{self.model}" if self.family == "unirep" else f"profile-{self.model}-{self.method}"

    @property
    def text(self) -> str:
        """The spec again (with the checkpoint's resolved path), as the manifest records it."""
        return f"{self.weights or self.model}" + ("" if self.family == "unirep" else f":{self.method}")


def _is_esm_name(text: str) -> bool:
    return bool(ESM_NAME.match(text)) and "/" not in text and "." not in text


def parse_spec(spec: str) -> LmSpec | None:
    """The language model a ``profile:`` spec names, or None when it names a file (a profile the user brings).

    ``MODEL`` is unirep64/256/1900, a fair-esm name or a ``.pt`` checkpoint; ``METHOD`` wt (default) or masked
    (ESM only). A DataError (one line) for a method that does not fit the model."""
    text = str(spec)
    head, sep, tail = text.rpartition(":")
    model, method = (head, tail) if sep and "/" not in tail and "." not in tail else (text, None)
    is_unirep = model in UNIREP_MODELS
    is_checkpoint = model.endswith(".pt")
    if not (is_unirep or is_checkpoint or _is_esm_name(model)):
        if method is not None and not Path(text).is_file():
            raise DataError(f"profile:{text}: a method (:{method}) follows a language model (a UniRep or fair-esm "
                            f"name, or a .pt checkpoint); {model!r} is none, and no profile file has that name")
        return None
    if is_unirep:
        if method is not None:
            raise DataError(f"profile:{text}: UniRep reads left to right, its profile is the next-residue "
                            f"distribution given the residues before each site; it takes no method (:{method})")
        return LmSpec("unirep", model, "next")
    method = METHOD_ALIASES.get(method, method) or "wt"
    if method not in ESM_METHODS:
        why = (" (it depends on each variant, not a per-site profile of the parent)"
               if method == "mutant-marginal" else "")
        raise DataError(f"profile:{text}: ESM profile methods are wt (the unmasked parent, one pass) and masked "
                        f"(each site masked), not {method!r}{why}")
    if is_checkpoint:
        path = Path(model)
        if not path.is_file():
            raise DataError("weights file not found (profile:FILE.pt)", path)
        return LmSpec("esm", path.stem, method, str(path.resolve()))
    return LmSpec("esm", model, method)


def spec_with_weights(model: str, weights: str) -> str:
    """``--model profile:ESM[:METHOD] --weights FILE.pt`` as one spec, ``profile:FILE.pt[:METHOD]`` (the
    checkpoint replaces the name, as ``--weights`` does for ESM embeddings)."""
    parsed = parse_spec(model.removeprefix("profile:"))
    if parsed is None or parsed.family != "esm":
        raise DataError(f"--weights goes with an ESM model; --model {model} does not take a checkpoint")
    return f"profile:{weights}:{parsed.method}"


# ------------------------------------------------------------------------------------------------ the store

def profile_store() -> Path:
    """Where computed profiles are kept: ``$MIMO_PROFILES``, else ``$MIMO_HOME/profiles``."""
    return Path(os.environ.get(STORE_ENV) or data_home() / "profiles")


def parent_checksum(parent: str) -> str:
    return hashlib.sha256(parent.encode()).hexdigest()[:16]


@dataclass
class StoredProfile:
    path: Path           # the .npy
    record: dict         # the .json beside it
    computed: bool       # True when this call ran the model


def _weights_file(spec: LmSpec) -> Path:
    """The file the model's weights are read from (fair-esm's hub cache downloads a missing named model)."""
    if spec.family == "unirep":
        from mimo.pipeline.featurizers.unirep import unirep_weights_path

        return unirep_weights_path(UNIREP_MODELS[spec.model])
    from mimo.pipeline.featurizers.esm_load import resolve_weights

    return resolve_weights(None if spec.weights else spec.model, spec.weights)[0]


def _record(spec: LmSpec, parent: str, dtype: str) -> dict:
    from mimo.pipeline.featurizers.esm_load import weights_fingerprint

    weights = _weights_file(spec)
    return {"recipe": RECIPE, "model": spec.model, "family": spec.family, "method": spec.method, "dtype": dtype,
            "weights": str(weights.resolve()), "weights_fingerprint": weights_fingerprint(weights),
            "parent_sha256": parent_checksum(parent), "parent_length": len(parent), "alphabet": AMINO_ACIDS}


def _key(record: dict) -> str:
    """What the profile depends on, hashed (the weights' path is left out: a moved file is the same model)."""
    fields = {k: record[k] for k in ("recipe", "model", "family", "method", "dtype", "weights_fingerprint",
                                     "parent_sha256")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _read_stored(npy: Path, sidecar: Path, record: dict) -> dict | None:
    """The stored record when both files are there and agree with ``record`` and with each other."""
    if not (npy.is_file() and sidecar.is_file()):
        return None
    try:
        stored = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        stored = None
    if (isinstance(stored, dict) and all(stored.get(k) == v for k, v in record.items() if k != "weights")
            and stored.get("profile_fingerprint") == file_fingerprint(npy)):
        return stored
    print(f"warning: the stored profile {npy} does not match its record; computing it again", file=sys.stderr)
    return None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would add .npy to the temporary name
        np.save(handle, array, allow_pickle=False)


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_profile(spec: LmSpec, parent: str, device: str = "auto", dtype: str = "auto",
                   toks_per_batch: int | None = None, store: str | Path | None = None) -> StoredProfile:
    """The parent's profile under ``spec``: read from the store when it holds it, else computed (one model pass
    for wt and UniRep, L masked for masked) and saved there."""
    dtype = "float32" if dtype == "auto" or spec.family == "unirep" else dtype
    check_parent(spec, parent)
    record = _record(spec, parent, dtype)
    folder = Path(store) if store is not None else profile_store()
    stem = f"{spec.features}-{_key(record)}"
    npy, sidecar = folder / f"{stem}.npy", folder / f"{stem}.json"
    stored = _read_stored(npy, sidecar, record)
    if stored is not None:
        return StoredProfile(npy, stored, computed=False)
    probs = compute_profile(spec, parent, device, dtype, toks_per_batch)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(npy, lambda tmp: _save_npy(tmp, probs))
        record = {**record, "profile_fingerprint": file_fingerprint(npy)}
        _write_atomic(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))
    except OSError as exc:
        raise DataError(f"cannot write the computed profile ({exc.strerror}); set ${STORE_ENV} to a writable "
                        f"folder", folder) from None
    return StoredProfile(npy, record, computed=True)


def check_parent(spec: LmSpec, parent: str) -> None:
    """Refuse (one line) a parent the model cannot read whole."""
    if not parent:
        raise DataError(f"the {spec.features} featurizer computes the parent's profile: pass a dataset with one")
    if spec.family == "esm" and len(parent) > ESM_MAX_RESIDUES:
        raise DataError(f"{spec.features}: the parent has {len(parent)} residues, more than ESM's {ESM_MAX_RESIDUES}"
                        f"-residue window; mimo neither truncates it nor computes windowed profiles (a profile file, "
                        f"profile:PATH, or profile:unirep1900 reads it whole)")
    if spec.family == "unirep":
        from mimo.pipeline.featurizers.unirep import UNIREP_INDEX

        unknown = sorted(set(parent) - set(UNIREP_INDEX))
        if unknown:
            raise DataError(f"{spec.features}: the parent holds {''.join(unknown)!r}, letters UniRep has no token for")


def compute_profile(spec: LmSpec, parent: str, device: str = "auto", dtype: str = "float32",
                    toks_per_batch: int | None = None) -> np.ndarray:
    """(L, 20) float64 probabilities over ``AMINO_ACIDS``: the model's softmax over the 20 at each site."""
    import torch

    if spec.family == "unirep":
        from mimo.pipeline.featurizers.unirep import UNIREP_INDEX
        from mimo.pipeline.featurizers.zeroshot import UniRepZeroShot

        model = UniRepZeroShot(UNIREP_MODELS[spec.model], parent, device)
        logits, _, _ = model.logits([parent])  # (1, L + 1, 25): after the start token and each residue
        columns = [UNIREP_INDEX[a] - 1 for a in AMINO_ACIDS]  # residue token t is output class t - 1
        chosen = logits[0, :len(parent)][:, columns]
    else:
        from mimo.pipeline.featurizers.esm_load import checkpoint_fingerprint, load_esm
        from mimo.pipeline.featurizers.zeroshot import EsmZeroShot

        net, alphabet, name = load_esm(None if spec.weights else spec.model, spec.weights)
        unknown = sorted({a for a in parent if a not in alphabet.tok_to_idx})
        if unknown:
            raise DataError(f"{spec.features}: the parent holds {''.join(unknown)!r}, letters ESM has no token for")
        scorer = EsmZeroShot(net, alphabet, name, ESM_METHODS[spec.method], parent, device, dtype, toks_per_batch,
                             spec.weights, checkpoint_fingerprint(name, spec.weights))
        table = scorer.parent_table(list(range(len(parent))))  # log-probabilities over ESM's vocabulary
        columns = [alphabet.get_idx(a) for a in AMINO_ACIDS]
        chosen = torch.stack([table[i] for i in range(len(parent))])[:, columns]
    return torch.softmax(chosen.double().cpu(), dim=-1).numpy()


# ------------------------------------------------------------------------------------------------ features

class LmProfileFeaturizer(ProfileFeaturizer):
    """``ProfileFeaturizer`` on the stored profile a language model computed of the parent (see the module)."""

    kind = "profile-lm"

    def __init__(self, spec: LmSpec, parent: str, columns: str = "all", device: str = "auto", dtype: str = "auto",
                 toks_per_batch: int | None = None, store: str | Path | None = None):
        self.spec = spec
        self.stored = ensure_profile(spec, parent, device, dtype, toks_per_batch, store)
        super().__init__(self.stored.path, parent, 0, None, self.stored.record["profile_fingerprint"], columns)
        # what `mimo predict` compares with the manifest's weights_fingerprint: the model's, not the stored .npy's
        self.fingerprint = self.stored.record["weights_fingerprint"]
        self.name = spec.features + ("" if columns == "all" else f"-{columns}")

    @classmethod
    def from_manifest(cls, manifest: dict, parent: str, device: str = "auto") -> "LmProfileFeaturizer":
        """The featurizer a cache was built with: its profile read from the store (computed again if gone); a
        DataError when the model's weights changed since."""
        spec = parse_spec(manifest["lm_spec"])
        featurizer = cls(spec, parent, manifest.get("profile_columns", "all"), device, manifest.get("lm_dtype", "auto"))
        now = featurizer.stored.record["weights_fingerprint"]
        if now != manifest.get("weights_fingerprint"):
            raise DataError(f"the weights of {spec.model} changed since the cache was built (fingerprint "
                            f"{manifest.get('weights_fingerprint')}, now {now}): rebuild the features")
        featurizer.name = manifest["features"]
        return featurizer

    def _model(self) -> str:
        return f"{RECIPE} {self.spec.model} method={self.spec.method} dtype={self.stored.record['dtype']} " \
               f"floor={PROB_FLOOR:g}"

    def manifest(self) -> dict:
        record = self.stored.record
        return {**super().manifest(), "kind": self.kind, "weights": record["weights"],
                "weights_fingerprint": record["weights_fingerprint"], "lm_spec": self.spec.text,
                "lm_method": self.spec.method, "lm_dtype": record["dtype"], "parent_sha256": record["parent_sha256"],
                "profile": str(self.stored.path), "profile_fingerprint": record["profile_fingerprint"],
                "profile_format": f"computed by {self.spec.model} ({self.spec.method})"}
