//! Importing a diffusers checkpoint (`UNet2DModel` + a DDPM or DDIM scheduler) into an export
//! directory's [`ModelCard`] and Burnpack weights, so that every sampler of the core and the page
//! run it (issue 21).
//!
//! A checkpoint directory holds, at its top or under `unet/` and `scheduler/` (a pipeline's
//! layout, as `save_pretrained` of a `DDPMPipeline` writes it):
//! - `config.json`, diffusers' `UNet2DModel` config ([`UNet2DConfig`]);
//! - `diffusion_pytorch_model.safetensors`, its weights under diffusers' names;
//! - `scheduler_config.json`, a `DDPMScheduler` or `DDIMScheduler` ([`SchedulerConfig`]).
//!
//! The scheduler becomes the card's forward process and sampling defaults:
//! - `beta_schedule` with `num_train_timesteps = N`, `beta_start`, `beta_end`: the discrete VP
//!   schedule ([`crate::sde::DiscreteVpSde`]) with the same `alphas_cumprod` at every level
//!   (`squaredcos_cap_v2` is Nichol & Dhariwal's cosine, the core's `cosine`; `linear` must be Ho
//!   et al.'s `1e-4 .. 0.02` scaled by `1000 / N`, the core's `linear`; `scaled_linear` must be
//!   latent diffusion's `8.5e-4 .. 0.012` (in `sqrt(beta)`) scaled the same way, the core's
//!   `scaled-linear`; other betas are refused by name, naming the values the core has);
//! - `prediction_type` (`epsilon`, `v_prediction`, `sample`) the network's [`Parameterization`];
//! - `variance_type` (`fixed_small`, `fixed_large`, or their `_log` forms, the same variances) the
//!   card's [`Variance`];
//! - `clip_sample` with `clip_sample_range = r` the card's `data_range = [-r, r]`, to which samplers
//!   clip the predicted `x0` (none when `clip_sample` is false);
//! - `rescale_betas_zero_snr` the schedule's zero-terminal-SNR rescaling (Lin et al. 2024,
//!   [`crate::sde::DiscreteVpSde::with_zero_terminal_snr`]), refused with `epsilon` prediction.
//!
//! Inference-time keys that the core's samplers replace by their own grid and options
//! (`timestep_spacing`, `steps_offset`, `set_alpha_to_one`, and `dynamic_thresholding_ratio`,
//! `sample_max_value` while `thresholding` is false) are accepted and ignored; metadata keys
//! (`_class_name`, `_diffusers_version`) are accepted. Any other key, an unknown value, or an
//! option the core does not implement (`thresholding`, `trained_betas`, learned variances) is an
//! error naming it.

use super::{ExportError, FORMAT_VERSION, ModelCard, WEIGHTS_FILE, WeightsDType};
use crate::nn::diffusers::{DiffusersNetConfig, UNet2DConfig};
use crate::param::Parameterization;
use crate::sampler::Variance;
use crate::sde::{ScheduleKind, SdeConfig};
use crate::train::{Dataset, Network};
use burn::tensor::Device;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The weights' file name in a diffusers checkpoint.
pub const SAFETENSORS_FILE: &str = "diffusion_pytorch_model.safetensors";
/// The scheduler's file name in a diffusers checkpoint.
pub const SCHEDULER_FILE: &str = "scheduler_config.json";

/// `beta_schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// `linspace(beta_start, beta_end, N)`.
    Linear,
    /// `linspace(sqrt(beta_start), sqrt(beta_end), N)^2`.
    ScaledLinear,
    /// Nichol & Dhariwal 2021, eq. 17, betas capped at 0.999.
    SquaredcosCapV2,
}

/// `prediction_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The noise.
    Epsilon,
    /// `v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0` (Salimans & Ho 2022).
    VPrediction,
    /// `x0`.
    Sample,
}

/// `variance_type` (the fixed ones: a learned variance needs twice the output channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VarianceType {
    /// The posterior variance `beta~_t` (Ho et al. 2020, section 3.2).
    FixedSmall,
    /// The same, computed in logs.
    FixedSmallLog,
    /// `beta_t`.
    FixedLarge,
    /// The same, computed in logs.
    FixedLargeLog,
}

