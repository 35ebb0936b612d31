//! Score networks and their weight files.
//!
//! - [`embedding`]: time embeddings, sinusoidal (Ho et al. 2020; Vaswani et al. 2017) or
//!   Gaussian Fourier features (Tancik et al. 2020; Song et al. 2021), each followed by an MLP.
//! - [`unet`]: a compact DDPM U-Net for images (Ho et al. 2020, appendix B), optionally
//!   class-conditional with classifier-free guidance ([`Guided`], Ho & Salimans 2022).
//! - [`diffusers`]: diffusers' `UNet2DModel` layer for layer, for checkpoints in its format.
//! - [`mlp`]: a residual MLP for low-dimensional data.
//! - [`flops`]: the U-Net's floating-point operations per forward pass (benchmarks' GFLOP/s).
//! - [`conv`]: 2-D convolution, on Flex by the im2col and Winograd kernels of `backend::flex`.
//! - [`fused`]: GroupNorm + SiLU (+ dropout) as one operation, on Flex by `backend::flex`'s
//!   fused kernel with its gradient.
//! - [`classifier`]: a small CNN image classifier, the feature space of `eval`'s Frechet distance.
//!
//! Both networks implement [`crate::model::ScoreModel`] in the parameterization named by their
//! config, so every loss, sampler and likelihood takes them as they are. Their forward passes
//! never detach: on an autodiff device (`device.autodiff()`) gradients reach both the weights
//! (training) and the input (likelihood, sliced score matching). Dropout is active only on an
//! autodiff device while the module's training flag is set; for a deterministic evaluation
//! there (a likelihood), freeze the module first (`Module::freeze`).
//!
//! A trained network is two files: its config as JSON (burn's `Config::save`, or
//! `serde_json`) and its weights in burn's Burnpack format (`.bpk`, [`save_burnpack`] /
//! [`load_burnpack`]; [`load_burnpack_bytes`] for weights already in memory, as in the browser).
//! Loading is strict: every tensor the config's architecture has must be in the file with its
//! shape, and the file must hold no other tensor, so weights of another architecture are an
//! error ([`NnError::Architecture`]), never a silent partial load. [`save_safetensors`] exports
//! the same tensors for other frameworks.

pub mod classifier;
pub mod conv;
pub mod diffusers;
pub mod embedding;
pub mod flops;
pub mod fused;
pub mod mlp;
pub mod unet;

pub use classifier::{Classifier, ClassifierConfig, ClassifierStats};
pub use embedding::{TimeEmbedder, TimeEmbedding};
pub use mlp::{Mlp, MlpConfig};
pub use unet::{Guided, UNet, UNetConfig};

use crate::sde::Sde;
use burn::module::Module;
use burn::store::{ApplyError, ApplyResult, BurnpackStore, FloatCastAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Bytes, DType, Device};
use std::path::Path;
use std::sync::Arc;

/// A network could not be built, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A config field was out of range.
    #[error("invalid network config field `{field}`: {message}")]
    Config {
        /// The field (e.g. `channel_mult[1]`).
        field: String,
        /// Expected vs found.
        message: String,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] crate::io::FileError),
    /// The bytes are not a readable weights file (wrong format, truncated, corrupt).
    #[error("{file} is not a readable {format} weights file: {message}")]
    Format {
        /// The file (or the name given to in-memory bytes).
        file: String,
        /// `burnpack` or `safetensors`.
        format: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The file holds weights for a different architecture than the config describes.
    #[error("{file} does not hold weights for this network config: {message}")]
    Architecture {
        /// The file (or the name given to in-memory bytes).
        file: String,
        /// Expected vs found: shape mismatches, missing and unexpected tensors.
        message: String,
    },
}

/// A config check's error (field, expected, found) as [`NnError::Config`].
impl From<crate::error::ConfigError> for NnError {
    fn from(e: crate::error::ConfigError) -> Self {
        Self::Config { field: e.field, message: format!("expected {}, found {}", e.expected, e.found) }
    }
}

