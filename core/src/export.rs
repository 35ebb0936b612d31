//! Exported models: what `native-cli export` writes and the web page loads.
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

use crate::data::DatasetKind;
use crate::model::ScoreModel;
use crate::nn::{Mlp, NnError, UNet, load_burnpack_bytes};
use crate::param::Parameterization;
use crate::sampler::Variance;
use crate::sde::{Sde, SdeConfig};
use crate::train::{Dataset, Network, RunConfig};
use burn::module::Module;
use burn::store::{BurnpackStore, FloatCastAdapter, ModuleSnapshot};
use burn::tensor::{DType, Device};
use serde::{Deserialize, Serialize};
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::sync::Arc;

/// Version of the export format ([`ModelCard::format`]); another version is refused.
pub const FORMAT_VERSION: u32 = 1;
/// The card's file name inside an export directory.
pub const MODEL_FILE: &str = "model.json";
/// The weights' file name inside an export directory.
pub const WEIGHTS_FILE: &str = "weights.bpk";
/// Side of the images of every image data set here (MNIST and Fashion-MNIST are 28x28).
pub const IMAGE_SIDE: usize = 28;

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

/// Precision of the stored weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WeightsDType {
    /// 32-bit floats (as trained).
    #[default]
    F32,
    /// 16-bit floats (half the size; cast back to f32 on load).
    F16,
}

impl WeightsDType {
    /// The name in `model.json`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        }
    }

    fn burn(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
        }
    }
}

/// `model.json` of an export directory (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// Short name of the model (the directory name under `www/models/`).
    pub name: String,
    /// The data set it was trained on (`mnist`, `fashion-mnist` or a 2-D toy name).
    pub dataset: Dataset,
    /// The network, as in a run's `config.json`.
    pub network: Network,
    /// The forward SDE.
    pub sde: SdeConfig,
    /// The reverse-process variance (as the run's `variance`).
    #[serde(default)]
    pub variance: Variance,
    /// The weights' file name, relative to the directory (a plain name, no `/`).
    pub weights: String,
    /// Precision of the weights file.
    pub dtype: WeightsDType,
    /// SHA-256 of the weights file ([`sha256_hex`]), checked when they are loaded; `None` in
    /// cards written before it existed and in a training run's card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// Shape of one data point: `[channels, height, width]` for images, `[dim]` otherwise.
    pub shape: Vec<usize>,
    /// The range `[lo, hi]` of the data's values, which samplers clip the predicted `x0` to
    /// by default ([`crate::sampler::clip`]); absent: the data set's own ([`data_range`]:
    /// `[-1, 1]` for the image data sets, none for the 2-D toys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_range: Option<[f64; 2]>,
    /// Number of stored float parameters.
    pub parameters: usize,
    /// Optimisation steps the weights were trained for.
    pub steps_trained: usize,
    /// The command that trained the model (empty when unknown).
    pub command: String,
}

fn field(file: &str, field: &str, expected: impl Into<String>, found: impl Into<String>) -> ExportError {
    ExportError::Field { file: file.into(), field: field.into(), expected: expected.into(), found: found.into() }
}

/// The card field holding the weights' SHA-256 (in `model.json` and `classifier.json`).
pub const SHA256_FIELD: &str = "weights_sha256";

/// SHA-256 of `bytes` (FIPS 180-4) as 64 lower-case hex digits, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` is written as [`sha256_hex`] writes a hash.
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks that `weights` (the file `weights_name`) hash to `expected`, the
/// [`SHA256_FIELD`] of the card `card_file`.
///
/// # Errors
/// [`ExportError::Field`] naming the card, the field, both hashes and the weights file.
pub fn check_sha256(card_file: &str, expected: &str, weights: &[u8], weights_name: &str) -> Result<(), ExportError> {
    let found = sha256_hex(weights);
    if found == expected {
        return Ok(());
    }
    Err(field(
        card_file,
        SHA256_FIELD,
        format!("{expected} (the SHA-256 of the weights the card was written for)"),
        format!("{found}, the SHA-256 of {weights_name} (the card and the weights come from different exports)"),
    ))
}

