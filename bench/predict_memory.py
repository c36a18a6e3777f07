"""Peak memory of `mimo predict` against the number of variants: flat when predictions stream in chunks.

A made-up 238-residue parent (GFP's length), 1,000 of its singles with random labels, one-hot features (238 x 20
columns: GFP's), a ridge run; then `mimo predict --variants FILE --out CSV` on N random doubles, each in a fresh
process, its peak resident memory (``ru_maxrss``) read at the end. ``--src`` names source trees to compare (the
venv resolves ``mimo`` to ``$MIMO_SRC``): e.g. the main checkout against this one.

    OMP_NUM_THREADS=1 nice python -m bench.predict_memory --src /work/main --src . --sizes 1000,10000,40000

Writes bench/results/cpu-predict-memory.md (with the commands, commits and machine) unless ``--no-write``.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

LETTERS = "ACDEFGHIKLMNPQRSTVWY"
MEASURE = ("import resource, sys; from mimo.cli import main\n"
           "try:\n    main(sys.argv[1:], standalone_mode=False)\n"
           "finally:\n    print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def commit(src: Path) -> str:
    out = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+changes" if dirty else "")


def make_run(root: Path, src: Path) -> tuple[Path, str]:
    """The dataset, its one-hot cache and a ridge run under ``root``, made with the code at ``src``."""
    rng = np.random.default_rng(0)
    parent = "".join(rng.choice(list(LETTERS), 238))
    singles = [f"{parent[i]}{i + 1}{a}" for i in range(len(parent)) for a in LETTERS if a != parent[i]]
    chosen = rng.choice(len(singles), 1000, replace=False)
    (root / "assay.csv").write_text("mutant,score\n" + "".join(f"{singles[k]},{rng.normal():.4f}\n" for k in chosen))
    env = {**os.environ, "MIMO_SRC": str(src)}
    subprocess.run([sys.executable, "-m", "mimo", "fit", "ridge", "--input", str(root / "assay.csv"), "--parent",
                    parent, "--features", "onehot", "--cache", str(root / "cache"), "--out", str(root / "run"),
                    "--quiet"], check=True, env=env, capture_output=True, cwd=src)
    return root / "run", parent


def doubles(parent: str, n: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        i, j = sorted(rng.choice(len(parent), 2, replace=False))
        a, b = (rng.choice([x for x in LETTERS if x != parent[k]]) for k in (i, j))
        out.append(f"{parent[i]}{i + 1}{a}:{parent[j]}{j + 1}{b}")
    return out


def peak_mib(src: Path, run: Path, variants: Path, out: Path) -> float:
    env = {**os.environ, "MIMO_SRC": str(src)}
    done = subprocess.run([sys.executable, "-c", MEASURE, "predict", "--run", str(run), "--variants", str(variants),
                           "--out", str(out)], env=env, capture_output=True, text=True, cwd=src)  # its own mimo/
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"predict failed with {src}:\n{done.stderr[-2000:]}")
    kb = int(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("maxrss_kb")))
    return kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", action="append", type=Path, required=True, help="A source tree (repeat).")
    parser.add_argument("--sizes", default="1000,10000,40000", help="Numbers of variants, comma-separated.")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    srcs = [s.resolve() for s in args.src]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run, parent = make_run(root, srcs[-1])
        texts = doubles(parent, max(sizes))
        for n in sizes:
            (root / f"v{n}.txt").write_text("\n".join(texts[:n]) + "\n")
            for src in srcs:  # interleaved: each size on every tree before the next size
                mib = peak_mib(src, run, root / f"v{n}.txt", root / f"p-{n}.csv")
                (root / f"p-{n}.csv").unlink()
                rows.append((n, src, mib))
                print(f"{n:>8} variants  {commit(src):>16}  peak {mib:8.1f} MiB", flush=True)
    load = os.getloadavg()[0]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    header = "| variants | " + " | ".join(f"`{commit(s)}` ({s.name}) peak MiB" for s in srcs) + " |"
    lines = [header, "|" + "---|" * (len(srcs) + 1)]
    for n in sizes:
        lines.append(f"| {n:,} | " + " | ".join(f"{m:,.0f}" for k, s, m in rows if k == n) + " |")
    text = (f"# `mimo predict`: peak memory against the number of variants\n\n"
            f"Command: `OMP_NUM_THREADS=1 nice python -m bench.predict_memory "
            f"{' '.join(f'--src {s}' for s in args.src)} --sizes {args.sizes}`\n\n"
            f"Machine: {os.cpu_count()}-core {cpu} VM, shared, load average {load:.1f} at the end (memory does not "
            f"depend on load). One-hot features of a made-up 238-residue parent (4,760 columns, as GFP's), a ridge "
            f"run on 1,000 singles; random doubles; each prediction in a fresh process, its peak resident memory "
            f"(ru_maxrss).\n\n" + "\n".join(lines) + "\n")
    print(text)
    if not args.no_write:
        out = Path(__file__).parent / "results" / "cpu-predict-memory.md"
        out.write_text(text)
        print(f"written: {out}")


if __name__ == "__main__":
    main()
