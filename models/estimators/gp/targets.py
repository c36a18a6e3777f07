"""What the Gaussian-process head models of the labels: standardised labels, or their normal scores.

A Gaussian process assumes Gaussian labels; a deep mutational scan's are often far from it (GFP's brightness is
bimodal: variants that fold and those that do not). ``NormalScores`` warps the training labels to the normal
quantiles of their ranks, Phi^-1((rank - 1/2) / n) (ties share their average rank), and maps predictions back
through the same monotone, piecewise-linear function, extended linearly beyond the training labels with the
slope of their outermost points: a warped GP (Snelson, Rasmussen & Ghahramani, NIPS 2004) whose warping is the
training labels' empirical distribution. The ranking of predictions, which Spearman scores, is kept; a
prediction is the predictive median in label units. Chosen on ProteinGym's inner validation folds
(``python -m bench.gp_proteingym``).

Both transforms give ``forward`` (labels to modelled values), ``inverse`` and ``log_slope`` (log d forward / dy,
for the labels' density), and their arrays for ``model.npz``.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata


class Standardised:
    """(y - mean) / std."""

    kind = "raw"

    def __init__(self, mean: float, std: float):
        self.mean, self.std = float(mean), float(std)

    @classmethod
    def fit(cls, y: np.ndarray) -> "Standardised":
        return cls(y.mean(), y.std() or 1.0)

    def forward(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, np.float64) - self.mean) / self.std

    def inverse(self, z: np.ndarray, bounded: bool = False) -> np.ndarray:
        """Labels of modelled values (``bounded``: no bound here, a Gaussian's labels have no range)."""
        return np.asarray(z, np.float64) * self.std + self.mean

    def log_slope(self, y: np.ndarray) -> np.ndarray:
        return np.full(np.shape(y), -np.log(self.std))

    def state(self) -> dict:
        return {"kind": self.kind, "mean": self.mean, "std": self.std}


class NormalScores:
    """The training labels' normal scores, as a monotone piecewise-linear map through (label, score) points."""

    kind = "normal-scores"

    def __init__(self, labels: np.ndarray, scores: np.ndarray):
        self.labels, self.scores = np.asarray(labels, np.float64), np.asarray(scores, np.float64)

    @classmethod
    def fit(cls, y: np.ndarray) -> "NormalScores | Standardised":
        y = np.asarray(y, np.float64)
        labels, first = np.unique(y, return_index=True)
        if len(labels) < 3:  # nothing to warp
            return Standardised.fit(y)
        ranks = rankdata(y)  # average ranks: tied labels share one score
        return cls(labels, ndtri((ranks[first] - 0.5) / len(y)))

    def _through(self, x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Piecewise-linear through (xs, ys), extended linearly with the slope of the two outermost points."""
        x = np.asarray(x, np.float64)
        out = np.interp(x, xs, ys)
        low, high = x < xs[0], x > xs[-1]
        out[low] = ys[0] + (x[low] - xs[0]) * (ys[1] - ys[0]) / (xs[1] - xs[0])
        out[high] = ys[-1] + (x[high] - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        return out

    def forward(self, y: np.ndarray) -> np.ndarray:
        return self._through(y, self.labels, self.scores)

    def inverse(self, z: np.ndarray, bounded: bool = False) -> np.ndarray:
        """Labels of modelled values; with ``bounded``, within the training labels' range (the range the assay
        measured: an interval's ends, which the linear extension would carry past it)."""
        out = self._through(z, self.scores, self.labels)
        return np.clip(out, self.labels[0], self.labels[-1]) if bounded else out

    def log_slope(self, y: np.ndarray) -> np.ndarray:
        """log of the slope of ``forward`` at y (the segment it falls in; the outer ones beyond the ends)."""
        slopes = np.diff(self.scores) / np.diff(self.labels)
        segment = np.clip(np.searchsorted(self.labels, np.asarray(y, np.float64)) - 1, 0, len(slopes) - 1)
        return np.log(slopes[segment])

    def state(self) -> dict:
        return {"kind": self.kind, "labels": self.labels, "scores": self.scores}


TARGETS = {"raw": Standardised, "normal-scores": NormalScores}


def target_from_state(state: dict) -> Standardised | NormalScores:
    if state["kind"] == NormalScores.kind:
        return NormalScores(state["labels"], state["scores"])
    return Standardised(state["mean"], state["std"])


def label_interval(target, mean: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) in label units of (mean - half, mean + half) on the modelled scale, mapped back through the
    monotone transform and bounded by it: asymmetric where the labels are skewed, never past the training labels'
    range under normal scores."""
    return target.inverse(mean - half, bounded=True), target.inverse(mean + half, bounded=True)


def label_std(target, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """A predictive std in label units: half the width of (mean - std, mean + std) mapped back (exact for the
    standardised labels, the local slope times std for normal scores)."""
    return 0.5 * (target.inverse(mean + std) - target.inverse(mean - std))


def label_nll(target, y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """-log p(y) of labels under the Gaussian predictive distribution of their modelled values (the warp's
    Jacobian included), per row."""
    z = target.forward(y)
    return 0.5 * np.log(2 * np.pi * std ** 2) + 0.5 * ((z - mean) / std) ** 2 - target.log_slope(y)
