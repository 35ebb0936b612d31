#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz + libFuzzer) for SECONDS each (default 600) and
# prints per target: executions, coverage (libFuzzer's final cov: edges and ft: features),
# and the crashes, OOMs and timeouts found. Each target starts from its seed corpus
# (fuzz/corpus/<target>/, real files of the tree), copied to fuzz/work/<target>/ so the tree's
# corpus stays small; crashing inputs land in fuzz/artifacts/<target>/. A crashing input
# becomes a regression test by copying it to tests/data/fuzz-regressions/<target>/ (replayed
# by `cargo test -p scorediff-tests --test fuzz_regressions`, PNGs by native-cli's image_io
# tests), once fixed.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (NICE=19 by default; JOBS=1 target at a time)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER_TARGET="${1:-600}"
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(model_bytes run_dir train_config npy idx png mixture diffusers)
NICE="${NICE:-19}"
RSS_MB="${RSS_MB:-2048}"
command -v cargo-fuzz >/dev/null || { echo "error: cargo-fuzz not found: cargo install cargo-fuzz --locked" >&2; exit 1; }
nice -n "$NICE" cargo +nightly fuzz build -O >/dev/null 2>build.log || { echo "error: cargo fuzz build failed (fuzz/build.log)" >&2; tail -20 build.log >&2; exit 1; }
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- ../core ../native-cli/src . || echo +dirty)"
echo "fuzz: ${SECONDS_PER_TARGET} s per target, commit $commit, rss/malloc limit ${RSS_MB} MB"
printf '%-14s %12s %8s %8s %8s %6s %8s\n' target execs cov ft crashes ooms timeouts
total_bad=0
for t in "${TARGETS[@]}"; do
    work="work/$t"
    mkdir -p "$work" "artifacts/$t"
    cp -n corpus/"$t"/* "$work"/ 2>/dev/null || true
    log="work/$t.log"
    # -fork keeps fuzzing past a crash, so every crash/OOM/timeout is counted; each lands in
    # artifacts/<target>/ (crash-*, oom-*, timeout-*).
    nice -n "$NICE" cargo +nightly fuzz run -O "$t" "$work" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$RSS_MB" -timeout=30 \
        -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || true
    # The last status line (`#N: cov: X ft: Y ...` in -fork mode) carries the executions and
    # the coverage reached.
    last=$(grep -E '^#[0-9]+:? .*cov: [0-9]+' "$log" | tail -1 || true)
    execs=$(grep -oE '^#[0-9]+' <<<"$last" | tr -d '#' || true)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || true)
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || true)
    crashes=$(find "artifacts/$t" -name 'crash-*' | wc -l)
    ooms=$(find "artifacts/$t" -name 'oom-*' | wc -l)
    timeouts=$(find "artifacts/$t" -name 'timeout-*' | wc -l)
    printf '%-14s %12s %8s %8s %8s %6s %8s\n' "$t" "${execs:-0}" "${cov:-0}" "${ft:-0}" "$crashes" "$ooms" "$timeouts"
    total_bad=$((total_bad + crashes + ooms))
done
[[ $total_bad -eq 0 ]] || { echo "crashing inputs under fuzz/artifacts/: add each to tests/data/fuzz-regressions/<target>/ once fixed" >&2; exit 1; }
