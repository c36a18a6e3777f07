#!/usr/bin/env bash
# The GPU half of bench/embed_speed.py, for a lent H100/H200 (no network there).
# Prepare here, once:
#   echo /.gpu/ >> .git/info/exclude && mkdir -p .gpu
#   python3 -m pip download --no-deps -d .gpu fair-esm==2.0.0
#   cp ../shared/data/gfp/amino_acid_genotypes_to_brightness.tsv ../shared/data/gfp/tape_fluorescence_valid_genotypes.txt .gpu/
# Then one device call: command "bash bench/gpu_embed.sh", carry [".gpu"], timeout_s 540.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU: a dry run on the CPU"
python3 bench/embed_speed.py --shape "${SHAPE:-t33_650M}" --n "${N:-20000}" --data .gpu --mimo-toks-per-batch 32768 \
  --out "$OUT/embed_speed_gpu.json" 2>&1 | grep -v "Regression weights" | tee "$OUT/embed_speed_gpu.log"
