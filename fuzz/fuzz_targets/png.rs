#![no_main]
//! Fuzz target: `native-cli`'s PNG reader (`solve`'s inputs and masks).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = scorediff_fuzz::image_io::decode_png(data, "fuzz.png");
});
