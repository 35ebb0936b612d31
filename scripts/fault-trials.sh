#!/usr/bin/env bash
# Training under faults (issue 22), on a short run of a tiny network (the two-moons MLP,
# 32 wide, 300 steps of 64 points, a checkpoint every 20 steps: a few seconds on Flex):
#  (a) N (default 20) `kill -9` at random moments, each followed by `--resume` (repeated until
#      the run completes): the final weights must be bit-identical to an uninterrupted run's.
#      Compared: the sha256 of every tensor of the exported ema.safetensors (name, dtype, shape,
#      bytes), of log.jsonl's losses (every logged step) and of checkpoint/state.json. Not the
#      files' own bytes: burn stores a random `param_id` per tensor in each Burnpack file (and
#      the safetensors header differs too), so two uninterrupted runs write different bytes for
#      bit-identical weights;
#  (b) a full disk while a checkpoint is written: the run directory on a small tmpfs (mounted
#      here, as root), so the second checkpoint hits ENOSPC; the error must name the file and
#      "No space left on device", and the last good checkpoint must load (`--resume` of a copy
#      on a roomy disk completes the run, bit-identical to the uninterrupted one);
#  (c) a non-finite loss injected at a chosen step (`native-cli train --inject-nan-at STEP`, a
#      hidden debugging flag): training must stop naming the step, and the checkpoint of the
#      last multiple of checkpoint_every before it must be kept intact.
# Prints a table (trial, result) and exits non-zero if any trial failed.
#
#   scripts/fault-trials.sh [N]        (CLI=path/to/native-cli; NICE=19 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-20}"
NICE="${NICE:-19}"
CLI="${CLI:-target/debug/native-cli}"
if [[ ! -x "$CLI" ]]; then nice -n 10 cargo build -p native-cli >/dev/null; fi
CLI="$(realpath "$CLI")"
work="$(mktemp -d /tmp/scorediff-faults.XXXXXX)"
trap 'mountpoint -q "$work/disk" 2>/dev/null && umount "$work/disk"; rm -rf "$work"' EXIT
STEPS=300
config="$work/config.json"
cat >"$config" <<JSON
{"format": 1, "dataset": "two-moons",
 "network": {"kind": "mlp", "dim": 2, "hidden": 32, "layers": 2, "time_embedding": {"kind": "fourier", "scale": 16.0}, "parameterization": "eps"},
 "sde": {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0}, "loss": {"kind": "dsm"},
 "optim": {"lr": 0.001, "warmup": 10}, "batch_size": 64, "steps": $STEPS, "seed": 5, "checkpoint_every": 20}