/// A network config that can build its module: what [`load_burnpack`] needs.
pub trait NetworkConfig {
    /// The network.
    type Net: Module;
    /// Validates the config and builds the network with fresh weights on `device`.
    fn build(&self, device: &Device) -> Result<Self::Net, NnError>;
    /// Gives a built network the SDE it is trained and sampled with, for a network whose
    /// evaluation reads the SDE's marginal (a U-Net with EDM preconditioning); others are
    /// returned as they are.
    fn with_sde(&self, net: Self::Net, _sde: &Arc<dyn Sde>) -> Self::Net {
        net
    }
}

impl NetworkConfig for UNetConfig {
    type Net = UNet;
    fn build(&self, device: &Device) -> Result<UNet, NnError> {
        self.validate()?;
        Ok(self.init(device))
    }
    fn with_sde(&self, net: UNet, sde: &Arc<dyn Sde>) -> UNet {
        net.with_sde(sde.clone())
    }
}

impl NetworkConfig for MlpConfig {
    type Net = Mlp;
    fn build(&self, device: &Device) -> Result<Mlp, NnError> {
        self.validate()?;
        Ok(self.init(device))
    }
}

/// The module's weights as Burnpack bytes.
pub fn burnpack_bytes<M: Module>(module: &M) -> Result<Vec<u8>, NnError> {
    let format_err = |e: burn::store::burn_pack::Error| NnError::Format { file: "<memory>".into(), format: "burnpack", message: e.to_string() };
    let mut store = BurnpackStore::from_bytes(None);
    module.save_into(&mut store).map_err(format_err)?;
    Ok(store.get_bytes().map_err(format_err)?.to_vec())
}

/// [`crate::io::write_atomic`] with the error naming the file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    crate::io::write_atomic(path, bytes).map_err(|e| crate::io::FileError::write(path, e).into())
}

/// Saves the module's weights to `path` in the Burnpack format (atomically: a crash leaves
/// either the old file or the new one).
pub fn save_burnpack<M: Module>(module: &M, path: impl AsRef<Path>) -> Result<(), NnError> {
    write_atomic(path.as_ref(), &burnpack_bytes(module)?)
}

/// Exports the module's weights to `path` as safetensors (tensor names are the module paths,
/// e.g. `down.0.blocks.1.conv1.weight`), atomically.
pub fn save_safetensors<M: Module>(module: &M, path: impl AsRef<Path>) -> Result<(), NnError> {
    let path = path.as_ref();
    let format_err =
        |e: burn::store::SafetensorsStoreError| NnError::Format { file: path.display().to_string(), format: "safetensors", message: e.to_string() };
    let mut store = SafetensorsStore::from_bytes(None);
    module.save_into(&mut store).map_err(format_err)?;
    write_atomic(path, &store.get_bytes().map_err(format_err)?)
}

/// Builds the network `config` describes on `device` and loads its weights from the Burnpack
/// file at `path`.
///
/// # Errors
/// [`NnError::File`] if the file cannot be read, [`NnError::Format`] if it is not a complete
/// Burnpack file, [`NnError::Architecture`] if its tensors are not exactly those of the config's
/// network (names and shapes), [`NnError::Config`] if the config is invalid.
pub fn load_burnpack<C: NetworkConfig>(config: &C, path: impl AsRef<Path>, device: &Device) -> Result<C::Net, NnError> {
    let path = path.as_ref();
    let bytes = crate::io::read_file(path)?;
    load_burnpack_bytes(config, bytes, &path.display().to_string(), device)
}

