//! The configuration of a training run, saved as `config.json` in the run directory.
//!
//! One file says everything needed to rebuild the model (network, SDE) and to continue training
//! it (data, loss, optimizer, batch size, seed); the browser reads the same file to know which
//! network and SDE the shipped weights belong to.

use super::{LossConfig, OptimConfig};
use crate::data::mnist::CLASSES;
use crate::data::{DatasetKind, Toy};
use crate::nn::{MlpConfig, UNetConfig};
use crate::precond::Preconditioning;
use crate::sampler::Variance;
use crate::sde::SdeConfig;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use strum::VariantNames;

/// Version of the run-directory layout; a file of another version is refused with a message.
pub const FORMAT_VERSION: u32 = 1;

/// What the model is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Dataset {
    /// MNIST or Fashion-MNIST, `[batch, 1, 28, 28]` in `[-1, 1]`.
    Image(DatasetKind),
    /// A 2-D toy distribution, `[batch, 2]`.
    Toy(Toy),
    /// Images from elsewhere: a checkpoint trained outside scorediff and imported
    /// (`native-cli import-diffusers`); its card gives the shape and range. Not trainable.
    External,
}

/// The name of [`Dataset::External`].
const EXTERNAL: &str = "external";

impl Dataset {
    /// Every data set name.
    pub fn names() -> Vec<&'static str> {
        <DatasetKind as VariantNames>::VARIANTS.iter().chain(<Toy as VariantNames>::VARIANTS).copied().collect()
    }

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Image(k) => k.name(),
            Self::Toy(t) => t.name(),
            Self::External => EXTERNAL,
        }
    }

    /// The shape of one data point: the image data set's `[channels, height, width]`
    /// ([`DatasetKind::image_shape`]), `[2]` for a 2-D toy, none (empty) for an external one.
    pub fn shape(self) -> Vec<usize> {
        match self {
            Self::Image(k) => k.image_shape().to_vec(),
            Self::Toy(_) => vec![2],
            Self::External => Vec::new(),
        }
    }
}

impl FromStr for Dataset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == EXTERNAL {
            return Ok(Self::External);
        }
        s.parse().map(Self::Image).or_else(|_| s.parse().map(Self::Toy)).map_err(|_| crate::names::unknown("dataset", s, &Self::names()))
    }
}

