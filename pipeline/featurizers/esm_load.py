"""Loading fair-esm models: a hub name (fair-esm's own download and cache) or a local checkpoint file, read
without fair-esm's ``torch.load`` (which torch >= 2.6 refuses), and the weights' content fingerprint."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch

from mimo.pipeline.errors import DataError

MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"


def _torch_load(path: Path, checkpoint: bool = True, trusted: bool = False) -> dict:
    """A fair-esm file: a checkpoint (``model`` and ``cfg`` or ``args``), or with ``checkpoint=False`` the
    contact-regression file fair-esm downloads beside it, which holds only ``{"model": state_dict}``.

    Read with torch's ``weights_only`` unpickler, allowing argparse's ``Namespace`` (the settings fair-esm's
    checkpoints carry): a file cannot run code. Only a file fair-esm itself downloaded from its address
    (``trusted``) may fall back to a full unpickling, as fair-esm would read it."""
    import argparse
    import pickle

    try:
        try:
            with _allowed([argparse.Namespace]):
                data = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if not trusted:
                detail = str(exc).strip().splitlines()[0][:200]
                raise DataError(f"the checkpoint holds more than tensors, numbers and settings ({detail}); mimo "
                                f"reads weights without running code from the file: save it as {{'model': "
                                f"state_dict, 'cfg': {{'model': Namespace(...)}}}}", path) from None
            data = torch.load(str(path), map_location="cpu", weights_only=False)  # fair-esm's own download
    except DataError:
        raise
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise DataError(f"not a PyTorch checkpoint ({type(exc).__name__}: {exc})", path) from None
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
    trusted = weights is None  # fair-esm's own download of a named model
    data = _torch_load(path, trusted=trusted)
    regression_path = path.with_name(path.stem + "-contact-regression.pt")
    regression = (_torch_load(regression_path, checkpoint=False, trusted=trusted) if regression_path.exists()
                  else None)
    # fair-esm picks the ESM-2 constructor by the name's prefix; a renamed ESM-2 file still has 'cfg'.
    core_name = name if name.startswith("esm2") or "cfg" not in data else f"esm2-{name}"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Regression weights not found")
        try:
            net, alphabet = esm.pretrained.load_model_and_alphabet_core(core_name, data, regression)
        except (RuntimeError, KeyError, AttributeError) as exc:
            raise DataError(f"checkpoint does not fit fair-esm's model: {exc}", path) from None
    return net.eval(), alphabet, name
