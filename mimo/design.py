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
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.models.runs.fit import Run, load_run
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.pipeline.errors import DataError, option
from mimo.pipeline.io.variants import AMINO_ACIDS, MutationFormat

from mimo.models.runs.shift import ShiftReport, StreamCheck, check_rows, left_to_support, with_counts

from mimo.predict import check_same_weights, featurize, read_variants, shift_summary, training_features, variants_frame

ACQUISITIONS = ("ucb", "greedy", "ei", "ts")  # ts: batch Thompson sampling on a GP's joint posterior
CHUNK = 20000  # candidates featurized and predicted at a time
MAX_MUTATIONS = 6
MAX_CANDIDATES = 20_000_000  # more is refused: hours of scoring (1 M streams in bounded memory)


def _token(parent: str, position: int, new: str, fmt: MutationFormat) -> str:
    return f"{fmt.prefix}{parent[position]}{position + fmt.first_index}{new}"


def score_stream(run: Run, texts, device: str = "auto", chunk: int = CHUNK, ranks=None,
                 shift: StreamCheck | None = None, featurizers: dict | None = None):
    """Predictions (mean, sd, interval, unseen, no_signal) for an iterable of mutation strings, yielded as one
    table per ``chunk`` of them: memory stays bounded however many candidates there are. Under torchrun
    (``ranks``), each process scores every world_size-th chunk. ``shift``: also ``unlike_training`` and
    ``shift_p`` (mimo.models.runs.shift), from a check fitted on the first chunk."""
    fmt = mutation_format_from(run.source["dataset"])
    featurizers = design_featurizers(run, device) if featurizers is None else featurizers
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


def score_variants(run: Run, texts, device: str = "auto", shift: StreamCheck | None = None,
                   featurizers: dict | None = None) -> pd.DataFrame:
    """``score_stream`` gathered into one table."""
    return pd.concat(list(score_stream(run, texts, device, shift=shift, featurizers=featurizers)), ignore_index=True)


def design_featurizers(run: Run, device: str = "auto") -> dict:
    """The run's ``scores:`` featurizers (zero-shot scores read from a file), made to give a variant the file
    lacks zeros and ``covered`` = 0, as ``--allow-missing`` does at build time: at design time a missing score is
    "no signal from that block" (the row's ``no_signal`` says whether any block still gives one), never a reason
    to stop the scan or the plate. Other featurizers are made when first needed (``featurize``)."""
    from mimo.pipeline.featurizers import featurizer_from_manifest

    manifest = run.source["features"]
    made = {}
    for part in manifest.get("parts", [manifest]):
        if part.get("kind") == "scores":
            featurizer = featurizer_from_manifest(part, run.source["dataset"].get("parent"), device)
            check_same_weights(part, featurizer)
            featurizer.allow_missing = True
            made[part["features"]] = featurizer
    return made


def stream_check(run: Run, device: str = "auto") -> StreamCheck | str:
    """A ``StreamCheck`` against the run's training rows, or why none can be made."""
    train_X, reason = training_features(run, device)
    return reason if train_X is None else StreamCheck(train_X)


def _run_with_parent(run: Run | str | Path) -> Run:
    run = run if isinstance(run, Run) else load_run(run)
    if not run.parent:
        raise DataError("the run's dataset has no parent sequence: nothing to mutate", run.directory)
    return run


