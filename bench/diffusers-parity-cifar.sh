#!/usr/bin/env bash
# CIFAR-size parity of the diffusers import (issue 21): diffusers builds google/ddpm-cifar10-32's
# UNet2DModel with seeded random weights and its eps at several timesteps
# (bench/diffusers-parity-cifar.py); the Rust import of the saved checkpoint must match within
# 1e-4 relative (the ignored test `cifar_parity` of tests/tests/diffusers_import.rs, which prints
# the parameter count and the error per case). Needs bench/.venv (bench/setup.sh).
# Usage: nice -n 10 bash bench/diffusers-parity-cifar.sh [DIR]   (DIR default: a temporary one)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-$(mktemp -d)/ddpm-cifar10-32-random}
bench/.venv/bin/python bench/diffusers-parity-cifar.py "$dir"
SCOREDIFF_DIFFUSERS_DIR="$dir" cargo test -p scorediff-tests --test diffusers_import cifar_parity -- --ignored --nocapture
