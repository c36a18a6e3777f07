"""Wall and CPU time of the GFP demo's `mimo fit ridge` at two commits, interleaved, plus the import cost of
scikit-learn's ``sklearn.base`` over what the demo imported before (numpy, pandas, h5py, scipy.sparse/linalg).

    MIMO_DATA=/path/to/gfp python bench/demo_overhead.py --base f069ac3 --rounds 3

Each commit is exported (``git archive``) to a temporary folder and run through ``MIMO_SRC`` (the development
venv resolves ``mimo`` there), each with its own one-hot cache built first. Rounds alternate base / head so both
see the same load; the load average is printed with every line. CPU time (user + sys of the child) moves less
with the load than wall time; the import figures are the minimum of ``--imports`` runs.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMPORTS = "import numpy, pandas, h5py, scipy.sparse, scipy.linalg"


def export(commit: str, folder: Path) -> Path:
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run(src: Path, cache: Path, args: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of ``mimo ARGS`` with ``src`` as the package."""
    env = {**os.environ, "MIMO_SRC": str(src), "MIMO_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).with_name("mimo")), *args], env=env, capture_output=True,
                          text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def import_cpu(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", f"import time; t = time.process_time(); {code}; "
                          "print(time.process_time() - t)"], capture_output=True, text=True, check=True).stdout
    return float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--head", default="HEAD")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--imports", type=int, default=8)
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.head], capture_output=True,
                          text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {name: export(commit, Path(tmp) / name) for name, commit in (("base", args.base), ("head", head))}
        for name, src in trees.items():
            run(src, Path(tmp) / f"cache-{name}", ["embed", "build", "--model", "onehot", "--quiet"])
        print(f"base {args.base}, head {head}; {os.cpu_count()} CPUs")
        for round_ in range(1, args.rounds + 1):
            for name, src in trees.items():
                wall, cpu, out = run(src, Path(tmp) / f"cache-{name}",
                                     ["fit", "ridge", "--out", str(Path(tmp) / f"run-{name}"), "--force"])
                line = next(line for line in out.splitlines() if "test Spearman" in line)
                print(f"{name} round {round_}: wall {wall:.2f} s, cpu {cpu:.2f} s, load {os.getloadavg()[0]:.1f} "
                      f"| {line}")
    plain = min(import_cpu(IMPORTS) for _ in range(args.imports))
    with_sklearn = min(import_cpu(IMPORTS + "; import sklearn.base") for _ in range(args.imports))
    print(f"import CPU s, min of {args.imports}: before {plain:.2f}, with sklearn.base {with_sklearn:.2f} "
          f"(+{with_sklearn - plain:.2f}); load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
