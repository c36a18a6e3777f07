"""Where the GPU time of `mimo embed build` goes (ESM-2 650M shape, random weights, GFP sequences).

    python -m bench.gpu_profile --n 4096          # on a lent GPU (see bench/gpu_embed.sh for what to carry)

Prints, each after a warm-up and timed with CUDA synchronisation:
  featurizer  EsmFeaturizer.embed over the sequences (tokenising and copying back included), per token budget
  forward     FastEsm2 alone on token tensors already on the GPU
  matmul      one (tokens x 1280) @ (1280 x 5120) bf16 product: what this GPU's matrix units give at this shape
and the 20 kernels with the most GPU time (torch.profiler) over three featurizer batches.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.embed_speed import model_flops
from bench.random_esm2 import SHAPES
from mimo.pipeline.io.datasets import load_gfp
from mimo.pipeline.testing import save_random_esm2
from mimo.pipeline.featurizers.batching import token_batches
from mimo.pipeline.featurizers.esm import EsmFeaturizer, Tokenizer
from mimo.pipeline.featurizers.esm_load import load_esm


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int = 1) -> float:
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="t33_650M")
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--data", default=".gpu")
    parser.add_argument("--budgets", default="16384,32768,65536")
    parser.add_argument("--compile", action="store_true", help="Also time torch.compile of the forward")
    args = parser.parse_args()
    frame = load_gfp(args.data).sample(args.n, seed=0).frame
    lengths = frame["sequence"].str.len().to_numpy()
    layers, width, heads = SHAPES[args.shape]
    weights = save_random_esm2(Path(tempfile.mkdtemp()) / "random.pt", layers, width, heads)
    net, alphabet, name = load_esm(weights=weights)
    flops = model_flops(net, lengths)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a dry run of this script
    print(f"{torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}; {args.shape}, {args.n} sequences, {flops / 1e12:.1f} TFLOP per pass")
    featurizer = EsmFeaturizer(net, alphabet, name, device=device)

    def report(label: str, seconds: float) -> None:
        print(f"  {label:38s} {seconds:7.2f} s  {args.n / seconds:8.0f} seq/s  {flops / seconds / 1e12:6.1f} TFLOP/s")

    for budget in [int(b) for b in args.budgets.split(",")]:
        featurizer.toks_per_batch = budget
        report(f"featurizer, {budget} tokens/batch", timed(lambda: [None for _ in featurizer.embed(frame)]))

    featurizer.toks_per_batch = 32768
    tokenize = Tokenizer(alphabet)
    sequences = frame["sequence"].tolist()
    on_gpu = [tokenize([sequences[i] for i in b]).to(device)
              for b in token_batches(lengths, featurizer.toks_per_batch)]

    def forward(model) -> None:
        with torch.inference_mode():
            for tokens in on_gpu:
                model(tokens, featurizer.layer)

    report("forward only, 32768 tokens/batch", timed(lambda: forward(featurizer.fast)))
    if args.compile:
        compiled = torch.compile(featurizer.fast)
        start = time.perf_counter()
        forward(compiled)
        sync()
        print(f"  torch.compile warm-up {time.perf_counter() - start:.1f} s")
        report("forward only, torch.compile", timed(lambda: forward(compiled)))

    a = torch.randn(32768, width, device=device, dtype=torch.bfloat16)
    b = torch.randn(width, 4 * width, device=device, dtype=torch.bfloat16)
    seconds = timed(lambda: a @ b, repeats=20)
    print(f"  matmul {tuple(a.shape)} @ {tuple(b.shape)} bf16: {2 * a.shape[0] * width * 4 * width / seconds / 1e12:.0f} TFLOP/s")

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])) as prof:
        for i, _ in enumerate(featurizer.embed(frame.iloc[:3 * 136])):
            pass
        sync()
    print(prof.key_averages().table(sort_by="self_cuda_time_total" if device == "cuda" else "self_cpu_time_total", row_limit=20, max_name_column_width=60))


if __name__ == "__main__":
    main()
