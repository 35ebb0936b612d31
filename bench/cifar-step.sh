#!/usr/bin/env bash
# Issue 21's CIFAR-size sampling step: one network evaluation at batch 16 of google/ddpm-cifar10-32's
# UNet2DModel (its published config, seeded random weights: the hub is unreachable), scorediff's
# import (native-cli bench --model, Flex on the CPU) against diffusers (bench/peer.py --model),
# interleaved per round (bench/cifar-step.py); a markdown table on stdout, the raw JSON under
# target/cifar-step/. Builds what is missing: bench/.venv (bench/setup.sh), the checkpoint
# (bench/diffusers-parity-cifar.py), its import, and the release native-cli.
# Usage: bash bench/cifar-step.sh [--rounds R] [--repeats K] [--batch B] [--checkpoint DIR]
#   (--checkpoint: another diffusers UNet2DModel directory, e.g. tests/data/diffusers-tiny)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="$target/cifar-step"
checkpoint="$out/ddpm-cifar10-32-random"
pass=()
while (($#)); do
  case "$1" in
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --rounds | --repeats | --batch | --warmup | --threads) pass+=("$1" "$2"); shift 2 ;;
    *) echo "bench/cifar-step.sh: unknown argument $1 (expected --rounds, --repeats, --batch, --warmup, --threads, --checkpoint)" >&2; exit 2 ;;
  esac
done
bash bench/setup.sh >&2
cargo build --release --locked -p native-cli >&2
if [ ! -f "$checkpoint/diffusion_pytorch_model.safetensors" ] || [ ! -f "$checkpoint/scheduler_config.json" ]; then
  THREADS="$(nproc)" bench/.venv/bin/python bench/diffusers-parity-cifar.py "$checkpoint" >&2
fi
imported="$out/imported-$(basename "$checkpoint")"
if [ ! -f "$imported/model.json" ] || [ "$checkpoint/diffusion_pytorch_model.safetensors" -nt "$imported/model.json" ]; then
  rm -rf "$imported"
  "$target/release/native-cli" import-diffusers --from "$checkpoint" --out "$imported" >&2
fi
exec bench/.venv/bin/python bench/cifar-step.py --ours "$target/release/native-cli" --imported "$imported" --checkpoint "$checkpoint" --out "$out" "${pass[@]}"
