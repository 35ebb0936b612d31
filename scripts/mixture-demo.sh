#!/usr/bin/env bash
# Sample the analytic 2-D mixture in examples/ with four samplers, compute the probability-flow
# likelihood of the ODE samples and plot them over the target (out/samplers.svg).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p native-cli
cli=target/release/native-cli
model=examples/mixture-2d.json
mkdir -p out
"$cli" sample --model "$model" --sampler ancestral --steps 100 --n 2000 --seed 0 --out out/ancestral-100.npy
"$cli" sample --model "$model" --sampler pc --steps 100 --n 2000 --seed 0 --out out/pc-100.npy
"$cli" sample --model "$model" --sampler dpm-solver2m --steps 10 --n 2000 --seed 0 --out out/dpm-solver2m-10.npy
"$cli" sample --model "$model" --sampler ode-rk45 --n 2000 --seed 0 --out out/ode-rk45.npy
"$cli" likelihood --model "$model" --data out/ode-rk45.npy
"$cli" plot --reference "$model" --out out/samplers.svg \
  --data out/ancestral-100.npy out/pc-100.npy out/dpm-solver2m-10.npy out/ode-rk45.npy
echo "open $(pwd)/out/samplers.svg"
