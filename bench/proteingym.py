"""ProteinGym's supervised protocol on any folder of ProteinGym substitution assays: every assay x configuration x
fold scheme, one pooled out-of-fold Spearman per cell (as ProteinGym computes it), the wall seconds of each stage,
beside the published numbers.

    python -m bench.proteingym                     # every assay in --root ($MIMO_PROTEINGYM or ../shared/...)
    python -m bench.proteingym --root DIR --assays DNJA1_HUMAN_Tsuboyama_2023_2LO1,x.csv --schemes random
    python -m bench.proteingym --configs ridge:onehot-full,gp:onehot-sites+aaprops+profile --repeats 3
    python -m bench.proteingym --before /tmp/base  # the same work with a `git worktree` of older code, interleaved

The folder (``--root``): ProteinGym substitution CSVs ``<DMS_id>.csv`` (``mutant``, ``mutated_sequence``,
``DMS_score``, ``fold_random_5``, ``fold_modulo_5``, ``fold_contiguous_5``), each optionally with
``<DMS_id>_wt.fasta`` (the parent; else it is reconstructed from the rows' mutants and sequences), and optionally
``profiles/`` (``<P>.npz``: ProteinMPNN, ``<P>_ESM_IF1.npy``: ESM-IF1, where ``<P>`` is the DMS id's first two
underscore-separated parts, e.g. ``GFP_AEQVI``), ``structures/<P>.pdb`` (or ``.cif``: the wild type's structure,
e.g. an AlphaFold model), ``zero_shot/<model>/<DMS_id>.csv`` (ProteinGym's zero-shot score
files) and ``anchors/DMS_substitutions_Spearman_DMS_level_fold_<scheme>_5.csv`` (the published leaderboard). A
CSV named by path in ``--assays`` looks for these in its own folder first, then in ``--root``. Assays are the
folder's CSVs whose header has ``DMS_score`` and ``mutant`` or ``mutated_sequence``.

A configuration is HEAD:FEATURES, features joined with ``+``: featurizer names (``onehot-full``, ``onehot-sites``,
``aaprops``, ``unirep64-mutpos``, ``profile:PATH``, ...) or the assay's own files: ``profile`` (ProteinMPNN),
``profile-if1`` (ESM-IF1), ``scores`` (the zero-shot file of ``--zero-shot-model``, TranceptEVE's ``avg_score`` by
default), ``structure`` (the structure features; with ``gp``, Kermut's structure kernel too; head ``gp-nokernel``
is the GP with those columns in the dense kernel only). A block ending in ``?`` is optional: used where the assay has it, left out (and said so) where not. A
configuration whose non-optional file is missing for an assay is reported as ``n/a (no profile)`` /
``n/a (no zero-shot file)`` / ``n/a (no structure)`` for that assay. Beside the published methods of ``PUBLISHED``,
``published: best`` is the best of every leaderboard column for the assay and scheme (its method named). HEAD is a head name (``ridge``, ``gp``, ``ge``, ``mimo``, ...), ``auto``
(chooses among the features x heads on each outer fold's inner validation fold, within ``--budget`` seconds per
fit), ``mimo-random`` or ``mlp-random-single`` (MIMO's single-member baseline). Each cell is fitted as
``mimo fit HEAD --cv fold_<scheme>_5`` fits it: ``fit_cv`` with the head the command makes (``gp`` and ``auto``
get their blocks from the joined features' manifest).

Stages, wall seconds, min / median over ``--repeats`` (each repeat builds into a fresh cache unless ``--cache``):
``load``: reading the assay file (once per assay, counted in each of its cells) plus reading the joined cached
features with the scheme's folds; ``featurize``: building the configuration's features into the cache (each
feature once per assay and repeat, counted in every cell that uses it); ``fit``: ``fit_cv`` less its writing (the
five out-of-fold fits and the saved model's fit on every fold); ``write``: writing the run directory. With
``--before DIR`` each repeat of each assay runs once with this code and once with DIR's, each in its own process,
alternating. The markdown and CSV files are rewritten after each assay; ``--resume`` skips the assays already in
the CSV.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

SCHEMES = ("random", "modulo", "contiguous")
DEFAULT_CONFIGS = ("ridge:onehot-full", "ridge:onehot-sites+aaprops", "ridge:onehot-sites+aaprops+profile",
                   "gp:onehot-sites+aaprops+profile", "gp:onehot-sites+aaprops+profile+profile-if1+scores",
                   "auto:onehot-sites+aaprops+profile+scores?")
PUBLISHED = ("Kermut", "ProteinNPT", "TranceptEVE + One-Hot Encodings", "One-Hot Encodings")
ZERO_SHOT_COLUMNS = {"TranceptEVE": "avg_score", "ESM_IF1": "esmif1_ll"}  # others: every score column, or NAME:COL
ASSAY_COLUMNS = ("mutant", "mutated_sequence")
STAGES = ("load", "featurize", "fit", "write")
MISSING = {"profile": "no profile", "profile-if1": "no profile", "scores": "no zero-shot file",
           "structure": "no structure"}


@dataclass
class Assay:
    """One assay: its DMS id, CSV, parent FASTA (None: reconstructed from the rows) and the folders searched for
    profiles/, zero_shot/ and anchors/."""

    dms_id: str
    csv: str
    parent: str | None
    homes: list = field(default_factory=list)

    @property
    def protein(self) -> str:
        return "_".join(self.dms_id.split("_")[:2])

    def find(self, relative: str) -> Path | None:
        for home in self.homes:
            if (Path(home) / relative).is_file():
                return Path(home) / relative
        return None


def default_root() -> Path:
    return Path(os.environ.get("MIMO_PROTEINGYM") or Path(__file__).resolve().parents[1] / "../shared/data/proteingym")


def is_assay_csv(path: Path) -> bool:
    """A ProteinGym-style substitution file: a CSV whose header has DMS_score and mutant or mutated_sequence."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return False
    return "DMS_score" in header and any(c in header for c in ASSAY_COLUMNS)


