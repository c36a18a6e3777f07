"""Which training rows each MIMO member sees: by mutation count (the report) or at random (Havasi et al.).

A plan is an (rows, M) array of row indices: column k lists what member k reads, and consecutive slices of
``batch_size`` rows are the training steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPEN = 10 ** 6  # upper end of an open range such as "5-"


@dataclass
class MutationGroups:
    """Inclusive ranges of mutation counts, one per member; the first starts at 0, the last is open."""

    ranges: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.ranges)

    def labels(self) -> list[str]:
        out = []
        for lo, hi in self.ranges:
            out.append(f"{lo}+" if hi >= OPEN else (str(lo) if lo == hi else f"{lo}-{hi}"))
        return out

    @classmethod
    def parse(cls, spec: str) -> "MutationGroups":
        """``"0-1,2,3-"``: comma-separated counts or ranges, in increasing order."""
        ranges = []
        for part in spec.split(","):
            part = part.strip()
            lo_text, dash, hi_text = part.partition("-")
            try:
                lo = int(lo_text)
                hi = lo if not dash else (int(hi_text) if hi_text else OPEN)
            except ValueError:
                raise ValueError(f"bad mutation group {part!r} in {spec!r} (write e.g. 0-1,2,3-)") from None
            if hi < lo or (ranges and lo <= ranges[-1][1]):
                raise ValueError(f"mutation groups {spec!r} must be increasing and must not overlap")
            ranges.append((lo, hi))
        return cls(ranges)

    @classmethod
    def from_counts(cls, counts: np.ndarray, spec: str | None = None, max_members: int = 4) -> "MutationGroups":
        """Groups given by ``spec``, or one per count present (the parent joining the next count), or, past
        ``max_members`` counts, contiguous ranges of about equal size."""
        if spec:
            return cls.parse(spec)
        values, sizes = np.unique(np.asarray(counts), return_counts=True)
        if len(values) > 1 and values[0] == 0:  # the parent goes with the singles
            values, sizes = values[1:], sizes[1:].copy()
            sizes[0] += 1
        if len(values) <= max_members:
            edges = list(values)
        else:
            cumulative = np.cumsum(sizes) / sizes.sum()
            edges = [values[0]]
            for k in range(1, max_members):  # cut where the cumulative share is nearest k/M
                i = int(np.argmin(np.abs(cumulative[:-1] - k / max_members))) + 1
                if values[i] > edges[-1]:
                    edges.append(values[i])
        ranges = [(int(lo), int(hi) - 1) for lo, hi in zip(edges[:-1], edges[1:])] + [(int(edges[-1]), OPEN)]
        ranges[0] = (0, ranges[0][1])
        return cls(ranges)

    def member_of(self, counts: np.ndarray) -> np.ndarray:
        counts = np.asarray(counts)
        member = np.full(len(counts), -1)
        for k, (lo, hi) in enumerate(self.ranges):
            member[(counts >= lo) & (counts <= hi)] = k
        return member

    def member_rows(self, counts: np.ndarray) -> list[np.ndarray]:
        member = self.member_of(counts)
        rows = [np.flatnonzero(member == k) for k in range(len(self))]
        empty = [label for label, r in zip(self.labels(), rows) if len(r) == 0]
        if empty:
            raise ValueError(f"no rows with mutation counts {', '.join(empty)} for their MIMO member")
        return rows


def _draw(rows: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` rows: as many full copies as fit, then a draw without replacement, shuffled."""
    copies, rest = divmod(length, len(rows))
    out = np.concatenate([np.tile(rows, copies), rng.choice(rows, rest, replace=False)])
    return rng.permutation(out)


def mutation_routed_epoch(member_rows: list[np.ndarray], repeat: int, rng: np.random.Generator) -> np.ndarray:
    """All of the smallest group and a fresh draw of that size from each other group, ``repeat`` times."""
    length = repeat * min(len(r) for r in member_rows)
    return np.stack([_draw(rows, length, rng) for rows in member_rows], axis=1)


def routed_validation(member_rows: list[np.ndarray]) -> np.ndarray:
    """Every validation row once in its member's column; shorter columns wrap around."""
    length = max(len(r) for r in member_rows)
    return np.stack([np.resize(rows, length) for rows in member_rows], axis=1)


def random_routed_epoch(n: int, members: int, batch_size: int, rho: float, batch_repetition: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Havasi et al.: each member an independent permutation of every batch; with probability ``rho`` a
    position shows every member the same input; each batch of ``batch_size`` holds ``batch_repetition``
    differently permuted copies of one base batch."""
    base = max(1, batch_size // batch_repetition)
    order = rng.permutation(n)
    blocks = []
    for start in range(0, n, base):
        idx = order[start:start + base]
        for _ in range(batch_repetition):
            block = np.stack([rng.permutation(idx) for _ in range(members)], axis=1)
            same = rng.random(len(idx)) < rho
            block[same] = block[same, :1]
            blocks.append(block)
    return np.concatenate(blocks)
