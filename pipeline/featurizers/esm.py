"""ESM models through fair-esm: loading (hub name or local ``.pt``) and batched mean-pooled embedding."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from ..conventions import ESM_MAX_RESIDUES, MUTPOS, data_home, pooling_of
from ..errors import DataError
from ..ranks import resolve_device
from ..variants import check_aligned, expressed_positions
from .esm_fast import FastEsm2

ENGINES = ("fast", "fair-esm", "compiled")
MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"


def _torch_load(path: Path, checkpoint: bool = True) -> dict:
    """A fair-esm file: a checkpoint (``model`` and ``cfg`` or ``args``), or with ``checkpoint=False`` the
    contact-regression file fair-esm downloads beside it, which holds only ``{"model": state_dict}``."""
    # fair-esm 2.0.0 calls torch.load without weights_only=False, which torch >= 2.6 refuses for its
    # checkpoints (they pickle argparse Namespaces); these are files the user chose to trust.
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise DataError(f"not a PyTorch checkpoint ({type(exc).__name__}: {exc})", path) from None
    if not isinstance(data, dict) or "model" not in data:
        raise DataError("not a fair-esm file: expected a dict with a 'model' entry", path)
    if checkpoint and not ({"cfg", "args"} & set(data)):
        raise DataError("not a fair-esm checkpoint: expected a dict with 'model' and 'cfg' (ESM-2) or "
                        "'args' (ESM-1) entries", path)
    return data


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


def weights_fingerprint(path: str | Path, samples: int = 64, block: int = 1 << 16) -> str:
    """A content fingerprint of a weights file: its size and the SHA-256 of its first and last MiB and of
    ``samples`` blocks spread evenly between. Hashing a 2.6 GB checkpoint whole would cost seconds on every
    build; these 3 MiB tell any retrained, converted or truncated file apart in milliseconds."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        offsets = [0, max(0, size - (1 << 20))] + [size * k // (samples + 1) for k in range(1, samples + 1)]
        for offset in offsets:
            handle.seek(offset)
            digest.update(handle.read(1 << 20 if offset in offsets[:2] else block))
    return f"{size}:{digest.hexdigest()[:32]}"


def checkpoint_fingerprint(model_name: str, weights: str | Path | None) -> str | None:
    """``weights_fingerprint`` of the file a model was loaded from (``weights``, or the hub cache's)."""
    checkpoint = Path(weights) if weights else hub_checkpoint_path(model_name)
    return weights_fingerprint(checkpoint) if checkpoint.is_file() else None


def hub_checkpoint_path(name: str) -> Path:
    """Where fair-esm (through torch.hub) keeps a model's weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt"


def resolve_weights(model: str | None, weights: str | Path | None) -> tuple[Path, str]:
    """The checkpoint file and model name for ``--model NAME`` or ``--weights FILE.pt``.

    A name is looked up in the torch hub cache, as fair-esm does, and downloaded there when missing.
    """
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise DataError("weights file not found", path)
        return path, path.stem
    if model is None:
        raise DataError("name a model (--model esm2_t33_650M_UR50D) or a checkpoint (--weights FILE.pt)")
    import esm.pretrained

    if not callable(getattr(esm.pretrained, model, None)) or model.startswith("load"):
        known = sorted(n for n in dir(esm.pretrained) if n.startswith(("esm1", "esm2")))
        raise DataError(f"unknown ESM model {model!r}; fair-esm knows {', '.join(known)}")
    path = hub_checkpoint_path(model)
    if not path.exists():
        url = MODEL_URL.format(name=model)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), progress=True)
        except Exception as exc:
            raise DataError(f"could not download {model} from {url} ({exc}); on a machine without a network "
                            f"copy the file to {path} or pass --weights FILE.pt") from None
    return path, model


def esm_featurizer_from_manifest(manifest: dict, device: str = "auto", toks_per_batch: int | None = None,
                                 parent: str | None = None) -> "EsmFeaturizer":
    """Rebuild the featurizer a cache was built with (same model, layer, precision and pooling)."""
    weights = manifest.get("weights")
    net, alphabet, name = load_esm(None if weights else manifest["model"], weights)
    mutated = pooling_of(manifest) == "mutated"
    return EsmFeaturizer(net, alphabet, name, manifest["layer"], device, manifest["dtype"], toks_per_batch, weights,
                         bool(manifest.get("truncate")), pooling="mutated" if mutated else "mean", parent=parent)


def load_esm(model: str | None = None, weights: str | Path | None = None):
    """Load an ESM model with fair-esm's own constructor. Returns (model, alphabet, name)."""
    import esm.pretrained

    path, name = resolve_weights(model, weights)
    data = _torch_load(path)
    regression_path = path.with_name(path.stem + "-contact-regression.pt")
    regression = _torch_load(regression_path, checkpoint=False) if regression_path.exists() else None
    # fair-esm picks the ESM-2 constructor by the name's prefix; a renamed ESM-2 file still has 'cfg'.
    core_name = name if name.startswith("esm2") or "cfg" not in data else f"esm2-{name}"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Regression weights not found")
        try:
            net, alphabet = esm.pretrained.load_model_and_alphabet_core(core_name, data, regression)
        except (RuntimeError, KeyError, AttributeError) as exc:
            raise DataError(f"checkpoint does not fit fair-esm's model: {exc}", path) from None
    return net.eval(), alphabet, name


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


def save_random_esm2(path: str | Path, num_layers: int = 6, embed_dim: int = 320, attention_heads: int = 20,
                     seed: int = 0) -> Path:
    """Write a randomly initialised ESM-2 in fair-esm's checkpoint format (for tests and benchmarks).

    esm2_t6_8M has (6, 320, 20); esm2_t33_650M has (33, 1280, 20).
    """
    from argparse import Namespace

    from esm.model.esm2 import ESM2

    torch.manual_seed(seed)
    net = ESM2(num_layers=num_layers, embed_dim=embed_dim, attention_heads=attention_heads,
               alphabet="ESM-1b", token_dropout=True)
    # Real checkpoints keep the contact regression in a separate file, and prefix names with "encoder.".
    state = {f"encoder.{k}": v for k, v in net.state_dict().items() if not k.startswith("contact_head.regression")}
    cfg = Namespace(encoder_layers=num_layers, encoder_embed_dim=embed_dim,
                    encoder_attention_heads=attention_heads, token_dropout=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "cfg": {"model": cfg}}, path)
    return path
