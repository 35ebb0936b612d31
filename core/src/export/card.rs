//! `model.json`, the card of an exported model: its schema ([`ModelCard`]), the checks that
//! its parts fit together, and the SHA-256 that names its weights (see the
//! [`export` docs](super)).

use super::{ExportError, FORMAT_VERSION, MODEL_FILE, WEIGHTS_FILE, field};
use crate::data::DatasetKind;
use crate::nn::NnError;
use crate::sampler::Variance;
use crate::sde::{Sde, SdeConfig};
use crate::train::{Dataset, Network, RunConfig};
use burn::tensor::DType;
use serde::{Deserialize, Serialize};

/// Precision of the stored weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::Display, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
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
        self.into()
    }

    pub(super) fn burn(self) -> DType {
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
        Dataset::Toy(_) | Dataset::External => None,
    }
}

/// The shape of one data point of `dataset` ([`Dataset::shape`]): what a card written for a
/// run on it holds in `shape`.
pub fn data_shape(dataset: Dataset) -> Vec<usize> {
    dataset.shape()
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
        crate::limits::sde(&self.sde).map_err(|e| field(file, &format!("sde.{}", e.field), e.expected, e.found))?;
        self.sde.build().map_err(|e| field(file, &format!("sde.{}", e.field), "a valid SDE", e.message))?;
        crate::limits::point_shape(&self.shape).map_err(|e| field(file, &e.field, e.expected, e.found))?;
        if let Some([lo, hi]) = self.data_range
            && !(lo.is_finite() && hi.is_finite() && lo < hi)
        {
            return Err(field(file, "data_range", "finite [lo, hi] with lo < hi", format!("[{lo}, {hi}]")));
        }
        let net_err = |e: NnError| ExportError::Invalid { file: file.into(), message: format!("network: {e}") };
        self.network.check_sde(&self.sde).map_err(|message| ExportError::Invalid { file: file.into(), message })?;
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
            (Dataset::External, Network::DiffusersUnet2d(d)) => self.validate_diffusers(file, d)?,
            (Dataset::External, _) => {
                return Err(field(
                    file,
                    "network.kind",
                    "diffusers-unet2d for the dataset external (an imported checkpoint)",
                    if matches!(self.network, Network::Mlp(_)) { "mlp" } else { "unet" },
                ));
            }
            (_, Network::DiffusersUnet2d(_)) => return Err(field(file, "dataset", "external for an imported diffusers-unet2d", self.dataset.to_string())),
        }
        Ok(())
    }

    /// The checks of an imported `UNet2DModel`'s card: a DDPM schedule of the network's
    /// `num_train_timesteps`, a fixed variance and an image shape its sides fit.
    fn validate_diffusers(&self, file: &str, d: &crate::nn::diffusers::DiffusersNetConfig) -> Result<(), ExportError> {
        d.validate().map_err(|e| ExportError::Invalid { file: file.into(), message: format!("network: {e}") })?;
        if !matches!(self.sde, SdeConfig::Ddpm { levels, .. } if levels == d.num_train_timesteps) {
            return Err(field(file, "sde", format!("a ddpm schedule of {} levels (num_train_timesteps)", d.num_train_timesteps), format!("{:?}", self.sde)));
        }
        if self.variance == Variance::Learned {
            return Err(field(file, "variance", "small or large (the network outputs no variance)", "learned"));
        }
        let m = d.unet.side_multiple();
        let ok = matches!(*self.shape, [c, h, w] if c == d.unet.in_channels && h > 0 && w > 0 && h % m == 0 && w % m == 0);
        if !ok {
            return Err(field(file, "shape", format!("[{}, height, width] with sides divisible by {m}", d.unet.in_channels), format!("{:?}", self.shape)));
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
            Dataset::Toy(_) | Dataset::External => None,
        }
    }
}
