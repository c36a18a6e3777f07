"""From a fitted run to the next experiment: a saturation scan of the parent, and a batch of variants to make.

``saturation_scan`` scores every single substitution of the parent (19 x length); ``propose`` ranks candidates
(singles, and combinations of the best singles up to ``max_mutations``) by an acquisition that uses the run's
uncertainty, never proposes what is measured, and keeps the batch diverse (no substitution in more than
``max_share`` of it). Both featurize and predict in chunks, so memory stays bounded. Both say, per row, whether
a variant is unlike the run's training rows (``unlike_training``, ``shift_p``: mimo.models.runs.shift; the scan
against all its singles, the plate against its wells), where the run's intervals are not calibrated.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.models.runs.fit import Run, load_run
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.pipeline.errors import DataError, option
from mimo.pipeline.io.variants import AMINO_ACIDS, MutationFormat

from mimo.models.runs.shift import ShiftReport, StreamCheck, check_rows, left_to_support, with_counts

from mimo.predict import featurize, read_variants, shift_summary, training_features, variants_frame

ACQUISITIONS = ("ucb", "greedy", "ei")
CHUNK = 20000  # candidates featurized and predicted at a time


def _token(parent: str, position: int, new: str, fmt: MutationFormat) -> str:
    return f"{fmt.prefix}{parent[position]}{position + fmt.first_index}{new}"


def score_stream(run: Run, texts, device: str = "auto", chunk: int = CHUNK, ranks=None,
                 shift: StreamCheck | None = None):
    """Predictions (mean, std, interval, unseen, no_signal) for an iterable of mutation strings, yielded as one
    table per ``chunk`` of them: memory stays bounded however many candidates there are. Under torchrun
    (``ranks``), each process scores every world_size-th chunk. ``shift``: also ``unlike_training`` and
    ``shift_p`` (mimo.models.runs.shift), from a check fitted on the first chunk."""
    fmt = mutation_format_from(run.source["dataset"])
    featurizers: dict = {}
    iterator = iter(texts)
    index = -1
    while batch := list(itertools.islice(iterator, chunk)):  # new variants: featurized, not looked up
        index += 1
        if ranks is not None and index % ranks.world_size != ranks.rank:
            continue
        frame = variants_frame(batch, run.parent, fmt)
        X, _ = featurize(frame, run.source, device, use_cache=False, featurizers=featurizers)
        predicted = run.predict(X, frame["mutations"].tolist(), frame["n_mutations"].tolist())
        if shift is not None:
            predicted = predicted.assign(**shift(with_counts(X, frame["n_mutations"]), left_to_support(predicted)))
        yield pd.concat([frame[["mutations", "n_mutations"]], predicted], axis=1)


def score_variants(run: Run, texts, device: str = "auto", shift: StreamCheck | None = None) -> pd.DataFrame:
    """``score_stream`` gathered into one table."""
    return pd.concat(list(score_stream(run, texts, device, shift=shift)), ignore_index=True)


def stream_check(run: Run, device: str = "auto") -> StreamCheck | str:
    """A ``StreamCheck`` against the run's training rows, or why none can be made."""
    train_X, reason = training_features(run, device)
    return reason if train_X is None else StreamCheck(train_X)


def _run_with_parent(run: Run | str | Path) -> Run:
    run = run if isinstance(run, Run) else load_run(run)
    if not run.parent:
        raise DataError("the run's dataset has no parent sequence: nothing to mutate", run.directory)
    return run


