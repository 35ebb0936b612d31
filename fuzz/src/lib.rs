//! The fuzz targets' entry points, one per reader of user or network bytes, shared with the
//! regression tests that replay every input that ever crashed one of them
//! (`tests/tests/fuzz_regressions.rs` includes [`entries`]; PNG's in `native-cli`'s
//! `image_io` tests).

pub mod entries;

/// `native-cli`'s PNG reader, as `solve` reads its inputs and masks.
#[allow(dead_code)]
#[path = "../../native-cli/src/image_io.rs"]
pub mod image_io;

/// `native-cli`'s PNG encoding and decoding, which `image_io` calls.
#[allow(dead_code)]
#[path = "../../native-cli/src/png.rs"]
pub mod png;
