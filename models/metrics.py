"""Regression metrics as written to ``metrics.json``."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def _defined(a: np.ndarray, b: np.ndarray) -> bool:
    """A correlation of ``a`` and ``b`` is defined: 2 points or more, neither input constant."""
    return len(a) >= 2 and np.ptp(a) > 0 and np.ptp(b) > 0


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation (``scipy.stats.pearsonr``); None where undefined (fewer than 2 points or a constant
    input)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(stats.pearsonr(a, b).statistic) if _defined(a, b) else None


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman correlation (``scipy.stats.spearmanr``: ties share their average rank); None where undefined."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(stats.spearmanr(a, b).statistic) if _defined(a, b) else None


def spearman_ties_broken(a: np.ndarray, b: np.ndarray, repeats: int = 5, seed: int = 0) -> float | None:
    """Spearman of ``a`` against ``b`` with ties in ``b`` broken at random (mean of ``repeats`` draws).

    Tied predictions carry no rank noise, which raises Spearman when a model gives many rows one value (a
    saturated output); this is the figure the same predictions earn if every tie is broken by chance.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not _defined(a, np.arange(len(a))):  # b constant is fine here: its ties are broken
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(repeats):
        order = np.lexsort((rng.random(len(b)), b))  # by b, then by a random key within ties
        ranks_b = np.empty(len(b))
        ranks_b[order] = np.arange(1, len(b) + 1)
        values.append(spearman(a, ranks_b))
    return None if any(v is None for v in values) else float(np.mean(values))


def tied_share(prediction: np.ndarray) -> float:
    """Share of rows whose prediction equals another row's."""
    counts = pd.Series(np.asarray(prediction)).value_counts()
    return float(counts[counts > 1].sum() / max(len(prediction), 1))


