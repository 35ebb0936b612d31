#!/usr/bin/env bash
# The browser side-by-side of issue 20: one evaluation of the shipped MNIST U-Net's architecture
# in headless Chromium, onnxruntime-web (wasm EP at 1 and N threads, webgpu EP) against ours
# (Flex-wasm with 1 and N workers, WebGPU), interleaved, medians after a warm-up round; prints
# the markdown table of BENCHMARKS.md and writes the raw samples to target/browser-bench/.
# A benchmark, not a test: CI does not run it.
#   scripts/browser-bench.sh [bench.mjs options: --rounds 5 --gpu-rounds 2 --reps 3
#                             --batches 1,8,64 --workers N --alt-pkg DIR --alt-label TEXT]
# Makes what is missing: bench/.venv (bench/setup.sh) and the ONNX export
# (bench/onnx-export.py), bench/browser/node_modules (npm ci: onnxruntime-web and playwright-core,
# pinned in bench/browser/package.json), and www/pkg (./run.sh --no-serve) when it has no
# BenchModel. Set REBUILD=1 to rebuild www/pkg anyway. Environment: CHROMIUM (/usr/bin/chromium);
# BENCH_AUTOGROUP_NICE=-10 raises the browser's autogroup (root; with sched_autogroup on, other
# sessions' niced jobs otherwise take an equal share of the cores each).
set -euo pipefail
cd "$(dirname "$0")/.."
onnx=target/browser-bench/unet-mnist.onnx
if [[ ! -f $onnx || www/models/mnist/model.json -nt $onnx ]]; then
  [[ -x bench/.venv/bin/python ]] || bench/setup.sh
  bench/.venv/bin/python bench/onnx-export.py --out "$onnx" 2> >(grep -v -i "warning\|^  " >&2)
fi
[[ -d bench/browser/node_modules/onnxruntime-web ]] || (cd bench/browser && npm ci --no-audit --no-fund)
if [[ ${REBUILD:-0} == 1 ]] || ! grep -q BenchModel www/pkg/scorediff_web.js 2>/dev/null; then
  ./run.sh --no-serve
fi
exec node bench/browser/bench.mjs "$@"
