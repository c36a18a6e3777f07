"""A design campaign across rounds: measured wells in, the model refitted with the same settings, the next plate out.

A campaign is a folder::

    CAMPAIGN/campaign.json       the dataset (name, parent), the settings (head, its parameters, features, the
                                 plate's options) and their hash, and one entry per finished round: its files and
                                 their SHA-256
    CAMPAIGN/cache/              features (each round's data is its own dataset, <name>-r<k>)
    CAMPAIGN/round-<k>/measured.csv   the wells measured from round k-1's plate (rounds >= 1), as given
                       data.csv  everything measured so far (mutant, the assay column)
                       split.csv the rows the round's model trains on (every row; a seeded tenth for validation)
                       run/      the round's fitted run (`mimo fit`'s run directory)
                       plate.csv, plate.json  the round's plate and how it was chosen (mimo.design.propose)

``start`` makes round 0 from the measurements a user has (a handful is enough for a GP); ``next_round`` reads
a results file for the last plate (matched by ``well`` or by variant, with the campaign's assay column),
checks it against the plate (one line for wells not on it, duplicates, missing values, a wrong column, a round
run twice), writes round k+1 and records it in ``campaign.json`` only once its plate is written. Every file is
written atomically, so a crash leaves the campaign as it was plus an unfinished round folder, which the same
command resumes (steps whose outputs exist and match are not done again). Nothing a user gives runs code.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError
from mimo.pipeline.io.fetch import sha256_of
from mimo.pipeline.writes import write_csv, write_text

CAMPAIGN_FILE = "campaign.json"
VERSION = 1
PLATE_OPTIONS = ("n", "max_mutations", "acquisition_kind", "beta", "max_share", "top", "max_per_position",
                 "explore", "multi_share", "seed")


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Campaign:
    """A campaign folder and its ``campaign.json``."""

    folder: Path
    record: dict

    @property
    def rounds(self) -> list[dict]:
        return self.record["rounds"]

    @property
    def assay(self) -> str:
        return self.record["dataset"]["assay"]

    def round_dir(self, k: int) -> Path:
        return self.folder / f"round-{k}"

    def save(self) -> None:
        write_text(self.folder / CAMPAIGN_FILE, json.dumps(self.record, indent=2, default=str) + "\n")

    def plate(self, k: int | None = None) -> pd.DataFrame:
        k = len(self.rounds) - 1 if k is None else k
        return pd.read_csv(self.folder / self.rounds[k]["plate"], dtype={"mutations": str, "well": str},
                           keep_default_na=False, na_values=[""])


def load_campaign(folder: str | Path) -> Campaign:
    """The campaign in ``folder``, its files checked against their recorded hashes (one line if one changed)."""
    folder = Path(folder)
    path = folder / CAMPAIGN_FILE
    if not path.is_file():
        raise DataError(f"not a campaign folder (no {CAMPAIGN_FILE}): start one with `mimo design start`", folder)
    try:
        record = json.loads(path.read_text())
        record["rounds"], record["dataset"]["assay"], record["settings"]  # noqa: B018 (the keys this reads)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"damaged campaign file ({exc.__class__.__name__}: {exc})", path) from None
    if record.get("version") != VERSION:
        raise DataError(f"campaign version {record.get('version')!r}; this mimo reads {VERSION}", path)
    if settings_hash(record["settings"]) != record.get("settings_hash"):
        raise DataError("the campaign's settings were edited since it started (their hash differs): start a new "
                        "campaign for new settings", path)
    campaign = Campaign(folder, record)
    for entry in campaign.rounds:
        for name in ("data", "plate"):
            file = folder / entry[name]
            if not file.is_file() or sha256_of(file) != entry[f"{name}_sha256"]:
                raise DataError(f"round {entry['round']}'s {name} file is missing or changed since it was recorded "
                                f"(SHA-256 differs)", file)
    return campaign


def _read_measurements(path: Path, parent: str, mutant_col, score_col, name: str):
    """The user's measurements as a dataset (mimo.pipeline.io.datasets.load_dataset's checks)."""
    from mimo.pipeline.io.datasets import load_dataset

    return load_dataset(path, parent=parent, mutant_col=mutant_col, score_col=score_col, name=name)


def start(folder: str | Path, data: str | Path, parent: str, *, head: str = "gp",
          features: str = "onehot-sites+aaprops", head_params: dict | None = None, mutant_col: str | None = None,
          score_col: str | None = None, plate: dict | None = None, log=None) -> tuple[Campaign, pd.DataFrame, dict]:
    """A new campaign in ``folder`` from the measurements in ``data`` (a CSV/TSV of variants with a score; a
    handful is enough), ``parent`` (a sequence or FASTA file): round 0's model and plate. ``plate``: options of
    ``mimo.design.propose`` (``PLATE_OPTIONS``), kept for every round. A folder holding another campaign is
    refused; one holding this campaign's unfinished round 0 is resumed."""
    from mimo.design import check_plate_options
    from mimo.models.estimators.registry import HEADS
    from mimo.pipeline.io.variants import load_parent

    folder = Path(folder)
    plate = dict(plate or {})
    unknown = sorted(set(plate) - set(PLATE_OPTIONS))
    if unknown:
        raise DataError(f"unknown plate option(s) {unknown}; known: {list(PLATE_OPTIONS)}")
    check_plate_options(plate.get("n", 96), plate.get("max_mutations") or 1, plate.get("beta", 2.0),
                        plate.get("max_share", 0.25), plate.get("top", 40), plate.get("max_per_position", 4),
                        plate.get("explore", 4), plate.get("multi_share", 0.5))
    if head not in HEADS:
        raise DataError(f"--head must be one of {', '.join(HEADS)}, not {head!r}")
    parent_seq = load_parent(parent)
    name = _dataset_name(folder)
    dataset = _read_measurements(Path(data), parent_seq, mutant_col, score_col, f"{name}-r0")
    assay = dataset.columns.get("score") or "score"
    settings = {"head": head, "head_params": head_params or {}, "features": features, "plate": plate}
    record = {"version": VERSION, "dataset": {"name": name, "parent": parent_seq, "assay": assay,
                                              "parent_sha256": hashlib.sha256(parent_seq.encode()).hexdigest()},
              "settings": settings, "settings_hash": settings_hash(settings), "rounds": []}
    existing = folder / CAMPAIGN_FILE
    if existing.exists():
        old = load_campaign(folder)
        if old.record["dataset"]["parent_sha256"] != record["dataset"]["parent_sha256"] or old.assay != assay:
            raise DataError(f"the folder holds a campaign on another dataset (parent or assay {old.assay!r} "
                            f"differs): choose a new folder", existing)
        if old.rounds:
            raise DataError("the folder holds a started campaign: add a round with `mimo design round`", existing)
        if old.record["settings_hash"] != record["settings_hash"]:
            raise DataError("the folder holds a campaign started with other settings: choose a new folder", existing)
    elif folder.exists() and any(folder.iterdir()) and not (folder / "round-0").exists():
        raise DataError("the folder exists and is not empty: a campaign needs its own folder", folder)
    folder.mkdir(parents=True, exist_ok=True)
    campaign = Campaign(folder, record)
    campaign.save()
    frame = dataset.frame
    table = pd.DataFrame({"mutant": frame["mutations"].astype(str), assay: frame["label"].astype(float)})
    return _finish_round(campaign, 0, table, None, log)


