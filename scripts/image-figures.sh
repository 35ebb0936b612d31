#!/usr/bin/env bash
# The figures BENCHMARKS.md records for a shipped image model (issue 3): a 4x4 PNG grid per
# sampler at 10, 20, 50, 100 and 1000 steps (docs/samples/NAME/SAMPLER-STEPS.png, seed 0), and
# `native-cli eval` (Frechet distance in the shipped classifier's features against the
# real-data floor, confidence, class entropy) per sampler and step count, printed as markdown
# table rows and kept as JSON lines in out/figures-NAME.jsonl.
#   scripts/image-figures.sh www/models/mnist [N]      N: samples per evaluation (default 256)
# SAMPLERS, STEPS and EVAL_STEPS (space-separated) override the lists below; GRIDS_ONLY=1 draws
# the grids and skips the evaluations (scripts/shipped-eval.sh has issue 17's n = 2000 cells);
# CLI=PATH uses that native-cli instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/image-figures.sh MODEL_DIR [N]}
n=${2:-256}
name=$(basename "$model")
samplers=${SAMPLERS:-ancestral ddim euler-maruyama ode-heun dpm-solver2m}
steps=${STEPS:-10 20 50 100 1000}
eval_steps=${EVAL_STEPS:-10 20 50 100}
[[ -n ${CLI:-} ]] || cargo build --locked --release -p native-cli
cli=${CLI:-target/release/native-cli}
mkdir -p "docs/samples/$name" out
jsonl=out/figures-$name.jsonl
for s in $samplers; do
  for k in $steps; do
    "$cli" sample --model "$model" --sampler "$s" --steps "$k" --n 16 --batch 16 --seed 0 --out "docs/samples/$name/$s-$k.png"
  done
done
[[ -z ${GRIDS_ONLY:-} ]] || exit 0
: > "$jsonl"
echo "| sampler | steps | NFE | Frechet distance | floor | confidence | class entropy (bits) | sampling seconds |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for s in $samplers; do
  for k in $eval_steps; do
    line=$("$cli" eval --model "$model" --sampler "$s" --steps "$k" --n "$n" --batch 64 --seed 1 --json)
    echo "$line" >> "$jsonl"
    python3 -c '
import json, sys
v = json.loads(sys.argv[1]); s = v["sampling"]
print("| %s | %d | %d | %.2f | %.2f | %.3f | %.3f | %.0f |" % (s["sampler"], s["steps"], s["nfe"], v["frechet_distance"],
      v["frechet_distance_floor"], v["confidence"], v["class_entropy_bits"], s["seconds"]))' "$line"
  done
done
