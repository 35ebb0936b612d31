# Sourced by run.sh and scripts/browser-tests.sh: the release profile the wasm is built with
# (size over speed: opt-level z, fat LTO, one codegen unit), set here rather than in Cargo.toml
# so native release builds keep their own settings. Every wasm build uses the same values, so
# the wasm dependencies are compiled once into target/wasm32-unknown-unknown/.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
