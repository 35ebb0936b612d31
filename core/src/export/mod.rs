//! Exported models: what `native-cli export` writes and the web page loads.
//!
//! [`card`] is the schema of `model.json` and its checks; [`load`] reads export and run
//! directories, builds the card's network ([`LoadedNet`], in [`crate::model`]) and writes export
//! directories; `diffusers` imports a diffusers `UNet2DModel` checkpoint into an export directory
//! (native only).
//!
//! An export directory (`www/models/<name>/`) holds two files:
//! - `model.json`, a [`ModelCard`]: the format version, the data set, the network config (the
//!   `network` object of a run's `config.json`, [`Network`]), the forward SDE ([`SdeConfig`]),
//!   the reverse-process variance ([`Variance`]; `small` when absent, as in cards written before
//!   it existed), the weights file name, precision and SHA-256, the shape of one data point,
//!   the parameter count, the training steps and the command that trained it;
//! - `weights.bpk`, the EMA weights of the run (Polyak averaging, as sampled from in Ho et al.
//!   2020 and Song et al. 2021) in burn's Burnpack format, in f32 or f16.
//!
//! The card's `weights_sha256` (FIPS 180-4 SHA-256 of the weights file, lower-case hex) names
//! the weights by their content: [`write_dir`] always writes it, loading checks it
//! ([`check_sha256`]; a card without it, written before it existed, loads unchecked), and the
//! page keys its cached copy of the weights by it, so new weights reach a browser that cached
//! the old ones.
//!
//! f16 halves the file; loading always gives f32 modules back (every float tensor is cast on
//! the way in, see [`crate::nn::load_burnpack_bytes`]), so the network then computes in f32 with
//! weights rounded to f16's 11-bit significand (relative error at most `2^-11` per weight).
//!
//! A training run directory (`native-cli train`) holds the same information in `config.json`
//! ([`RunConfig`]) and `checkpoint/ema.bpk`; [`load_run_dir`] reads it into the same
//! [`ModelCard`] + [`LoadedNet`] pair as [`load_dir`] does for an export directory.

pub mod card;
#[cfg(not(target_arch = "wasm32"))]
pub mod diffusers;
pub mod load;

pub use crate::model::LoadedNet;
pub use card::{ModelCard, SHA256_FIELD, WeightsDType, check_sha256, data_range, data_shape, sha256_hex};
pub use load::{StoredModel, burnpack_bytes_as};
#[cfg(not(target_arch = "wasm32"))]
pub use load::{is_export_dir, is_run_dir, load_dir, load_run_dir, read_dir, read_run_dir, run_card, write_dir};

use crate::nn::NnError;

/// Version of the export format ([`ModelCard::format`]); another version is refused.
pub const FORMAT_VERSION: u32 = 1;
/// The card's file name inside an export directory.
pub const MODEL_FILE: &str = "model.json";
/// The weights' file name inside an export directory.
pub const WEIGHTS_FILE: &str = "weights.bpk";

/// An exported model could not be read, checked or written. Messages name the file or field
/// and say what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] crate::io::FileError),
    /// A JSON file is not valid JSON or misses / mistypes a field (serde's message names it).
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A field holds a value this version cannot use.
    #[error("{file}: field `{field}`: expected {expected}, found {found}")]
    Field {
        /// The file.
        file: String,
        /// The field (e.g. `format`, `shape`).
        field: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The path is neither a training run directory nor an export directory.
    #[error("{path}: expected {expected}, found {found}")]
    NotAModel {
        /// The path.
        path: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The weights do not load into the card's network (corrupt file, another architecture).
    #[error(transparent)]
    Weights(#[from] NnError),
    /// The export directory already holds another model.
    #[error("{path} already holds a different model ({found}); pass --force to overwrite it")]
    Exists {
        /// The directory.
        path: String,
        /// What is there.
        found: String,
    },
}

/// [`ExportError::Field`] for `field` of `file`.
fn field(file: &str, field: &str, expected: impl Into<String>, found: impl Into<String>) -> ExportError {
    ExportError::Field { file: file.into(), field: field.into(), expected: expected.into(), found: found.into() }
}

#[cfg(test)]
mod tests;
