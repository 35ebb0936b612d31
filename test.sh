#!/usr/bin/env bash
# Runs every test: the workspace's Rust tests (unit tests against closed forms, the statistical
# sampler and likelihood tests, the command-line end-to-end tests), then the browser tests
# (scripts/browser-tests.sh: the web crate's tests in headless Chromium on WebGPU and on Flex in
# wasm, and the end-to-end test of the page). `./test.sh --no-browser` skips the browser tests.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --locked
[[ "${1:-}" == "--no-browser" ]] || scripts/browser-tests.sh