/// As [`load_burnpack`], from bytes in memory (a fetched file in the browser); `name` names
/// them in errors. Float tensors stored in another precision (f16) are cast to f32.
pub fn load_burnpack_bytes<C: NetworkConfig>(config: &C, bytes: Vec<u8>, name: &str, device: &Device) -> Result<C::Net, NnError> {
    let mut net = config.build(device)?;
    // Partial loading and the store's own validation are off so that the full report comes
    // back; `check_applied` then refuses anything but an exact match.
    // Half-precision files (`export --f16`) load back as f32 modules: every float tensor is
    // cast to f32 on the way in (a no-op for f32 files).
    let mut store =
        BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes))).allow_partial(true).validate(false).with_from_adapter(FloatCastAdapter::to(DType::F32));
    let result = net.load_from(&mut store).map_err(|e| NnError::Format { file: name.to_string(), format: "burnpack", message: e.to_string() })?;
    check_applied(&result, name)?;
    Ok(net)
}

/// Up to `max` items, then how many more.
fn list(items: &[String], max: usize) -> String {
    let mut s = items.iter().take(max).map(|x| format!("`{x}`")).collect::<Vec<_>>().join(", ");
    if items.len() > max {
        s.push_str(&format!(" and {} more", items.len() - max));
    }
    s
}

