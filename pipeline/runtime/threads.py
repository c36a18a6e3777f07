"""How many CPU threads the work uses: the CPUs this process may run on, less those other processes keep busy.

torch's OpenMP threads (and OpenBLAS's, behind numpy) wait for each other by spinning; when another process
holds one of the cores, every parallel step waits for the thread that lost its core, and a fit becomes 10-40x
slower with no warning (`docs/benchmarks.md`, "Threads under a competing process"). So the count is chosen,
not left at "one per core":

- ``--threads N`` (``mimo --threads``), ``$MIMO_THREADS``, or ``$OMP_NUM_THREADS`` set by the user: that many,
  always (an explicit choice is honoured, never adapted).
- Otherwise: the CPUs available to the process (its affinity mask, and a cgroup CPU quota where there is one),
  less the cores that other processes kept busy over the last moment (``/proc/stat`` minus this process's own
  CPU time), at least one; and no more than the work can use (``adapt(max_useful=...)``). Measured on 2 cores,
  no current work gains from that cap: UniRep-64's steps at batch 2,048 run 1.7x faster on two threads than on
  one, and the heads on one-hot inputs take the same time on one or two (within the machine's noise). OpenMP's
  passive waiting (``OMP_WAIT_POLICY=PASSIVE``) was measured too and is not used:
  it made quiet fits 20-35% slower.
- torch's threads and BLAS's are never both above one (``blas_threads``): BLAS gets the count only in a
  process without torch (ridge). Heads whose work is small matrices run on one thread unless the user chose a
  count (the GP: ``explicit_count``).

``adapt()`` is cheap and rate-limited: call it at the start of heavy work and between its steps (epochs,
batches); the count follows the machine's load as it changes.

The policy is process-wide, so only the ``mimo`` command turns it on (its root group calls ``set_threads``).
From Python, ``adapt()`` does nothing until ``set_threads`` is called: a library call never changes a notebook's
thread counts behind its back. A head's ``threads`` parameter limits torch and BLAS for one ``fit``/``predict``
only (``limited``) and restores what was set before.
"""
from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

RECHECK_SECONDS = 2.0      # between measurements of the machine's load inside a running job
FIRST_WINDOW = 0.1         # seconds of the first measurement (the process itself idle meanwhile)
BUSY_CORE = 0.5            # another process holding more than half a core takes that core


