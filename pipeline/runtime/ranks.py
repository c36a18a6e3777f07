"""Several processes on one build: `torchrun` (one node or many) splits the work of `mimo embed build`."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mimo.pipeline.errors import DataError


@dataclass
class Ranks:
    """This process's place among the build's processes (a single process by default)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> "Ranks":
        """Read torchrun's RANK/WORLD_SIZE/LOCAL_RANK and join the group (gloo: only barriers cross ranks)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> str:
        """The device for this rank: ``auto`` under torchrun means this process's own GPU."""
        if requested != "auto" or self.world_size <= 1:
            return requested
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def share(self, n: int) -> np.ndarray:
        """This rank's positions among ``n`` work items: every world_size-th, deterministic."""
        return np.arange(self.rank, n, self.world_size)

    def close(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def resolve_device(device: str = "auto"):
    """A torch device from ``auto`` (the GPU when there is one), ``cpu``, ``cuda``, ``cuda:1``, ``mps``; a
    DataError naming ``--device`` for a malformed name or a device this machine does not have."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise DataError(f"--device {device!r} is not a device name (auto, cpu, cuda, cuda:1, ...)") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise DataError(f"--device {device}: this machine has no CUDA GPU that torch can use (use --device cpu "
                            f"or auto)")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise DataError(f"--device {device}: there are only {torch.cuda.device_count()} GPU(s)")
    elif chosen.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DataError(f"--device {device}: MPS is not available here")
    elif chosen.type not in ("cpu", "cuda", "mps"):
        raise DataError(f"--device {device!r}: mimo runs on cpu, cuda or mps")
    return chosen