def saturation_scan(run: Run | str | Path, device: str = "auto", check_shift: bool = True,
                    featurizers: dict | None = None) -> pd.DataFrame:
    """Every single substitution of the parent: position (as the dataset numbers it), parent and new residue,
    mutation string, prediction, and where the run has them sd, lower, upper, member_spread; unseen, no_signal; with
    ``check_shift``, unlike_training and shift_p (mimo.models.runs.shift; its summary in ``table.attrs["shift"]``)."""
    run = _run_with_parent(run)
    fmt = mutation_format_from(run.source["dataset"])
    parent = run.parent
    singles = [(i, a) for i in range(len(parent)) for a in AMINO_ACIDS if a != parent[i]]
    check = stream_check(run, device) if check_shift else None
    shift = check if isinstance(check, StreamCheck) else None
    table = score_variants(run, [_token(parent, i, a, fmt) for i, a in singles], device, shift, featurizers)
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
    """ucb: mean + beta x sd; greedy: mean; ei: expected improvement over ``best`` (normal with that sd); ts
    (batch Thompson sampling, ``mimo.acquisition``) ranks its pool pointwise as ucb. The sd is the calibrated
    one (``sd``: what the run's 95% interval implies), not the members' raw spread. Rows marked ``no_signal``
    are ranked by their mean alone: their interval spans the training labels because the model knows nothing
    there, and ranking by it would chase ignorance (they get the plate's ``explore`` wells instead). Without an
    interval (a single-output head) every kind falls back to the mean."""
    if kind not in ACQUISITIONS:
        raise DataError(f"--acquisition must be one of {', '.join(ACQUISITIONS)}, not {kind!r}")
    _check_beta(beta)
    mean = table["prediction"].to_numpy(np.float64, copy=True)  # a new array: callers may edit it
    if kind == "greedy" or "sd" not in table:
        return mean
    std = np.maximum(table["sd"].to_numpy(np.float64), 1e-12)
    if kind in ("ucb", "ts"):
        value = mean + beta * std
    else:
        from scipy.stats import norm

        best = np.max(mean) if best is None else best
        z = (mean - best) / std
        value = (mean - best) * norm.cdf(z) + std * norm.pdf(z)
    if "no_signal" in table:
        blind = table["no_signal"].to_numpy(bool)
        if kind == "ei":  # on the same scale as the others' EI: improvement of the mean alone
            value[blind] = np.maximum(mean[blind] - best, 0.0)
        else:
            value[blind] = mean[blind]
    return value


def _check_beta(beta) -> None:
    if not isinstance(beta, (int, float, np.floating, np.integer)) or not np.isfinite(beta) or beta < 0:
        raise DataError(f"--beta must be a finite number >= 0, not {beta!r}")


def check_plate_options(n, max_mutations, beta=2.0, max_share=0.25, top=40, max_per_position=4, explore=4,
                        multi_share=0.5) -> None:
    """The one place the plate's options are validated, for the API as for the command line (one line each)."""
    def whole(value) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not whole(n) or n < 1:
        raise DataError(f"--n must be a whole number >= 1, not {n!r}")
    if not whole(max_mutations) or not 1 <= max_mutations <= MAX_MUTATIONS:
        raise DataError(f"--max-mutations must be a whole number from 1 to {MAX_MUTATIONS}, not {max_mutations!r}")
    if not whole(top) or top < 1:
        raise DataError(f"--top-singles must be a whole number >= 1, not {top!r}")
    if not whole(max_per_position) or max_per_position < 1:
        raise DataError(f"--max-per-position must be a whole number >= 1, not {max_per_position!r}")
    if not whole(explore) or explore < 0:
        raise DataError(f"--explore must be a whole number >= 0, not {explore!r}")
    _check_beta(beta)
    if not isinstance(max_share, (int, float)) or not 0 < max_share <= 1:
        raise DataError(f"--max-share must be in (0, 1], not {max_share!r}")
    if not isinstance(multi_share, (int, float)) or not 0 <= multi_share <= 1:
        raise DataError(f"--multi-share must be in [0, 1], not {multi_share!r}")


def count_candidates(singles: int, base: int, max_mutations: int) -> int:
    """How many candidates a plate scores, at most: the singles, and every combination of 2..``max_mutations``
    of the ``base`` singles combinations are made of (those at one position are then skipped)."""
    return int(singles + sum(math.comb(base, k) for k in range(2, max_mutations + 1)))


def iter_candidates(singles: pd.DataFrame, score: np.ndarray, max_mutations: int, measured: set[str],
                    top: int = 40, extra: list[str] = ()):
    """Mutation strings to score, made lazily: every single not measured, then combinations (at distinct
    positions) of the ``top`` singles by ``score`` (rows whose score is -inf, e.g. no-signal ones, never join
    them) and the singles ``extra`` (measured good), up to ``max_mutations`` substitutions, not measured. Each
    combination is made once (combinations of distinct singles never repeat), so no duplicates."""
    yield from (m for m in singles["mutations"] if _key(m) not in measured)
    best = combination_base(singles, score, top, extra)
    for k in range(2, max_mutations + 1):
        for combo in itertools.combinations(best, k):
            if len({p for p, _ in combo}) < k:
                continue
            text = ":".join(m for _, m in sorted(combo))
            if _key(text) not in measured:
                yield text