def saturation_scan(run: Run | str | Path, device: str = "auto", check_shift: bool = True) -> pd.DataFrame:
    """Every single substitution of the parent: position (as the dataset numbers it), parent and new residue,
    mutation string, prediction, and where the run has them std, lower, upper; unseen, no_signal; with
    ``check_shift``, unlike_training and shift_p (mimo.models.runs.shift; its summary in ``table.attrs["shift"]``)."""
    run = _run_with_parent(run)
    fmt = mutation_format_from(run.source["dataset"])
    parent = run.parent
    singles = [(i, a) for i in range(len(parent)) for a in AMINO_ACIDS if a != parent[i]]
    check = stream_check(run, device) if check_shift else None
    shift = check if isinstance(check, StreamCheck) else None
    table = score_variants(run, [_token(parent, i, a, fmt) for i, a in singles], device, shift)
    table.insert(0, "position", [i + fmt.first_index for i, _ in singles])
    table.insert(1, "parent_residue", [parent[i] for i, _ in singles])
    table.insert(2, "new_residue", [a for _, a in singles])
    if isinstance(check, str):
        table["unlike_training"], table["shift_p"] = None, np.nan
        table.attrs["shift"] = shift_summary(ShiftReport(None, None, None, len(table), check), "substitutions")
    elif shift is not None:
        table.attrs["shift"] = shift_summary(shift.report(), "substitutions")
    return table


def acquisition(table: pd.DataFrame, kind: str = "ucb", beta: float = 2.0, best: float | None = None) -> np.ndarray:
    """ucb: mean + beta x sd; greedy: mean; ei: expected improvement over ``best`` (normal with that sd). The sd
    is the calibrated one (``sd``: what the run's 95% interval implies), not the members' raw spread. Without
    an interval (a single-output head) every kind falls back to the mean."""
    if kind not in ACQUISITIONS:
        raise DataError(f"--acquisition must be one of {', '.join(ACQUISITIONS)}, not {kind!r}")
    mean = table["prediction"].to_numpy(np.float64)
    if kind == "greedy" or "sd" not in table:
        return mean
    std = np.maximum(table["sd"].to_numpy(np.float64), 1e-12)
    if kind == "ucb":
        return mean + beta * std
    from scipy.stats import norm

    best = np.max(mean) if best is None else best
    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


def iter_candidates(singles: pd.DataFrame, score: np.ndarray, max_mutations: int, measured: set[str],
                    top: int = 40):
    """Mutation strings to score, made lazily: every single not measured, then combinations (at distinct
    positions) of the ``top`` singles by ``score``, up to ``max_mutations`` substitutions, not measured. Each
    combination is made once (combinations of distinct singles never repeat), so no duplicates."""
    order = np.argsort(-score, kind="stable")
    yield from (m for m in singles["mutations"] if _key(m) not in measured)
    best = [(int(singles["position"].iloc[i]), singles["mutations"].iloc[i]) for i in order[:top]]
    for k in range(2, max_mutations + 1):
        for combo in itertools.combinations(best, k):
            if len({p for p, _ in combo}) < k:
                continue
            text = ":".join(m for _, m in sorted(combo))
            if _key(text) not in measured:
                yield text


def candidates(singles: pd.DataFrame, score: np.ndarray, max_mutations: int, measured: set[str],
               top: int = 40) -> list[str]:
    """``iter_candidates`` as a list."""
    return list(iter_candidates(singles, score, max_mutations, measured, top))


def _key(text: str) -> str:
    """Order-free identity of a mutation string."""
    return ":".join(sorted(t for t in str(text).replace(";", ":").replace(",", ":").split(":") if t))


def diverse_top(table: pd.DataFrame, value: np.ndarray, n: int, max_share: float) -> pd.DataFrame:
    """The best ``n`` rows by ``value`` such that no substitution appears in more than ``max_share`` of them."""
    limit = max(1, int(np.floor(max_share * n)))
    uses: dict[str, int] = {}
    chosen = []
    for i in np.argsort(-value, kind="stable"):
        tokens = _key(table["mutations"].iloc[i]).split(":")
        if any(uses.get(t, 0) >= limit for t in tokens):
            continue
        chosen.append(i)
        for t in tokens:
            uses[t] = uses.get(t, 0) + 1
        if len(chosen) == n:
            break
    return table.iloc[chosen].assign(acquisition_value=value[chosen]).reset_index(drop=True)


