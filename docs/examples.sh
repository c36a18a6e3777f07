#!/usr/bin/env bash
# Every example of README.md's "Your own protein" section, run in a fresh temporary folder on ProteinGym's DNJA1
# assay (1,215 single substitutions of a 65-residue DnaJ domain), its ProteinMPNN profile and its TranceptEVE
# zero-shot scores, copied there under the README's short names. Prints what each command prints; the outputs
# quoted in the README come from this script.
#   bash docs/examples.sh [PROTEINGYM_DIR]      # default: $PROTEINGYM, else ../shared/data/proteingym
# PROTEINGYM_DIR holds DNJA1_HUMAN_Tsuboyama_2023_2LO1.csv, profiles/DNJA1_HUMAN.npz and
# zero_shot/TranceptEVE/DNJA1_HUMAN_Tsuboyama_2023_2LO1.csv (ProteinGym v1.3 and Kermut's repository; MIT).
# About 6-9 minutes on 2 CPU cores (shared). Nothing is written outside the temporary folder (MIMO_HOME included).
set -euo pipefail
PG=$(cd "${1:-${PROTEINGYM:-$(dirname "$0")/../../shared/data/proteingym}}" && pwd)
MIMO=${MIMO:-$(command -v mimo || echo "$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/mimo")}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export MIMO_HOME=$WORK/home MIMO_CACHE=$WORK/cache
cp "$PG/DNJA1_HUMAN_Tsuboyama_2023_2LO1.csv" dnja1.csv
cp "$PG/profiles/DNJA1_HUMAN.npz" mpnn.npz
cp "$PG/zero_shot/TranceptEVE/DNJA1_HUMAN_Tsuboyama_2023_2LO1.csv" tev.csv
printf 'A13C\nY3F:E17D\n' > new.txt

run() { echo "\$ mimo $*"; "$MIMO" "$@" 2>&1; echo; }

run fit ridge --input dnja1.csv --out runs/ridge-one-command
run embed build --input dnja1.csv --model onehot-sites --quiet
run embed build --dataset dnja1 --model aaprops --quiet
run embed build --dataset dnja1 --model profile:mpnn.npz --quiet
run embed build --dataset dnja1 --model scores:tev.csv:avg_score --quiet
run score --dataset dnja1 --model profile:mpnn.npz --quiet
run fit ridge --dataset dnja1 --features onehot-sites --out runs/ridge --quiet
run fit ridge --dataset dnja1 --features onehot-sites --cv modulo5 --out runs/ridge-modulo --quiet
run fit ridge --dataset dnja1 --features onehot-sites+aaprops+profile-mpnn --cv modulo5 --out runs/ridge-modulo-mpnn --quiet
run fit mimo --dataset dnja1 --features onehot-sites+aaprops --routing random --out runs/mimo --quiet
run fit sklearn --dataset dnja1 --features onehot-sites+aaprops --estimator RandomForestRegressor \
  --param n_estimators=100 --out runs/forest --quiet
run fit ge --dataset dnja1 --features onehot-sites+aaprops --out runs/ge --quiet
run fit gp --dataset dnja1 --features onehot-sites+profile-mpnn --out runs/gp --quiet
run fit gp --dataset dnja1 --features onehot-sites+profile-mpnn --cv modulo5 --out runs/gp-modulo --quiet
run fit auto --dataset dnja1 --budget 60 --out runs/auto --quiet
run report runs/ridge runs/mimo runs/forest --html dnja1.html
run predict --run runs/mimo --variants new.txt --out new_predictions.csv
cat new_predictions.csv
run design scan runs/mimo
run design propose runs/mimo --n 96