/// Turns a load report into an error unless every tensor matched exactly.
fn check_applied(result: &ApplyResult, file: &str) -> Result<(), NnError> {
    let format_err = |message: String| NnError::Format { file: file.to_string(), format: "burnpack", message };
    let mut shapes = Vec::new();
    for e in &result.errors {
        match e {
            ApplyError::ShapeMismatch { path, expected, found } => {
                shapes.push(format!("`{path}` expected shape {:?}, found {:?}", expected.as_slice(), found.as_slice()))
            }
            ApplyError::DTypeMismatch { path, expected, found } => shapes.push(format!("`{path}` expected dtype {expected:?}, found {found:?}")),
            ApplyError::LoadError { path, message } | ApplyError::AdapterError { path, message } => {
                return Err(format_err(format!("tensor `{path}`: {message}")));
            }
        }
    }
    let missing: Vec<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
    if shapes.is_empty() && missing.is_empty() && result.unused.is_empty() {
        return Ok(());
    }
    let expected = result.applied.len() + result.errors.len() + missing.len();
    let found = result.applied.len() + result.errors.len() + result.unused.len();
    let mut parts = vec![format!("expected {expected} tensors, found {found} ({} matching)", result.applied.len())];
    if !shapes.is_empty() {
        parts.push(format!("{} with another shape: {}", shapes.len(), shapes.iter().take(3).cloned().collect::<Vec<_>>().join("; ")));
    }
    if !missing.is_empty() {
        parts.push(format!("{} missing from the file: {}", missing.len(), list(&missing, 3)));
    }
    if !result.unused.is_empty() {
        parts.push(format!("{} in the file but not in the network: {}", result.unused.len(), list(&result.unused, 3)));
    }
    Err(NnError::Architecture { file: file.to_string(), message: parts.join("; ") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;
    use crate::test_util::*;

    fn tmp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("scorediff-nn-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn small_unet() -> UNetConfig {
        UNetConfig::new()
            .with_base_channels(8)
            .with_groups(4)
            .with_num_res_blocks(1)
            .with_num_classes(Some(3))
            .with_time_embedding(TimeEmbedding::Fourier { scale: 16.0 })
    }

    #[test]
    fn burnpack_round_trip_is_bitwise() {
        let dev = device();
        let dir = tmp_dir("roundtrip");
        let cfg = small_unet();
        let net = cfg.init(&dev);
        let path = dir.join("unet.bpk");
        save_burnpack(&net, &path).unwrap();
        assert!(!dir.join("unet.bpk.tmp").exists());
        // Overwriting an existing file works (atomic rename).
        save_burnpack(&net, &path).unwrap();
        dev.seed(12345); // different fresh weights before the load
        let loaded = load_burnpack(&cfg, &path, &dev).unwrap();
        let x = NoiseSource::new(0).normal([2, 1, 12, 12], &dev);
        let (t, l) = ([0.25, 0.75], [0, 3]);
        let a = to_vec(net.forward(x.clone(), &t, Some(&l)));
        let b = to_vec(loaded.forward(x, &t, Some(&l)));
        assert_eq!(a, b);
        // From bytes, as in the browser.
        let bytes = std::fs::read(&path).unwrap();
        let from_bytes = load_burnpack_bytes(&cfg, bytes, "unet.bpk", &dev).unwrap();
        assert_eq!(from_bytes.num_params(), net.num_params());

        let mcfg = MlpConfig::new().with_hidden(16).with_layers(1);
        let mlp = mcfg.init(&dev);
        let mpath = dir.join("mlp.bpk");
        save_burnpack(&mlp, &mpath).unwrap();
        let mloaded = load_burnpack(&mcfg, &mpath, &dev).unwrap();
        let x = NoiseSource::new(1).normal([3, 2], &dev);
        assert_eq!(to_vec(mlp.forward(x.clone(), &[0.1, 0.5, 0.9])), to_vec(mloaded.forward(x, &[0.1, 0.5, 0.9])));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn another_architecture_is_an_error() {
        let dev = device();
        let dir = tmp_dir("arch");
        let path = dir.join("unet.bpk");
        save_burnpack(&small_unet().init(&dev), &path).unwrap();
        let p = path.display().to_string();

        let e = load_burnpack(&MlpConfig::new(), &path, &dev).unwrap_err();
        let msg = e.to_string();
        println!("{msg}");
        assert!(matches!(e, NnError::Architecture { .. }) && msg.contains(&p) && msg.contains("missing") && msg.contains("not in the network"), "{msg}");

        let e = load_burnpack(&small_unet().with_base_channels(16), &path, &dev).unwrap_err();
        let msg = e.to_string();
        println!("{msg}");
        assert!(matches!(e, NnError::Architecture { .. }) && msg.contains("expected shape"), "{msg}");

        // Same shapes but one more level: the extra tensors are missing.
        let e = load_burnpack(&small_unet().with_channel_mult(vec![1, 2, 2, 2]), &path, &dev).unwrap_err();
        assert!(matches!(e, NnError::Architecture { .. }), "{e}");

        // A subset of the tensors (unconditional net): the class embedding is left over.
        let e = load_burnpack(&small_unet().with_num_classes(None), &path, &dev).unwrap_err();
        assert!(e.to_string().contains("class_emb"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn truncated_or_corrupt_files_are_errors() {
        let dev = device();
        let cfg = small_unet();
        let bytes = burnpack_bytes(&cfg.init(&dev)).unwrap();
        for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
            let e = load_burnpack_bytes(&cfg, bytes[..cut].to_vec(), "cut.bpk", &dev).unwrap_err();
            assert!(matches!(e, NnError::Format { .. }) && e.to_string().contains("cut.bpk"), "{cut}: {e}");
        }
        let e = load_burnpack_bytes(&cfg, b"definitely not a burnpack file".to_vec(), "junk.bpk", &dev).unwrap_err();
        assert!(matches!(e, NnError::Format { .. }), "{e}");
        let e = load_burnpack(&cfg, "/nonexistent/dir/w.bpk", &dev).unwrap_err();
        assert!(matches!(e, NnError::File(crate::io::FileError::Read { .. })) && e.to_string().contains("/nonexistent/dir/w.bpk"), "{e}");
        let e = load_burnpack(&cfg.clone().with_groups(5), "/nonexistent/w.bpk", &dev).unwrap_err();
        assert!(matches!(e, NnError::File(crate::io::FileError::Read { .. })), "{e}");
        let e = load_burnpack_bytes(&cfg.with_groups(5), bytes, "w.bpk", &dev).unwrap_err();
        assert!(matches!(e, NnError::Config { .. }), "{e}");
    }

    #[test]
    fn safetensors_export() {
        let dev = device();
        let dir = tmp_dir("st");
        let path = dir.join("mlp.safetensors");
        let net = MlpConfig::new().with_hidden(8).with_layers(1).init(&dev);
        save_safetensors(&net, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // 8-byte little-endian header length, then a JSON header naming the tensors.
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        assert!(header.contains("input.weight") && header.contains("time.freqs"), "{header}");
        std::fs::remove_dir_all(dir).ok();
    }
}