/// The range of the values of `dataset`: `[-1, 1]` for the image data sets (pixels scaled
/// from `0..=255`), none for the 2-D toys (unbounded).
pub fn data_range(dataset: Dataset) -> Option<[f64; 2]> {
    match dataset {
        Dataset::Image(_) => Some([-1.0, 1.0]),
        Dataset::Toy(_) => None,
    }
}

/// The shape of one data point of `dataset`.
pub fn data_shape(dataset: Dataset) -> Vec<usize> {
    match dataset {
        Dataset::Image(_) => vec![1, IMAGE_SIDE, IMAGE_SIDE],
        Dataset::Toy(_) => vec![2],
    }
}

impl ModelCard {
    /// The card of a training run's EMA weights (f32, named `name`).
    pub fn from_run(config: &RunConfig, name: &str, parameters: usize, steps_trained: usize, command: &str) -> Self {
        Self {
            format: FORMAT_VERSION,
            name: name.to_string(),
            dataset: config.dataset,
            network: config.network.clone(),
            sde: config.sde.clone(),
            variance: config.variance,
            weights: WEIGHTS_FILE.to_string(),
            dtype: WeightsDType::F32,
            weights_sha256: None,
            shape: data_shape(config.dataset),
            data_range: data_range(config.dataset),
            parameters,
            steps_trained,
            command: command.to_string(),
        }
    }

    /// Parses and checks a `model.json`; errors name `model.json` and the field.
    pub fn from_json(text: &str) -> Result<ModelCard, ExportError> {
        Self::from_json_named(text, MODEL_FILE)
    }

    /// As [`from_json`](Self::from_json), naming the file `file` in errors.
    pub fn from_json_named(text: &str, file: &str) -> Result<ModelCard, ExportError> {
        let invalid = |message: String| ExportError::Invalid { file: file.into(), message };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        match value.get("format") {
            Some(v) if v.as_u64() == Some(FORMAT_VERSION as u64) => {}
            Some(v) => {
                return Err(field(file, "format", format!("version {FORMAT_VERSION}"), format!("{v} (written by another version of scorediff)")));
            }
            None => return Err(field(file, "format", format!("the version number {FORMAT_VERSION}"), "no such field (is this a model.json?)")),
        }
        let card: ModelCard = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        card.validate(file)?;
        Ok(card)
    }

