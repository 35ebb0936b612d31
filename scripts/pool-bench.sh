#!/usr/bin/env bash
# The page's worker pool at batch 16 on Flex: 1 worker against 2 (tests/e2e/pool-bench.mjs;
# DPM-Solver++(2M), 10 steps, 5 interleaved runs of each after a warm-up, medians). Needs
# www/pkg/ (./run.sh --no-serve) and the e2e's node packages (cd tests/e2e && npm ci).
#   scripts/pool-bench.sh                 as the scheduler has it
#   scripts/pool-bench.sh --autogroup N   the browser's autogroup at nice N (e.g. -10; root): with
#                                         sched_autogroup on, other sessions' builds at nice 10
#                                         otherwise take an equal share of the cores
set -euo pipefail
cd "$(dirname "$0")/../tests/e2e"
if [[ "${1:-}" == "--autogroup" ]]; then export POOL_AUTOGROUP_NICE="${2:?--autogroup needs a nice value}"; fi
exec node pool-bench.mjs
