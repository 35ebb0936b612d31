#!/usr/bin/env bash
# How far the Frechet distance moves on sample size alone: `native-cli eval --floor-draws K`
# draws K random sets of N real training images (without replacement) and compares each with
# the same N test images that `eval --seed 1` compares model samples with. Prints each draw's
# distance, then their mean, standard deviation, minimum and maximum: a model whose samples
# were as good as real data would land anywhere in that range.
#   scripts/fd-floor-spread.sh [DATASET] [N] [K]   (default: mnist 64 10)
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:-mnist}
n=${2:-64}
k=${3:-10}
cargo build --locked --release -p native-cli
target/release/native-cli eval --dataset "$dataset" --n "$n" --floor-draws "$k" --seed 1