fn d_timesteps() -> usize {
    1000
}
fn d_beta_start() -> f64 {
    1e-4
}
fn d_beta_end() -> f64 {
    0.02
}
fn d_linear() -> BetaSchedule {
    BetaSchedule::Linear
}
fn d_true() -> bool {
    true
}
fn d_one() -> f64 {
    1.0
}
fn d_eps() -> PredictionType {
    PredictionType::Epsilon
}

/// A `DDPMScheduler` / `DDIMScheduler` `scheduler_config.json` (diffusers 0.30's keys and
/// defaults; see the [module docs](self) for what is used and what is refused).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Metadata: `DDPMScheduler` or `DDIMScheduler` if present.
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
    /// Metadata (ignored).
    #[serde(rename = "_diffusers_version", default)]
    pub diffusers_version: Option<String>,
    /// `N`, the training schedule's length.
    #[serde(default = "d_timesteps")]
    pub num_train_timesteps: usize,
    /// The first beta of `linear` and `scaled_linear`.
    #[serde(default = "d_beta_start")]
    pub beta_start: f64,
    /// The last beta of `linear` and `scaled_linear`.
    #[serde(default = "d_beta_end")]
    pub beta_end: f64,
    /// How the betas are spaced.
    #[serde(default = "d_linear")]
    pub beta_schedule: BetaSchedule,
    /// Must be `null`.
    #[serde(default)]
    pub trained_betas: Option<Vec<f64>>,
    /// `DDPMScheduler`'s variance (absent from `DDIMScheduler`: `fixed_small`).
    #[serde(default)]
    pub variance_type: Option<VarianceType>,
    /// Whether the predicted `x0` is clipped to `[-clip_sample_range, clip_sample_range]`.
    #[serde(default = "d_true")]
    pub clip_sample: bool,
    /// The clipping range.
    #[serde(default = "d_one")]
    pub clip_sample_range: f64,
    /// What the network predicts.
    #[serde(default = "d_eps")]
    pub prediction_type: PredictionType,
    /// Must be false (dynamic thresholding is not implemented).
    #[serde(default)]
    pub thresholding: bool,
    /// Used only with `thresholding` (ignored).
    #[serde(default)]
    pub dynamic_thresholding_ratio: Option<f64>,
    /// Used only with `thresholding` (ignored).
    #[serde(default)]
    pub sample_max_value: Option<f64>,
    /// Rescale the betas to a zero terminal SNR (v or sample prediction only).
    #[serde(default)]
    pub rescale_betas_zero_snr: bool,
    /// Inference-time timestep spacing (ignored: the sampler's grid decides).
    #[serde(default)]
    pub timestep_spacing: Option<String>,
    /// Inference-time timestep offset (ignored).
    #[serde(default)]
    pub steps_offset: Option<usize>,
    /// DDIM's final `alpha_bar` at inference (ignored).
    #[serde(default)]
    pub set_alpha_to_one: Option<bool>,
}

impl SchedulerConfig {
    /// Parses a `scheduler_config.json`, naming `file` in errors.
    ///
    /// # Errors
    /// [`ExportError::Invalid`] with serde's message (it names an unknown key or value and the
    /// accepted ones), [`ExportError::Field`] for an option the core does not implement.
    pub fn from_json(text: &str, file: &str) -> Result<Self, ExportError> {
        let c: Self = serde_json::from_str(text).map_err(|e| ExportError::Invalid { file: file.into(), message: e.to_string() })?;
        let f = |field: &str, expected: &str, found: String| super::field(file, field, expected, found);
        if let Some(n) = c.class_name.as_deref().filter(|n| !matches!(*n, "DDPMScheduler" | "DDIMScheduler")) {
            return Err(f("_class_name", "DDPMScheduler or DDIMScheduler", format!("{n:?}")));
        }
        if c.thresholding {
            return Err(f("thresholding", "false (dynamic thresholding is not implemented)", "true".into()));
        }
        if c.rescale_betas_zero_snr && c.prediction_type == PredictionType::Epsilon {
            return Err(f("rescale_betas_zero_snr", "false for prediction_type epsilon (eps cannot be predicted at SNR = 0)", "true".into()));
        }
        if c.trained_betas.is_some() {
            return Err(f("trained_betas", "null (explicit betas are not implemented)", "a list of betas".into()));
        }
        if c.clip_sample && !(c.clip_sample_range.is_finite() && c.clip_sample_range > 0.0) {
            return Err(f("clip_sample_range", "a finite number > 0", c.clip_sample_range.to_string()));
        }
        c.sde().map_err(|(field, expected, found)| f(field, &expected, found))?;
        Ok(c)
    }

