# Sourced by run.sh and scripts/browser-tests.sh: the release profile the wasm is built with
# (opt-level 3, fat LTO, one codegen unit), set here rather than in Cargo.toml so native release
# builds keep their own settings. Every wasm build uses the same values, so the wasm
# dependencies are compiled once into target/wasm32-unknown-unknown/. Opt-level 3 rather than
# z: one U-Net evaluation in the page takes 0.72-0.77x onnxruntime-web's time at batch 8 and 64
# instead of 1.8-1.9x, for 21.8 MB (4.4 MB gzipped) of wasm instead of 13.8 MB (2.7 MB)
# (BENCHMARKS.md, the browser section: at z the kernels' iterator adapters stay calls).
export CARGO_PROFILE_RELEASE_OPT_LEVEL=3
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
