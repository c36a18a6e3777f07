"""Documented commands timed on a quiet machine and beside one competing busy process (as on a shared
workstation or cluster node), with the thread policy (automatic) and with torch's default (every CPU, fixed).

    python -m bench.contention [--cache cache] [--repeats 1] [--before /tmp/base] [--only mlp ge]

Each command runs as its own process (process start, cache load and writing the run included), wall seconds.
The competitor is `python -c "while True: pass"`, started a second before the command and killed after it.
`--before DIR`: also time a checkout of the code before the policy (e.g. `git worktree add /tmp/base <commit>`)
with the same interpreter and cache, quiet and busy. Needs the GFP caches `onehot` and `onehot-sites`
(`mimo embed build --model onehot`, `--model onehot-sites`); UniRep needs the `unirep` extra.
Target: no command more than 2x slower busy than quiet; quiet no slower than before.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREADS_SEEN: list[str] = []
COMMANDS = {
    "ridge": "fit ridge --features onehot",
    "mlp": "fit mlp --features onehot",
    "ge": "fit ge --features onehot",
    "mimo": "fit mimo --features onehot",
    "best": "fit mimo --features onehot-sites --routing random --output monotone",
    "cnn5": "fit cnn --features onehot --epochs 5",
    "unirep64": "embed build --model unirep64 --sample 500",
}


def run(code: Path, command: str, cache: str, env: dict, scratch: Path) -> float:
    args = command.split()
    if args[0] == "fit":
        args += ["--cache", cache, "--out", str(scratch / "run"), "--force", "--quiet"]
    else:  # a fresh cache each time: the build does all its work
        shutil.rmtree(scratch / "cache", ignore_errors=True)
        args += ["--cache", str(scratch / "cache"), "--quiet"]
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", "from mimo.cli import main; main()", *args], cwd=code,
                            env={**env, "PYTHONPATH": str(code)}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command} failed in {code}:\n{result.stderr[-2000:]}")
    metrics = scratch / "run" / "metrics.json"
    if args[0] == "fit" and metrics.exists():  # the thread counts the run used, as it recorded them
        changes = json.loads(metrics.read_text()).get("threads", {}).get("changes", [])
        THREADS_SEEN.append("→".join(str(n) for _, n, _ in changes) or "?")
    return seconds


def timed(code: Path, command: str, cache: str, env: dict, busy: bool, repeats: int, scratch: Path) -> float:
    times = []
    for _ in range(repeats):
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            if competitor is not None:
                time.sleep(1.0)
            times.append(run(code, command, cache, env, scratch))
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default=str(ROOT / "cache"))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--before", default=None, help="a checkout of the code before the thread policy")
    parser.add_argument("--only", nargs="+", default=None, choices=sorted(COMMANDS))
    args = parser.parse_args()
    cache = str(Path(args.cache).resolve())
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MIMO_THREADS")}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    policies = [("auto", ROOT, base_env), ("fixed", ROOT, {**base_env, "MIMO_THREADS": str(cpus)})]
    if args.before:
        policies.append(("before", Path(args.before).resolve(), base_env))
    print(f"{platform.processor() or platform.machine()}, {cpus} CPUs; median of {args.repeats}; wall seconds per "
          f"command (process start included). auto: the thread policy (in brackets: the thread counts a fit "
          f"recorded, in order); fixed: {cpus} threads always (torch's "
          f"default){'; before: the code before the policy' if args.before else ''}")
    header = ["command"] + [f"{name} {load}" for name, _, _ in policies for load in ("quiet", "busy")]
    header += ["auto busy/quiet", "fixed busy/quiet"] + (["before busy/quiet"] if args.before else [])
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for key in args.only or COMMANDS:
            command = COMMANDS[key]
            cells, ratios = [], []
            for name, code, env in policies:
                THREADS_SEEN.clear()
                quiet = timed(code, command, cache, env, False, args.repeats, scratch)
                quiet_threads = list(THREADS_SEEN)
                THREADS_SEEN.clear()
                busy = timed(code, command, cache, env, True, args.repeats, scratch)
                if name == "auto" and THREADS_SEEN:  # the policy's choices, quiet and busy
                    cells += [f"{quiet:.1f} ({', '.join(quiet_threads)})", f"{busy:.1f} ({', '.join(THREADS_SEEN)})"]
                else:
                    cells += [f"{quiet:.1f}", f"{busy:.1f}"]
                ratios.append(f"{busy / quiet:.2f}x")
            print(f"| `mimo {command}` | " + " | ".join(cells + ratios) + " |", flush=True)


if __name__ == "__main__":
    main()