def combination_base(singles: pd.DataFrame, score: np.ndarray, top: int, extra=()) -> list[tuple[int, str]]:
    """(position, mutation) of the singles combinations are made of: the ``top`` best by ``score`` among those
    whose score is finite, then ``extra`` (by mutation string, where the scan has them), once each."""
    order = [i for i in np.argsort(-score, kind="stable") if np.isfinite(score[i])][:top]
    base = [(int(singles["position"].iloc[i]), singles["mutations"].iloc[i]) for i in order]
    known = {m for _, m in base}
    where = {_key(m): i for i, m in enumerate(singles["mutations"])}
    for m in extra:
        i = where.get(_key(m))
        if i is not None and singles["mutations"].iloc[i] not in known:
            base.append((int(singles["position"].iloc[i]), singles["mutations"].iloc[i]))
            known.add(singles["mutations"].iloc[i])
    return base


def candidates(singles: pd.DataFrame, score: np.ndarray, max_mutations: int, measured: set[str],
               top: int = 40) -> list[str]:
    """``iter_candidates`` as a list."""
    return list(iter_candidates(singles, score, max_mutations, measured, top))


def measured_keys(mutations) -> set[str]:
    """The order-free identities of mutation strings (a run's ``predictions.csv`` ``mutations``: every measured
    row, whatever its split), to test a candidate with ``is_measured``."""
    return {_key(m) for m in mutations}


def is_measured(mutations, keys: set[str]) -> np.ndarray:
    """Which of ``mutations`` (strings) are among ``keys`` (``measured_keys``)."""
    return np.array([_key(m) in keys for m in mutations], dtype=bool)


def _key(text: str) -> str:
    """Order-free identity of a mutation string."""
    return ":".join(sorted(t for t in str(text).replace(";", ":").replace(",", ":").split(":") if t))


_POSITION = re.compile(r"(\d+)\D*$")


def positions(text: str) -> list[int]:
    """The positions (as written) a mutation string substitutes."""
    return [int(_POSITION.search(t).group(1)) for t in _key(text).split(":") if _POSITION.search(t)]


def choose_plate(table: pd.DataFrame, value: np.ndarray, n: int, max_share: float = 0.25,
                 max_per_position: int | None = None, explore: int = 0, multi_share: float = 0.5,
                 orders=None) -> pd.DataFrame:
    """``n`` rows of ``table`` for a plate, each with ``why`` it was picked and its ``acquisition_value``:

    - ``explore``: up to ``explore`` wells for rows marked ``no_signal`` (best by ``value``, one per position
      before any gets two); they never get more, whatever their interval;
    - then the rows with signal: a ``multi_share`` of the remaining wells for multi-mutants (when there are
      any), the rest singles, and any shortfall of one kind filled with the other;
    - each pick is the best row by ``value`` (or, with ``orders(k)``, by the k-th pick's own ranking: batch
      Thompson sampling) not yet on the plate such that no substitution is in more than ``max_share`` of the
      plate and no position in more than ``max_per_position`` wells. A pick is ``exploit`` when it was the best
      row of its pool left, ``diversity`` when a cap skipped a better one."""
    limit = max(1, int(np.floor(max_share * n)))
    per_position = max_per_position or n
    tokens = [_key(m).split(":") for m in table["mutations"]]
    sites = [positions(m) for m in table["mutations"]]
    blind = table["no_signal"].to_numpy(bool) if "no_signal" in table else np.zeros(len(table), bool)
    multi = table["n_mutations"].to_numpy() > 1
    value = np.asarray(value, np.float64)
    fixed = np.argsort(-value, kind="stable")
    uses: dict[str, int] = {}
    sites_used: dict[int, int] = {}
    chosen: list[int] = []
    why: list[str] = []
    taken = np.zeros(len(table), bool)

    def fits(i: int, cap: int) -> bool:
        return all(uses.get(t, 0) < limit for t in tokens[i]) and all(sites_used.get(p, 0) < cap for p in sites[i])

    def take(pool: np.ndarray, quota: int, label: str | None, cap: int, ranked=None) -> int:
        got = 0
        while got < quota and len(chosen) < n:
            order = fixed if ranked is None else ranked(len(chosen))
            best_left, pick = None, None
            for i in order:
                if not pool[i] or taken[i]:
                    continue
                best_left = i if best_left is None else best_left
                if fits(i, cap):
                    pick = i
                    break
            if pick is None:
                return got
            chosen.append(pick)
            taken[pick] = True
            why.append(label or ("exploit" if pick == best_left else "diversity"))
            for t in tokens[pick]:
                uses[t] = uses.get(t, 0) + 1
            for p in sites[pick]:
                sites_used[p] = sites_used.get(p, 0) + 1
            got += 1
        return got

    got = take(blind, min(explore, n), "explore", 1)  # spread over positions first
    take(blind, min(explore, n) - got, "explore", per_position)
    rest = n - len(chosen)
    wanted_multi = int(round(multi_share * rest)) if (multi & ~blind).any() else 0
    take(multi & ~blind, wanted_multi, None, per_position, orders)
    take(~multi & ~blind, n - len(chosen), None, per_position, orders)
    take(~blind, n - len(chosen), None, per_position, orders)  # one kind short: the other fills
    return table.iloc[chosen].assign(acquisition_value=value[chosen], why=why).reset_index(drop=True)