    /// The card as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a model card serialises")
    }

    /// Checks that the parts fit together, naming `file` and the field.
    pub fn validate(&self, file: &str) -> Result<(), ExportError> {
        if self.format != FORMAT_VERSION {
            return Err(field(file, "format", format!("version {FORMAT_VERSION}"), self.format.to_string()));
        }
        if self.name.is_empty() {
            return Err(field(file, "name", "a non-empty name", "\"\""));
        }
        let w = &self.weights;
        if w.is_empty() || w.contains(['/', '\\']) || w == "." || w == ".." {
            return Err(field(file, "weights", "a plain file name inside the model directory", format!("{w:?}")));
        }
        if let Some(h) = self.weights_sha256.as_deref().filter(|h| !is_sha256_hex(h)) {
            return Err(field(file, SHA256_FIELD, "64 lower-case hex digits (a SHA-256)", format!("{h:?}")));
        }
        self.sde.build().map_err(|e| field(file, &format!("sde.{}", e.field), "a valid SDE", e.message))?;
        if let Some([lo, hi]) = self.data_range
            && !(lo.is_finite() && hi.is_finite() && lo < hi)
        {
            return Err(field(file, "data_range", "finite [lo, hi] with lo < hi", format!("[{lo}, {hi}]")));
        }
        let net_err = |e: NnError| ExportError::Invalid { file: file.into(), message: format!("network: {e}") };
        match (&self.dataset, &self.network) {
            (Dataset::Image(_), Network::Unet(u)) => {
                u.validate().map_err(net_err)?;
                if u.learns_variance() != (self.variance == Variance::Learned) {
                    let expected =
                        if u.learns_variance() { "learned (the U-Net outputs 2 x in_channels)" } else { "small or large (the U-Net outputs no variance)" };
                    return Err(field(file, "variance", expected, self.variance.to_string()));
                }
                if self.variance == Variance::Learned && !matches!(self.sde, SdeConfig::Ddpm { .. }) {
                    return Err(field(file, "variance", "small or large for a continuous SDE", "learned"));
                }
                let ok = self.shape.len() == 3 && self.shape[0] == u.in_channels && self.shape[1] > 0 && self.shape[2] > 0;
                if !ok {
                    return Err(field(file, "shape", format!("[{}, height, width] (in_channels of the U-Net)", u.in_channels), format!("{:?}", self.shape)));
                }
            }
            (Dataset::Toy(_), Network::Mlp(m)) => {
                m.validate().map_err(net_err)?;
                if self.shape != [m.dim] {
                    return Err(field(file, "shape", format!("[{}] (dim of the MLP)", m.dim), format!("{:?}", self.shape)));
                }
            }
            (Dataset::Image(_), Network::Mlp(_)) => return Err(field(file, "network.kind", format!("unet for the image dataset {}", self.dataset), "mlp")),
            (Dataset::Toy(_), Network::Unet(_)) => return Err(field(file, "network.kind", format!("mlp for the 2-D dataset {}", self.dataset), "unet")),
        }
        Ok(())
    }

    /// The forward SDE.
    pub fn sde(&self) -> Result<Box<dyn Sde>, ExportError> {
        self.sde.build().map_err(|e| field(MODEL_FILE, &format!("sde.{}", e.field), "a valid SDE", e.message))
    }

    /// The data's range: the card's `data_range`, else the data set's ([`data_range`]).
    pub fn data_range(&self) -> Option<[f64; 2]> {
        self.data_range.or_else(|| data_range(self.dataset))
    }

    /// The image data set, if the model is an image model.
    pub fn image_dataset(&self) -> Option<DatasetKind> {
        match self.dataset {
            Dataset::Image(k) => Some(k),
            Dataset::Toy(_) => None,
        }
    }

    /// Builds the card's network on `device` and loads `weights` (the bytes of
    /// [`weights`](Self::weights), f32 or f16) into it.
    ///
    /// # Errors
    /// [`ExportError::Weights`] when the bytes are not a Burnpack file or hold another
    /// architecture's tensors; [`ExportError::Field`] when their SHA-256 or parameter count
    /// differs from the card's ([`check_sha256`], checked first, when the card has one).
    pub fn load_net(&self, weights: Vec<u8>, device: &Device) -> Result<LoadedNet, ExportError> {
        self.load_net_named(weights, &self.weights, device)
    }

    /// As [`load_net`](Self::load_net), naming the weights `name` in errors.
    pub fn load_net_named(&self, weights: Vec<u8>, name: &str, device: &Device) -> Result<LoadedNet, ExportError> {
        if let Some(expected) = &self.weights_sha256 {
            check_sha256(MODEL_FILE, expected, &weights, name)?;
        }
        let net = match &self.network {
            Network::Unet(c) => LoadedNet::Image(load_burnpack_bytes(c, weights, name, device)?.with_sde(Arc::from(self.sde()?))),
            Network::Mlp(c) => LoadedNet::Point(load_burnpack_bytes(c, weights, name, device)?),
        };
        if self.parameters != 0 && net.num_params() != self.parameters {
            return Err(field(MODEL_FILE, "parameters", format!("{} (the parameters in {name})", net.num_params()), self.parameters.to_string()));
        }
        Ok(net)
    }
}

/// A loaded score network: the U-Net for images or the MLP for points.
#[derive(Debug)]
pub enum LoadedNet {
    /// `[batch, channels, height, width]` data.
    Image(UNet),
    /// `[batch, dim]` data.
    Point(Mlp),
}

impl LoadedNet {
    /// What the network predicts.
    pub fn parameterization(&self) -> Parameterization {
        match self {
            Self::Image(n) => ScoreModel::parameterization(n),
            Self::Point(n) => ScoreModel::parameterization(n),
        }
    }

