"""Embedding speed: fair-esm's stock extraction against `mimo embed build`, on the same GFP sequences.

    python -m bench.embed_speed --shape t6_8M --n 2000                   # the CPU target (>= 1.5x)
    python -m bench.embed_speed --shape t33_650M --n 20000 --out r.json  # the GPU target (>= 3x, >= 40% of peak)

(a) stock: what fair-esm's scripts/extract.py does: FastaBatchedDataset, get_batch_indices(toks_per_batch,
    extra_toks_per_seq=1), fp32, per-sequence mean over positions 1..len.
(b) mimo: build_cache with the default featurizer settings (engine and dtype), HDF5 writes included.
(c) transformers: Hugging Face's EsmModel (SDPA attention) on the same weights converted with
    `mimo.pipeline.featurizers.hf.convert_fair_esm`, (b)'s precision, the same token budget; left out without transformers.
Both use the same randomly initialised ESM-2 of the named shape (speed does not depend on weight values);
model loading is outside both timers. Agreement: per-sequence cosine of (b) against (a).
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.random_esm2 import SHAPES
from mimo.pipeline.cache.build import build_cache, package_versions
from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.io.datasets import load_gfp
from mimo.pipeline.testing import save_random_esm2
from mimo.pipeline.featurizers.esm import EsmFeaturizer
from mimo.pipeline.featurizers.esm_load import load_esm

BF16_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4}  # dense bf16, SXM


def model_flops(net, lengths: np.ndarray) -> float:
    """2 x (encoder parameters) x tokens, plus attention's 4 x T^2 x D per layer and sequence."""
    params = sum(p.numel() for p in net.layers.parameters())
    tokens = lengths + 2
    return float(2 * params * tokens.sum() + 4 * net.num_layers * net.embed_dim * (tokens ** 2).sum())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stock_extract(weights: Path, sequences: list[str], device: torch.device, toks_per_batch: int) -> np.ndarray:
    """fair-esm's extract.py loop, fp32."""
    from esm.data import FastaBatchedDataset

    net, alphabet, _ = load_esm(weights=weights)
    net = net.to(device).eval()
    layer = net.num_layers
    dataset = FastaBatchedDataset([str(i) for i in range(len(sequences))], sequences)
    batches = dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(dataset, collate_fn=alphabet.get_batch_converter(), batch_sampler=batches)
    out = np.zeros((len(sequences), net.embed_dim), np.float32)
    with torch.no_grad():
        for labels, strs, toks in loader:
            toks = toks.to(device, non_blocking=True)
            representations = net(toks, repr_layers=[layer])["representations"][layer]
            for i, label in enumerate(labels):
                out[int(label)] = representations[i, 1:len(strs[i]) + 1].mean(0).clone().cpu().numpy()
    return out


