"""Neural head estimators (fit/predict) sharing one training loop: Adam, StepLR, MSE, early stopping."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from mimo.pipeline import threads
from mimo.pipeline.ranks import resolve_device

from .base import Estimator, Param
from .heads import ConvHead, GlobalEpistasisHead, MimoHead, MlpHead, SparseRows, sparse_enough
from .routing import MutationGroups, mutation_routed_epoch, random_routed_epoch, routed_validation

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


class Adam:
    """Adam with L2 weight decay, the update of ``torch.optim.Adam`` (amsgrad off), tested equal to it.

    Why not torch.optim: constructing any torch optimizer imports torch._dynamo (measured 1.1-1.4 s on our
    2-core machines), a quarter of the 5-second budget of `mimo fit mimo`. The update runs as torch's fused
    kernel (``torch._fused_adam_``, the one behind ``Adam(fused=True)``: 20x faster than one op at a time on a
    1,879 x 256 layer), or op by op where a torch build lacks it.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = 0
        self.step_tensors = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.fused = hasattr(torch, "_fused_adam_") and all(p.dtype == torch.float32 for p in self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        if self.fused:
            live = [i for i, p in enumerate(self.params) if p.grad is not None]
            for i in live:  # the kernel reads the step count; the caller advances it (as torch.optim does)
                self.step_tensors[i] += 1
            try:
                torch._fused_adam_([self.params[i] for i in live], [self.params[i].grad for i in live],
                                   [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live], [],
                                   [self.step_tensors[i] for i in live], lr=self.lr, beta1=beta1, beta2=beta2,
                                   weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False)
                return
            except (RuntimeError, NotImplementedError):  # no fused kernel for this device: op by op from now on
                self.fused = False
        bias1, bias2 = 1 - beta1 ** self.steps, 1 - beta2 ** self.steps
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            grad = p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denominator = (v.sqrt() / math.sqrt(bias2)).add_(self.eps)
            p.addcdiv_(m, denominator, value=-self.lr / bias1)


def step_lr(base_lr: float, epoch: int, step_size: int, gamma: float) -> float:
    """StepLR: the learning rate of a 1-based epoch."""
    return base_lr * gamma ** ((epoch - 1) // step_size)


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
DROPOUT = Param("float", "Dropout probability.", low=0, high=0.95)


class NeuralRegressor(Estimator):
    """Shared parts of the neural heads: standardisation, batching, the loop, prediction, saving.

    Every neural head takes the training loop's parameters (``TRAIN_FIELDS``: lr, epochs, batch_size,
    weight_decay, step_size, gamma, patience, seed, device) as keyword arguments of its own, with its own
    defaults."""

    name = "neural"

    def _build(self, in_dim: int) -> nn.Module:
        raise NotImplementedError

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(**{name: getattr(self, name) for name in TRAIN_FIELDS})

    def _standardise(self, X: np.ndarray, y: np.ndarray) -> None:
        self.x_mean_ = X.mean(axis=0).astype(np.float32)
        std = X.std(axis=0)
        self.x_std_ = np.where(std > 0, std, 1.0).astype(np.float32)
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() or 1.0)

    sparse_inputs = True  # the first layer is linear: mostly-zero inputs (one-hot) go through SparseRows

    def _x(self, X: np.ndarray) -> torch.Tensor | SparseRows:
        """Standardised inputs: dense, or as ``SparseRows`` (the same numbers) when they are mostly zeros."""
        if self.sparse_inputs:
            rows = SparseRows.from_numpy(X, self.x_mean_, self.x_std_)
            if rows is not None:
                return rows
        z = np.asarray(X, np.float32) - self.x_mean_  # one new array, then scaled in place
        z /= self.x_std_
        return torch.from_numpy(z)

    def _y(self, y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((np.asarray(y, np.float64) - self.y_mean_) / self.y_std_).astype(np.float32))

    def _start(self, X: np.ndarray, y: np.ndarray) -> None:
        self._validate_params()
        if len(X) == 0:
            raise ValueError("no training rows")
        torch.manual_seed(self.seed)
        self.device_ = resolve_device(self.device)
        self._standardise(np.asarray(X, np.float32), np.asarray(y, np.float64))
        self.module_ = self._build(X.shape[1]).to(self.device_)
        if self.sparse_inputs and hasattr(self.module_, "for_sparse_inputs") and sparse_enough(X):
            self.module_.for_sparse_inputs()

    def _outputs(self, batches: Iterable[torch.Tensor]) -> np.ndarray:
        """(n, M) outputs in label units (M = 1 for single-output heads) of batches of standardised inputs."""
        self.module_.eval()
        with torch.inference_mode():
            out = [self._predict_module(xb.to(self.device_)).float().cpu() for xb in batches]
        z = torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, 1))
        return z * self.y_std_ + self.y_mean_

    def _predict_module(self, xb: torch.Tensor) -> torch.Tensor:
        return self.module_(xb)

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """(n, M) outputs in label units; inputs standardised a batch at a time."""
        return self._outputs(self._x(chunk) for chunk in chunks(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_members(X).mean(axis=1)

    def refit_params(self) -> dict:
        """As many epochs as were best on validation, without early stopping."""
        return {"epochs": max(self.result_.best_epoch, 1), "patience": self.epochs + 1}

    def run_summary(self) -> dict:
        """What a run records of the fit besides its parameters: epochs, best epoch, the loss history."""
        result = self.result_
        return {"epochs_run": len(result.history), "best_epoch": result.best_epoch,
                "stopped_early": result.stopped_early, "history": [asdict(r) for r in result.history]}

    def fitted_state(self) -> dict:
        return {"module": self.module_.state_dict(), "in_dim": int(self.x_mean_.shape[0]), "x_mean": self.x_mean_,
                "x_std": self.x_std_, "y_mean": self.y_mean_, "y_std": self.y_std_, "extra": self._extra_state()}

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        self.x_mean_ = np.asarray(state["x_mean"], np.float32)
        self.x_std_ = np.asarray(state["x_std"], np.float32)
        self.y_mean_, self.y_std_ = float(state["y_mean"]), float(state["y_std"])
        self.device_ = resolve_device(device)
        self._load_extra(state.get("extra", {}))
        self.module_ = self._build(int(state["in_dim"])).to(self.device_)
        self.module_.load_state_dict({k: torch.as_tensor(v) for k, v in state["module"].items()})
        self.module_.eval()

    def _extra_state(self) -> dict:
        return {}

    def _load_extra(self, extra: dict) -> None:
        pass


class _PlainHead(NeuralRegressor):
    """A head with one output, trained on shuffled minibatches of the train split."""

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray,
            log: Callable[[str], None] | None = None, **_) -> "_PlainHead":
        self._start(X, y)
        config, device = self.train_config, self.device_
        xs, ys = self._x(X).to(device), self._y(y).unsqueeze(1).to(device)
        xv, y_valid = self._x(X_valid).to(device), np.asarray(y_valid, np.float64)  # standardised once, not per epoch

        def epoch_batches(rng):
            order = torch.from_numpy(rng.permutation(len(xs))).to(device)
            for start in range(0, len(order), config.batch_size):
                idx = order[start:start + config.batch_size]
                yield xs[idx], ys[idx]

        def validate():
            mse = float(np.mean((self._outputs(chunks(xv))[:, 0] - y_valid) ** 2))
            return mse, mse

        self.result_ = train_loop(self.module_, config, epoch_batches, validate, self.y_std_, log)
        return self


class MlpRegressor(_PlainHead):
    """The report's base model: linear layers and ReLU over the embedding."""

    name = "mlp"
    _param_specs = {"hidden": Param("sizes", "Hidden layer sizes."), "dropout": DROPOUT, **TRAIN_SPECS}

    def __init__(self, *, hidden: tuple[int, ...] = (256, 64), dropout: float = 0.1, lr: float = 1e-3,
                 epochs: int = 40, batch_size: int = 256, weight_decay: float = 1e-4, step_size: int = 10,
                 gamma: float = 0.5, patience: int = 6, seed: int = 0, device: str = "auto"):
        self._store(locals())

    def _build(self, in_dim: int) -> nn.Module:
        return MlpHead(in_dim, tuple(self.hidden), self.dropout)


class CnnRegressor(_PlainHead):
    """The report's improved model: 1-D convolutions and ReLU, then linear layers, over the embedding."""

    name = "cnn"
    sparse_inputs = False  # convolutions see the embedding as a signal
    _param_specs = {"channels": Param("sizes", "Channels of the convolutional layers."),
                    "kernel_size": Param("int", "Convolution kernel width.", low=1),
                    "hidden": Param("sizes", "Sizes of the linear layers after the convolutions."),
                    "dropout": DROPOUT, **TRAIN_SPECS}

    def __init__(self, *, channels: tuple[int, ...] = (8, 16), kernel_size: int = 9, hidden: tuple[int, ...] = (64,),
                 dropout: float = 0.1, lr: float = 1e-3, epochs: int = 40, batch_size: int = 256,
                 weight_decay: float = 1e-4, step_size: int = 10, gamma: float = 0.5, patience: int = 6,
                 seed: int = 0, device: str = "auto"):
        self._store(locals())

    def _build(self, in_dim: int) -> nn.Module:
        return ConvHead(in_dim, tuple(self.channels), self.kernel_size, hidden=tuple(self.hidden), dropout=self.dropout)


class GlobalEpistasisRegressor(_PlainHead):
    """Global epistasis: an additive latent score through a learned monotone nonlinearity
    (``GlobalEpistasisHead``). Trains with a higher learning rate and longer patience than the other heads."""

    name = "ge"
    _param_specs = {"components": Param("int", "Sigmoids summed in the monotone output nonlinearity.", low=1),
                    "standardize": Param("bool", "Standardise inputs (default: yes, except 0/1 columns such as "
                                         "one-hot).", none_ok=True),
                    **TRAIN_SPECS}

    def __init__(self, *, components: int = 3, standardize: bool | None = None, lr: float = 1e-2, epochs: int = 60,
                 batch_size: int = 256, weight_decay: float = 1e-5, step_size: int = 10, gamma: float = 0.5,
                 patience: int = 10, seed: int = 0, device: str = "auto"):
        self._store(locals())

    def _build(self, in_dim: int) -> nn.Module:
        return GlobalEpistasisHead(in_dim, self.components)

    def _standardise(self, X: np.ndarray, y: np.ndarray) -> None:
        """Inputs are standardised unless ``standardize`` is False; with None, 0/1 indicator columns (one-hot)
        are kept as they are, so that weight decay treats every substitution alike."""
        super()._standardise(X, y)
        if self.standardize is None:  # only the columns that are not 0/1 indicators
            keep = np.all((X == 0) | (X == 1), axis=0)
        else:
            keep = np.full(X.shape[1], not self.standardize)
        self.x_mean_[keep] = 0.0
        self.x_std_[keep] = 1.0


class MimoRegressor(NeuralRegressor):
    """MIMO with members routed by mutation count (the report's scheme) or at random (Havasi et al.).

    ``routing="mutations"``: member k trains only on its group of mutation counts; every step gives each member
    a batch of the same size; an epoch is all of the smallest group and a fresh draw of that size from every
    other group, repeated ``repeat`` times. ``routing="random"``: every member gets its own random permutation
    of each batch; with probability ``rho`` a position shows all members the same input; each batch is
    repeated ``batch_repetition`` times. At test time every member sees the input; the prediction is their
    mean and their standard deviation is the uncertainty. ``output="monotone"``: each member ends in its own
    learned monotone sigmoid sum, as the global-epistasis head does.
    """

    name = "mimo"
    _param_specs = {
        "members": Param("int", "Members (random routing: default 3; routing by mutations: one per group).",
                         low=1, high=64, none_ok=True),
        "groups": Param("str", "Mutation-count groups, one per member, e.g. '0-1,2,3-' (default: one per count "
                        "in train, the parent with the singles).", none_ok=True),
        "max_members": Param("int", "With more counts than this in train, counts are grouped into this many "
                             "ranges.", low=1, high=64),
        "routing": Param("str", "mutations: member k trains on its mutation-count group (the report); random: "
                         "Havasi et al.", choices=("mutations", "random")),
        "repeat": Param("int", "Routing by mutations: epoch = smallest group x this, and as many rows drawn "
                        "from every other group.", low=1),
        "rho": Param("float", "Random routing: input repetition probability.", low=0, high=1),
        "batch_repetition": Param("int", "Random routing: batch repetitions.", low=1),
        "input_hidden": Param("int", "Width of each member's input layer.", low=1),
        "shared": Param("sizes", "Sizes of the shared middle layers."),
        "member_hidden": Param("int", "Width of each member's part of the last shared layer.", low=1),
        "dropout": DROPOUT,
        "output": Param("str", "Each member's output: linear, or through its own learned monotone sigmoid sum "
                        "(as `fit ge`).", choices=("linear", "monotone")),
        "components": Param("int", "Monotone output: sigmoids summed per member.", low=1),
        **TRAIN_SPECS,
    }

    def __init__(self, *, members: int | None = None, groups: str | None = None, max_members: int = 4,
                 routing: str = "mutations", repeat: int = 10, rho: float = 0.0, batch_repetition: int = 1,
                 input_hidden: int = 32, shared: tuple[int, ...] = (128,), member_hidden: int = 32,
                 dropout: float = 0.1, output: str = "linear", components: int = 3, lr: float = 1e-3,
                 epochs: int = 40, batch_size: int = 256, weight_decay: float = 1e-4, step_size: int = 10,
                 gamma: float = 0.5, patience: int = 6, seed: int = 0, device: str = "auto"):
        self._store(locals())

    def _build(self, in_dim: int) -> nn.Module:
        return MimoHead(in_dim, self.n_members_, self.input_hidden, tuple(self.shared), self.member_hidden,
                        self.dropout, self.output, self.components)

    def _predict_module(self, xb: torch.Tensor) -> torch.Tensor:
        return self.module_.forward_shared(xb)

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray,
            counts: np.ndarray | None = None, counts_valid: np.ndarray | None = None,
            log: Callable[[str], None] | None = None) -> "MimoRegressor":
        self._validate_params()
        if self.routing == "mutations":
            if counts is None or counts_valid is None:
                raise ValueError("routing by mutations needs the mutation counts of train and valid rows")
            if np.any(np.asarray(counts) < 0) or np.any(np.asarray(counts_valid) < 0):
                raise ValueError("routing by mutations needs every row's mutation count, and this dataset has "
                                 "rows without one (sequences not aligned to a parent); use routing='random' "
                                 "(--routing random)")
            self.groups_ = MutationGroups.from_counts(counts, self.groups, self.members or self.max_members)
            self.n_members_ = len(self.groups_)
        else:
            self.groups_ = None
            self.n_members_ = self.members or 3
        self._start(X, y)
        config, device = self.train_config, self.device_
        xs, ys = self._x(X).to(device), self._y(y).to(device)
        xv, yv = self._x(X_valid).to(device), self._y(y_valid).to(device)

        def batches_from(plan: np.ndarray, x: torch.Tensor, t: torch.Tensor) -> Iterator[Batch]:
            index = torch.from_numpy(plan.T.copy()).to(device)  # (M, steps * batch) row indices
            for start in range(0, index.shape[1], config.batch_size):
                idx = index[:, start:start + config.batch_size]
                yield x[idx], t[idx].T  # inputs (M, B, D), member-major; targets (B, M)

        if self.routing == "mutations":
            member_rows = self.groups_.member_rows(counts)
            valid_plan = routed_validation(self.groups_.member_rows(counts_valid))

            def epoch_batches(rng):
                return batches_from(mutation_routed_epoch(member_rows, self.repeat, rng), xs, ys)
        else:
            valid_plan = random_routed_epoch(len(xv), self.n_members_, config.batch_size, 0.0, 1,
                                             np.random.default_rng(config.seed + 1))

            def epoch_batches(rng):
                return batches_from(random_routed_epoch(len(xs), self.n_members_, config.batch_size, self.rho,
                                                        self.batch_repetition, rng), xs, ys)

        def validate():
            with torch.inference_mode():
                losses = [nn.functional.mse_loss(self.module_(xb), yb, reduction="sum").item()
                          for xb, yb in batches_from(valid_plan, xv, yv)]
                ensemble = self.module_.forward_shared(xv).mean(dim=1)
            routed = sum(losses) / valid_plan.size * self.y_std_ ** 2
            return routed, float(((ensemble - yv) ** 2).mean()) * self.y_std_ ** 2

        self.result_ = train_loop(self.module_, config, epoch_batches, validate, self.y_std_, log)
        return self

    def _extra_state(self) -> dict:
        return {"n_members": self.n_members_, "groups": None if self.groups_ is None else self.groups_.ranges}

    def _load_extra(self, extra: dict) -> None:
        self.n_members_ = extra["n_members"]
        self.groups_ = None if extra["groups"] is None else MutationGroups([tuple(r) for r in extra["groups"]])