def make_assay(csv: Path, root: Path) -> Assay:
    fasta = csv.with_name(f"{csv.stem}_wt.fasta")
    homes = list(dict.fromkeys([str(csv.parent.resolve()), str(root.resolve())]))
    return Assay(csv.stem, str(csv.resolve()), str(fasta.resolve()) if fasta.is_file() else None, homes)


def discover(root: Path, assays: str | None = None) -> list[Assay]:
    """The assays of ``--root`` (every assay CSV in it), or those ``assays`` names (comma-separated DMS ids of
    ``--root`` or CSV paths). Raises SystemExit with one line naming what is wrong."""
    if not assays:
        if not root.is_dir():
            raise SystemExit(f"--root {root}: no such folder (give --root or set MIMO_PROTEINGYM)")
        found = [make_assay(p, root) for p in sorted(root.glob("*.csv")) if is_assay_csv(p)]
        if not found:
            raise SystemExit(f"--root {root}: no ProteinGym assay CSV (a header with DMS_score and mutant or "
                             f"mutated_sequence)")
        return found
    out = []
    for item in (a.strip() for a in assays.split(",") if a.strip()):
        path = Path(item)
        if not path.is_file():
            path = root / (item if item.endswith(".csv") else f"{item}.csv")
        if not path.is_file():
            raise SystemExit(f"--assays: {item!r} is neither a CSV file nor an assay of --root {root}")
        if not is_assay_csv(path):
            raise SystemExit(f"--assays: {path} has no DMS_score and mutant/mutated_sequence columns")
        out.append(make_assay(path, root))
    return out


