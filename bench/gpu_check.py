"""GPU checks of the zero-shot scores and the -mutpos features, for a lent H100/H200 (no network there).

Prepare here, once (as bench/gpu_embed.sh does):
    echo /.gpu/ >> .git/info/exclude && mkdir -p .gpu
    python3 -m pip download --no-deps -d .gpu fair-esm==2.0.0
    cp ../shared/data/gfp/amino_acid_genotypes_to_brightness.tsv ../shared/data/gfp/tape_fluorescence_valid_genotypes.txt .gpu/
Then one device call, carry [".gpu"]:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/*.whl && \\
      PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --data .gpu --out $OUT/gpu_check.json

1. The same tiny random ESM-2 on the CPU and on the GPU, fp32: zero-shot scores (all three methods) and -mutpos
   features agree (max abs difference, cosine).
2. ESM-2 650M's shape (random weights): seconds and sequences per second for masked-marginal (the parent, one
   pass per mutated position), mutant-marginal (fp32 and bf16), and -mutpos features beside the mean-pooled
   features of the same sequences (the baseline, same run).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import mimo
from mimo.pipeline.testing import save_random_esm2


def collect(featurizer, frame) -> np.ndarray:
    out = np.empty((len(frame), featurizer.dim), np.float32)
    for rows, values in featurizer.embed(frame):
        out[rows] = values
    return out


def timed(featurizer, frame) -> tuple[np.ndarray, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    values = collect(featurizer, frame)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return values, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="Folder with the GFP files.")
    parser.add_argument("--n", type=int, default=20000, help="Variants for the speed part.")
    parser.add_argument("--n-mutant", type=int, default=4000, help="Variants for mutant-marginal timing.")
    parser.add_argument("--out", default="gpu_check.json")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__}
    dataset = mimo.load_dataset(data=args.data)
    work = Path(tempfile.mkdtemp())

    # 1. CPU and GPU agree, fp32, tiny model
    tiny = save_random_esm2(work / "tiny.pt", 2, 64, 4, seed=3)
    small = dataset.sample(64, seed=1)
    for name in ("masked-marginal", "wt-marginal", "mutant-marginal", "mutpos"):
        feature = f"{tiny}-{name}"
        cpu = collect(mimo.get_featurizer(feature, small, device="cpu", dtype="float32"), small.frame)
        gpu = collect(mimo.get_featurizer(feature, small, device=device, dtype="float32"), small.frame)
        entry = {"max_abs_difference": float(np.abs(cpu - gpu).max())}
        if name == "mutpos":
            norms = np.linalg.norm(cpu, axis=1) * np.linalg.norm(gpu, axis=1)
            nonzero = norms > 0
            entry["min_cosine"] = float(((cpu * gpu).sum(1)[nonzero] / norms[nonzero]).min())
        report[f"agree_{name}"] = entry
        print(name, entry, flush=True)

    # 2. speed at ESM-2 650M's shape
    big = save_random_esm2(work / "esm2_t33_650M_shape.pt", 33, 1280, 20, seed=0)
    sample = dataset.sample(args.n, seed=0)
    few = dataset.sample(args.n_mutant, seed=0)
    for label, feature, data, dtype in (
            ("masked-marginal fp32", f"{big}-masked-marginal", sample, "float32"),
            ("mutant-marginal fp32", f"{big}-mutant-marginal", few, "float32"),
            ("mutant-marginal bf16", f"{big}-mutant-marginal", few, "bfloat16"),
            ("mean-pooled bf16 (baseline)", str(big), sample, "bfloat16"),
            ("mutpos bf16", f"{big}-mutpos", sample, "bfloat16")):
        featurizer = mimo.get_featurizer(feature, data, device=device, dtype=dtype)
        collect(featurizer, data.frame.head(64))  # warm-up
        _, seconds = timed(featurizer, data.frame)
        report[label] = {"variants": len(data.frame), "seconds": round(seconds, 2),
                         "variants_per_second": round(len(data.frame) / seconds, 1)}
        print(label, report[label], flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