def diverse_top(table: pd.DataFrame, value: np.ndarray, n: int, max_share: float,
                max_per_position: int | None = None) -> pd.DataFrame:
    """The best ``n`` rows by ``value`` such that no substitution appears in more than ``max_share`` of them (and
    no position in more than ``max_per_position``): ``choose_plate`` with every row one pool, no quotas."""
    work = table.assign(_row=np.arange(len(table)), n_mutations=1, no_signal=False)
    out = choose_plate(work, value, n, max_share, max_per_position, explore=0, multi_share=0.0)
    return table.iloc[out["_row"].to_numpy()].assign(acquisition_value=out["acquisition_value"].to_numpy(),
                                                    why=out["why"].to_numpy()).reset_index(drop=True)


def wells(n: int) -> list[str]:
    """Plate wells A1..H12, then plate 2 (P2-A1...), for ``n`` variants."""
    plate = [f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13)]
    return [(f"P{k // 96 + 1}-" if k >= 96 else "") + plate[k % 96] for k in range(n)]


def trained_mutation_counts(run: Run) -> tuple[int, int]:
    """(largest mutation count among the run's training rows, rows) from its predictions table."""
    train = run.training_rows(["n_mutations"])
    return int(train["n_mutations"].max()), len(train)


def measured_good_singles(fitted: pd.DataFrame, top: int) -> list[str]:
    """Up to ``top`` measured singles above the median label, best first: doubles are also made of these."""
    labels = pd.to_numeric(fitted["y"], errors="coerce")
    singles = fitted[(fitted["n_mutations"] == 1) & (labels > labels.median())]
    return singles.assign(y=labels).sort_values("y", ascending=False, kind="stable")["mutations"].head(top).tolist()


