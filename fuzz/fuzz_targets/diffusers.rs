#![no_main]
//! Fuzz target: see `scorediff_fuzz::entries::diffusers`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| scorediff_fuzz::entries::diffusers(data));