    /// The core's DDPM schedule with the same `alphas_cumprod`, or `(field, expected, found)`.
    pub fn sde(&self) -> Result<SdeConfig, (&'static str, String, String)> {
        let n = self.num_train_timesteps;
        if n < 21 {
            return Err(("num_train_timesteps", "at least 21".into(), n.to_string()));
        }
        let rescaled = |sde: SdeConfig| match sde {
            SdeConfig::Ddpm { schedule, levels, .. } => SdeConfig::Ddpm { schedule, levels, zero_terminal_snr: self.rescale_betas_zero_snr },
            other => other,
        };
        match self.beta_schedule {
            BetaSchedule::SquaredcosCapV2 => Ok(rescaled(SdeConfig::ddpm(ScheduleKind::Cosine, n))),
            BetaSchedule::Linear | BetaSchedule::ScaledLinear => {
                let (schedule, name) =
                    if self.beta_schedule == BetaSchedule::Linear { (ScheduleKind::Linear, "linear") } else { (ScheduleKind::ScaledLinear, "scaled_linear") };
                let scale = 1000.0 / n as f64;
                let (b0, b1) = schedule.beta_range().expect("a linear schedule");
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b;
                if close(self.beta_start, b0 * scale) && close(self.beta_end, b1 * scale) {
                    Ok(rescaled(SdeConfig::ddpm(schedule, n)))
                } else {
                    let expected = format!("{} and {} (the core's {name} betas: {b0} .. {b1} scaled by 1000 / N)", b0 * scale, b1 * scale);
                    Err(("beta_start", expected, format!("{} and beta_end = {}", self.beta_start, self.beta_end)))
                }
            }
        }
    }

    /// The network's parameterization.
    pub fn parameterization(&self) -> Parameterization {
        match self.prediction_type {
            PredictionType::Epsilon => Parameterization::Eps,
            PredictionType::VPrediction => Parameterization::V,
            PredictionType::Sample => Parameterization::X0,
        }
    }

    /// The reverse-process variance (`fixed_small` when absent, as for DDIM).
    pub fn variance(&self) -> Variance {
        match self.variance_type {
            None | Some(VarianceType::FixedSmall | VarianceType::FixedSmallLog) => Variance::Small,
            Some(VarianceType::FixedLarge | VarianceType::FixedLargeLog) => Variance::Large,
        }
    }

    /// The range samplers clip `x0` to: `[-r, r]` with `clip_sample`, none without.
    pub fn data_range(&self) -> Option<[f64; 2]> {
        self.clip_sample.then_some([-self.clip_sample_range, self.clip_sample_range])
    }
}

/// The files of a checkpoint directory: at the top, or a pipeline's `unet/` and `scheduler/`.
fn layout(dir: &Path) -> (PathBuf, PathBuf) {
    if !dir.join("config.json").is_file() && dir.join("unet").join("config.json").is_file() {
        (dir.join("unet"), dir.join("scheduler"))
    } else {
        (dir.to_path_buf(), dir.to_path_buf())
    }
}

/// A checkpoint's three files as read, each with the name its errors give it.
#[derive(Debug, Clone)]
pub struct Checkpoint<'a> {
    /// `config.json`'s text, the `UNet2DModel` config.
    pub config: &'a str,
    /// Its name in errors.
    pub config_file: &'a str,
    /// `scheduler_config.json`'s text.
    pub scheduler: &'a str,
    /// Its name in errors.
    pub scheduler_file: &'a str,
    /// The safetensors bytes of `diffusion_pytorch_model.safetensors`.
    pub weights: Vec<u8>,
    /// Their name in errors.
    pub weights_file: &'a str,
}