def zero_shot_model(text: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:COL,COL`` -> (folder name, columns or None)."""
    name, _, columns = text.partition(":")
    return name, columns or ZERO_SHOT_COLUMNS.get(name)


def block_specs(assay: Assay, zero_shot: str = "TranceptEVE") -> dict:
    """{alias: featurizer spec or None (no file)} of the assay's own blocks."""
    model, columns = zero_shot_model(zero_shot)
    profile = assay.find(f"profiles/{assay.protein}.npz")
    if1 = assay.find(f"profiles/{assay.protein}_ESM_IF1.npy")
    scores = assay.find(f"zero_shot/{model}/{assay.dms_id}.csv")
    structure = next(filter(None, (assay.find(f"structures/{assay.protein}{suffix}")
                                   for suffix in (".pdb", ".cif", ".pdb.gz", ".cif.gz"))), None)
    return {"profile": profile and f"profile:{profile}", "profile-if1": if1 and f"profile:{if1}",
            "scores": scores and (f"scores:{scores}" + (f":{columns}" if columns else "")),
            "structure": structure and f"structure:{structure}"}


def parse_config(text: str) -> tuple[str, list[tuple[str, bool]]]:
    """``HEAD:FEATURES`` -> (head, [(feature, optional)])."""
    head, sep, features = text.partition(":")
    if not sep or not head or not features:
        raise SystemExit(f"--configs: {text!r} is not HEAD:FEATURES (features joined with +)")
    return head, [(f.rstrip("?"), f.endswith("?")) for f in features.split("+") if f]


def resolve(config: str, specs: dict) -> tuple[list[str], str | None, list[str]]:
    """The configuration's featurizer specs for one assay, why it cannot run there (None: it can), and the
    optional blocks left out."""
    _, features = parse_config(config)
    out, dropped = [], []
    for feature, optional in features:
        if feature in specs:
            if specs[feature] is None:
                if optional:
                    dropped.append(feature)
                    continue
                return [], MISSING[feature], []
            out.append(specs[feature])
        else:
            out.append(feature)
    return out, None, dropped


def make_head(head: str, manifest: dict, budget: float):
    """HEAD of a configuration, made as `mimo fit HEAD` makes it (auto and gp get blocks from the manifest), or
    mimo-random (Havasi's routing), or mlp-random-single (an MLP the size of one MIMO member)."""
    import mimo

    if head == "auto":
        from mimo.models.estimators.auto import blocks_of

        return mimo.get_head("auto", blocks=blocks_of(manifest), budget=budget)
    if head in ("gp", "gp-nokernel"):
        from mimo.models.data import feature_blocks

        blocks = feature_blocks(manifest)
        if head == "gp-nokernel":  # the structure block's columns in the dense kernel only (no 3D distance factor)
            blocks = tuple((b[0], "structure-dense" if b[1] == "structure" else b[1], *b[2:]) for b in blocks)
        return mimo.get_head("gp", blocks=blocks)
    if head == "mimo-random":
        return mimo.get_head("mimo", routing="random")
    if head == "mlp-random-single":  # one member of the MIMO above: input 32, shared 128, member 32
        return mimo.get_head("mlp", hidden=(32, 128, 32))
    return mimo.get_head(head)


class _WriteTimer:
    """Times ``write_run`` inside ``fit_cv`` (the run directory), so that fit and write are told apart."""

    def __init__(self):
        import mimo.models.runs.cv as cv

        self.module, self.original, self.seconds = cv, getattr(cv, "write_run", None), None
        if self.original is not None:
            cv.write_run = self._timed

    def _timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.original(*args, **kwargs)
        finally:
            self.seconds = (self.seconds or 0.0) + time.perf_counter() - start

    def close(self):
        if self.original is not None:
            self.module.write_run = self.original


def _message(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def run_assay(assay: Assay, configs: list[str], schemes: list[str], budget: float, zero_shot: str,
              cache: str | None = None, log=None) -> list[dict]:
    """One repeat of one assay with the code ``import mimo`` finds: a row per configuration x scheme with its
    Spearman (None when it could not run; ``note`` says why), its stage seconds and the features it used."""
    import mimo
    from mimo.pipeline.errors import DataError

    if hasattr(mimo, "set_threads"):
        mimo.set_threads(None)  # the command line's thread policy
    log = log or (lambda text: None)
    _warm_up(mimo, {parse_config(c)[0] for c in configs})
    work = Path(tempfile.mkdtemp(prefix="mimo-proteingym-"))
    cache_root = Path(cache) if cache else work / "cache"
    rows = []
    try:
        start = time.perf_counter()
        dataset = mimo.load_dataset(assay.csv, parent=assay.parent)
        dataset_seconds = time.perf_counter() - start
        specs = block_specs(assay, zero_shot)
        built: dict[str, tuple[str | None, float, str | None]] = {}  # spec: (feature name, seconds, error)

        def build(spec: str):
            if spec not in built:
                start = time.perf_counter()
                try:
                    featurizer = mimo.get_featurizer(spec, dataset)
                    mimo.build_cache(dataset, featurizer, cache_root, progress=False)
                    built[spec] = (featurizer.name, time.perf_counter() - start, None)
                except DataError as exc:
                    built[spec] = (None, time.perf_counter() - start, _message(exc))
            return built[spec]

        for config in configs:
            head = parse_config(config)[0]
            features, missing, dropped = resolve(config, specs)
            note = "without " + ", ".join(dropped) if dropped else ""
            if missing is None:
                made = [build(spec) for spec in features]
                failed = next((error for _, _, error in made if error), None)
                if failed:
                    missing = failed
                featurize = sum(seconds for _, seconds, _ in made)
                names = "+".join(name or "?" for name, _, _ in made)
            for scheme in schemes:
                row = {"assay": assay.dms_id, "scheme": scheme, "config": config, "spearman": None,
                       **{stage: None for stage in STAGES}, "features": "", "note": note}
                column = f"fold_{scheme}_5"
                if missing is None and column not in dataset.splits:
                    row["note"] = f"n/a (no {column} column)"
                elif missing is not None:
                    row["note"] = f"n/a ({missing})"
                else:
                    row.update(_fit_cell(mimo, head, dataset.name, names, column, cache_root, work, budget))
                    row.update(features=names, featurize=featurize,
                               load=dataset_seconds + row["load"] if row["load"] is not None else None,
                               note="; ".join(n for n in (note, row.pop("extra", "")) if n))
                row["load average"] = round(os.getloadavg()[0], 1)  # the machine's, when the cell ended
                rows.append(row)
                log(_progress(row))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _warm_up(mimo, heads: set) -> None:
    """Import what the stages use before timing them (an import is paid once per process, not per stage; torch
    only when a head other than ridge and gp may need it)."""
    import importlib

    for name in ("load_dataset", "get_featurizer", "build_cache", "load_cv_data", "fit_cv", "get_head"):
        getattr(mimo, name)
    for module in ("mimo.pipeline.featurizers.onehot", "mimo.pipeline.featurizers.aaprops",
                   "mimo.pipeline.featurizers.profile", "mimo.pipeline.featurizers.scores", "mimo.models.estimators.ridge",
                   "mimo.models.estimators.gp.regressor") + (() if heads <= {"ridge", "gp"} else ("mimo.models.estimators.auto", "mimo.models.estimators.neural.regressors")):
        try:
            importlib.import_module(module)
        except ImportError:  # older code (--before) may lack one
            pass


def _fit_cell(mimo, head: str, dataset: str, features: str, column: str, cache_root: Path, work: Path,
              budget: float) -> dict:
    """load_cv_data + fit_cv of one cell: Spearman and stage seconds, or an error note."""
    out = {"load": None, "fit": None, "write": None}
    start = time.perf_counter()
    try:
        data = mimo.load_cv_data(cache_root, dataset, features, column)
        out["load"] = time.perf_counter() - start
        model = make_head(head, data.rows.manifest, budget)
        timer = _WriteTimer()
        try:
            start = time.perf_counter()
            run = mimo.fit_cv(model, data, work / "runs" / f"{head}-{features}-{column}", force=True)
            total = time.perf_counter() - start
        finally:
            timer.close()
        out["write"] = timer.seconds
        out["fit"] = total - (timer.seconds or 0.0)
        out["spearman"] = run.metrics["test"]["spearman"]
        chosen = [f["chosen"] for f in run.metrics.get("per_fold", []) if f.get("chosen")]
        if chosen:  # fit auto: what each outer fold's inner validation chose
            counts = Counter(f"{c['head']} on {'+'.join(c['features'])}" for c in chosen)
            out["extra"] = "chose " + ", ".join(f"{what} ({n})" for what, n in counts.most_common())
        shutil.rmtree(run.directory, ignore_errors=True)
    except Exception as exc:  # noqa: BLE001 -- one failing cell is reported, the bench goes on
        out["extra"] = f"failed: {type(exc).__name__}: {_message(exc)}"
    return out


def _progress(row: dict) -> str:
    seconds = ", ".join(f"{s} {row[s]:.2f}" for s in STAGES if row.get(s) is not None)
    figure = "" if row["spearman"] is None else f"spearman {row['spearman']:.3f}"
    seconds = f" ({seconds} s)" if seconds else ""
    return f"{row['assay']} {row['scheme']} {row['config']}: {figure} {row['note']}{seconds}".replace("  ", " ")


def worker(args_file: str, out_file: str) -> None:
    """In a process of its own (``--before``): ``run_assay`` with the arguments in ``args_file`` (JSON)."""
    spec = json.loads(Path(args_file).read_text())
    rows = run_assay(Assay(**spec.pop("assay")), **spec, log=lambda text: print(text, file=sys.stderr, flush=True))
    Path(out_file).write_text(json.dumps(rows))


def run_code(code: Path | None, assay: Assay, args) -> list[dict]:
    """One repeat of one assay: in this process (code None), else in a fresh process importing ``code``."""
    kwargs = {"configs": args.configs.split(","), "schemes": args.schemes.split(","), "budget": args.budget,
              "zero_shot": args.zero_shot_model, "cache": args.cache}
    if code is None:
        return run_assay(assay, **kwargs, log=lambda text: print(text, file=sys.stderr, flush=True))
    from bench.fit_speed import importable

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "args.json").write_text(json.dumps({"assay": asdict(assay), **kwargs}))
        path = f"{importable(code, Path(tmp) / 'path')}{os.pathsep}{Path(__file__).resolve().parents[1]}"
        import subprocess

        result = subprocess.run([sys.executable, "-c", f"from bench.proteingym import worker; "
                                 f"worker({str(Path(tmp, 'args.json'))!r}, {str(Path(tmp, 'rows.json'))!r})"],
                                cwd=tmp, env={**os.environ, "PYTHONPATH": path}, stderr=subprocess.PIPE, text=True)
        sys.stderr.write("".join(f"[{code.name}] {line}\n" for line in result.stderr.splitlines()))
        if result.returncode != 0:
            raise SystemExit(f"{assay.dms_id} failed with the code in {code}")
        return json.loads(Path(tmp, "rows.json").read_text())


def published(assay: Assay) -> list[dict]:
    """The published rows (PUBLISHED methods) of the assay, one per scheme, from the first anchors/ holding it."""
    rows = []
    for scheme in SCHEMES:
        path = assay.find(f"anchors/DMS_substitutions_Spearman_DMS_level_fold_{scheme}_5.csv")
        if path is None:
            continue
        table = pd.read_csv(path).set_index("DMS_id")
        if assay.dms_id not in table.index:
            continue
        for method in PUBLISHED:
            if method in table.columns and pd.notna(table.loc[assay.dms_id, method]):
                rows.append({"assay": assay.dms_id, "scheme": scheme, "config": f"published: {method}",
                             "spearman": float(table.loc[assay.dms_id, method])})
        scores = pd.to_numeric(table.loc[assay.dms_id].drop(labels=["DMS_id"], errors="ignore"), errors="coerce")
        if scores.notna().any():  # every leaderboard column, not only PUBLISHED
            rows.append({"assay": assay.dms_id, "scheme": scheme, "config": "published: best",
                         "spearman": float(scores.max()), "note": f"best of every column: {scores.idxmax()}"})
    return rows


def combine(runs: dict[str, list[list[dict]]]) -> list[dict]:
    """Rows of every repeat (``runs[code][repeat]``) as one row per cell: Spearman of the first repeat (a note
    when repeats differ), each stage's min and median; with code ``before``, its figures beside."""
    out = []
    for i, first in enumerate(runs["now"][0]):
        row = {k: first.get(k) for k in ("assay", "scheme", "config", "spearman", "features", "note", "load average")}
        for code, repeats in runs.items():
            cells = [repeat[i] for repeat in repeats]
            suffix = "" if code == "now" else f" ({code})"
            if suffix:
                row[f"spearman{suffix}"] = cells[0]["spearman"]
            figures = [c["spearman"] for c in cells if c["spearman"] is not None]
            if figures and max(figures) - min(figures) > 1e-9:
                row["note"] = "; ".join(n for n in (row["note"], f"Spearman over repeats{suffix} "
                                                    f"{min(figures):.3f} to {max(figures):.3f}") if n)
            for stage in STAGES + ("total",):
                values = [c[stage] if stage != "total" else _total(c) for c in cells]
                values = [v for v in values if v is not None]
                row[f"{stage} min{suffix}"] = min(values) if values else None
                row[f"{stage} median{suffix}"] = statistics.median(values) if values else None
        out.append(row)
    return out


def _total(cell: dict) -> float | None:
    values = [cell[s] for s in STAGES]
    return None if cell["fit"] is None else sum(v or 0.0 for v in values)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per assay x configuration: Spearman per scheme and their mean (when every scheme has one), the
    median total seconds summed over schemes; n/a notes in place of a figure."""
    rows = []
    for (assay, config), group in table.groupby(["assay", "config"], sort=False):
        row = {"assay": assay, "config": config}
        for _, cell in group.iterrows():
            value = cell["spearman"]
            note = cell.get("note") if isinstance(cell.get("note"), str) else ""
            why = [part for part in note.split("; ") if part.startswith(("n/a", "failed"))]
            row[cell["scheme"]] = f"{value:.3f}" if pd.notna(value) else (why or [note])[0]
        figures = [float(v) for v in group["spearman"] if pd.notna(v)]
        row["mean"] = f"{sum(figures) / len(figures):.3f}" if figures and len(figures) == len(SCHEMES) else ""
        if "fit median" in group and group["fit median"].notna().any():
            row["fit s (median, summed over schemes)"] = f"{group['fit median'].sum():.1f}"
        if "fit median (before)" in group and group["fit median (before)"].notna().any():
            row["fit s before"] = f"{group['fit median (before)'].sum():.1f}"
        notes = {part for n in group.get("note", pd.Series(dtype=object)).dropna() if isinstance(n, str)
                 for part in n.split("; ") if part and not part.startswith(("n/a", "chose "))}
        row["note"] = "; ".join(sorted(notes))
        rows.append(row)
    out = pd.DataFrame(rows).fillna("")
    order = (["assay", "config"] + [s for s in SCHEMES if s in out]
             + ["mean", "fit s (median, summed over schemes)", "fit s before", "note"])
    return out[[c for c in order if c in out]]


def markdown(table: pd.DataFrame, header: str) -> str:
    from mimo.models.report.tables import to_markdown

    detail = table.drop(columns=[c for c in table.columns if c.startswith("total")])
    return (f"{header}\n\n{to_markdown(summary(table))}\n\nPer cell (seconds: min / median over repeats; "
            f"featurize counts each feature's build in every configuration using it):\n\n"
            f"{to_markdown(_stage_cells(detail))}\n")


def _stage_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Each stage's min and median columns as one 'min / median' column."""
    out = pd.DataFrame(index=table.index)
    for column in table.columns:
        if " min" in column:
            median = column.replace(" min", " median")
            out[column.replace(" min", " s")] = [
                "" if pd.isna(a) else f"{a:.2f}" if a == b else f"{a:.2f} / {b:.2f}"
                for a, b in zip(table[column], table[median])]
        elif " median" not in column:
            out[column] = table[column]
    if "spearman" in out:
        out["spearman"] = [f"{v:.3f}" if pd.notna(v) else "" for v in out["spearman"]]
    if "load average" in out:  # last, as a figure of the machine rather than of the cell
        out["load average"] = [f"{v:.1f}" if pd.notna(v) else "" for v in out.pop("load average")]
    return out.fillna("")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(default_root()), help="Folder of ProteinGym assay CSVs (and "
                        "profiles/, zero_shot/, anchors/); default $MIMO_PROTEINGYM or ../shared/data/proteingym.")
    parser.add_argument("--assays", default=None, help="Comma-separated DMS ids of --root or CSV paths (default: "
                        "every assay CSV in --root).")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help="Comma-separated HEAD:FEATURES.")
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--zero-shot-model", default="TranceptEVE", help="Folder of zero_shot/ read by the "
                        "'scores' block, optionally :COL,COL (TranceptEVE: avg_score, ESM_IF1: esmif1_ll).")
    parser.add_argument("--budget", type=float, default=20.0, help="fit auto's budget per fit (seconds).")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cache", default=None, help="Build features here (kept; later repeats find them "
                        "built). Default: a fresh temporary cache per assay and repeat.")
    parser.add_argument("--before", default=None, help="A `git worktree` of older code: the same work with it, "
                        "interleaved, each repeat in its own process.")
    parser.add_argument("--markdown", default=None, help="Write the tables here (after each assay).")
    parser.add_argument("--csv", default=None, help="Write one row per cell here (after each assay).")
    parser.add_argument("--resume", action="store_true", help="Keep the assays already in --csv, skip them.")
    args = parser.parse_args(argv)
    for scheme in args.schemes.split(","):
        if scheme not in SCHEMES:
            raise SystemExit(f"--schemes: {scheme!r} is not one of {', '.join(SCHEMES)}")
    for config in args.configs.split(","):
        parse_config(config)
    if args.repeats < 1:
        raise SystemExit("--repeats: at least 1")
    if args.before and not (Path(args.before) / "mimo").is_dir():
        raise SystemExit(f"--before {args.before}: not a checkout of this project (no mimo/ folder)")
    if args.resume and not args.csv:
        raise SystemExit("--resume reads the rows already written: give --csv")
    root = Path(args.root)
    assays = discover(root, args.assays)
    codes = [("now", None)] + ([("before", Path(args.before).resolve())] if args.before else [])
    if args.before:
        codes[0] = ("now", Path(__file__).resolve().parents[1])
    done = pd.read_csv(args.csv) if args.resume and Path(args.csv).is_file() else pd.DataFrame()
    rows = done.to_dict("records")
    skip = set(done["assay"]) if len(done) else set()
    load = os.getloadavg()
    command = " ".join(["python -m bench.proteingym"] + (argv if argv is not None else sys.argv[1:]))
    print(f"{len(assays)} assays: {', '.join(a.dms_id for a in assays)}", file=sys.stderr, flush=True)
    header = None
    for assay in assays:
        if assay.dms_id in skip:
            print(f"{assay.dms_id}: in {args.csv} already, skipped", file=sys.stderr, flush=True)
            continue
        runs = {name: [] for name, _ in codes}
        for _ in range(args.repeats):
            for name, code in codes:  # interleaved: now, before, now, before, ...
                runs[name].append(run_code(code, assay, args))
        rows += combine(runs) + [r for r in published(assay) if r["scheme"] in args.schemes.split(",")]
        table = pd.DataFrame(rows)
        end = os.getloadavg()
        threads = os.environ.get("MIMO_THREADS") or os.environ.get("OMP_NUM_THREADS")
        header = (f"`{command}` on {os.cpu_count()} CPUs, threads {threads or 'as the mimo command chooses them'}, "
                  f"repeats {args.repeats}, auto budget {args.budget:g} s "
                  f"(load average at the start {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}; at the end "
                  f"{end[0]:.1f}, {end[1]:.1f}, {end[2]:.1f})")
        if args.csv:
            table.to_csv(args.csv, index=False)
        if args.markdown:
            Path(args.markdown).write_text(markdown(table, header))
    if rows and header is None and args.markdown:  # every assay resumed: the tables again, under their header
        previous = Path(args.markdown)
        header = previous.read_text().split("\n", 1)[0] if previous.is_file() else f"`{command}`"
        Path(args.markdown).write_text(markdown(pd.DataFrame(rows), header))
    if rows:
        print(markdown(pd.DataFrame(rows), header or f"`{command}`"))


if __name__ == "__main__":
    main()