def regression_metrics(y: np.ndarray, prediction: np.ndarray) -> dict:
    """``{"n", "mse", "spearman", "pearson"}``; correlations are None where undefined."""
    y, prediction = np.asarray(y, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    if len(y) == 0:
        return {"n": 0, "mse": None, "spearman": None, "pearson": None}
    return {"n": int(len(y)), "mse": float(np.mean((y - prediction) ** 2)),
            "spearman": spearman(y, prediction), "pearson": pearson(y, prediction)}


def metrics_by_mutations(y: np.ndarray, prediction: np.ndarray, n_mutations: np.ndarray) -> dict:
    """``{"4": {"n", "mse", "spearman"}, ...}`` keyed by mutation count."""
    out = {}
    for count in np.unique(n_mutations):
        m = n_mutations == count
        full = regression_metrics(y[m], prediction[m])
        out[str(int(count))] = {"n": full["n"], "mse": full["mse"], "spearman": full["spearman"]}
    return out


# ------------------------------------------------------------------------------- uncertainty and intervals

INTERVAL_LEVEL = 0.95


def uncertainty_metrics(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict:
    """How well member spread tracks error: Spearman(std, |error|) and coverage of mean +/- 2 std."""
    error = np.abs(y - mean)
    return {"spearman_std_abs_error": spearman(std, error),
            "coverage_2std": float(np.mean(error <= 2 * std)), "mean_std": float(np.mean(std))}


def interval_scale(y: np.ndarray, mean: np.ndarray, width: np.ndarray, level: float = INTERVAL_LEVEL) -> float:
    """The factor q for intervals mean +/- q * width that cover ``level`` of (y, mean, width) rows: the
    ceil((n + 1) * level)-th smallest |y - mean| / width (split-conformal with normalised errors).

    Computed on validation rows, it gives intervals that cover ``level`` of new rows drawn like them; rows
    further from the training data (TAPE's test) may be covered less, which the run's metrics show."""
    ratio = np.abs(y - mean) / np.maximum(width, 1e-12)
    rank = min(len(ratio), int(np.ceil((len(ratio) + 1) * level)))
    return float(np.sort(ratio)[rank - 1])


EXPONENTS = (0.0, 0.5, 1.0, 1.5, 2.0)
SLICE_ROWS = 100  # fewer rows on either side of the slice: too noisy to choose on, the default exponent holds


def _difficulty(std, offset: float, n_mutations, exponent: float) -> np.ndarray:
    counts = np.ones(len(std)) if n_mutations is None else np.maximum(np.asarray(n_mutations, np.float64), 1.0)
    return (np.asarray(std, np.float64) + offset) * counts ** exponent


def calibrate_interval(y: np.ndarray, mean: np.ndarray, std: np.ndarray, n_mutations=None,
                       level: float = INTERVAL_LEVEL) -> dict:
    """Interval half-width = scale * (std + offset) * max(n_mutations, 1) ** exponent, calibrated on (y, mean,
    std, n_mutations) of validation rows (split-conformal with that difficulty).

    The offset (median std) keeps members that agree almost exactly (a saturated output) from giving absurdly
    narrow or, once scaled, absurdly wide intervals. The exponent lets intervals widen with the number of
    mutations, where test variants carry more than the validation ones (TAPE's split: 1-3 in valid, 4-15 in
    test). It is chosen on the validation rows by mimicking that shift: calibrate on the rows below the highest
    mutation count, and take the smallest exponent whose intervals cover the rows at the highest count at least
    ``level + (1 - level) / 2`` (the slice's shift is milder than a real one, hence the margin). Validation rows
    with a single count, or fewer than ``SLICE_ROWS`` on either side, give no such slice: the exponent is then 1
    (errors growing at most in proportion to the mutation count)."""
    offset = float(np.median(std))
    counts = None if n_mutations is None else np.asarray(n_mutations)
    exponent = 0.0
    if counts is not None:
        exponent = 1.0
        top = counts.max() if len(counts) else 0
        high, low = counts == top, counts < top
        if low.sum() >= SLICE_ROWS and high.sum() >= SLICE_ROWS:
            for candidate in EXPONENTS:
                scale = interval_scale(y[low], mean[low], _difficulty(std[low], offset, counts[low], candidate), level)
                half = scale * _difficulty(std[high], offset, counts[high], candidate)
                if np.mean(np.abs(y[high] - mean[high]) <= half) >= level + (1 - level) / 2:
                    exponent = candidate
                    break
    scale = interval_scale(y, mean, _difficulty(std, offset, counts, exponent), level)
    return {"level": level, "scale": scale, "offset": offset, "mutation_exponent": exponent}


def interval_bounds(mean: np.ndarray, std: np.ndarray, interval: dict, n_mutations=None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of ``calibrate_interval``'s interval around each prediction (runs calibrated before the
    mutation exponent existed have none: 0)."""
    half = interval["scale"] * _difficulty(std, interval["offset"], n_mutations, interval.get("mutation_exponent", 0.0))
    return mean - half, mean + half


def interval_sd(lower: np.ndarray, upper: np.ndarray, level: float = 0.95) -> np.ndarray:
    """``sd``, the one uncertainty column a user reads: the standard deviation a calibrated ``level`` interval
    implies (half its width / the normal quantile: 1.96 at 95%). The head's raw spread (``member_spread``: the
    members' std, or the GP's predictive std, before calibration) is not one: MIMO's is about 10x too narrow."""
    from scipy.stats import norm

    return (np.asarray(upper, np.float64) - np.asarray(lower, np.float64)) / (2 * float(norm.ppf(0.5 + level / 2)))


def with_sd(table, level: float = 0.95):
    """``table`` (a predictions DataFrame with ``lower`` and ``upper``) with ``sd`` (``interval_sd``) after
    ``prediction``; unchanged without an interval."""
    if "lower" not in table or "upper" not in table:
        return table
    table = table.drop(columns=["sd"], errors="ignore")
    at = list(table.columns).index("prediction") + 1 if "prediction" in table else len(table.columns)
    table.insert(at, "sd", interval_sd(table["lower"].to_numpy(), table["upper"].to_numpy(), level))
    return table


def interval_metrics(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> dict:
    """Share of ``y`` inside [lower, upper] and the mean width."""
    return {"coverage": float(np.mean((lower <= y) & (y <= upper))), "mean_width": float(np.mean(upper - lower))}
