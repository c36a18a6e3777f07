#!/usr/bin/env bash
# The GPU half of bench/embed_speed.py, for a lent H100/H200 (no network there): stock fair-esm (fp32), mimo's
# engines (ENGINES, default "fast compiled": the compiled one pads batches to length buckets so torch.compile's
# graphs are reused) and Hugging Face transformers' EsmModel (SDPA, same weights, same precision), one card.
# Prepare here, once:
#   echo /.gpu/ >> .git/info/exclude && mkdir -p .gpu
#   python3 -m pip download --no-deps -d .gpu fair-esm==2.0.0
#   python3 -m pip download -d .gpu 'transformers>=4.40'     # the peer; with its dependencies (same Python there)
#   python3 -m pip wheel -q --no-deps -w .gpu .               # mimo itself (installed there as one package)
#   cp ../shared/data/gfp/amino_acid_genotypes_to_brightness.tsv ../shared/data/gfp/tape_fluorescence_valid_genotypes.txt .gpu/
# Then one device call: command "bash bench/gpu_embed.sh", carry [".gpu"], timeout_s 540.
# Target: the whole build at >= 50% of the card's dense bf16 peak for ESM-2 650M's shape.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1  # mimo from the wheel, bench from the checkout
OUT=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU: a dry run on the CPU"
for engine in ${ENGINES:-fast compiled}; do
  python3 -m bench.embed_speed --shape "${SHAPE:-t33_650M}" --n "${N:-20000}" --data .gpu --mimo-toks-per-batch 32768 \
    --engine "$engine" --out "$OUT/embed_speed_gpu_$engine.json" 2>&1 | grep -v "Regression weights" \
    | tee "$OUT/embed_speed_gpu_$engine.log"
done