/// Reads a diffusers checkpoint directory (see the [module docs](self)) into the card of an
/// export directory named `name` and its Burnpack weights (f32), written with
/// [`super::write_dir`]: [`import`] of its three files.
///
/// # Errors
/// [`ExportError::NotAModel`] when a file is missing; otherwise [`import`]'s.
pub fn import_dir(dir: &Path, name: &str, shape: Option<[usize; 2]>, command: &str, device: &Device) -> Result<(ModelCard, Vec<u8>), ExportError> {
    let (unet_dir, sched_dir) = layout(dir);
    let (config_path, weights_path, sched_path) = (unet_dir.join("config.json"), unet_dir.join(SAFETENSORS_FILE), sched_dir.join(SCHEDULER_FILE));
    for p in [&config_path, &weights_path, &sched_path] {
        if !p.is_file() {
            let found = if p == &weights_path && unet_dir.join("diffusion_pytorch_model.bin").is_file() {
                format!("no {SAFETENSORS_FILE}, only a PyTorch .bin (save it again with save_pretrained(..., safe_serialization=True))")
            } else {
                format!("no {}", p.display())
            };
            return Err(ExportError::NotAModel {
                path: dir.display().to_string(),
                expected: format!("a diffusers checkpoint (config.json, {SAFETENSORS_FILE}, {SCHEDULER_FILE})"),
                found,
            });
        }
    }
    let (config, scheduler) = (crate::io::read_text(&config_path)?, crate::io::read_text(&sched_path)?);
    let (config_file, scheduler_file, weights_file) = (config_path.display().to_string(), sched_path.display().to_string(), weights_path.display().to_string());
    let checkpoint = Checkpoint {
        config: &config,
        config_file: &config_file,
        scheduler: &scheduler,
        scheduler_file: &scheduler_file,
        weights: crate::io::read_file(&weights_path)?,
        weights_file: &weights_file,
    };
    import(checkpoint, name, shape, command, device)
}

/// A diffusers checkpoint's files (see the [module docs](self)) into the card of an export
/// directory named `name` and its Burnpack weights (f32). The network is built and loaded on
/// `device` to check every tensor's shape against the config. `shape` overrides
/// `[in_channels, sample_size]`; `command` is recorded in the card.
///
/// # Errors
/// [`ExportError::Invalid`] naming the file and the unknown key, block type or option;
/// [`ExportError::Weights`] naming the tensors whose shapes differ, that are missing or left
/// over.
pub fn import(checkpoint: Checkpoint<'_>, name: &str, shape: Option<[usize; 2]>, command: &str, device: &Device) -> Result<(ModelCard, Vec<u8>), ExportError> {
    let Checkpoint { config, config_file, scheduler, scheduler_file, weights, weights_file } = checkpoint;
    let unet = UNet2DConfig::from_json(config).map_err(|e| ExportError::Invalid { file: config_file.into(), message: e.to_string() })?;
    let sched = SchedulerConfig::from_json(scheduler, scheduler_file)?;
    let net_config = DiffusersNetConfig { unet: unet.clone(), num_train_timesteps: sched.num_train_timesteps, parameterization: sched.parameterization() };
    net_config.validate().map_err(|e| ExportError::Invalid { file: config_file.into(), message: e.to_string() })?;
    let [h, w] = match (shape, unet.sample_size) {
        (Some(hw), _) => hw,
        (None, Some(s)) => s.hw(),
        (None, None) => return Err(super::field(config_file, "sample_size", "the image side (or give the shape)", "null")),
    };
    // The image size is bounded before the network is built and its weights read.
    let sample_field = if shape.is_some() { "shape" } else { "sample_size" };
    crate::limits::point_shape(&[unet.in_channels, h, w]).map_err(|e| super::field(config_file, sample_field, e.expected, e.found))?;
    let net = unet.init(device)?.load_safetensors(weights, weights_file)?;
    let card = ModelCard {
        format: FORMAT_VERSION,
        name: name.to_string(),
        dataset: Dataset::External,
        network: Network::DiffusersUnet2d(net_config),
        sde: sched.sde().expect("checked by SchedulerConfig::from_json"),
        variance: sched.variance(),
        weights: WEIGHTS_FILE.to_string(),
        dtype: WeightsDType::F32,
        weights_sha256: None,
        shape: vec![unet.in_channels, h, w],
        data_range: sched.data_range(),
        parameters: net.num_params(),
        steps_trained: 0,
        command: command.to_string(),
    };
    card.validate(config_file)?;
    Ok((card, crate::nn::burnpack_bytes(&net)?))
}
