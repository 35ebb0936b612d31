#!/usr/bin/env bash
# Issue 17's ablation at equal budget: the shipped MNIST U-Net (base 16, [1, 2, 2]) trained for
# STEPS steps with each objective of examples/ablation/ (L_simple, Min-SNR-5 on eps, v with
# Min-SNR-5, EDM), then each evaluated at n = N by `native-cli eval` with DPM-Solver++(2M) at 10
# steps, DDIM at 20 and ancestral at 100. Resumable: a run already at STEPS is not trained again,
# a stopped one continues with --resume, an evaluation already in out/ablation/ is kept.
#   scripts/ablation.sh [STEPS] [N]        (default: 1500 2000)
#   scripts/ablation.sh train|eval [STEPS] [N]   only one of the two phases
#   scripts/ablation.sh table [STEPS] [N]        only the table of what has been evaluated
set -euo pipefail
cd "$(dirname "$0")/.."
phase=all
[[ "${1:-}" == train || "${1:-}" == eval || "${1:-}" == table ]] && { phase=$1; shift; }
steps=${1:-1500}
n=${2:-2000}
recipes=(l-simple min-snr-eps v-min-snr edm)
cli=target/release/native-cli
mkdir -p runs/ablation out/ablation
[[ $phase == table ]] || cargo build --locked --release -p native-cli
if [[ $phase == all || $phase == train ]]; then
  for r in "${recipes[@]}"; do
    out=runs/ablation/mnist-$r
    if [[ -f $out/config.json ]]; then
      "$cli" train --resume --out "$out" --steps "$steps"
    else
      "$cli" train --config examples/ablation/mnist-$r.json --out "$out" --steps "$steps"
    fi
  done
fi
[[ $phase == train ]] && exit 0
# The fast samplers first, then ancestral: their cells are the cheap ones.
[[ $phase == table ]] || for cell in "dpm-solver2m 10" "ddim 20" "ancestral 100"; do
  for r in "${recipes[@]}"; do
    set -- $cell
    file=out/ablation/mnist-$r-$steps-$1-$2-n$n.json
    [[ -s $file ]] && continue
    "$cli" eval --model runs/ablation/mnist-$r --sampler "$1" --steps "$2" --n "$n" --seed 77 --json > "$file.tmp"
    mv "$file.tmp" "$file"
  done
done
rows=()
for r in "${recipes[@]}"; do
  for cell in "dpm-solver2m 10" "ddim 20" "ancestral 100"; do
    set -- $cell
    rows+=("$r ($steps steps)|$1 $2=out/ablation/mnist-$r-$steps-$1-$2-n$n.json")
  done
done
python3 scripts/eval-table.py "${rows[@]}"