def wells(n: int) -> list[str]:
    """Plate wells A1..H12, then plate 2 (P2-A1...), for ``n`` variants."""
    plate = [f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13)]
    return [(f"P{k // 96 + 1}-" if k >= 96 else "") + plate[k % 96] for k in range(n)]


def trained_mutation_counts(run: Run) -> tuple[int, int]:
    """(largest mutation count among the run's training rows, rows) from its predictions table."""
    train = run.training_rows(["n_mutations"])
    return int(train["n_mutations"].max()), len(train)


def propose(run: Run | str | Path, n: int = 96, max_mutations: int | None = None, measured: str | Path | None = None,
            acquisition_kind: str = "ucb", beta: float = 2.0, max_share: float = 0.25,
            device: str = "auto", top: int = 40, ranks=None) -> tuple[pd.DataFrame, dict]:
    """A plate of ``n`` variants to make next, and a record of how they were chosen.

    ``max_mutations`` defaults to the largest mutation count the run was trained on: the model has never seen
    more, so more is extrapolation (allowed when asked, and recorded; each well says ``extrapolation``).
    Candidates are scored in chunks and the best ``max(20 n, 2000)`` singles and combinations by acquisition
    are kept between chunks (bounded memory; singles kept apart, so a plate can always be filled with them).
    Under torchrun (``ranks``: ``mimo.pipeline.runtime.ranks.Ranks``) the chunks are shared out and every process gets
    the batch. The plate's wells are checked against the run's training rows (``plate_shift``: columns
    ``unlike_training``, ``shift_p``; the record's ``unlike_training`` and ``above_best_measured``)."""
    run = _run_with_parent(run)
    trained_max, _ = trained_mutation_counts(run)
    max_mutations = max(1, trained_max) if max_mutations is None else max_mutations
    if n < 1 or max_mutations < 1 or not 0 < max_share <= 1:
        raise DataError("--n and --max-mutations must be >= 1, --max-share in (0, 1]")
    fmt = mutation_format_from(run.source["dataset"])
    fitted = pd.read_csv(run.directory / "predictions.csv", dtype={"mutations": str}, keep_default_na=False)
    done = set(_key(m) for m in fitted["mutations"])
    if measured is not None:
        done |= {_key(m) for m in read_variants(measured, run.parent, fmt, given_by=option("measured"))["mutations"]}
    labels = pd.to_numeric(fitted["y"])
    singles = saturation_scan(run, device, check_shift=False)
    pool = iter_candidates(singles, acquisition(singles, acquisition_kind, beta, labels.max()), max_mutations, done,
                           top)
    keep, kept, scored = max(20 * n, 2000), None, 0
    device = device if ranks is None else ranks.device(device)
    for part in score_stream(run, pool, device, ranks=ranks):
        scored += len(part)
        part = part.assign(acquisition_value=acquisition(part, acquisition_kind, beta, labels.max()))
        kept = part if kept is None else pd.concat([kept, part], ignore_index=True)
        kept = pd.concat([group.nlargest(keep, "acquisition_value", keep="first")  # singles and combinations
                          for _, group in kept.groupby(kept["n_mutations"] > 1)]).reset_index(drop=True)
    if ranks is not None and ranks.world_size > 1:  # every process's best, gathered (gloo, as embed build)
        import torch.distributed as dist

        gathered: list = [None] * ranks.world_size
        dist.all_gather_object(gathered, (kept, scored))
        parts = [k for k, _ in gathered if k is not None]
        scored = sum(s for _, s in gathered)
        kept = None if not parts else pd.concat(parts, ignore_index=True).sort_values(
            ["acquisition_value", "mutations"], ascending=[False, True], kind="stable").head(keep).reset_index(drop=True)
    elif kept is not None:  # the same order as after a gather: by value, ties by name
        kept = kept.sort_values(["acquisition_value", "mutations"], ascending=[False, True],
                                kind="stable").reset_index(drop=True)
    if kept is None:
        raise DataError("no unmeasured candidates to propose")
    batch = diverse_top(kept.drop(columns="acquisition_value"), kept["acquisition_value"].to_numpy(), n, max_share)
    batch.insert(0, "well", wells(len(batch)))
    batch["extrapolation"] = batch["n_mutations"] > trained_max
    shift = plate_shift(run, batch, device)
    batch["unlike_training"], batch["shift_p"] = shift.pop("columns")
    uncertainty = "the run's calibrated 95% interval (sd = half its width / 1.96)" if "sd" in kept else \
        "none (a single-output head): ranked by the mean"
    record = {"acquisition": acquisition_kind if "sd" in kept else "greedy (no uncertainty)",
              "beta": beta if acquisition_kind == "ucb" else None, "uncertainty": uncertainty,
              "candidates_scored": scored, "measured_excluded": len(done), "max_share": max_share,
              "max_mutations": max_mutations, "trained_max_mutations": trained_max,
              "without_signal": int(batch["no_signal"].sum()), "extrapolation": int(batch["extrapolation"].sum()),
              "best_predicted": float(batch["prediction"].max()), "best_measured": float(labels.max()),
              "above_best_measured": int((batch["prediction"] > labels.max()).sum()),
              "best_predicted_unlike_training": _true(batch["unlike_training"].iloc[int(batch["prediction"].argmax())]),
              "unlike_training": shift, "requested": n, "filled": len(batch)}
    if len(batch) < n and scored < n:
        record["short"] = (f"only {len(batch)} of {n} wells: just {scored:,} unmeasured candidates exist with at most "
                           f"{max_mutations} substitution(s); lower --n, or raise --max-mutations (extrapolation)")
    elif len(batch) < n:
        record["short"] = (f"only {len(batch)} of {n} wells: {len(kept):,} candidates were kept and no substitution "
                           f"may be in more than {max_share:.0%} of the batch; raise --max-share or --top-singles")
    return batch, record


