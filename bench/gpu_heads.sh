#!/usr/bin/env bash
# The heads on a lent H100/H200: one-hot cache built there, then each `mimo fit` on the GPU, timed.
# Prepare .gpu as bench/gpu_embed.sh says; one device call: "bash bench/gpu_heads.sh", carry [".gpu"].
# Runs on the CPU too (a dry run): DEVICE=cpu HEADS="ridge mlp" bash bench/gpu_heads.sh
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .gpu/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp}
work=$(mktemp -d)
mimo() { python3 -c "from mimo.cli import main; main()" "$@"; }
nvidia-smi --query-gpu=name --format=csv,noheader || echo "no GPU: a dry run on the CPU"
mimo embed build --data .gpu --model onehot --cache "$work/cache" --quiet
for head in ${HEADS:-ridge mlp cnn ge mimo}; do
  device_opt=(--device "${DEVICE:-cuda}")
  [ "$head" = ridge ] && device_opt=()
  start=$(date +%s.%N)
  mimo fit "$head" --cache "$work/cache" --out "$work/runs/$head" "${device_opt[@]}" >"$work/$head.log" 2>&1 \
    || { cat "$work/$head.log"; exit 1; }
  end=$(date +%s.%N)
  python3 - "$work/runs/$head/metrics.json" "$head" "$start" "$end" <<'PY' | tee -a "$OUT/gpu_heads.log"
import json, sys
m = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:6s} wall {float(sys.argv[4]) - float(sys.argv[3]):6.1f} s (process start included), "
      f"fit {m['fit_seconds']:6.1f} s; test Spearman {m['test']['spearman']:.3f}, MSE {m['test']['mse']:.3f}")
PY
done