    /// Shape of one data point: `[in_channels, 28, 28]` ([`IMAGE_SIDE`]; the U-Net itself
    /// runs at any size, the card's `shape` is the authority) or `[dim]`.
    pub fn dim_shape(&self) -> Vec<usize> {
        match self {
            Self::Image(n) => vec![n.config().in_channels, IMAGE_SIDE, IMAGE_SIDE],
            Self::Point(n) => vec![n.config().dim],
        }
    }

    /// Number of values in one data point.
    pub fn dim(&self) -> usize {
        self.dim_shape().iter().product()
    }

    /// Number of stored float parameters.
    pub fn num_params(&self) -> usize {
        match self {
            Self::Image(n) => n.num_params(),
            Self::Point(n) => Module::num_params(n),
        }
    }

    /// The number of classes of a class-conditional U-Net (`None`: unconditional).
    pub fn num_classes(&self) -> Option<usize> {
        match self {
            Self::Image(n) => n.config().num_classes,
            Self::Point(_) => None,
        }
    }

    /// The network with gradients to its weights switched off and dropout inactive
    /// (`Module::freeze`): what an evaluation on an autodiff device (a likelihood) needs.
    pub fn freeze(self) -> Self {
        match self {
            Self::Image(n) => Self::Image(n.freeze()),
            Self::Point(n) => Self::Point(n.freeze()),
        }
    }

    /// The weights as Burnpack bytes in `dtype`.
    pub fn weights_bytes(&self, dtype: WeightsDType) -> Result<Vec<u8>, ExportError> {
        match self {
            Self::Image(n) => burnpack_bytes_as(n, dtype),
            Self::Point(n) => burnpack_bytes_as(n, dtype),
        }
    }
}

/// The module's weights as Burnpack bytes, every float tensor cast to `dtype`.
pub fn burnpack_bytes_as<M: Module>(module: &M, dtype: WeightsDType) -> Result<Vec<u8>, ExportError> {
    if dtype == WeightsDType::F32 {
        return Ok(crate::nn::burnpack_bytes(module)?);
    }
    let format_err =
        |e: burn::store::burn_pack::Error| ExportError::Weights(NnError::Format { file: "<memory>".into(), format: "burnpack", message: e.to_string() });
    let mut store = BurnpackStore::from_bytes(None).with_to_adapter(FloatCastAdapter::to(dtype.burn()));
    module.save_into(&mut store).map_err(format_err)?;
    Ok(store.get_bytes().map_err(format_err)?.to_vec())
}

#[cfg(not(target_arch = "wasm32"))]
fn read(path: &Path) -> Result<Vec<u8>, ExportError> {
    Ok(crate::io::read_file(path)?)
}

#[cfg(not(target_arch = "wasm32"))]
fn read_text(path: &Path) -> Result<String, ExportError> {
    Ok(crate::io::read_text(path)?)
}

/// Whether `dir` looks like an export directory (has `model.json`).
#[cfg(not(target_arch = "wasm32"))]
pub fn is_export_dir(dir: &Path) -> bool {
    dir.join(MODEL_FILE).is_file()
}

/// Whether `dir` looks like a training run directory (has `config.json` and a checkpoint).
#[cfg(not(target_arch = "wasm32"))]
pub fn is_run_dir(dir: &Path) -> bool {
    dir.join("config.json").is_file() && crate::train::checkpoint::latest(dir).is_some()
}

/// A model read from disk but not yet built: its card and the bytes of its weights.
#[derive(Debug, Clone)]
pub struct StoredModel {
    /// The card (for a run directory: built from `config.json`, with `parameters = 0` until
    /// the weights are loaded).
    pub card: ModelCard,
    /// The weights file's bytes (Burnpack, f32 or f16).
    pub weights: Vec<u8>,
    /// The weights file's path, for errors.
    pub weights_name: String,
}

impl StoredModel {
    /// Builds the network on `device` (an autodiff device for likelihoods) with the weights.
    pub fn load(&self, device: &Device) -> Result<LoadedNet, ExportError> {
        self.card.load_net_named(self.weights.clone(), &self.weights_name, device)
    }
}

