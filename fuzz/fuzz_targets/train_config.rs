#![no_main]
//! Fuzz target: see `scorediff_fuzz::entries::train_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| scorediff_fuzz::entries::train_config(data));