def _dataset_name(folder: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in folder.resolve().name) or "campaign"
    return f"campaign-{stem}"


def _finish_round(campaign: Campaign, k: int, table: pd.DataFrame, measured: dict | None, log):
    """Round ``k`` from its data ``table``: data.csv, split.csv, the run, the plate; recorded last."""
    from mimo.design import propose

    where = campaign.round_dir(k)
    where.mkdir(parents=True, exist_ok=True)
    data_path = where / "data.csv"
    if not data_path.exists() or not pd.read_csv(data_path, dtype={"mutant": str}, keep_default_na=False
                                                   ).equals(table):
        write_csv(table, data_path)
    run_dir = where / "run"
    if not (run_dir / "metrics.json").exists():
        _fit(campaign, k, data_path, run_dir, log)
    plate_path, record_path = where / "plate.csv", where / "plate.json"
    options = dict(campaign.record["settings"]["plate"])
    options["seed"] = options.get("seed", 0) + k  # each round its own draws (ts)
    batch, record = propose(run_dir, **options)
    write_csv(batch, plate_path)
    write_text(record_path, json.dumps(record, indent=2, default=_plain) + "\n")
    entry = {"round": k, "data": f"round-{k}/data.csv", "data_sha256": sha256_of(data_path), "rows": len(table),
             "run": f"round-{k}/run", "plate": f"round-{k}/plate.csv", "plate_sha256": sha256_of(plate_path),
             "measured": measured}
    campaign.record["rounds"] = [r for r in campaign.rounds if r["round"] < k] + [entry]
    campaign.save()
    return campaign, batch, record


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return str(value)


