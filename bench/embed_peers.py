"""The ESM-2 peers that need their own environment (faesm wants transformers 4.x; esm-cpp is a C++ engine),
timed on the same weights and sequences as bench/embed_speed.py, which runs this file with that environment's
Python (`--peers-python`). Prepare the environment once:

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch==2.13.0 && \\
      /tmp/peers/bin/pip install faesm esm-cpp 'transformers==4.46.3'

    /tmp/peers/bin/python -m bench.embed_peers --hf-dir DIR --sequences seqs.txt --reference ref.npy --out peers.json

Each peer present is timed over all sequences (after a warm-up on 8) and compared with the reference embeddings
(fair-esm fp32, mean over residues) by per-sequence cosine; a peer that is missing or fails is reported as such.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def faesm_peer(hf_dir: str, sequences: list[str], toks_per_batch: int) -> np.ndarray:
    """faesm's FAEsmForMaskedLM (SDPA on CPU), bf16, length-sorted batches to the token budget."""
    import torch
    from faesm.esm import FAEsmForMaskedLM

    model = FAEsmForMaskedLM.from_pretrained(hf_dir).to(torch.bfloat16).eval()
    tokenizer = model.tokenizer
    order = np.argsort([-len(s) for s in sequences], kind="stable")
    out = np.zeros((len(sequences), model.config.hidden_size), np.float32)
    start = 0
    with torch.inference_mode():
        while start < len(order):
            size = max(1, toks_per_batch // (len(sequences[order[start]]) + 2))
            batch = order[start:start + size]
            encoded = tokenizer([sequences[i] for i in batch], return_tensors="pt", padding=True,
                                return_special_tokens_mask=True)
            mask = (1 - encoded["special_tokens_mask"]) * encoded["attention_mask"]
            hidden = model(encoded["input_ids"])["last_hidden_state"].float()
            out[batch] = ((hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)).numpy()
            start += size
    return out


def esm_cpp_peer(hf_dir: str, sequences: list[str], int8: bool) -> np.ndarray:
    """esm-cpp from the same safetensors; per sequence, hidden states of the last layer, mean over residues."""
    import esm_cpp

    model = esm_cpp.Model.load_from_safetensors(str(Path(hf_dir) / "model.safetensors"))
    if int8:
        model.quantize_weights()
    tokenizer = esm_cpp.Tokenizer()
    out = []
    for s in sequences:
        ids = np.asarray(tokenizer.encode(s), np.int32)
        _, hidden = model.forward_with_hidden_states(ids)
        out.append(np.asarray(hidden[-1], np.float32)[1:len(s) + 1].mean(0))
    return np.stack(out)


def masked_lm_dir(hf_dir: str, out: Path) -> str:
    """The same encoder as an ``EsmForMaskedLM`` checkpoint (names prefixed ``esm.``, an untrained LM head: the
    hidden states do not use it), the layout faesm and esm-cpp load."""
    import transformers

    encoder = transformers.EsmModel.from_pretrained(hf_dir, add_pooling_layer=False)
    model = transformers.EsmForMaskedLM(encoder.config)
    model.esm.load_state_dict(encoder.state_dict(), strict=False)
    model.save_pretrained(out, safe_serialization=True)
    transformers.AutoTokenizer.from_pretrained(hf_dir).save_pretrained(out)
    return str(out)


def esm_cpp_scheduled(hf_dir: str, sequences: list[str]) -> np.ndarray | None:
    """esm-cpp int8's throughput path: packed batches (``forward_scheduled``), which return logits only, so no
    embeddings to compare (its cost is the encoder's plus a 33-wide head)."""
    import esm_cpp

    model = esm_cpp.Model.load_from_safetensors(str(Path(hf_dir) / "model.safetensors"))
    model.quantize_weights()
    tokenizer = esm_cpp.Tokenizer()
    model.forward_scheduled([np.asarray(tokenizer.encode(s), np.int32) for s in sequences])
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hf-dir", required=True)
    parser.add_argument("--sequences", required=True, help="one sequence a line")
    parser.add_argument("--reference", required=True, help=".npy of the fp32 reference embeddings")
    parser.add_argument("--toks-per-batch", type=int, default=4096)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sequences = Path(args.sequences).read_text().split()
    reference = np.load(args.reference)
    mlm = masked_lm_dir(args.hf_dir, Path(args.out).with_name("masked_lm"))
    peers = {"faesm bf16": lambda seqs: faesm_peer(mlm, seqs, args.toks_per_batch),
             "esm-cpp fp32": lambda seqs: esm_cpp_peer(mlm, seqs, False),
             "esm-cpp int8": lambda seqs: esm_cpp_peer(mlm, seqs, True),
             "esm-cpp int8 packed (logits only)": lambda seqs: esm_cpp_scheduled(mlm, seqs)}
    results = {}
    for name, run in peers.items():
        try:
            run(sequences[:8])
            start = time.perf_counter()
            got = run(sequences)
            seconds = time.perf_counter() - start
        except Exception as exc:  # a peer that is not installed or breaks is reported, not fatal
            results[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
            continue
        results[name] = {"seconds": seconds, "seq_per_s": len(sequences) / seconds,
                         "cosine_min": None if got is None else cosine(got, reference)}
        print(f"  {name}: {results[name]['seq_per_s']:.1f} seq/s", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