JSON
train() { nice -n "$NICE" "$CLI" train "$@"; }
# The digest of a finished run, in three parts so that a difference says where it is:
# w (its EMA weights' tensors), l (its logged losses, every step) and s (its loop state).
digest() {
    python3 - "$1" <<'PY' 2>/dev/null || echo missing
import hashlib, json, struct, sys
run = sys.argv[1]
w, l, s = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
b = open(f"{run}/ema.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
header, data = json.loads(b[8:8 + n]), b[8 + n:]
for k in sorted(k for k in header if k != "__metadata__"):
    t = header[k]
    a, e = t["data_offsets"]
    w.update(f"{k} {t['dtype']} {t['shape']}\n".encode() + data[a:e])
for line in open(f"{run}/log.jsonl"):
    v = json.loads(line)
    l.update(f"{v['step']} {v['loss']!r} {v['ema_loss']!r}\n".encode())
s.update(open(f"{run}/checkpoint/state.json", "rb").read())
print(f"w:{w.hexdigest()[:8]} l:{l.hexdigest()[:8]} s:{s.hexdigest()[:8]}")
PY
}
# Failed runs are kept here for a look (KEEP=DIR), with the reference.
KEEP="${KEEP:-}"
failures=0
row() {
    printf '%-22s %-6s %s\n' "$1" "$2" "$3"
    [[ "$2" == ok ]] || failures=$((failures + 1))
}

train --config "$config" --out "$work/reference" >/dev/null 2>&1
want=$(digest "$work/reference")
# The kills are spread over a warm run's duration (the first run also pays for cold caches, and
# kills timed on it would land after the end about half the time).
start=$(date +%s.%N)
train --config "$config" --out "$work/timed" >/dev/null 2>&1
seconds=$(echo "$(date +%s.%N) - $start" | bc)
[[ "$(digest "$work/timed")" == "$want" ]] || { echo "error: two uninterrupted runs differ" >&2; exit 1; }
printf "reference: %s steps in %.2f s (warm run), digest %s\n" "$STEPS" "$seconds" "$want"
printf '%-22s %-6s %s\n' trial result detail

# (a) kill -9 at a random moment, then --resume until done.
for i in $(seq 1 "$N"); do
    run="$work/kill-$i"
    at=$(awk -v s="$seconds" -v r="$RANDOM" 'BEGIN { printf "%.3f", s * (0.05 + 0.9 * r / 32767) }')
    # Not through train(): $! must be native-cli itself (nice execs it), not a subshell whose
    # kill would leave the training running beside its own resume.
    nice -n "$NICE" "$CLI" train --config "$config" --out "$run" >/dev/null 2>&1 &
    pid=$!
    sleep "$at"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    killed_at=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$run/checkpoint/state.json" 2>/dev/null || echo none)
    resumes=0
    while true; do
        if [[ ! -d "$run/checkpoint" && ! -d "$run/checkpoint.old" ]]; then
            # Killed before the first checkpoint: nothing to resume; a fresh start is the resume.
            rm -rf "$run"
            train --config "$config" --out "$run" >/dev/null 2>&1 && break
        elif train --resume --out "$run" >/dev/null 2>"$run.err"; then
            break
        fi
        resumes=$((resumes + 1))
        [[ $resumes -lt 3 ]] || break
    done
    got=$(digest "$run")
    if [[ "$got" == "$want" ]]; then
        row "kill-9 #$i" ok "killed at ${at} s (checkpoint step $killed_at), resumed: digest $got"
    else
        row "kill-9 #$i" FAIL "killed at ${at} s (checkpoint step $killed_at): digest $got, expected $want; $(tail -1 "$run.err" 2>/dev/null)"
        if [[ -n $KEEP ]]; then mkdir -p "$KEEP" && cp -r "$run" "$work/reference" "$KEEP/"; fi
    fi
done

# (b) A full disk: a tmpfs with room for the config, the log and one checkpoint only.
disk="$work/disk"
mkdir -p "$disk"
one=$(du -sk "$work/reference/checkpoint" | cut -f1)
if mount -t tmpfs -o size=$((one + 8))k tmpfs "$disk" 2>/dev/null; then
    err=$(train --config "$config" --out "$disk/run" 2>&1 >/dev/null || true)
    step=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$disk/run/checkpoint/state.json" 2>/dev/null || echo none)
    cp -r "$disk/run" "$work/after-full"
    rm -rf "$work/after-full/checkpoint.new"
    if grep -q "No space left on device" <<<"$err" && grep -q "$disk" <<<"$err" && [[ "$step" != none ]] \
        && train --resume --out "$work/after-full" >/dev/null 2>&1 && [[ "$(digest "$work/after-full")" == "$want" ]]; then
        row "full disk (tmpfs $((one + 8))k)" ok "stopped with: $(tr '\n' ' ' <<<"$err" | cut -c1-160); checkpoint step $step loads and resumes to $want"
    else
        row "full disk" FAIL "error: $(tr '\n' ' ' <<<"$err" | cut -c1-200); checkpoint step $step"
    fi
    umount "$disk"
else
    row "full disk" SKIP "cannot mount a tmpfs (needs root)"
fi

# (c) A NaN loss injected at step 150 (0-based: the 151st step).
run="$work/nan"
err=$(train --config "$config" --out "$run" --inject-nan-at 150 2>&1 >/dev/null || true)
step=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$run/checkpoint/state.json" 2>/dev/null || echo none)
if grep -q "at step 150" <<<"$err" && [[ "$step" == 140 ]] && train --resume --out "$run" >/dev/null 2>&1 && [[ "$(digest "$run")" == "$want" ]]; then
    row "NaN at step 150" ok "stopped with: $(tr '\n' ' ' <<<"$err" | cut -c1-160); checkpoint step 140 kept, resumes to $want"
else
    row "NaN at step 150" FAIL "error: $(tr '\n' ' ' <<<"$err" | cut -c1-200); checkpoint step $step"
fi
echo "$failures failed"
[[ $failures -eq 0 ]]
