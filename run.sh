#!/usr/bin/env bash
# The main job: build the WebAssembly of the web crate into www/pkg/, serve www/ on a free port
# of localhost and print the address to open. Installs wasm-pack (cargo install --locked) and
# the wasm32 target if missing. Stop the server with Ctrl-C.
#   ./run.sh            build and serve
#   ./run.sh --no-serve build only
set -euo pipefail
cd "$(dirname "$0")"
serve=1
[[ "${1:-}" == "--no-serve" ]] && serve=0

command -v cargo >/dev/null || { echo "error: cargo not found (install the Rust toolchain with rustup)"; exit 1; }
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
export PATH="$HOME/.cargo/bin:$PATH"
command -v wasm-pack >/dev/null || cargo install wasm-pack --locked
command -v python3 >/dev/null || { echo "error: python3 not found (needed to serve www/)"; exit 1; }

. scripts/wasm-env.sh
wasm-pack build web --target web --release --out-dir ../www/pkg --no-typescript
wasm=www/pkg/scorediff_web_bg.wasm
python3 scripts/wasm-strip-names.py "$wasm"
echo "built $wasm: $(du -h "$wasm" | cut -f1) ($(gzip -c "$wasm" | wc -c | awk '{printf "%.1f MB", $1/1e6}') gzipped)"
for m in $(python3 -c 'import json; print(" ".join(m["name"] for m in json.load(open("www/models/index.json"))["image"]))'); do
  [[ -f www/models/$m/model.json ]] || echo "note: www/models/$m/ (listed in www/models/index.json) has no model.json; the page will say so"
done
[[ $serve == 1 ]] || exit 0

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "serving www/ at http://localhost:$port/  (Ctrl-C stops)"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory www
