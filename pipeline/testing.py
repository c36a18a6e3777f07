"""Tiny randomly initialised models in their libraries' own formats, for tests and benchmarks (no real
weights can be downloaded on these machines)."""
from __future__ import annotations

from pathlib import Path

import torch


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