/// Reads an export directory: `model.json` and the weights file it names.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_dir(dir: &Path) -> Result<StoredModel, ExportError> {
    let card_path = dir.join(MODEL_FILE);
    if !card_path.is_file() {
        return Err(ExportError::NotAModel {
            path: dir.display().to_string(),
            expected: format!("an export directory with {MODEL_FILE}"),
            found: format!("no {MODEL_FILE}"),
        });
    }
    let card = ModelCard::from_json_named(&read_text(&card_path)?, &card_path.display().to_string())?;
    let weights_path = dir.join(&card.weights);
    let weights = read(&weights_path)?;
    Ok(StoredModel { card, weights, weights_name: weights_path.display().to_string() })
}

/// Reads a training run directory: `config.json` and the EMA weights of its latest checkpoint
/// (`checkpoint/ema.bpk`). The card is named after the directory, with the steps from
/// `checkpoint/state.json`, an empty command and `parameters = 0` (unknown until loaded).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_run_dir(run_dir: &Path) -> Result<StoredModel, ExportError> {
    let config_path = run_dir.join("config.json");
    let Some(ckpt) = crate::train::checkpoint::latest(run_dir).filter(|_| config_path.is_file()) else {
        return Err(ExportError::NotAModel {
            path: run_dir.display().to_string(),
            expected: "a training run directory (config.json and checkpoint/)".into(),
            found: if config_path.is_file() { "no checkpoint/ (has training written one yet?)".into() } else { "no config.json".into() },
        });
    };
    let config_file = config_path.display().to_string();
    let config = RunConfig::from_json(&read_text(&config_path)?).map_err(|message| ExportError::Invalid { file: config_file, message })?;
    let state_path = ckpt.join(crate::train::STATE_FILE);
    let state: crate::train::TrainState =
        serde_json::from_str(&read_text(&state_path)?).map_err(|e| ExportError::Invalid { file: state_path.display().to_string(), message: e.to_string() })?;
    let name = run_dir.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "model".into());
    let card = ModelCard::from_run(&config, &name, 0, state.step, "");
    let ema_path = ckpt.join(crate::train::EMA_FILE);
    let weights = read(&ema_path)?;
    Ok(StoredModel { card, weights, weights_name: ema_path.display().to_string() })
}

/// [`read_dir`], then the network loaded on `device`.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_dir(dir: &Path, device: &Device) -> Result<(ModelCard, LoadedNet), ExportError> {
    let stored = read_dir(dir)?;
    let net = stored.load(device)?;
    Ok((stored.card, net))
}

/// [`read_run_dir`], then the network loaded on `device`; the card's `parameters` filled in.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_run_dir(run_dir: &Path, device: &Device) -> Result<(ModelCard, LoadedNet), ExportError> {
    let mut stored = read_run_dir(run_dir)?;
    let net = stored.load(device)?;
    stored.card.parameters = net.num_params();
    Ok((stored.card, net))
}