impl TryFrom<String> for Dataset {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Dataset> for String {
    fn from(d: Dataset) -> String {
        d.name().to_string()
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The score network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Network {
    /// The compact U-Net, for images.
    Unet(UNetConfig),
    /// The MLP, for low-dimensional data.
    Mlp(MlpConfig),
    /// diffusers' `UNet2DModel`, imported (`native-cli import-diffusers`), not trained here.
    #[serde(rename = "diffusers-unet2d")]
    DiffusersUnet2d(crate::nn::diffusers::DiffusersNetConfig),
}

impl Network {
    /// What the network predicts.
    pub fn parameterization(&self) -> crate::param::Parameterization {
        match self {
            Network::Unet(c) => c.parameterization,
            Network::Mlp(c) => c.parameterization,
            Network::DiffusersUnet2d(c) => c.parameterization,
        }
    }

    /// Refuses an eps-predicting network on an SDE that reaches SNR = 0 (Lin et al. 2024,
    /// section 3.2): at the last time `x_t` is pure noise, so `eps = x_t` and the prediction
    /// says nothing about `x_0 = (x_t - sigma eps) / alpha` with `alpha = 0`.
    pub fn check_sde(&self, sde: &SdeConfig) -> Result<(), String> {
        if sde.zero_terminal_snr() && self.parameterization() == crate::param::Parameterization::Eps {
            return Err(
                "sde.zero_terminal_snr: an eps-prediction network cannot predict at SNR = 0 (x_0 is not identifiable from eps there); expected network.parameterization v or x0, found eps".into(),
            );
        }
        Ok(())
    }
}

/// Everything about a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// [`FORMAT_VERSION`] of the file.
    pub format: u32,
    /// Training data.
    pub dataset: Dataset,
    /// The network.
    pub network: Network,
    /// The forward SDE.
    pub sde: SdeConfig,
    /// The objective.
    pub loss: LossConfig,
    /// The reverse-process variance the model is sampled and evaluated with: `small` (default),
    /// `large`, or `learned` (Nichol & Dhariwal's learned range, eq. 15: needs a DDPM schedule,
    /// a U-Net with `out_channels = 2 in_channels` and the hybrid loss). `fixed-small`,
    /// `fixed-large` and `learned-range` are accepted too.
    #[serde(default)]
    pub variance: Variance,
    /// Optimizer, learning rate schedule, clipping and EMA.
    pub optim: OptimConfig,
    /// Examples per step.
    pub batch_size: usize,
    /// Total optimisation steps.
    pub steps: usize,
    /// Seed of the data and loss noise streams and of the initial weights' order of draws.
    pub seed: u64,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// For a class-conditional U-Net (`network.num_classes` set): the probability that a
    /// training label is replaced by the null label, `p_uncond` of Ho & Salimans 2022 (Alg. 1;
    /// they use 0.1 and 0.2), which trains the unconditional model guidance needs.
    #[serde(default = "default_label_dropout")]
    pub label_dropout: f64,
}

fn default_label_dropout() -> f64 {
    0.1
}

impl RunConfig {
    /// Whether training draws class labels with the data (a class-conditional U-Net).
    pub fn class_conditional(&self) -> bool {
        matches!(&self.network, Network::Unet(u) if u.num_classes.is_some())
    }
}

impl RunConfig {
    /// The defaults for a data set: an MLP with the VP SDE and continuous DSM for the toys
    /// (Song et al. 2021's setting for 2-D), the compact U-Net with DDPM's linear schedule and
    /// `L_simple` for images (Ho et al. 2020, with their Adam settings).
    pub fn preset(dataset: Dataset) -> Self {
        match dataset {
            Dataset::Toy(_) => Self {
                format: FORMAT_VERSION,
                dataset,
                network: Network::Mlp(MlpConfig::new()),
                sde: SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 },
                loss: LossConfig::default(),
                variance: Variance::Small,
                optim: OptimConfig { lr: 1e-3, warmup: 100, ..OptimConfig::default() },
                batch_size: 256,
                steps: 5000,
                seed: 0,
                checkpoint_every: 1000,
                label_dropout: default_label_dropout(),
            },
            Dataset::Image(_) | Dataset::External => Self {
                format: FORMAT_VERSION,
                dataset,
                network: Network::Unet(UNetConfig::new()),
                sde: SdeConfig::ddpm(crate::sde::ScheduleKind::Linear, 1000),
                loss: LossConfig::DdpmSimple { target: crate::param::Parameterization::Eps, min_snr_gamma: None },
                variance: Variance::Small,
                optim: OptimConfig { lr: 2e-4, warmup: 500, ..OptimConfig::default() },
                batch_size: 64,
                steps: 20_000,
                seed: 0,
                checkpoint_every: 500,
                label_dropout: default_label_dropout(),
            },
        }
    }

