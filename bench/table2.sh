#!/usr/bin/env bash
# The report's Table 2 on our cache: ridge, base MLP, CNN and MIMO on TAPE's and the balanced split.
#   bash bench/table2.sh [features]        (default: onehot; build it first with `mimo embed build --model onehot`)
set -euo pipefail
features=${1:-onehot}
mimo=${MIMO:-.venv/bin/mimo}
out=runs/table2-$features
rm -rf "$out"
for split in tape balanced; do
  for head in ridge mlp cnn mimo; do
    "$mimo" fit "$head" --features "$features" --split "$split" --out "$out/$head-$split" | sed -n 1p  # sed reads to the end: no SIGPIPE under pipefail
  done
done
"$mimo" report "$out"/ridge-tape "$out"/mlp-tape "$out"/cnn-tape "$out"/mimo-tape \
  "$out"/ridge-balanced "$out"/mlp-balanced "$out"/cnn-balanced "$out"/mimo-balanced \
  --csv "$out/table2.csv" --markdown "$out/table2.md"
