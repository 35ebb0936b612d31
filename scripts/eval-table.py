#!/usr/bin/env python3
"""Markdown rows of `native-cli eval --json` reports: one row per LABEL=FILE argument (a missing
file is a row that says "not run"). Used by scripts/ablation.sh and scripts/shipped-eval.sh."""
import json
import os
import sys

print("| model | sampler | n | FD | floor | FD / floor | failures | confidence | class entropy (bits) | sampling s / 1000 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for arg in sys.argv[1:]:
    label, path = arg.split("=", 1)
    model, cell = label.split("|", 1)
    if not os.path.exists(path):
        print(f"| {model} | {cell} | | not run | | | | | | |")
        continue
    d = json.load(open(path))
    seconds = d.get("sampling", {}).get("seconds", d.get("seconds", float("nan")))
    per_1000 = 1000 * seconds / d["n"]
    print(f"| {model} | {cell} | {d['n']} | {d['frechet_distance']:.2f} | {d['frechet_distance_floor']:.2f} "
          f"| {d['frechet_distance'] / d['frechet_distance_floor']:.1f}x | {d['failures']} ({100 * d['failure_share']:.2f}%) "
          f"| {d['confidence']:.3f} | {d['class_entropy_bits']:.3f} | {per_1000:.0f} |")