    /// Parses and validates a `config.json`; errors name the field.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        match value.get("format").and_then(|v| v.as_u64()) {
            Some(v) if v == FORMAT_VERSION as u64 => {}
            Some(v) => return Err(format!("format: expected version {FORMAT_VERSION}, found {v} (written by another version of scorediff)")),
            None => return Err(format!("format: expected the version number {FORMAT_VERSION}, found none (is this a run config?)")),
        }
        let config: Self = serde_json::from_value(value).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// The config as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    /// Checks that the parts fit together, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        crate::limits::sde(&self.sde).map_err(|e| format!("sde.{e}"))?;
        self.sde.build().map_err(|e| e.to_string())?;
        let point = crate::limits::point_shape(&self.dataset.shape()).map_err(|e| e.to_string())?;
        crate::limits::batch(self.batch_size, point).map_err(|e| e.to_string())?;
        self.loss.validate()?;
        self.network.check_sde(&self.sde)?;
        self.validate_variance()?;
        self.optim.validate().map_err(|e| format!("optim.{e}"))?;
        if !(0.0..1.0).contains(&self.label_dropout) {
            return Err(format!("label_dropout: expected a probability in [0, 1), found {}", self.label_dropout));
        }
        for (name, v) in [("batch_size", self.batch_size), ("checkpoint_every", self.checkpoint_every)] {
            if v == 0 {
                return Err(format!("{name}: expected at least 1, found 0"));
            }
        }
        match (&self.dataset, &self.network) {
            (Dataset::Toy(_), Network::Mlp(m)) => {
                m.validate().map_err(|e| format!("network: {e}"))?;
                if m.dim != 2 {
                    return Err(format!("network.dim: the 2-D dataset {} needs dim 2, found {}", self.dataset, m.dim));
                }
            }
            (Dataset::Image(_), Network::Unet(u)) => {
                u.validate().map_err(|e| format!("network: {e}"))?;
                if u.in_channels != 1 {
                    return Err(format!("network.in_channels: {} images have 1 channel, found {}", self.dataset, u.in_channels));
                }
                if let (LossConfig::Edm { sigma_data, .. }, Some(Preconditioning::Edm { sigma_data: net })) = (&self.loss, &u.preconditioning)
                    && sigma_data != net
                {
                    return Err(format!("loss.sigma_data: expected the network's preconditioning.sigma_data = {net}, found {sigma_data}"));
                }
                if let Some(n) = u.num_classes
                    && n != CLASSES
                {
                    return Err(format!("network.num_classes: {} has {CLASSES} classes, found {n}", self.dataset));
                }
            }
            (Dataset::Toy(_), Network::Unet(_)) => return Err(format!("network.kind: the 2-D dataset {} needs an mlp, found unet", self.dataset)),
            (Dataset::Image(_), Network::Mlp(_)) => return Err(format!("network.kind: the image dataset {} needs a unet, found mlp", self.dataset)),
            (Dataset::External, _) | (_, Network::DiffusersUnet2d(_)) => {
                return Err("dataset: an imported checkpoint (dataset external, network diffusers-unet2d) is sampled, not trained".into());
            }
        }
        Ok(())
    }

    /// A learned variance and the hybrid loss come together, on a DDPM schedule, with a U-Net
    /// that outputs the variance; a fixed variance with a U-Net that does not.
    fn validate_variance(&self) -> Result<(), String> {
        let learned = self.variance == Variance::Learned;
        let hybrid = matches!(self.loss, LossConfig::Hybrid { .. });
        if (learned || hybrid) && !matches!(self.sde, SdeConfig::Ddpm { .. }) {
            let (field, what) = if learned { ("variance", "a learned variance") } else { ("loss.kind", "the hybrid loss") };
            return Err(format!("{field}: {what} needs a discrete DDPM schedule (sde.kind = ddpm), found sde.kind = {}", self.sde.kind()));
        }
        if hybrid && !learned {
            return Err(format!("variance: the hybrid loss trains a learned variance: expected learned, found {}", self.variance));
        }
        if learned && !hybrid {
            return Err(format!(
                "loss.kind: a learned variance is trained by the hybrid loss only (L_simple ignores it): expected hybrid, found {}",
                self.loss.kind()
            ));
        }
        match &self.network {
            Network::Unet(u) if u.learns_variance() != learned => {
                let expected = if learned { format!("{}", 2 * u.in_channels) } else { format!("null or {}", u.in_channels) };
                Err(format!(
                    "network.out_channels: variance = {} needs {expected} (2 x in_channels outputs a learned variance), found {}",
                    self.variance,
                    u.out_channels()
                ))
            }
            Network::Mlp(_) if learned => Err("network.kind: a learned variance needs a unet (out_channels = 2 in_channels), found mlp".into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_through_json() {
        for name in Dataset::names() {
            let c = RunConfig::preset(name.parse().unwrap());
            c.validate().unwrap();
            assert_eq!(RunConfig::from_json(&c.to_json()).unwrap(), c, "{name}");
        }
    }

    #[test]
    fn dataset_names_are_the_image_and_toy_names() {
        assert_eq!(Dataset::names()[..3], ["mnist", "fashion-mnist", "swiss-roll"]);
        for name in Dataset::names() {
            let d: Dataset = name.parse().unwrap();
            assert_eq!((d.name(), d.to_string()), (name, name.to_string()));
            assert_eq!(serde_json::to_value(d).unwrap(), serde_json::Value::String(name.into()));
        }
        let e = "cifar".parse::<Dataset>().unwrap_err();
        assert!(e.starts_with("unknown dataset `cifar`: expected one of mnist, fashion-mnist, swiss-roll,") && e.ends_with("pinwheel"), "{e}");
    }

    #[test]
    fn bad_configs_name_the_field() {
        let mut c = RunConfig::preset(Dataset::Toy(Toy::TwoMoons));
        c.network = Network::Unet(UNetConfig::new());
        assert!(c.validate().unwrap_err().contains("network.kind"));
        let mut v: serde_json::Value = serde_json::from_str(&RunConfig::preset(Dataset::Image(DatasetKind::Mnist)).to_json()).unwrap();
        v["format"] = 7.into();
        assert!(RunConfig::from_json(&v.to_string()).unwrap_err().contains("format: expected version 1, found 7"));
        v["format"] = 1.into();
        v["dataset"] = "cifar".into();
        assert!(RunConfig::from_json(&v.to_string()).unwrap_err().contains("unknown dataset `cifar`"));
        v["dataset"] = "mnist".into();
        v["batch_size"] = 0.into();
        assert!(RunConfig::from_json(&v.to_string()).unwrap_err().contains("batch_size"));
        v["batch_size"] = 64.into();
        v["network"]["num_classes"] = 7.into();
        assert!(RunConfig::from_json(&v.to_string()).unwrap_err().contains("network.num_classes: mnist has 10 classes, found 7"));
        v["network"]["num_classes"] = 10.into();
        let c = RunConfig::from_json(&v.to_string()).unwrap();
        assert!(c.class_conditional() && c.label_dropout == 0.1, "label_dropout defaults to Ho & Salimans' 0.1");
        v["label_dropout"] = 1.0.into();
        assert!(RunConfig::from_json(&v.to_string()).unwrap_err().contains("label_dropout"));
        v["label_dropout"] = 0.1.into();
        assert_eq!(RunConfig::from_json(&v.to_string()).unwrap().variance, Variance::Small, "configs without `variance` load");
        // Zero terminal SNR: an eps network is refused by name, a v network trains.
        v["sde"]["zero_terminal_snr"] = true.into();
        let e = RunConfig::from_json(&v.to_string()).unwrap_err();
        assert!(e.contains("sde.zero_terminal_snr") && e.contains("found eps"), "{e}");
        v["network"]["parameterization"] = "v".into();
        let c = RunConfig::from_json(&v.to_string()).unwrap();
        assert!(c.sde.zero_terminal_snr() && c.sde.build().unwrap().marginal(1.0).0 < 5e-5);
    }

    /// The learned-range variance and the hybrid loss: accepted together on a DDPM U-Net with
    /// `out_channels = 2`, every mismatch named by its field.
    #[test]
    fn learned_variance_needs_its_loss_schedule_and_outputs() {
        let mut v: serde_json::Value = serde_json::from_str(&RunConfig::preset(Dataset::Image(DatasetKind::Mnist)).to_json()).unwrap();
        v["variance"] = "learned-range".into();
        v["loss"] = serde_json::json!({"kind": "hybrid", "importance_sampling": true});
        v["network"]["out_channels"] = 2.into();
        let c = RunConfig::from_json(&v.to_string()).unwrap();
        assert_eq!(
            (c.variance, c.loss),
            (
                Variance::Learned,
                LossConfig::Hybrid { lambda: 0.001, importance_sampling: true, target: crate::param::Parameterization::Eps, min_snr_gamma: None }
            )
        );
        let err = |v: &serde_json::Value| RunConfig::from_json(&v.to_string()).unwrap_err();
        let mut w = v.clone();
        w["sde"] = serde_json::json!({"kind": "vp"});
        assert!(err(&w).contains("variance: a learned variance needs a discrete DDPM schedule (sde.kind = ddpm), found sde.kind = vp"), "{}", err(&w));
        let mut w = v.clone();
        w["network"]["out_channels"] = 1.into();
        assert!(err(&w).contains("network.out_channels") && err(&w).contains("found 1"), "{}", err(&w));
        let mut w = v.clone();
        w["loss"] = serde_json::json!({"kind": "ddpm-simple"});
        assert!(err(&w).contains("loss.kind") && err(&w).contains("found ddpm-simple"), "{}", err(&w));
        let mut w = v.clone();
        w["variance"] = "fixed-large".into();
        assert!(err(&w).contains("variance: the hybrid loss trains a learned variance"), "{}", err(&w));
        w["loss"] = serde_json::json!({"kind": "ddpm-simple"});
        assert!(err(&w).contains("network.out_channels: variance = large needs null or 1"), "{}", err(&w));
        let mut w = v;
        w["variance"] = "medium".into();
        assert!(err(&w).contains("unknown variant `medium`"), "{}", err(&w));
    }
}