def round_split(rows: int, k: int) -> np.ndarray:
    """Round ``k``'s split of ``rows`` measured variants: a seeded tenth (at least one) for validation (early
    stopping, the interval's calibration), another for the run's test metrics, the rest (at least one) train."""
    if rows < 3:
        raise DataError(f"a campaign round needs at least 3 measured variants (train, valid, test); it has {rows}")
    order = np.random.default_rng(k).permutation(rows)
    held = max(1, rows // 10)
    split = np.full(rows, "train", dtype=object)
    split[order[:held]] = "valid"
    split[order[held:2 * held]] = "test"
    return split


def _fit(campaign: Campaign, k: int, data_path: Path, run_dir: Path, log) -> None:
    """The round's model: the campaign's head, parameters and features on the rows measured so far
    (``round_split``), into ``run_dir`` (replaced if partial)."""
    from mimo.models.data import feature_names, load_split_data
    from mimo.models.estimators.registry import get_head
    from mimo.models.runs.fit import fit_run
    from mimo.pipeline.cache.build import build_cache
    from mimo.pipeline.featurizers import get_featurizer

    settings, info = campaign.record["settings"], campaign.record["dataset"]
    name = f"{info['name']}-r{k}"
    dataset = _read_measurements(data_path, info["parent"], "mutant", campaign.assay, name)
    cache = campaign.folder / "cache"
    for feature in feature_names(settings["features"]):
        build_cache(dataset, get_featurizer(feature, dataset), cache, progress=False)
    frame = dataset.frame
    split = round_split(len(frame), k)
    split_path = data_path.with_name("split.csv")
    write_csv(pd.DataFrame({"id": frame["id"], "split": split}), split_path)
    data = load_split_data(cache, name, settings["features"], split_file=split_path)
    params = dict(settings["head_params"])
    if settings["head"] == "gp":
        from mimo.models.data import feature_blocks

        params["blocks"] = feature_blocks(data.rows.manifest)
    elif settings["head"] == "auto":
        from mimo.models.estimators.auto import blocks_of

        params["blocks"] = blocks_of(data.rows.manifest)
    try:
        fit_run(get_head(settings["head"], **params), data, run_dir, force=True, log=log)
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"round {k}'s fit failed: {exc}") from None


def read_results(path: str | Path, plate: pd.DataFrame, assay: str) -> pd.DataFrame:
    """The measured wells of ``plate`` in the results file ``path``: (well, mutations, assay value), matched
    by a ``well`` column, else by a mutant column (``mutant``/``mutations``/``variant``); one line naming the
    file (and row) for a missing or wrong assay column, wells or variants not on the plate, duplicates, or
    values that are not finite numbers. Unmeasured wells may be left out (a failed expression)."""
    from mimo.design import _key
    from mimo.pipeline.io.tables import read_table

    path = Path(path)
    if not path.is_file():
        raise DataError("no such results file", path)
    table = read_table(path)
    columns = list(table.columns)
    if assay not in columns:
        raise DataError(f"no column {assay!r} (the campaign's assay); the header has {columns}", path, 1)
    values = pd.to_numeric(table[assay].replace("", np.nan), errors="coerce")
    bad = ~np.isfinite(values.to_numpy(np.float64))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{assay} is {table[assay].iloc[row]!r}, not a finite number: leave unmeasured wells out",
                        path, row + 2)
    named = next((c for c in ("mutant", "mutations", "variant") if c in columns), None)
    if "well" in columns:
        keys, known, what = table["well"].astype(str).str.strip(), plate["well"].astype(str), "well"
        if named is not None:  # both given: they must agree (results of another round's plate share its wells)
            for offset, (well, text) in enumerate(zip(keys, table[named].astype(str))):
                row = plate.index[plate["well"].astype(str) == well]
                if len(row) and _key(plate["mutations"].iloc[row[0]]) != _key(text):
                    raise DataError(f"well {well} holds {plate['mutations'].iloc[row[0]]!r} on the round's plate, "
                                    f"not {text!r}: results of another plate?", path, offset + 2)
    else:
        if named is None:
            raise DataError(f"no column well or mutant to match the plate; the header has {columns}", path, 1)
        keys, known, what = table[named].astype(str).map(_key), plate["mutations"].astype(str).map(_key), "variant"
    where = {k: i for i, k in enumerate(known)}
    seen: dict[str, int] = {}
    rows = []
    for offset, key in enumerate(keys):
        line = offset + 2
        if key not in where:
            raise DataError(f"{what} {key!r} is not on the round's plate", path, line)
        if key in seen:
            raise DataError(f"{what} {key!r} is listed twice (first on line {seen[key]})", path, line)
        seen[key] = line
        rows.append(where[key])
    if not rows:
        raise DataError("no measured wells", path)
    return pd.DataFrame({"well": plate["well"].iloc[rows].to_numpy(), "mutant": plate["mutations"].iloc[rows].to_numpy(),
                         assay: values.to_numpy(np.float64)})


