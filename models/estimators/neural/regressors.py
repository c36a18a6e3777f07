"""Neural head estimators (fit/predict) sharing one training loop (``training.train_loop``: torch's Adam and
StepLR, MSE, a schedule of optimiser steps, early stopping)."""
from __future__ import annotations

import re
from dataclasses import asdict
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from mimo.pipeline.runtime.ranks import resolve_device

from mimo.models.estimators.base import Estimator, FitData, Param
from mimo.models.estimators.neural.modules import ConvHead, GlobalEpistasisHead, MimoHead, MlpHead, SparseRows
from mimo.models.estimators.neural.routing import MutationGroups, mutation_routed_epoch, random_routed_epoch, routed_validation
from mimo.models.estimators.neural.training import TRAIN_FIELDS, TRAIN_SPECS, Batch, TrainConfig, chunks, train_loop

STATS_ROWS = 1024  # rows per chunk for column statistics (a chunk's temporaries stay in cache)


def column_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation (float64 sums of float32 chunks, two passes): the numbers of
    ``X.mean(axis=0)``, ``X.std(axis=0)`` to float32 rounding, at a third of the time and without a whole-matrix
    temporary."""
    total = np.zeros(X.shape[1])
    for chunk in chunks(X, STATS_ROWS):
        total += chunk.sum(axis=0, dtype=np.float64)
    mean = total / max(len(X), 1)
    centre, squares = mean.astype(X.dtype), np.zeros(X.shape[1])
    for chunk in chunks(X, STATS_ROWS):
        deviation = chunk - centre
        deviation *= deviation
        squares += deviation.sum(axis=0, dtype=np.float64)
    return mean, np.sqrt(squares / max(len(X), 1))


DROPOUT = Param("float", "Dropout probability.", low=0, high=0.95)


class NeuralRegressor(Estimator):
    """Shared parts of the neural heads: standardisation, batching, the loop, prediction, saving.

    Every neural head takes the training loop's parameters (``TRAIN_FIELDS``: lr, epochs, batch_size,
    weight_decay, step_size, gamma, patience, seed, device) as keyword arguments of its own, with its own
    defaults; ``seed`` also draws the validation rows ``fit(X, y)`` carves when it gets none.

    Fitted attributes (every neural head): ``module_`` (the torch module, with the best epoch's weights),
    ``device_``, ``x_mean_``/``x_std_`` and ``y_mean_``/``y_std_`` (the standardisation), ``result_``
    (``FitResult``: the history and the best epoch), ``n_features_in_``, ``validation_rows_`` (the rows carved
    for validation when ``fit`` got none, else None).
    """

    name = "neural"

    def _build(self, in_dim: int) -> nn.Module:
        raise NotImplementedError

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(**{name: getattr(self, name) for name in TRAIN_FIELDS})

    target = "raw"  # what the head models of the labels (a parameter of the heads that offer a choice)

    def _standardise(self, X: np.ndarray, y: np.ndarray) -> None:
        mean, std = column_moments(X)
        self.x_mean_ = mean.astype(np.float32)
        self.x_std_ = np.where(std > 0, std, 1.0).astype(np.float32)
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() or 1.0)
        self.target_ = None
        if self.target != "raw":  # the labels' normal scores, as the GP models them (gp.targets owns the map)
            from mimo.models.estimators.gp.targets import TARGETS

            self.target_ = TARGETS[self.target].fit(y)
            self.y_mean_, self.y_std_ = 0.0, 1.0

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
        y = np.asarray(y, np.float64)
        z = (y - self.y_mean_) / self.y_std_ if getattr(self, "target_", None) is None else self.target_.forward(y)
        return torch.from_numpy(z.astype(np.float32))

    def fit(self, X, y, X_valid=None, y_valid=None, **kwargs) -> "NeuralRegressor":
        """``Estimator.fit``, seeded with ``seed`` on a copy of torch's generators: the caller's global random
        state is left as it was (a library call never changes process-wide state)."""
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            return super().fit(X, y, X_valid, y_valid, **kwargs)

    def _start(self, X: np.ndarray, y: np.ndarray) -> torch.Tensor | SparseRows:
        """Standardise, build the module; returns the standardised training inputs (on the device)."""
        torch.manual_seed(self.seed)
        self.device_ = resolve_device(self.device)
        self._standardise(np.asarray(X, np.float32), np.asarray(y, np.float64))
        self.module_ = self._build_within_memory(X.shape[1])
        xs = self._x(X)
        if isinstance(xs, SparseRows) and hasattr(self.module_, "for_sparse_inputs"):
            self.module_.for_sparse_inputs()
        return xs.to(self.device_)

    def _outputs(self, batches: Iterable[torch.Tensor]) -> np.ndarray:
        """(n, M) outputs in label units (M = 1 for single-output heads) of batches of standardised inputs."""
        self.module_.eval()
        with torch.inference_mode():
            out = [self._predict_module(xb.to(self.device_)).float().cpu() for xb in batches]
        z = torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, 1))
        if getattr(self, "target_", None) is not None:  # each output mapped back to label units
            return self.target_.inverse(z.ravel()).reshape(z.shape)
        return z * self.y_std_ + self.y_mean_

    def _predict_module(self, xb: torch.Tensor) -> torch.Tensor:
        return self.module_(xb)

    def _members(self, X: np.ndarray) -> np.ndarray:
        """(n, M) outputs in label units; inputs standardised a batch at a time."""
        return self._outputs(self._x(chunk) for chunk in chunks(X))

    def refit_params(self) -> dict:
        """As many rounds as were best on validation, each as many steps as here, without early stopping."""
        best = max(self.result_.best_epoch, 1)
        schedule = self.result_.schedule
        steps = best * schedule.round_steps if self.min_steps > 0 and schedule is not None else 0
        return {"epochs": best, "patience": self.epochs + 1, "min_steps": steps}

    def _build_within_memory(self, in_dim: int) -> nn.Module:
        """The module, or a ValueError that says how much memory its parameters need (no allocator traceback)."""
        try:
            return self._build(in_dim).to(self.device_)
        except (RuntimeError, MemoryError) as exc:
            if "alloc" not in str(exc).lower() and not isinstance(exc, MemoryError):
                raise
            found = re.search(r"allocate (\d+) bytes", str(exc))
            need = f" (one of its tensors alone needs {int(found.group(1)) / 2**30:,.1f} GiB)" if found else ""
            raise ValueError(f"the {self.name} head is too large for this machine's memory{need}: choose smaller "
                             f"layer sizes") from None

    def run_summary(self) -> dict:
        """Epochs, best epoch, the loss history."""
        result = self.result_
        return {"epochs_run": len(result.history), "best_epoch": result.best_epoch,
                "stopped_early": result.stopped_early, "history": [asdict(r) for r in result.history]}

    def fitted_state(self) -> dict:
        state = {"module": self.module_.state_dict(), "in_dim": int(self.x_mean_.shape[0]), "x_mean": self.x_mean_,
                 "x_std": self.x_std_, "y_mean": self.y_mean_, "y_std": self.y_std_, "extra": self._extra_state()}
        if getattr(self, "target_", None) is not None:
            state["target"] = self.target_.state()
        return state

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        self.x_mean_ = np.asarray(state["x_mean"], np.float32)
        self.x_std_ = np.asarray(state["x_std"], np.float32)
        self.y_mean_, self.y_std_ = float(state["y_mean"]), float(state["y_std"])
        self.target_ = None
        if "target" in state:
            from mimo.models.estimators.gp.targets import target_from_state

            self.target_ = target_from_state(state["target"])
        self.device_ = resolve_device(device)
        self.n_features_in_ = int(state["in_dim"])
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

    def _fit(self, data: FitData) -> None:
        xs = self._start(data.X, data.y)
        config, device = self.train_config, self.device_
        ys = self._y(data.y).unsqueeze(1).to(device)
        xv = self._x(data.X_valid).to(device)  # standardised once, not per epoch
        y_valid = np.asarray(data.y_valid, np.float64)

        def epoch_batches(rng, batch):
            order = torch.from_numpy(rng.permutation(len(xs))).to(device)
            for start in range(0, len(order), batch):
                idx = order[start:start + batch]
                yield xs[idx], ys[idx]

        def validate():
            mse = float(np.mean((self._outputs(chunks(xv))[:, 0] - y_valid) ** 2))
            return mse, mse

        self.result_ = train_loop(self.module_, config, epoch_batches, len(xs), validate, self.y_std_, data.log)


class MlpRegressor(_PlainHead):
    """The avGFP report's base model: linear layers and ReLU over the embedding. Batches of up to 1,024 rows at
    learning rate 2e-3 (256 at 1e-3 before): the same inner-validation Spearman at 100-1,000 rows
    (``bench/small_data.py``, where the batch shrinks to 16 anyway) at 0.6 of the CPU on TAPE's 21,446
    training rows (``bench/fit_speed.py --protocols``).

    Fitted attributes: those of every neural head (``NeuralRegressor``): ``module_``, ``device_``, ``x_mean_``,
    ``x_std_``, ``y_mean_``, ``y_std_``, ``result_``, ``n_features_in_``, ``validation_rows_``.
    """

    name = "mlp"
    _param_specs = {"hidden": Param("sizes", "Hidden layer sizes."), "dropout": DROPOUT, **TRAIN_SPECS}

    def __init__(self, *, hidden: tuple[int, ...] = (256, 64), dropout: float = 0.1, lr: float = 2e-3,
                 epochs: int = 40, batch_size: int = 1024, weight_decay: float = 1e-4, step_size: int = 10,
                 gamma: float = 0.5, patience: int = 6, seed: int = 0, device: str = "auto", min_steps: int = 2000,
                 validation_fraction: float = 0.1, threads: int | None = None):
        self._store(locals())

    def _build(self, in_dim: int) -> nn.Module:
        return MlpHead(in_dim, tuple(self.hidden), self.dropout)


class CnnRegressor(_PlainHead):
    """The avGFP report's improved model: 1-D convolutions and ReLU, then linear layers, over the embedding.

    Fitted attributes: those of every neural head (``NeuralRegressor``): ``module_``, ``device_``, ``x_mean_``,
    ``x_std_``, ``y_mean_``, ``y_std_``, ``result_``, ``n_features_in_``, ``validation_rows_``.
    """

    name = "cnn"
    # one-hot inputs go sparse: the first convolution is a scatter of their non-zeros (heads.sparse_conv1d)
    _param_specs = {"channels": Param("sizes", "Channels of the convolutional layers."),
                    "kernel_size": Param("int", "Convolution kernel width.", low=1),
                    "hidden": Param("sizes", "Sizes of the linear layers after the convolutions."),
                    "dropout": DROPOUT, **TRAIN_SPECS}

    def __init__(self, *, channels: tuple[int, ...] = (8, 16), kernel_size: int = 9, hidden: tuple[int, ...] = (64,),
                 dropout: float = 0.1, lr: float = 1e-3, epochs: int = 40, batch_size: int = 256,
                 weight_decay: float = 1e-4, step_size: int = 10, gamma: float = 0.5, patience: int = 6,
                 seed: int = 0, device: str = "auto", min_steps: int = 2000, validation_fraction: float = 0.1,
                 threads: int | None = None):
        self._store(locals())

    def _build(self, in_dim: int) -> nn.Module:
        return ConvHead(in_dim, tuple(self.channels), self.kernel_size, hidden=tuple(self.hidden), dropout=self.dropout)


class GlobalEpistasisRegressor(_PlainHead):
    """Global epistasis: an additive latent score through a learned monotone nonlinearity
    (``GlobalEpistasisHead``). Trains with a higher learning rate and longer patience than the other heads.

    Fitted attributes: those of every neural head (``NeuralRegressor``): ``module_``, ``device_``, ``x_mean_``,
    ``x_std_``, ``y_mean_``, ``y_std_``, ``result_``, ``n_features_in_``, ``validation_rows_``.
    """

    name = "ge"
    _param_specs = {"components": Param("int", "Sigmoids summed in the monotone output nonlinearity.", low=1),
                    "standardize": Param("bool", "Standardise inputs (default: yes, except 0/1 columns such as "
                                         "one-hot).", none_ok=True),
                    **TRAIN_SPECS}

    def __init__(self, *, components: int = 3, standardize: bool | None = None, lr: float = 1e-2, epochs: int = 60,
                 batch_size: int = 256, weight_decay: float = 1e-5, step_size: int = 10, gamma: float = 0.5,
                 patience: int = 10, seed: int = 0, device: str = "auto", min_steps: int = 2000,
                 validation_fraction: float = 0.1, threads: int | None = None):
        self._store(locals())

    def _build(self, in_dim: int) -> nn.Module:
        return GlobalEpistasisHead(in_dim, self.components)

    def _standardise(self, X: np.ndarray, y: np.ndarray) -> None:
        """Inputs are standardised unless ``standardize`` is False; with None, 0/1 indicator columns (one-hot)
        are kept as they are, so that weight decay treats every substitution alike."""
        super()._standardise(X, y)
        if self.standardize is None:  # only the columns that are not 0/1 indicators
            keep = np.ones(X.shape[1], bool)
            for chunk in chunks(X, STATS_ROWS):
                keep &= ((chunk == 0) | (chunk == 1)).all(axis=0)
        else:
            keep = np.full(X.shape[1], not self.standardize)
        self.x_mean_[keep] = 0.0
        self.x_std_[keep] = 1.0


class MimoRegressor(NeuralRegressor):
    """MIMO with members routed by mutation count (the avGFP report's scheme) or at random (Havasi et al.).

    ``routing="mutations"``: member k trains only on its group of mutation counts; every step gives each member
    a batch of the same size; an epoch is all of the smallest group and a fresh draw of that size from every
    other group, repeated ``repeat`` times. ``routing="random"``: every member gets its own random permutation
    of each batch; with probability ``rho`` a position shows all members the same input; each batch is
    repeated ``batch_repetition`` times. At test time every member sees the input; the prediction is their
    mean and their standard deviation is the uncertainty. ``output="monotone"``: each member ends in its own
    learned monotone sigmoid sum, as the global-epistasis head does.

    Fitted attributes: those of every neural head (``NeuralRegressor``): ``module_``, ``device_``, ``x_mean_``,
    ``x_std_``, ``y_mean_``, ``y_std_``, ``result_``, ``n_features_in_``, ``validation_rows_``; and
    ``n_members_`` (members), ``groups_`` (``MutationGroups`` of each member, routing by mutations; else None).
    Routing by mutations needs ``fit(..., counts=...)`` (each row's number of mutations); with
    ``cross_val_score``/``GridSearchCV`` pass it as ``params={"counts": counts}`` and scikit-learn splits it
    with the rows.
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
        "target": Param("str", "What the members model: raw (standardised labels) or normal-scores (the training "
                        "labels' rank-based normal scores, each member mapped back to label units, as the GP).",
                        choices=("raw", "normal-scores")),
        **TRAIN_SPECS,
    }

    def __init__(self, *, members: int | None = None, groups: str | None = None, max_members: int = 4,
                 routing: str = "random", repeat: int = 10, rho: float = 0.0, batch_repetition: int = 1,
                 input_hidden: int = 32, shared: tuple[int, ...] = (128,), member_hidden: int = 32,
                 dropout: float = 0.1, output: str = "linear", components: int = 3, target: str = "raw",
                 lr: float = 1e-3,
                 epochs: int = 40, batch_size: int = 256, weight_decay: float = 1e-4, step_size: int = 10,
                 gamma: float = 0.5, patience: int = 6, seed: int = 0, device: str = "auto", min_steps: int = 2000,
                 validation_fraction: float = 0.1, threads: int | None = None):
        self._store(locals())

    def _build(self, in_dim: int) -> nn.Module:
        return MimoHead(in_dim, self.n_members_, self.input_hidden, tuple(self.shared), self.member_hidden,
                        self.dropout, self.output, self.components)

    def _predict_module(self, xb: torch.Tensor) -> torch.Tensor:
        return self.module_.forward_shared(xb)

    def run_summary(self) -> dict:
        summary = super().run_summary()
        if getattr(self, "routing_", self.routing) != self.routing:
            summary["routing_note"] = ("every training row has the same mutation count, so routing by mutation "
                                       "count would train one member and give no uncertainty: members were given "
                                       "random rows (routing random) instead")
        return summary

    def _fit(self, data: FitData) -> None:
        counts, counts_valid = data.counts, data.counts_valid
        self.routing_ = self.routing
        if (self.routing == "mutations" and counts is not None and len(np.unique(counts)) < 2
                and np.all(np.asarray(counts) >= 0)):
            # one mutation count in training (e.g. singles only): routing by counts would train one member and
            # give no uncertainty, so every member gets random rows instead (said in the run's summary)
            self.routing_ = "random"
        if self.routing_ == "mutations":
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
        xs = self._start(data.X, data.y)
        config, device = self.train_config, self.device_
        ys = self._y(data.y).to(device)
        xv, yv = self._x(data.X_valid).to(device), self._y(data.y_valid).to(device)

        def batches_from(plan: np.ndarray, x: torch.Tensor, t: torch.Tensor, batch: int) -> Iterator[Batch]:
            index = torch.from_numpy(plan.T.copy()).to(device)  # (M, steps * batch) row indices
            for start in range(0, index.shape[1], batch):
                idx = index[:, start:start + batch]
                yield x[idx], t[idx].T  # inputs (M, B, D), member-major; targets (B, M)

        if self.routing_ == "mutations":
            member_rows = self.groups_.member_rows(counts)
            valid_plan = routed_validation(self.groups_.member_rows(counts_valid))

            def epoch_batches(rng, batch):
                return batches_from(mutation_routed_epoch(member_rows, self.repeat, rng), xs, ys, batch)
            epoch_rows = self.repeat * min(len(r) for r in member_rows)
        else:
            valid_plan = random_routed_epoch(len(xv), self.n_members_, config.batch_size, 0.0, 1,
                                             np.random.default_rng(config.seed + 1))

            def epoch_batches(rng, batch):
                return batches_from(random_routed_epoch(len(xs), self.n_members_, batch, self.rho,
                                                        self.batch_repetition, rng), xs, ys, batch)
            epoch_rows = len(xs) * self.batch_repetition

        y_valid = np.asarray(data.y_valid, np.float64)

        def validate():  # routed loss in the modelled units (label units when raw); the prediction's MSE in labels
            with torch.inference_mode():
                losses = [nn.functional.mse_loss(self.module_(xb), yb, reduction="sum").item()
                          for xb, yb in batches_from(valid_plan, xv, yv, config.batch_size)]
            ensemble = self._outputs(chunks(xv)).mean(axis=1)
            routed = sum(losses) / valid_plan.size * self.y_std_ ** 2
            return routed, float(np.mean((ensemble - y_valid) ** 2))

        self.result_ = train_loop(self.module_, config, epoch_batches, epoch_rows, validate, self.y_std_, data.log)

    def _extra_state(self) -> dict:
        return {"n_members": self.n_members_, "groups": None if self.groups_ is None else self.groups_.ranges}

    def _load_extra(self, extra: dict) -> None:
        self.n_members_ = extra["n_members"]
        self.groups_ = None if extra["groups"] is None else MutationGroups([tuple(r) for r in extra["groups"]])