/// Writes an export directory: `card.weights` (the given bytes) then `model.json`, each
/// atomically ([`crate::io::write_atomic`]); creates `dir`. The card is written with the
/// weights' SHA-256 in `weights_sha256` (whatever `card` held there) and returned as written.
/// When `dir` already holds a model whose weights differ from `weights`, refuses unless `force`.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_dir(dir: &Path, card: &ModelCard, weights: &[u8], force: bool) -> Result<ModelCard, ExportError> {
    let card = ModelCard { weights_sha256: Some(sha256_hex(weights)), ..card.clone() };
    card.validate(MODEL_FILE)?;
    let write_err = |path: &Path, error| ExportError::from(crate::io::FileError::write(path, error));
    let (card_path, weights_path) = (dir.join(MODEL_FILE), dir.join(&card.weights));
    if !force {
        if weights_path.exists() {
            let old = read(&weights_path)?;
            if old != weights {
                return Err(ExportError::Exists { path: dir.display().to_string(), found: format!("{} with other weights", card.weights) });
            }
        } else if card_path.exists() {
            return Err(ExportError::Exists { path: dir.display().to_string(), found: format!("a {MODEL_FILE} for other weights") });
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    crate::io::write_atomic(&weights_path, weights).map_err(|e| write_err(&weights_path, e))?;
    crate::io::write_atomic(&card_path, format!("{}\n", card.to_json()).as_bytes()).map_err(|e| write_err(&card_path, e))?;
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Toy;
    use crate::nn::{MlpConfig, UNetConfig};
    use crate::noise::NoiseSource;
    use crate::test_util::*;

    fn unet_config() -> UNetConfig {
        UNetConfig::new().with_base_channels(8).with_groups(4).with_num_res_blocks(1).with_channel_mult(vec![1, 2])
    }

    fn image_card() -> ModelCard {
        let mut c = RunConfig::preset(Dataset::Image(DatasetKind::Mnist));
        c.network = Network::Unet(unet_config());
        ModelCard::from_run(&c, "mnist", 0, 12, "native-cli train --dataset mnist")
    }

    fn point_card() -> ModelCard {
        let mut c = RunConfig::preset(Dataset::Toy(Toy::TwoMoons));
        c.network = Network::Mlp(MlpConfig::new().with_hidden(16).with_layers(1));
        ModelCard::from_run(&c, "moons", 0, 5, "")
    }

    #[test]
    fn card_json_round_trip() {
        for card in [image_card(), point_card()] {
            let text = card.to_json();
            assert_eq!(ModelCard::from_json(&text).unwrap(), card);
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["format"], 1);
            assert_eq!(v["weights"], "weights.bpk");
            assert_eq!(v["dtype"], "f32");
        }
        let v: serde_json::Value = serde_json::from_str(&image_card().to_json()).unwrap();
        assert_eq!(v["dataset"], "mnist");
        assert_eq!(v["shape"], serde_json::json!([1, 28, 28]));
        assert_eq!(v["network"]["kind"], "unet");
    }

    #[test]
    fn wrong_format_or_fields_name_the_field() {
        let mut v: serde_json::Value = serde_json::from_str(&point_card().to_json()).unwrap();
        v["format"] = 2.into();
        let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("model.json") && e.contains("`format`") && e.contains("expected version 1") && e.contains("found 2"), "{e}");
        v.as_object_mut().unwrap().remove("format");
        let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("`format`"), "{e}");
        let mut v: serde_json::Value = serde_json::from_str(&point_card().to_json()).unwrap();
        v["shape"] = serde_json::json!([3]);
        let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("`shape`") && e.contains("[2]") && e.contains("[3]"), "{e}");
        let mut v: serde_json::Value = serde_json::from_str(&point_card().to_json()).unwrap();
        v["weights"] = "../../etc/passwd".into();
        assert!(ModelCard::from_json(&v.to_string()).unwrap_err().to_string().contains("`weights`"));
        let mut v: serde_json::Value = serde_json::from_str(&point_card().to_json()).unwrap();
        v.as_object_mut().unwrap().remove("sde");
        let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("sde"), "{e}");
        let e = ModelCard::from_json("{ not json").unwrap_err().to_string();
        assert!(e.contains("model.json") && e.contains("not valid JSON"), "{e}");
        // `variance`: absent reads as small (cards written before it existed); it must match
        // whether the U-Net outputs a variance.
        let mut v: serde_json::Value = serde_json::from_str(&image_card().to_json()).unwrap();
        v.as_object_mut().unwrap().remove("variance");
        assert_eq!(ModelCard::from_json(&v.to_string()).unwrap().variance, Variance::Small);
        v["variance"] = "learned-range".into();
        let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("`variance`") && e.contains("outputs no variance") && e.contains("found learned"), "{e}");
        v["network"]["out_channels"] = 2.into();
        assert_eq!(ModelCard::from_json(&v.to_string()).unwrap().variance, Variance::Learned);
    }

    #[test]
    fn weights_for_another_architecture_are_an_error() {
        let dev = device();
        let mlp = point_card();
        let Network::Mlp(mcfg) = &mlp.network else { unreachable!() };
        let bytes = crate::nn::burnpack_bytes(&mcfg.init(&dev)).unwrap();
        let e = image_card().load_net(bytes.clone(), &dev).unwrap_err();
        assert!(matches!(e, ExportError::Weights(NnError::Architecture { .. })), "{e}");
        assert!(e.to_string().contains("weights.bpk"), "{e}");
        // The right architecture loads; a wrong parameter count on the card is named.
        let net = mlp.load_net(bytes.clone(), &dev).unwrap();
        assert_eq!(net.dim_shape(), vec![2]);
        let mut bad = mlp.clone();
        bad.parameters = net.num_params() + 1;
        assert!(bad.load_net(bytes.clone(), &dev).unwrap_err().to_string().contains("`parameters`"));
        let e = mlp.load_net(bytes[..bytes.len() / 2].to_vec(), &dev).unwrap_err();
        assert!(matches!(e, ExportError::Weights(NnError::Format { .. })), "{e}");
    }

    /// f16 storage: half the bytes, f32 modules back, outputs within the rounding of the
    /// weights. Each weight is rounded with relative error <= 2^-11 ~ 4.9e-4; through a few
    /// layers the outputs move by a small multiple of that, far below 1e-2.
    #[test]
    fn f16_round_trip() {
        let dev = device();
        let card = image_card();
        let Network::Unet(cfg) = &card.network else { unreachable!() };
        let net = LoadedNet::Image(cfg.init(&dev));
        let b32 = net.weights_bytes(WeightsDType::F32).unwrap();
        let b16 = net.weights_bytes(WeightsDType::F16).unwrap();
        assert!((b16.len() as f64) < 0.6 * b32.len() as f64, "f16 {} vs f32 {} bytes", b16.len(), b32.len());
        let (LoadedNet::Image(a), LoadedNet::Image(b)) = (card.load_net(b32, &dev).unwrap(), card.load_net(b16, &dev).unwrap()) else { unreachable!() };
        let LoadedNet::Image(orig) = &net else { unreachable!() };
        let x = NoiseSource::new(3).normal([2, 1, 28, 28], &dev);
        let t = [0.3, 0.8];
        let y = orig.forward(x.clone(), &t, None);
        assert_eq!(to_vec(a.forward(x.clone(), &t, None)), to_vec(y.clone()), "f32 round trip is bitwise");
        let y16 = b.forward(x, &t, None);
        assert_eq!(y16.dtype(), DType::F32);
        let (p, q) = (to_vec(y16), to_vec(y));
        let max_abs = q.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = p.iter().zip(&q).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err > 0.0, "f16 rounding should change something");
        assert!(err <= 1e-2 * max_abs.max(1.0), "max error {err} vs scale {max_abs}");
    }

    /// A card of an EDM-preconditioned U-Net loads a network that carries the card's SDE: it
    /// evaluates as the trained one does, and the image card carries the data range.
    #[test]
    fn edm_card_loads_a_network_with_its_sde() {
        let dev = device();
        let mut card = image_card();
        let cfg = unet_config()
            .with_dropout(0.0)
            .with_parameterization(Parameterization::X0)
            .with_preconditioning(Some(crate::precond::Preconditioning::Edm { sigma_data: 0.5 }));
        card.network = Network::Unet(cfg.clone());
        let sde: Arc<dyn Sde> = Arc::from(card.sde().unwrap());
        let orig = cfg.init(&dev).with_sde(sde);
        let bytes = LoadedNet::Image(orig.clone()).weights_bytes(WeightsDType::F32).unwrap();
        let LoadedNet::Image(loaded) = card.load_net(bytes, &dev).unwrap() else { unreachable!() };
        let x = NoiseSource::new(3).normal([2, 1, 28, 28], &dev);
        assert_eq!(to_vec(loaded.forward(x.clone(), &[0.3, 0.8], None)), to_vec(orig.forward(x, &[0.3, 0.8], None)));
        assert_eq!(card.data_range(), Some([-1.0, 1.0]));
        assert_eq!(point_card().data_range(), None);
        let mut bad = card.clone();
        bad.data_range = Some([1.0, -1.0]);
        assert!(bad.validate("model.json").unwrap_err().to_string().contains("data_range"));
    }

    /// The point card with the parameter count of a fresh MLP, its config and its f32 weights.
    fn point_model(dev: &Device) -> (ModelCard, MlpConfig, Vec<u8>) {
        let mut card = point_card();
        let Network::Mlp(cfg) = card.network.clone() else { unreachable!() };
        let net = LoadedNet::Point(cfg.init(dev));
        card.parameters = net.num_params();
        (card, cfg, net.weights_bytes(WeightsDType::F32).unwrap())
    }

    #[test]
    fn export_dir_write_load_and_refuse_overwrite() {
        let dev = device();
        let dir = temp_dir("export").join("moons");
        let (card, cfg, bytes) = point_model(&dev);
        let written = write_dir(&dir, &card, &bytes, false).unwrap();
        assert_eq!(written, ModelCard { weights_sha256: Some(sha256_hex(&bytes)), ..card.clone() });
        assert!(is_export_dir(&dir) && !is_run_dir(&dir));
        let (c2, n2) = load_dir(&dir, &dev).unwrap();
        assert_eq!(c2, written);
        assert_eq!(n2.num_params(), card.parameters);
        // Same weights again: fine. Other weights: refused unless forced.
        write_dir(&dir, &card, &bytes, false).unwrap();
        let other = LoadedNet::Point(cfg.init(&dev)).weights_bytes(WeightsDType::F32).unwrap();
        let e = write_dir(&dir, &card, &other, false).unwrap_err();
        assert!(matches!(e, ExportError::Exists { .. }) && e.to_string().contains("--force"), "{e}");
        write_dir(&dir, &card, &other, true).unwrap();
        let e = load_dir(&dir.join("nope"), &dev).unwrap_err();
        assert!(matches!(e, ExportError::NotAModel { .. }), "{e}");
        let e = load_run_dir(&dir, &dev).unwrap_err();
        assert!(e.to_string().contains("config.json"), "{e}");
        std::fs::remove_dir_all(dir.parent().unwrap()).ok();
    }

    /// `weights_sha256`: the FIPS 180-4 test vectors; written by `write_dir`; weights changed
    /// behind the card's back are refused, naming the card, the field, both hashes and the
    /// weights file; a card without the field (written before it existed) loads unchecked; a
    /// malformed hash is a field error.
    #[test]
    fn weights_sha256_is_written_and_checked() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let dev = device();
        let dir = temp_dir("export-sha256").join("moons");
        let (card, cfg, bytes) = point_model(&dev);
        let hash = sha256_hex(&bytes);
        write_dir(&dir, &card, &bytes, false).unwrap();
        let text = std::fs::read_to_string(dir.join(MODEL_FILE)).unwrap();
        assert!(text.contains(&format!("\"weights_sha256\": \"{hash}\"")), "{text}");
        // Retrained weights without a re-exported card.
        let other = LoadedNet::Point(cfg.init(&dev)).weights_bytes(WeightsDType::F32).unwrap();
        let weights_path = dir.join(WEIGHTS_FILE);
        std::fs::write(&weights_path, &other).unwrap();
        let e = load_dir(&dir, &dev).unwrap_err();
        assert!(matches!(&e, ExportError::Field { field, .. } if field == SHA256_FIELD), "{e}");
        let message = e.to_string();
        let named = [MODEL_FILE.to_string(), format!("`{SHA256_FIELD}`"), hash.clone(), sha256_hex(&other), weights_path.display().to_string()];
        assert!(named.iter().all(|s| message.contains(s.as_str())), "{message}");
        // The same through the bytes API the page uses.
        let stored = ModelCard::from_json(&text).unwrap();
        assert!(matches!(stored.load_net(other.clone(), &dev), Err(ExportError::Field { .. })));
        assert_eq!(stored.load_net(bytes, &dev).unwrap().num_params(), card.parameters);
        // Without the field: loads whatever weights are there.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove(SHA256_FIELD);
        std::fs::write(dir.join(MODEL_FILE), v.to_string()).unwrap();
        let (old, _) = load_dir(&dir, &dev).unwrap();
        assert_eq!(old.weights_sha256, None);
        v[SHA256_FIELD] = hash.to_uppercase().into();
        let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains(&format!("`{SHA256_FIELD}`")) && e.contains("lower-case hex"), "{e}");
        std::fs::remove_dir_all(dir.parent().unwrap()).ok();
    }
}