def next_round(folder: str | Path, measured: str | Path, log=None) -> tuple[Campaign, pd.DataFrame, dict]:
    """Round k+1 of the campaign in ``folder`` from the results file ``measured`` for round k's plate."""
    campaign = load_campaign(folder)
    if not campaign.rounds:
        raise DataError("the campaign has no finished round 0: run `mimo design start` again to resume it", folder)
    k = campaign.rounds[-1]["round"]
    measured = Path(measured)
    digest = sha256_of(measured) if measured.is_file() else None
    for entry in campaign.rounds:
        if digest is not None and (entry.get("measured") or {}).get("sha256") == digest:
            raise DataError(f"these results were already added in round {entry['round']}: measure round {k}'s "
                            f"plate ({campaign.rounds[-1]['plate']}) for the next", measured)
    plate = campaign.plate(k)
    results = read_results(measured, plate, campaign.assay)
    where = campaign.round_dir(k + 1)
    where.mkdir(parents=True, exist_ok=True)
    write_csv(results, where / "measured.csv")
    previous = pd.read_csv(campaign.folder / campaign.rounds[-1]["data"], dtype={"mutant": str},
                           keep_default_na=False)
    table = pd.concat([previous, results[["mutant", campaign.assay]]], ignore_index=True)
    record = {"file": str(measured), "sha256": digest, "wells": len(results),
              "plate": campaign.rounds[-1]["plate"], "copy": f"round-{k + 1}/measured.csv"}
    return _finish_round(campaign, k + 1, table, record, log)


def history(campaign: Campaign) -> pd.DataFrame:
    """Per round: rows measured, the best measured so far, and for each measured plate its hit rate (wells
    above the parent's value where the data has it, and above the best before) and predicted vs measured."""
    from mimo.models.metrics import spearman

    rows = []
    best_before = None
    parent_value = None
    for entry in campaign.rounds:
        data = pd.read_csv(campaign.folder / entry["data"], dtype={"mutant": str}, keep_default_na=False)
        values = data[campaign.assay].to_numpy(np.float64)
        if parent_value is None:
            wt = data["mutant"].isin(["", "WT", "wt"])
            parent_value = float(values[wt.to_numpy()].mean()) if wt.any() else math.nan
        row = {"round": entry["round"], "measured": len(data), "best measured": float(values.max())}
        if entry.get("measured"):
            got = pd.read_csv(campaign.folder / entry["measured"]["copy"], dtype={"mutant": str},
                              keep_default_na=False)
            plate = campaign.plate(entry["round"] - 1).set_index("well")
            predicted = plate.loc[got["well"], "prediction"].to_numpy(np.float64)
            measured_values = got[campaign.assay].to_numpy(np.float64)
            row.update({"plate": entry["round"] - 1, "wells measured": len(got),
                        "hit rate (above parent)": float(np.mean(measured_values > parent_value))
                        if math.isfinite(parent_value) else None,
                        "hit rate (above best before)": float(np.mean(measured_values > best_before)),
                        "plate best": float(measured_values.max()),
                        "predicted vs measured (Spearman)": spearman(measured_values, predicted)
                        if len(got) > 2 else None})
        best_before = row["best measured"]
        rows.append(row)
    return pd.DataFrame(rows)