def plate_shift(run: Run, batch: pd.DataFrame, device: str = "auto") -> dict:
    """The check of the plate's variants against the run's training rows (featurized again: a plate is small):
    ``shift_summary``'s fields, and ``columns`` (unlike_training, shift_p)."""
    train_X, reason = training_features(run, device)
    if train_X is None:
        report = ShiftReport(None, None, None, len(batch), reason)
        return {**shift_summary(report, "wells"), "columns": ([None] * len(batch), [np.nan] * len(batch))}
    frame = variants_frame(batch["mutations"].tolist(), run.parent, mutation_format_from(run.source["dataset"]))
    X, _ = featurize(frame, run.source, device, use_cache=False)
    report = check_rows(train_X, with_counts(X, batch["n_mutations"]), skip=left_to_support(batch))
    columns = report.columns()
    return {**shift_summary(report, "wells"), "columns": (columns["unlike_training"], columns["shift_p"])}


def _true(value) -> bool:
    """A flag that may be missing (None/NaN: not checked) read as a plain bool."""
    return bool(value) if value is not None and not pd.isna(value) else False


def parent_prediction(run: Run) -> float:
    """The run's prediction for the parent itself (no substitution)."""
    return float(score_variants(run, [""])["prediction"].iloc[0])


def plot_scan(run: Run | str | Path, table: pd.DataFrame, path: str | Path) -> Path:
    """The saturation scan as a heatmap (positions x amino acids, in rows of at most 80 positions), its colours
    centred on the measured wild type when the data has one, else on the parent's prediction (the subtitle says
    which); a colour bar, substitutions measured in training outlined, positions never mutated there hatched."""
    from mimo.models.report.plots import plot_scan_table

    run = _run_with_parent(run)
    return plot_scan_table(run, table, path, lambda: parent_prediction(run))
