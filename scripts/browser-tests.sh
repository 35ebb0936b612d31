#!/usr/bin/env bash
# The browser tests: the web crate's wasm-bindgen tests in headless Chromium (Flex in wasm and
# WebGPU against the native reference numbers), then the end-to-end test of the page
# (tests/e2e). Installs what is missing: chromium and chromium-driver (apt-get), wasm-pack
# (cargo install --locked), the wasm32 target, node and npm (apt-get), and the e2e's pinned node
# packages (npm ci).
#   scripts/browser-tests.sh            both
#   scripts/browser-tests.sh --unit     the wasm-bindgen tests only
#   scripts/browser-tests.sh --e2e      the end-to-end tests only (builds www/pkg and the release
#                                       native-cli first; before that, the node tests of the
#                                       worker's file cache and the static server): the page
#                                       (e2e.mjs), then an imported diffusers model, page
#                                       against command line (diffusers.mjs)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
export PATH="$HOME/.cargo/bin:$PATH"

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [[ $what != --unit ]]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
if (( ${#missing[@]} )); then
  sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update
  $sudo apt-get install -y "${missing[@]}"
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
command -v wasm-pack >/dev/null || cargo install wasm-pack --locked
. scripts/wasm-env.sh

if [[ $what == all || $what == --unit ]]; then
  # The native reference first: it checks (or writes) web/tests/fixtures/reference.json.
  cargo test --locked -p scorediff-web --test reference
  # webdriver.json (in web/) starts Chromium with --enable-unsafe-webgpu; a software adapter
  # (SwiftShader) takes seconds per U-Net evaluation, hence the timeout.
  (cd web && WASM_BINDGEN_TEST_TIMEOUT=600 \
    wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)" --release -- --locked --test browser)
fi
if [[ $what == all || $what == --e2e ]]; then
  # The worker's model-file cache (www/files.js) and the static server (serve.mjs) under node
  # alone: no build, no browser.
  (cd tests/e2e && node --test files.test.mjs serve.test.mjs)
  ./run.sh --no-serve
  # diffusers.mjs compares the page with the release command line on an imported model.
  cargo build --release -p native-cli --locked
  (cd tests/e2e && npm ci --no-audit --no-fund && node e2e.mjs && node diffusers.mjs)
fi