def _parse_threads(text: str | None, where: str) -> int | None:
    if text is None or not str(text).strip():
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1:
        from mimo.pipeline.errors import DataError
        raise DataError(f"{where}: the number of threads must be a whole number >= 1, not {text!r}")
    return value


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (containers, Slurm)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_quota() -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), None when unlimited or unknown."""
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
        period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def read_busy_seconds(cpus: set[int] | None, stat_path: str = "/proc/stat") -> float | None:
    """CPU-seconds spent busy so far on ``cpus`` (all CPUs when None), stolen time included; None without
    ``/proc/stat``."""
    try:
        lines = open(stat_path).read().splitlines()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    for line in lines:
        if not (line.startswith("cpu") and len(line) > 3 and line[3].isdigit()):
            continue
        fields = line.split()
        if cpus is not None and int(fields[0][3:]) not in cpus:
            continue
        values = [int(v) for v in fields[1:9]] + [0] * 8
        user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
        busy += user + nice + system + irq + softirq + steal
    return busy / tick


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class Sample:
    wall: float
    busy: float | None
    own: float


def _sample(cpus: set[int] | None) -> Sample:
    return Sample(time.monotonic(), read_busy_seconds(cpus), own_cpu_seconds())


def busy_elsewhere(before: Sample, after: Sample) -> float | None:
    """Cores kept busy by other processes between two samples (None when it cannot be measured)."""
    wall = after.wall - before.wall
    if before.busy is None or after.busy is None or wall <= 0:
        return None
    others = (after.busy - before.busy) - (after.own - before.own)
    return max(0.0, others / wall)


def choose(cpus: int, others: float | None, max_useful: int | None = None) -> int:
    """Threads for ``cpus`` available CPUs of which ``others`` cores are kept busy by other processes."""
    n = cpus
    if others is not None:
        n = cpus - math.floor(others + (1 - BUSY_CORE))
    if max_useful is not None:
        n = min(n, max_useful)
    return max(1, min(n, cpus))


class ThreadPolicy:
    """The process's thread count: fixed when the user chose one, else following the machine's load."""

    def __init__(self):
        self.enabled = False               # module-level adapt() acts only once set_threads turned the policy on
        self.pinned: list[int] = []        # counts of the enclosing ``limited`` scopes: adapt() keeps the innermost
        self.requested: int | None = None
        self.source: str | None = None     # None until resolved: --threads, $MIMO_THREADS, $OMP_NUM_THREADS, auto
        self.current: int | None = None    # the count set now
        self.current_blas: int | None = None  # BLAS's count set now (``blas_threads``)
        self.current_auto = 1              # the automatic choice at the last measurement
        self.load: float | None = None     # cores other processes kept busy, at the last measurement
        self.last: Sample | None = None
        self.cpus_set = _affinity()
        self.cpus = available_cpus()
        self.history: list[tuple[float, int, float | None]] = []  # (time, threads, others) at each change

    def request(self, threads: int | str | None, where: str = "--threads") -> None:
        """An explicit count (``--threads``); None: ``$MIMO_THREADS``, then ``$OMP_NUM_THREADS``, then automatic."""
        value = _parse_threads(threads, where)
        if value is not None:
            self.requested, self.source = value, where
            return
        for name in ("MIMO_THREADS", "OMP_NUM_THREADS"):
            value = _parse_threads(os.environ.get(name), f"${name}")
            if value is not None:
                self.requested, self.source = value, f"${name}"
                return
        self.requested, self.source = None, "auto"

    def adapt(self, max_useful: int | None = None) -> int:
        """Set torch's (and BLAS's) thread count for the work about to run, measuring the machine's load at most
        every ``RECHECK_SECONDS``; returns the count."""
        if self.pinned:
            return self.pinned[-1]
        if self.source is None:
            self.request(None)
        n, others = (self.requested, None) if self.requested is not None else self._automatic()
        if max_useful is not None:
            n = max(1, min(n, max_useful))
        self._apply(n, others)
        return n

    def _automatic(self) -> tuple[int, float | None]:
        """The automatic count, and the load it was measured under (None when not measured this time)."""
        if self.last is None:
            self.last = _sample(self.cpus_set)
            time.sleep(FIRST_WINDOW)
        elif time.monotonic() - self.last.wall < RECHECK_SECONDS:
            return self.current_auto, None
        sample = _sample(self.cpus_set)
        others = busy_elsewhere(self.last, sample)
        self.last, self.load = sample, others
        self.current_auto = choose(self.cpus, others)
        return self.current_auto, others

    def _apply(self, n: int, others: float | None) -> None:
        """torch's threads to ``n``; BLAS's to ``n`` only where torch is not loaded (a ridge fit), else to one:
        see ``blas_threads``."""
        torch = sys.modules.get("torch")  # not imported for it: a ridge fit never needs torch
        if torch is not None and torch.get_num_threads() != n:
            torch.set_num_threads(n)
        blas = blas_threads(n, torch is not None)
        if blas != self.current_blas:
            _limit_blas(blas)
            self.current_blas = blas
        if n == self.current:
            return
        self.current = n
        self.history.append((time.monotonic(), n, others))

    def summary(self) -> dict:
        """What a run records: where the count came from, and each change (seconds into the process, threads,
        cores other processes kept busy when it was measured)."""
        if not self.enabled:
            torch = sys.modules.get("torch")
            return {"source": "not managed (Python API: the process's own settings)",
                    "threads": torch.get_num_threads() if torch is not None else None}
        origin = self.history[0][0] if self.history else 0.0
        return {"source": self.source or "auto", "available_cpus": self.cpus,
                "changes": [[round(t - origin, 2), n, None if o is None else round(o, 2)]
                            for t, n, o in self.history]}


def blas_threads(n: int, torch_loaded: bool) -> int:
    """BLAS's threads when torch runs on ``n``: never both pools on several threads at once. OpenBLAS's threads
    (numpy's and scipy's, behind LAPACK) and torch's OpenMP threads each spin for a while after their work;
    alternating between them (the GP: torch's elementwise kernels, then LAPACK's Cholesky) left four spinning
    threads on two cores. One GP fit on 729 DNJA1 rows took 1.4-2.1 CPU-s with one thread in each pool, 7.5 with
    torch on two and BLAS on one, 14.0 with torch on one and BLAS on two, 23.2 with two in each (2-core AMD EPYC
    VM, shared, load 18-22; ``bench/gp_speed.py --threads``)."""
    return 1 if torch_loaded and n > 1 else n


def explicit_count() -> int | None:
    """The count the user chose (``--threads``, ``$MIMO_THREADS``, ``$OMP_NUM_THREADS``), None when automatic.
    Reads the environment as the policy does, without turning it on or measuring anything."""
    if POLICY.source is None:
        POLICY.request(None)
    return POLICY.requested


def _limit_blas(n: int) -> None:
    """numpy's BLAS (OpenBLAS, MKL) threads, as torch's."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=n, user_api="blas")


POLICY = ThreadPolicy()


def set_threads(threads: int | str | None, where: str = "--threads") -> None:
    """Turn the thread policy on for this process (the ``mimo`` command does, at start) and fix its count;
    None: ``$MIMO_THREADS``, then ``$OMP_NUM_THREADS``, then automatic (the available CPUs less those other
    processes keep busy, rechecked as the work runs)."""
    POLICY.request(threads, where)
    POLICY.last = None
    POLICY.enabled = True


def adapt(max_useful: int | None = None) -> int | None:
    """The module-level policy's ``adapt``: call before heavy work and between its steps. Does nothing (and
    returns None) until ``set_threads`` turned the policy on, unless inside a ``limited`` scope."""
    if not (POLICY.enabled or POLICY.pinned):
        return None
    return POLICY.adapt(max_useful)


@contextmanager
def limited(n: int | None):
    """torch's and BLAS's threads set to ``n`` inside the block, and restored to what they were on leaving it
    (``threadpoolctl.threadpool_limits`` for BLAS and OpenMP, ``torch.set_num_threads`` saved and restored).
    None: nothing is changed (the process's settings, or the policy's where ``set_threads`` turned it on)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")  # a head that uses torch has imported it already
    saved = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n):
        POLICY.pinned.append(n)
        try:
            if torch is not None:
                torch.set_num_threads(n)
            yield
        finally:
            POLICY.pinned.pop()
            if torch is not None:
                torch.set_num_threads(saved)  # before threadpool_limits restores OpenMP's own count
