"""The one training loop of every neural head (minibatch epochs, validation after each, early stopping with the
best epoch's weights restored), its configuration and what it records."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from mimo.pipeline.runtime import threads

from mimo.models.estimators.base import Param
from mimo.models.estimators.neural.optim import Adam, step_lr

Batch = tuple[torch.Tensor, torch.Tensor]
PREDICT_BATCH = 8192  # rows per forward pass at prediction and validation time


@dataclass
class TrainConfig:
    """How every neural head is trained."""

    lr: float = 1e-3
    epochs: int = 40
    batch_size: int = 256
    weight_decay: float = 1e-4
    step_size: int = 10       # StepLR: multiply lr by gamma every step_size epochs
    gamma: float = 0.5
    patience: int = 6         # early stopping: epochs without a better validation MSE
    seed: int = 0
    device: str = "auto"


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float   # MSE in label units, on the epoch's training batches
    valid_loss: float   # MSE in label units, inputs routed as in training (MIMO) or plain
    valid_mse: float    # MSE in label units of the test-time prediction on the validation split
    seconds: float


@dataclass
class FitResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def chunks(x, size: int = PREDICT_BATCH):
    """Consecutive slices of ``size`` rows."""
    return (x[start:start + size] for start in range(0, len(x), size))


def train_loop(module: nn.Module, config: TrainConfig, epoch_batches: Callable[[np.random.Generator], Iterator[Batch]],
               validate: Callable[[], tuple[float, float]], y_scale: float,
               log: Callable[[str], None] | None = None) -> FitResult:
    """The one loop for every head: returns the history, with the best epoch's weights restored."""
    rng = np.random.default_rng(config.seed)
    optimizer = Adam(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    result, best_state, best = FitResult(), None, math.inf
    began = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        threads.adapt()  # the machine's load may have changed (rate-limited)
        start = time.perf_counter()
        optimizer.lr = step_lr(config.lr, epoch, config.step_size, config.gamma)
        module.train()
        total, count = 0.0, 0
        for xb, yb in epoch_batches(rng):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(module(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            count += len(yb)
        module.eval()
        valid_loss, valid_mse = validate()
        record = EpochRecord(epoch, total / max(count, 1) * y_scale ** 2, valid_loss, valid_mse,
                             time.perf_counter() - start)
        result.history.append(record)
        if not (math.isfinite(record.train_loss) and math.isfinite(valid_mse)):
            raise ValueError(f"training diverged at epoch {epoch} (loss {record.train_loss}, valid MSE {valid_mse}): "
                             f"lower --lr, or check the labels' scale")
        stop = False
        if valid_mse < best:
            best, result.best_epoch = valid_mse, epoch
            best_state = copy.deepcopy(module.state_dict())
        elif epoch - result.best_epoch >= config.patience:
            result.stopped_early = stop = True
        if log is not None:
            log(f"epoch {epoch:3d}/{config.epochs}  train {record.train_loss:.4f}  valid {record.valid_loss:.4f}  "
                f"valid mse {record.valid_mse:.4f}  best epoch {result.best_epoch}  "
                f"{time.perf_counter() - began:.1f}s")
        if stop:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return result


TRAIN_FIELDS = tuple(TrainConfig.__dataclass_fields__)
TRAIN_SPECS = {
    "lr": Param("float", "Adam learning rate.", low=0, low_open=True, high=10),
    "epochs": Param("int", "Most epochs to train.", low=1),
    "batch_size": Param("int", "Rows per training step.", low=1),
    "weight_decay": Param("float", "L2 weight decay.", low=0),
    "step_size": Param("int", "StepLR: epochs between learning-rate drops.", low=1),
    "gamma": Param("float", "StepLR: learning-rate factor at each drop.", low=0, low_open=True, high=1),
    "patience": Param("int", "Stop after this many epochs without a better validation MSE; the best epoch is "
                      "kept.", low=1),
    "seed": Param("int", "Seed of the initial weights and of the batch order.", low=0),
    "device": Param("str", "cpu, cuda, cuda:1, ... (auto: the GPU when there is one)."),
}
