"""Loading fair-esm models: a hub name (fair-esm's own download and cache) or a local checkpoint file, read
without fair-esm's ``torch.load`` (which torch >= 2.6 refuses), and the weights' content fingerprint."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch

from mimo.pipeline.errors import DataError

MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6 (fair-esm's downloads are in it)
PICKLE_MAGIC = b"\x80"  # torch's legacy format opens with a pickle protocol byte


def _torch_load(path: Path, checkpoint: bool = True) -> dict:
    """A fair-esm file: a checkpoint (``model`` and ``cfg`` or ``args``), or with ``checkpoint=False`` the
    contact-regression file fair-esm downloads beside it, which holds only ``{"model": state_dict}``.

    Always read with torch's ``weights_only`` unpickler, allowing argparse's ``Namespace`` (the settings
    fair-esm's checkpoints carry) and nothing else: a file cannot run code, wherever it lies (a file in the
    torch hub cache is no safer than one given with --weights: anyone may have put it there). fair-esm
    publishes no checksums for its downloads, so none is checked; the weights' fingerprint is recorded in
    the cache's manifest instead. A file that is not a PyTorch checkpoint at all (a FASTA given as --weights)
    is said to be one."""
    import argparse
    import pickle

    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise DataError(f"cannot read the weights file ({exc.strerror})", path) from None
    if not (head.startswith(ZIP_MAGIC) or head.startswith(PICKLE_MAGIC)):
        kind = "text" if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "data"
        hint = " (a FASTA file?)" if head.startswith(b">") else ""
        raise DataError(f"not a PyTorch checkpoint: the file holds {kind}{hint}, not weights saved by torch.save; "
                        f"--weights takes a fair-esm .pt file", path)
    try:
        with _allowed([argparse.Namespace]):
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).strip().splitlines()
        detail = next((line.strip() for line in detail if "GLOBAL" in line or "Unsupported" in line),
                      detail[0] if detail else "")[:200]
        raise DataError(f"the checkpoint holds more than tensors, numbers and settings ({detail}); mimo reads "
                        f"weights without running code from the file, and never unpickles one fully: save it as "
                        f"{{'model': state_dict, 'cfg': {{'model': Namespace(...)}}}}", path) from None
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise DataError(f"not a PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]})", path) from None
    if not isinstance(data, dict) or "model" not in data:
        raise DataError("not a fair-esm file: expected a dict with a 'model' entry", path)
    if checkpoint and not ({"cfg", "args"} & set(data)):
        raise DataError("not a fair-esm checkpoint: expected a dict with 'model' and 'cfg' (ESM-2) or "
                        "'args' (ESM-1) entries", path)
    return data


def _allowed(classes: list):
    """torch's context that lets the weights-only unpickler rebuild ``classes`` (torch >= 2.5); older torch
    has only the process-wide list, which is left alone: such checkpoints are then refused."""
    from contextlib import nullcontext

    safe = getattr(torch.serialization, "safe_globals", None)
    return safe(classes) if safe is not None else nullcontext()


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