def propose(run: Run | str | Path, n: int = 96, max_mutations: int | None = None, measured: str | Path | None = None,
            acquisition_kind: str = "ucb", beta: float = 2.0, max_share: float = 0.25,
            device: str = "auto", top: int = 40, ranks=None, *, max_per_position: int = 4, explore: int = 4,
            multi_share: float = 0.5, seed: int = 0, mutant_col: str | None = None) -> tuple[pd.DataFrame, dict]:
    """A plate of ``n`` variants to make next, and a record of how they were chosen (``measured``: a file of more
    variants already measured, never proposed; ``mutant_col``: its column of mutation strings, if a table).

    ``max_mutations`` (up to that many substitutions; singles always among the candidates) defaults to the
    largest mutation count the run was trained on: the model has never seen more, so more is extrapolation
    (allowed when asked, and recorded; each well says ``extrapolation``). Multi-mutants combine the ``top``
    singles by acquisition that have signal and the measured singles above the median label; the plate gives
    them ``multi_share`` of its exploit wells (``choose_plate``), at most ``max_per_position`` wells per position
    and ``max_share`` of the plate per substitution, and ``explore`` wells to variants without signal.
    ``acquisition_kind`` ``ts``: batch Thompson sampling on the head's joint posterior (``mimo.acquisition``; a
    head without one is refused), over the best candidates by UCB.
    Candidates are scored in chunks and the best ``max(20 n, 2000)`` singles and combinations by acquisition
    are kept between chunks (bounded memory; singles kept apart, so a plate can always be filled with them).
    Under torchrun (``ranks``: ``mimo.pipeline.runtime.ranks.Ranks``) the chunks are shared out and every process gets
    the batch. The plate's wells are checked against the run's training rows (``plate_shift``: columns
    ``unlike_training``, ``shift_p``; the record's ``unlike_training`` and ``above_best_measured``)."""
    if acquisition_kind not in ACQUISITIONS:
        raise DataError(f"--acquisition must be one of {', '.join(ACQUISITIONS)}, not {acquisition_kind!r}")
    check_plate_options(n, 1 if max_mutations is None else max_mutations, beta, max_share, top, max_per_position,
                        explore, multi_share)
    run = _run_with_parent(run)
    if acquisition_kind == "ts":
        from mimo.acquisition import check_serves

        check_serves(run.model, acquisition_kind)
    trained_max, _ = trained_mutation_counts(run)
    max_mutations = max(1, trained_max) if max_mutations is None else max_mutations
    fmt = mutation_format_from(run.source["dataset"])
    fitted = pd.read_csv(run.directory / "predictions.csv", dtype={"mutations": str}, keep_default_na=False)
    done = measured_keys(fitted["mutations"])
    if measured is not None:
        done |= {_key(m) for m in read_variants(measured, run.parent, fmt, mutant_col,
                                                           given_by=option("measured"))["mutations"]}
    labels = pd.to_numeric(fitted["y"])
    featurizers = design_featurizers(run, device)
    singles = saturation_scan(run, device, check_shift=False, featurizers=featurizers)
    pointwise = "ucb" if acquisition_kind == "ts" else acquisition_kind
    single_score = acquisition(singles, pointwise, beta, labels.max())
    single_score[singles["no_signal"].to_numpy(bool)] = -np.inf  # never combined: no signal there
    extra = measured_good_singles(fitted, max(1, top // 4)) if max_mutations > 1 else []
    base = combination_base(singles, single_score, top, extra)
    total = count_candidates(len(singles), len(base), max_mutations)
    if total > MAX_CANDIDATES:
        raise DataError(f"--max-mutations {max_mutations} with --top-singles {top} makes about {total:.1e} "
                        f"candidates (more than {MAX_CANDIDATES:.0e}, hours to score): lower either")
    pool = iter_candidates(singles, single_score, max_mutations, done, top, extra)
    keep, kept, scored = max(20 * n, 2000), None, 0
    device = device if ranks is None else ranks.device(device)
    for part in score_stream(run, pool, device, ranks=ranks, featurizers=featurizers):
        scored += len(part)
        part = part.assign(acquisition_value=acquisition(part, pointwise, beta, labels.max()))
        kept = part if kept is None else pd.concat([kept, part], ignore_index=True)
        kept = _best_per_group(kept, keep)
    if ranks is not None and ranks.world_size > 1:  # every process's best, gathered (gloo, as embed build)
        import torch.distributed as dist

        gathered: list = [None] * ranks.world_size
        dist.all_gather_object(gathered, (kept, scored))
        parts = [k for k, _ in gathered if k is not None]
        scored = sum(s for _, s in gathered)
        kept = None if not parts else _best_per_group(pd.concat(parts, ignore_index=True), keep).sort_values(
            ["acquisition_value", "mutations"], ascending=[False, True], kind="stable").reset_index(drop=True)
    elif kept is not None:  # the same order as after a gather: by value, ties by name
        kept = kept.sort_values(["acquisition_value", "mutations"], ascending=[False, True],
                                kind="stable").reset_index(drop=True)
    if kept is None:
        raise DataError("no unmeasured candidates to propose")
    orders, batch_note = None, None
    if acquisition_kind == "ts":
        from mimo.acquisition import thompson_orders

        from mimo.acquisition import POOL, ts_pool

        signal = kept[~kept["no_signal"].to_numpy(bool)]
        pool = signal.index.to_numpy()[ts_pool(signal["prediction"].to_numpy(), signal["acquisition_value"].to_numpy())]
        kept = pd.concat([kept.loc[pool], kept.drop(index=pool)]).reset_index(drop=True)
        frame = variants_frame(kept["mutations"].tolist()[:len(pool)], run.parent, fmt)
        X, _ = featurize(frame, run.source, device, use_cache=False, featurizers=featurizers)
        orders = thompson_orders(run.model, X, n, seed, total=len(kept))
        batch_note = (f"batch Thompson sampling: each well the best of its own joint draw from the GP's posterior "
                      f"over {len(pool):,} candidates with signal (the best by the mean and by UCB, beta {beta:g})")
    batch = choose_plate(kept.drop(columns="acquisition_value"), kept["acquisition_value"].to_numpy(), n, max_share,
                         max_per_position, explore, multi_share if max_mutations > 1 else 0.0, orders)
    batch.insert(0, "well", wells(len(batch)))
    batch["extrapolation"] = batch["n_mutations"] > trained_max
    shift = plate_shift(run, batch, device, featurizers)
    batch["unlike_training"], batch["shift_p"] = shift.pop("columns")
    uncertainty = "the run's calibrated 95% interval (sd = half its width / 1.96)" if "sd" in kept else \
        "none (a single-output head): ranked by the mean"
    record = {"acquisition": acquisition_kind if "sd" in kept else "greedy (no uncertainty)",
              "beta": beta if acquisition_kind in ("ucb", "ts") else None, "uncertainty": uncertainty,
              "batch": batch_note, "seed": seed,
              "candidates_scored": scored, "measured_excluded": len(done), "max_share": max_share,
              "max_per_position": max_per_position, "explore": explore, "multi_share": multi_share,
              "max_mutations": max_mutations, "trained_max_mutations": trained_max,
              "combined_singles": len(base), "measured_good_singles": len(extra),
              "why": {k: int(v) for k, v in batch["why"].value_counts().items()},
              "singles": int((batch["n_mutations"] == 1).sum()), "multi": int((batch["n_mutations"] > 1).sum()),
              "without_signal": int(batch["no_signal"].sum()), "extrapolation": int(batch["extrapolation"].sum()),
              "most_per_position": int(pd.Series([p for m in batch["mutations"] for p in positions(m)]).value_counts()
                                       .max()) if len(batch) else 0,
              "best_predicted": float(batch["prediction"].max()), "best_measured": float(labels.max()),
              "above_best_measured": int((batch["prediction"] > labels.max()).sum()),
              "best_predicted_unlike_training": _true(batch["unlike_training"].iloc[int(batch["prediction"].argmax())]),
              "unlike_training": shift, "requested": n, "filled": len(batch)}
    if len(batch) < n and len(batch) >= scored:
        record["short"] = (f"only {len(batch)} of {n} wells: just {scored:,} unmeasured candidates exist with at most "
                           f"{max_mutations} substitution(s); lower --n, or raise --max-mutations (extrapolation)")
    elif len(batch) < n:
        record["short"] = (f"only {len(batch)} of {n} wells: {len(kept):,} candidates were kept, no substitution "
                           f"may be in more than {max_share:.0%} of the batch nor a position in more than "
                           f"{max_per_position} wells, and at most {explore} go to variants without signal; raise "
                           f"--max-share, --max-per-position, --explore or --top-singles")
    return batch, record


def _best_per_group(kept: pd.DataFrame, keep: int) -> pd.DataFrame:
    """The best ``keep`` rows by acquisition of each group: singles and multi-mutants, with and without signal
    (so a plate can always be filled with each kind)."""
    return pd.concat([group.nlargest(keep, "acquisition_value", keep="first")
                      for _, group in kept.groupby([kept["n_mutations"] > 1, kept["no_signal"]])]).reset_index(drop=True)


def plate_shift(run: Run, batch: pd.DataFrame, device: str = "auto", featurizers: dict | None = None) -> dict:
    """The check of the plate's variants against the run's training rows (featurized again: a plate is small):
    ``shift_summary``'s fields, and ``columns`` (unlike_training, shift_p)."""
    train_X, reason = training_features(run, device)
    if train_X is None:
        report = ShiftReport(None, None, None, len(batch), reason)
        return {**shift_summary(report, "wells"), "columns": ([None] * len(batch), [np.nan] * len(batch))}
    frame = variants_frame(batch["mutations"].tolist(), run.parent, mutation_format_from(run.source["dataset"]))
    featurizers = design_featurizers(run, device) if featurizers is None else featurizers
    X, _ = featurize(frame, run.source, device, use_cache=False, featurizers=featurizers)
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
