#!/usr/bin/env bash
# Issue 17's ablation at equal budget: the shipped MNIST U-Net (base 16, [1, 2, 2]) trained for
# STEPS steps with each objective of examples/ablation/ (L_simple, Min-SNR-5 on eps, v with
# Min-SNR-5, EDM), then each evaluated at n = N by `native-cli eval` with DPM-Solver++(2M) at 10
# steps, DDIM at 20 and ancestral at 100. Resumable: a run already at STEPS is not trained again,
# a stopped one continues with --resume, an evaluation already in out/ablation/ is kept.
#   scripts/ablation.sh [STEPS] [N]        (default: 1500 2000)
#   scripts/ablation.sh train|eval [STEPS] [N]   only one of the two phases
set -euo pipefail
cd "$(dirname "$0")/.."
phase=all
[[ "${1:-}" == train || "${1:-}" == eval ]] && { phase=$1; shift; }
steps=${1:-1500}
n=${2:-2000}
recipes=(l-simple min-snr-eps v-min-snr edm)
cargo build --locked --release -p native-cli
cli=target/release/native-cli
mkdir -p runs/ablation out/ablation
if [[ $phase != eval ]]; then
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
for r in "${recipes[@]}"; do
  for cell in "dpm-solver2m 10" "ddim 20" "ancestral 100"; do
    set -- $cell
    file=out/ablation/mnist-$r-$steps-$1-$2-n$n.json
    [[ -s $file ]] && continue
    "$cli" eval --model runs/ablation/mnist-$r --sampler "$1" --steps "$2" --n "$n" --seed 77 --json > "$file.tmp"
    mv "$file.tmp" "$file"
  done
done
python3 - "$steps" "$n" "${recipes[@]}" <<'PY'
import json, sys
steps, n, recipes = sys.argv[1], sys.argv[2], sys.argv[3:]
print(f"| recipe ({steps} steps) | sampler | FD (n = {n}) | floor | FD / floor | failures |")
print("|---|---|---|---|---|---|")
for r in recipes:
    for s, k in (("dpm-solver2m", 10), ("ddim", 20), ("ancestral", 100)):
        d = json.load(open(f"out/ablation/mnist-{r}-{steps}-{s}-{k}-n{n}.json"))
        fail = d.get("failures", {})
        share = fail.get("share") if isinstance(fail, dict) else None
        print(f"| {r} | {s} {k} | {d['frechet_distance']:.2f} | {d['frechet_distance_floor']:.2f} | {d['frechet_distance'] / d['frechet_distance_floor']:.1f}x | {'' if share is None else '%.2f%%' % (100 * share)} |")
PY
