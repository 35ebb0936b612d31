#!/usr/bin/env bash
# Issue 17's evaluation of a model: `native-cli eval` at seed 77 (or SEED) for each cell SAMPLER:STEPS:N
# (default: DPM-Solver++(2M) at 10 steps, DDIM at 20, ancestral at 100, each at n = 2000, and
# ancestral at 1000), the model's own variance and clipping, one JSON per cell in
# out/eval/NAME-SAMPLER-STEPS-nN.json (a cell already there is kept: the script resumes), then
# the Markdown table of scripts/eval-table.py.
#   scripts/shipped-eval.sh www/models/mnist                      the four default cells
#   scripts/shipped-eval.sh www/models/mnist ancestral:1000:500   only these cells
#   TABLE_ONLY=1 scripts/shipped-eval.sh MODEL [CELLS]            only the table
#   SEED=78 scripts/shipped-eval.sh MODEL [CELLS]                 another seed (files NAME-...-s78.json)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/shipped-eval.sh MODEL_DIR [SAMPLER:STEPS:N ...]}
shift
cells=("$@")
(( ${#cells[@]} )) || cells=(dpm-solver2m:10:2000 ddim:20:2000 ancestral:100:2000 ancestral:1000:2000)
name=$(basename "$model")
cli=${CLI:-target/release/native-cli}
seed=${SEED:-77}
suffix=""; [[ $seed == 77 ]] || suffix="-s$seed"
mkdir -p out/eval
[[ -n ${TABLE_ONLY:-} || -n ${CLI:-} ]] || cargo build --locked --release -p native-cli
rows=()
for cell in "${cells[@]}"; do
  IFS=: read -r sampler steps n <<<"$cell"
  file=out/eval/$name-$sampler-$steps-n$n$suffix.json
  if [[ -z ${TABLE_ONLY:-} && ! -s $file ]]; then
    "$cli" eval --model "$model" --sampler "$sampler" --steps "$steps" --n "$n" --seed "$seed" --json > "$file.tmp"
    mv "$file.tmp" "$file"
  fi
  rows+=("$name|$sampler $steps${suffix:+ (seed $seed)}=$file")
done
python3 scripts/eval-table.py "${rows[@]}"
