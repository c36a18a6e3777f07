"""The one training loop of every neural head, its configuration and what it records.

Training is scheduled by optimiser steps, so that a few hundred rows train to convergence as 20,000 do: the batch
shrinks (to no fewer than ``MIN_BATCH`` rows) so that ``epochs`` passes over the rows make at least ``min_steps``
steps, and where even the smallest batch falls short the passes are lengthened. Those steps are cut into ``epochs``
rounds of equal length; after each round the validation MSE is measured, the learning rate follows torch's
``StepLR`` over rounds, training stops after ``patience`` rounds without a better validation MSE, and the best
round's weights are restored. With ``min_steps=0`` this is the plain epoch schedule (a round is an epoch, the
batch is ``batch_size``). At 20,000 rows and the defaults the two are the same.
"""
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

Batch = tuple[torch.Tensor, torch.Tensor]
PREDICT_BATCH = 8192  # rows per forward pass at prediction and validation time
MIN_BATCH = 16        # the batch never shrinks below this many rows for the sake of more steps


@dataclass
class TrainConfig:
    """How every neural head is trained."""

    lr: float = 1e-3
    epochs: int = 40          # rounds: validation after each; an epoch each where the rows make min_steps
    batch_size: int = 256     # the most rows per step
    weight_decay: float = 1e-4
    step_size: int = 10       # StepLR: multiply lr by gamma every step_size rounds
    gamma: float = 0.5
    patience: int = 6         # early stopping: rounds without a better validation MSE
    seed: int = 0
    device: str = "auto"
    min_steps: int = 2000     # the fewest optimiser steps of a full schedule


@dataclass(frozen=True)
class Schedule:
    """Steps of one fit: ``batch`` rows per step, ``rounds`` rounds of ``round_steps`` steps."""

    batch: int
    rounds: int
    round_steps: int

    @classmethod
    def of(cls, config: TrainConfig, rows: int) -> "Schedule":
        """The schedule for ``rows`` training rows (an epoch = ``rows`` / batch steps)."""
        rows = max(int(rows), 1)
        batch = config.batch_size
        if config.min_steps > 0:  # shrink so that `epochs` passes make min_steps steps, to no less than MIN_BATCH
            batch = min(batch, max(min(MIN_BATCH, batch), math.ceil(rows * config.epochs / config.min_steps)))
        per_epoch = math.ceil(rows / batch)
        round_steps = max(per_epoch, math.ceil(config.min_steps / config.epochs))
        return cls(batch, config.epochs, round_steps)

    @property
    def steps(self) -> int:
        return self.rounds * self.round_steps


@dataclass
class EpochRecord:
    epoch: int          # the round (an epoch where rounds are epochs)
    train_loss: float   # MSE on the round's training batches, in the modelled units (labels', unless normal scores)
    valid_loss: float   # the same on validation, inputs routed as in training (MIMO) or plain
    valid_mse: float    # MSE in label units of the test-time prediction on the validation split
    seconds: float


@dataclass
class FitResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    schedule: Schedule | None = None


def chunks(x, size: int = PREDICT_BATCH):
    """Consecutive slices of ``size`` rows."""
    return (x[start:start + size] for start in range(0, len(x), size))


def adam(parameters, lr: float, weight_decay: float) -> torch.optim.Adam:
    """``torch.optim.Adam`` with its fused kernel where the device has one (CPU and CUDA on torch 2.4+), else
    torch's default implementation."""
    parameters = [p for p in parameters if p.requires_grad]
    try:
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)


def endless(epoch_batches: Callable[[np.random.Generator, int], Iterator[Batch]], rng: np.random.Generator,
            batch: int) -> Iterator[Batch]:
    """Epoch after epoch of batches, each epoch in a fresh order."""
    while True:
        empty = True
        for item in epoch_batches(rng, batch):
            empty = False
            yield item
        if empty:
            raise ValueError("no training rows")


def train_loop(module: nn.Module, config: TrainConfig,
               epoch_batches: Callable[[np.random.Generator, int], Iterator[Batch]], rows: int,
               validate: Callable[[], tuple[float, float]], y_scale: float,
               log: Callable[[str], None] | None = None) -> FitResult:
    """The one loop for every head: ``epoch_batches(rng, batch)`` yields one epoch of batches of ``rows``
    training rows. Returns the history (one record per round), with the best round's weights restored."""
    rng = np.random.default_rng(config.seed)
    schedule = Schedule.of(config, rows)
    optimizer = adam(module.parameters(), config.lr, config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    result, best_state, best = FitResult(schedule=schedule), None, math.inf
    stream = endless(epoch_batches, rng, schedule.batch)
    began = time.perf_counter()
    for epoch in range(1, schedule.rounds + 1):
        threads.adapt()  # the machine's load may have changed (rate-limited)
        start = time.perf_counter()
        module.train()
        total, count = 0.0, 0
        for _ in range(schedule.round_steps):
            xb, yb = next(stream)
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(module(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            count += len(yb)
        scheduler.step()
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
            log(f"epoch {epoch:3d}/{schedule.rounds}  train {record.train_loss:.4f}  valid {record.valid_loss:.4f}  "
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
    "epochs": Param("int", "Rounds of training, validation after each: epochs, or more steps each where the "
                    "rows are too few to make min_steps.", low=1),
    "batch_size": Param("int", "Most rows per training step (fewer where the rows are too few to make "
                        "min_steps).", low=1),
    "weight_decay": Param("float", "L2 weight decay.", low=0),
    "step_size": Param("int", "StepLR: rounds between learning-rate drops.", low=1),
    "gamma": Param("float", "StepLR: learning-rate factor at each drop.", low=0, low_open=True, high=1),
    "patience": Param("int", "Stop after this many rounds without a better validation MSE; the best round is "
                      "kept.", low=1),
    "seed": Param("int", "Seed of the initial weights and of the batch order.", low=0),
    "device": Param("str", "cpu, cuda, cuda:1, ... (auto: the GPU when there is one)."),
    "min_steps": Param("int", "Fewest optimiser steps of the schedule, at any number of rows (0: the plain epoch "
                       "schedule).", low=0),
}
