#!/usr/bin/env bash
# The figures BENCHMARKS.md records for issue 7 (Nichol & Dhariwal's learned variances): for a
# model trained with L_simple (fixed variance) and one trained with L_hybrid (learned range),
# the Frechet distance in the shipped classifier's features after ancestral sampling on 25, 50,
# 100 and 1000 respaced steps with each variance the model supports, and the bits/dim by the
# full variational bound on the first N test digits with each model's own variance.
# Rows print as markdown; the JSON lines go to out/variance-figures.jsonl.
#   scripts/variance-figures.sh SIMPLE_MODEL HYBRID_MODEL [N]   N: samples and test digits (default 64)
# STEPS, SIMPLE_VARIANCES and HYBRID_VARIANCES (space-separated) override the lists below;
# VLB=0 skips the bits/dim.
set -euo pipefail
cd "$(dirname "$0")/.."
simple=${1:?usage: scripts/variance-figures.sh SIMPLE_MODEL HYBRID_MODEL [N]}
hybrid=${2:?usage: scripts/variance-figures.sh SIMPLE_MODEL HYBRID_MODEL [N]}
n=${3:-64}
steps=${STEPS:-25 50 100 1000}
simple_variances=${SIMPLE_VARIANCES:-small large}
hybrid_variances=${HYBRID_VARIANCES:-learned small large}
cargo build --locked --release -p native-cli
cli=target/release/native-cli
mkdir -p out
jsonl=out/variance-figures.jsonl
: > "$jsonl"
echo "| model | variance | steps | Frechet distance | floor | confidence | class entropy (bits) | sampling seconds |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for k in $steps; do
  for pair in $(for v in $simple_variances; do echo "$simple:$v"; done; for v in $hybrid_variances; do echo "$hybrid:$v"; done); do
    model=${pair%:*}
    v=${pair##*:}
    line=$("$cli" eval --model "$model" --sampler ancestral --variance "$v" --steps "$k" --n "$n" --batch "$n" --seed 1 --json)
    echo "$line" >> "$jsonl"
    python3 -c '
import json, sys
v = json.loads(sys.argv[1]); s = v["sampling"]
print("| %s | %s | %d | %.2f | %.2f | %.3f | %.3f | %.0f |" % (sys.argv[2], sys.argv[3], s["steps"], v["frechet_distance"],
      v["frechet_distance_floor"], v["confidence"], v["class_entropy_bits"], s["seconds"]))' "$line" "$(basename "$model")" "$v"
  done
done
if [ "${VLB:-1}" != 0 ]; then
  echo
  echo "| model | variance | bits/dim (VLB) | prior | KL terms | decoder |"
  echo "|---|---|---:|---:|---:|---:|"
  for model in "$simple" "$hybrid"; do
    line=$("$cli" likelihood --model "$model" --data mnist-test --n "$n" --batch "$n" --method vlb --json)
    echo "$line" >> "$jsonl"
    python3 -c '
import json, sys
v = json.loads(sys.argv[1])
print("| %s | %s | %.3f | %s | %s | %s |" % (sys.argv[2], v.get("variance", "?"), v["bits_per_dim"],
      *("%.4f" % v[k] if k in v else "?" for k in ("prior_bits_per_dim", "kl_bits_per_dim", "decoder_bits_per_dim"))))' "$line" "$(basename "$model")"
  done
fi
