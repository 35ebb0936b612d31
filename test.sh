#!/usr/bin/env bash
# Runs every test of the workspace: unit tests against closed forms, the statistical sampler
# and likelihood tests, and the command-line end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --locked
