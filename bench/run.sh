#!/usr/bin/env bash
# The speed comparison of BENCHMARKS.md: sets up the peer (bench/setup.sh), builds native-cli in
# release, then runs bench/compare.py (both implementations interleaved on the same inputs and
# threads). Arguments go to compare.py: --threads N, --rounds R, --only train:64,nfe.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/setup.sh
cargo build --release --locked -p native-cli
target="${CARGO_TARGET_DIR:-target}"
exec bench/.venv/bin/python bench/compare.py --ours "$target/release/native-cli" "$@"