def transformers_extract(hf_dir: Path, sequences: list[str], device: torch.device, toks_per_batch: int,
                         dtype: torch.dtype) -> np.ndarray | None:
    """The peer a Hugging Face user would pick: transformers' EsmModel (SDPA attention) over the same weights,
    length-sorted batches to the same token budget, mean over residue tokens. None without transformers."""
    try:
        import transformers
    except ImportError:
        return None
    from mimo.pipeline.featurizers.batching import token_batches

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    net = transformers.EsmModel.from_pretrained(hf_dir, add_pooling_layer=False, attn_implementation="sdpa",
                                                dtype=dtype).to(device).eval()
    out = np.zeros((len(sequences), net.config.hidden_size), np.float32)
    with torch.inference_mode():
        for batch in token_batches(np.array([len(s) for s in sequences]), toks_per_batch):
            encoded = tokenizer([sequences[i] for i in batch], padding=True, return_tensors="pt",
                                return_special_tokens_mask=True)
            mask = ((1 - encoded.pop("special_tokens_mask")) * encoded["attention_mask"]).to(device)
            hidden = net(**{k: v.to(device) for k, v in encoded.items()}).last_hidden_state.float()
            pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            out[batch] = pooled.cpu().numpy()
    return out


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="t6_8M")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--toks-per-batch", type=int, default=4096)
    parser.add_argument("--mimo-toks-per-batch", type=int, default=None, help="(b)'s budget (default: the same)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", help="(b)'s precision (default: the featurizer's default)")
    parser.add_argument("--peers-python", default=None,
                        help="a Python with faesm and esm-cpp (see bench/embed_peers.py): those peers too")
    parser.add_argument("--engine", default="fast", choices=["fast", "compiled", "fair-esm"], help="(b)'s engine")
    parser.add_argument("--data", default=None, help="GFP data directory (default: as `mimo` finds it)")
    parser.add_argument("--out", default=None, help="Also write the figures as JSON")
    args = parser.parse_args()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)

    dataset = load_gfp(args.data).sample(args.n, seed=0)
    sequences = dataset.frame["sequence"].tolist()
    lengths = np.array([len(s) for s in sequences])
    work = Path(tempfile.mkdtemp(prefix="mimo-embed-bench-"))
    layers, width, heads = SHAPES[args.shape]
    weights = save_random_esm2(work / f"esm2_{args.shape}_random.pt", layers, width, heads)

    stock_extract(weights, sequences[:8], device, args.toks_per_batch)  # warm-up: CUDA context, kernels
    sync(device)
    start = time.perf_counter()
    stock = stock_extract(weights, sequences, device, args.toks_per_batch)
    sync(device)
    stock_seconds = time.perf_counter() - start

    net, alphabet, name = load_esm(weights=weights)
    flops = model_flops(net, lengths)
    featurizer = EsmFeaturizer(net, alphabet, name, device=str(device), dtype=args.dtype,
                               toks_per_batch=args.mimo_toks_per_batch or args.toks_per_batch, engine=args.engine)
    for _ in featurizer.embed(dataset.frame.iloc[:8]):  # warm-up, as for (a)
        pass
    sync(device)
    start = time.perf_counter()
    build_cache(dataset, featurizer, work / "cache", progress=False)
    sync(device)
    mimo_seconds = time.perf_counter() - start

    rows = EmbeddingCache(work / "cache", dataset.name, featurizer.name).load()
    position = {sid: i for i, sid in enumerate(dataset.frame["id"])}
    reference = stock[[position[i] for i in rows.ids]]
    cosine = cosine_rows(rows.embeddings, reference)

    # (c) the transformers peer, same weights (converted), same precision as (b)
    from mimo.pipeline.featurizers.hf import convert_fair_esm

    peer = None
    try:
        hf_dir = convert_fair_esm(weights, work / "hf")
    except Exception as exc:  # transformers missing or too old: the peer is left out, and said so
        print(f"  (c) transformers peer left out: {exc}")
    else:
        peer_dtype = featurizer.torch_dtype
        transformers_extract(hf_dir, sequences[:8], device, args.toks_per_batch, peer_dtype)
        sync(device)
        start = time.perf_counter()
        hf_out = transformers_extract(hf_dir, sequences, device, args.toks_per_batch, peer_dtype)
        sync(device)
        hf_seconds = time.perf_counter() - start
        if hf_out is not None:
            peer = {"seconds": hf_seconds, "seq_per_s": args.n / hf_seconds, "tok_per_s": 0.0,
                    "tflop_per_s": flops / hf_seconds / 1e12, "dtype": featurizer.dtype,
                    "engine": "transformers EsmModel sdpa", "cosine_min": float(cosine_rows(hf_out, stock).min())}

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if gpu and k in gpu), None)
    tokens = int((lengths + 2).sum())
    result = {
        "machine": gpu or f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads",
        "shape": args.shape, "sequences": args.n, "tokens": tokens, "model_tflop": flops / 1e12,
        "stock": {"seconds": stock_seconds, "seq_per_s": args.n / stock_seconds, "tok_per_s": tokens / stock_seconds,
                  "tflop_per_s": flops / stock_seconds / 1e12, "dtype": "float32", "engine": "fair-esm"},
        "mimo": {"seconds": mimo_seconds, "seq_per_s": args.n / mimo_seconds, "tok_per_s": tokens / mimo_seconds,
                 "tflop_per_s": flops / mimo_seconds / 1e12, "dtype": featurizer.dtype, "engine": featurizer.engine},
        "speedup": stock_seconds / mimo_seconds,
        "cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()),
        "bf16_peak_tflops": peak, "versions": package_versions(),
    }
    if args.peers_python and peer is not None:  # faesm, esm-cpp: their own environment, same weights
        import subprocess

        (work / "sequences.txt").write_text("\n".join(sequences) + "\n")
        np.save(work / "reference.npy", stock)
        subprocess.run([args.peers_python, str(Path(__file__).with_name("embed_peers.py")), "--hf-dir", str(hf_dir),
                        "--sequences", str(work / "sequences.txt"), "--reference", str(work / "reference.npy"),
                        "--toks-per-batch", str(args.toks_per_batch), "--out", str(work / "peers.json")], check=True)
        result_peers = json.loads((work / "peers.json").read_text())
    else:
        result_peers = {}
    if peer is not None:
        peer["tok_per_s"] = tokens / peer["seconds"]
        result["transformers"] = peer
        result["speedup_over_transformers"] = peer["seconds"] / mimo_seconds
    if peak:
        result["mimo"]["fraction_of_bf16_peak"] = result["mimo"]["tflop_per_s"] / peak
    print(f"{result['machine']}; ESM-2 {args.shape} (random weights), {args.n} GFP sequences, {tokens:,} tokens")
    for letter, key in zip("abc", ("stock", "mimo", "transformers")):
        if key not in result:
            continue
        r = result[key]
        extra = f", {100 * r['fraction_of_bf16_peak']:.0f}% of bf16 peak" if "fraction_of_bf16_peak" in r else ""
        print(f"  ({letter}) {key:5s} {r['engine']:8s} {r['dtype']:8s}: {r['seconds']:7.1f} s, "
              f"{r['seq_per_s']:8.1f} seq/s, {r['tok_per_s']:10,.0f} tok/s, {r['tflop_per_s']:.3f} TFLOP/s{extra}")
    print(f"  speed-up b/a: {result['speedup']:.2f}x; cosine(b, a) per sequence: min {result['cosine_min']:.6f}, "
          f"mean {result['cosine_mean']:.6f}")
    if "transformers" in result:
        print(f"  speed-up b/c: {result['speedup_over_transformers']:.2f}x; cosine(c, a) min "
              f"{result['transformers']['cosine_min']:.6f}")
    for name, r in result_peers.items():
        if "error" in r:
            print(f"  peer {name}: not run ({r['error']})")
            continue
        r["speedup_of_mimo"] = r["seconds"] / mimo_seconds
        agreement = "no embeddings" if r["cosine_min"] is None else f"cosine to (a) min {r['cosine_min']:.6f}"
        print(f"  peer {name}: {r['seq_per_s']:.1f} seq/s, {agreement}; mimo is {r['speedup_of_mimo']:.2f}x")
    if result_peers:
        result["peers"] = result_peers
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
