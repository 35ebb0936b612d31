//! Training: the objective, the optimizer settings and a resumable training loop.
//!
//! The loop is Ho et al. 2020, Alg. 1 generalised to every loss of [`crate::loss`]: draw a data
//! batch, evaluate the loss (which draws `t` and the noise), take an Adam step (with linear
//! learning-rate warm-up and gradient-norm clipping, Ho et al. appendix B), and update an
//! exponential moving average of the weights ([`ema`]). Every random number comes from two
//! seeded [`NoiseSource`](crate::noise::NoiseSource)s (one for data, one for the loss) whose
//! positions are saved with each checkpoint, so a resumed run continues the same loss curve.
//! [`ParallelTrainer`] runs the same step data-parallel over several devices (burn's distributed
//! autodiff all-reduces the gradients).

pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod ema;
mod trainer;

pub use config::{Dataset, Network, RunConfig};
pub use trainer::parallel::{ParallelError, ParallelTrainer, check_devices};
pub use trainer::{EMA_FILE, MODEL_FILE, OPTIM_FILE, STATE_FILE, StepReport, TrainError, TrainState, Trainer};

use crate::loss::hybrid::SimpleTerm;
use crate::loss::{DEFAULT_LAMBDA, LossSecondMoment, Projection, Weighting, ddpm_loss, dsm_loss, edm_loss, hybrid_loss, ncsn_loss, ssm_loss};
use crate::model::ScoreModel;
use crate::noise::NoiseSource;
use crate::param::Parameterization;
use crate::sde::{Sde, SdeConfig};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LossConfig {
    /// Continuous-time denoising score matching, `t ~ U(t_min, T)` (Song et al. 2021, eq. 7).
    Dsm {
        /// `lambda(t)`: `std2` or `likelihood`.
        #[serde(default)]
        weighting: Weighting,
    },
    /// DDPM's `L_simple` on the SDE's discrete grid (1000 levels for a continuous SDE), measured
    /// in `target` and optionally Min-SNR weighted (see [`crate::loss::ddpm`]).
    DdpmSimple {
        /// What the error is measured in: `eps` (Ho et al.'s `L_simple`, the default), `v`
        /// (Salimans & Ho's v-prediction loss), `x0` or `score`.
        #[serde(default)]
        target: Parameterization,
        /// Min-SNR-gamma weighting (Hang et al. 2023; they use 5); none when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_snr_gamma: Option<f64>,
    },
    /// Karras et al.'s EDM objective (2022, Table 1): `ln sigma ~ N(p_mean, p_std^2)`, weight
    /// `lambda(sigma)`, measured in `x0` (see [`crate::loss::edm`]). Pair it with the U-Net's
    /// EDM `preconditioning` of the same `sigma_data`.
    Edm {
        /// The data's standard deviation (0.5 in the paper).
        #[serde(default = "default_sigma_data")]
        sigma_data: f64,
        /// Mean of `ln sigma` (-1.2).
        #[serde(default = "default_p_mean")]
        p_mean: f64,
        /// Standard deviation of `ln sigma` (1.2).
        #[serde(default = "default_p_std")]
        p_std: f64,
    },
    /// NCSN's annealed DSM over `levels` geometric noise levels (Song & Ermon 2019, eq. 6).
    Ncsn {
        /// Number of noise levels `L` (10 in NCSN).
        #[serde(default = "default_ncsn_levels")]
        levels: usize,
    },
    /// Sliced score matching (Song et al. 2019) on perturbed data.
    Ssm {
        /// Projection distribution.
        #[serde(default)]
        projection: Projection,
        /// The variance-reduced form (SSM-VR).
        #[serde(default)]
        variance_reduced: bool,
    },
    /// Nichol & Dhariwal's `L_simple + lambda L_vlb` (eq. 16) on the discrete grid, for a model
    /// with a learned variance (`variance = learned`).
    Hybrid {
        /// `lambda` (0.001 in the paper).
        #[serde(default = "default_lambda")]
        lambda: f64,
        /// Draw the level by the loss's second moment (section 3.3) instead of uniformly.
        #[serde(default)]
        importance_sampling: bool,
        /// What the `L_simple` term is measured in (`eps` in the paper; see `ddpm-simple`).
        #[serde(default)]
        target: Parameterization,
        /// Min-SNR-gamma weighting of the `L_simple` term; none when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_snr_gamma: Option<f64>,
    },
}

fn default_ncsn_levels() -> usize {
    10
}

fn default_lambda() -> f64 {
    DEFAULT_LAMBDA
}

fn default_sigma_data() -> f64 {
    crate::precond::DEFAULT_SIGMA_DATA
}

fn default_p_mean() -> f64 {
    crate::loss::edm::DEFAULT_P_MEAN
}

fn default_p_std() -> f64 {
    crate::loss::edm::DEFAULT_P_STD
}

/// DDPM's grid size: the schedule's `levels` for a discrete SDE, else 1000.
fn ddpm_levels(sde_config: &SdeConfig) -> usize {
    match sde_config {
        SdeConfig::Ddpm { levels, .. } => *levels,
        _ => 1000,
    }
}

impl Default for LossConfig {
    fn default() -> Self {
        Self::Dsm { weighting: Weighting::Std2 }
    }
}

impl LossConfig {
    /// The loss of `model` on the batch `x0`, drawing `t` and the noise from `noise`.
    ///
    /// `sde_config` gives DDPM's grid size: its `levels` for a discrete schedule, else 1000.
    pub fn loss<const D: usize>(&self, model: &dyn ScoreModel<D>, sde: &dyn Sde, sde_config: &SdeConfig, x0: Tensor<D>, noise: &mut NoiseSource) -> Tensor<1> {
        self.loss_with_history(model, sde, sde_config, x0, noise, None)
    }

    /// As [`loss`](Self::loss), with the importance sampler's history (from
    /// [`new_history`](Self::new_history); `None`: levels drawn uniformly).
    pub fn loss_with_history<const D: usize>(
        &self,
        model: &dyn ScoreModel<D>,
        sde: &dyn Sde,
        sde_config: &SdeConfig,
        x0: Tensor<D>,
        noise: &mut NoiseSource,
        history: Option<&mut LossSecondMoment>,
    ) -> Tensor<1> {
        match *self {
            Self::Dsm { weighting } => dsm_loss(model, sde, x0, weighting, sde.t_min(), noise),
            Self::DdpmSimple { target, min_snr_gamma } => ddpm_loss(model, sde, x0, ddpm_levels(sde_config), target, min_snr_gamma, noise),
            Self::Edm { sigma_data, p_mean, p_std } => edm_loss(model, sde, x0, sigma_data, p_mean, p_std, noise),
            Self::Ncsn { levels } => ncsn_loss(model, sde, x0, levels, noise),
            Self::Ssm { projection, variance_reduced } => ssm_loss(model, sde, x0, projection, variance_reduced, sde.t_min(), noise),
            Self::Hybrid { lambda, target, min_snr_gamma, .. } => {
                hybrid_loss(model, sde, x0, ddpm_levels(sde_config), lambda, SimpleTerm { target, min_snr_gamma }, history, noise)
            }
        }
    }

    /// The importance sampler's empty history, for a loss that samples levels by it.
    pub fn new_history(&self, sde_config: &SdeConfig) -> Option<LossSecondMoment> {
        match *self {
            Self::Hybrid { importance_sampling: true, .. } => Some(LossSecondMoment::new(ddpm_levels(sde_config))),
            _ => None,
        }
    }

    /// The name of the variant in `config.json` (`kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dsm { .. } => "dsm",
            Self::DdpmSimple { .. } => "ddpm-simple",
            Self::Edm { .. } => "edm",
            Self::Ncsn { .. } => "ncsn",
            Self::Ssm { .. } => "ssm",
            Self::Hybrid { .. } => "hybrid",
        }
    }

    /// Checks ranges, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Self::Ncsn { levels } if levels < 2 => Err(format!("loss.levels: expected at least 2, found {levels}")),
            Self::DdpmSimple { min_snr_gamma: Some(g), .. } | Self::Hybrid { min_snr_gamma: Some(g), .. } if !(g.is_finite() && g > 0.0) => {
                Err(format!("loss.min_snr_gamma: expected a finite number > 0 (5 in Hang et al.), found {g}"))
            }
            Self::Edm { sigma_data, .. } if !(sigma_data.is_finite() && sigma_data > 0.0) => {
                Err(format!("loss.sigma_data: expected a finite number > 0 (0.5 in Karras et al.), found {sigma_data}"))
            }
            Self::Edm { p_mean, p_std, .. } if !(p_mean.is_finite() && p_std.is_finite() && p_std > 0.0) => {
                Err(format!("loss.p_std: expected a finite p_mean and a finite p_std > 0 (-1.2 and 1.2 in Karras et al.), found {p_mean} and {p_std}"))
            }
            Self::Hybrid { lambda, .. } if !(lambda.is_finite() && lambda > 0.0) => {
                Err(format!("loss.lambda: expected a finite number > 0 (0.001 in Nichol & Dhariwal), found {lambda}"))
            }
            _ => Ok(()),
        }
    }
}

/// Optimizer settings (Adam as in Ho et al. 2020, appendix B, unless changed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up from 0 over this many steps.
    pub warmup: usize,
    /// Clip the global gradient norm to this value (none when absent).
    pub grad_clip: Option<f64>,
    /// AdamW's decoupled weight decay (0: plain Adam).
    pub weight_decay: f64,
    /// EMA decay of the weights.
    pub ema_decay: f64,
    /// Warm the EMA decay up as `min(ema_decay, (1 + n) / (10 + n))` (see [`ema`]).
    pub ema_warmup: bool,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self { lr: 2e-4, warmup: 500, grad_clip: Some(1.0), weight_decay: 0.0, ema_decay: 0.999, ema_warmup: true }
    }
}

impl OptimConfig {
    /// The learning rate at step `step` (0-based): linear warm-up, then constant.
    pub fn lr_at(&self, step: usize) -> f64 {
        if self.warmup == 0 { self.lr } else { self.lr * ((step + 1) as f64 / self.warmup as f64).min(1.0) }
    }

    /// Checks ranges, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr: expected a finite number > 0, found {}", self.lr));
        }
        if let Some(c) = self.grad_clip
            && !(c.is_finite() && c > 0.0)
        {
            return Err(format!("grad_clip: expected a finite number > 0, found {c}"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!("weight_decay: expected a finite number >= 0, found {}", self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(format!("ema_decay: expected a number in [0, 1), found {}", self.ema_decay));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_linear_then_constant() {
        let o = OptimConfig { lr: 1e-3, warmup: 4, ..OptimConfig::default() };
        let lrs: Vec<f64> = (0..6).map(|s| o.lr_at(s)).collect();
        assert_eq!(lrs, vec![2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3]);
        assert_eq!(OptimConfig { warmup: 0, ..o }.lr_at(0), 1e-3);
    }

    #[test]
    fn configs_parse_and_reject_bad_values() {
        let l: LossConfig = serde_json::from_str(r#"{"kind": "ncsn"}"#).unwrap();
        assert_eq!(l, LossConfig::Ncsn { levels: 10 });
        let l: LossConfig = serde_json::from_str(r#"{"kind": "dsm", "weighting": "likelihood"}"#).unwrap();
        assert_eq!(l, LossConfig::Dsm { weighting: Weighting::Likelihood });
        assert!(LossConfig::Ncsn { levels: 1 }.validate().unwrap_err().contains("levels"));
        let l: LossConfig = serde_json::from_str(r#"{"kind": "hybrid"}"#).unwrap();
        assert_eq!(l, LossConfig::Hybrid { lambda: 0.001, importance_sampling: false, target: Parameterization::Eps, min_snr_gamma: None });
        let l: LossConfig = serde_json::from_str(r#"{"kind": "hybrid", "lambda": 0.01, "importance_sampling": true}"#).unwrap();
        let ddpm = SdeConfig::ddpm(crate::sde::ScheduleKind::Cosine, 50);
        assert_eq!(l.new_history(&ddpm).map(|h| h.levels()), Some(50));
        assert!(LossConfig::DdpmSimple { target: Parameterization::Eps, min_snr_gamma: None }.new_history(&ddpm).is_none());
        let l: LossConfig = serde_json::from_str(r#"{"kind": "ddpm-simple"}"#).unwrap();
        assert_eq!(l, LossConfig::DdpmSimple { target: Parameterization::Eps, min_snr_gamma: None }, "today's configs load as L_simple");
        assert_eq!(serde_json::to_string(&l).unwrap(), r#"{"kind":"ddpm-simple","target":"eps"}"#);
        let l: LossConfig = serde_json::from_str(r#"{"kind": "ddpm-simple", "target": "v", "min_snr_gamma": 5}"#).unwrap();
        assert_eq!(l, LossConfig::DdpmSimple { target: Parameterization::V, min_snr_gamma: Some(5.0) });
        let l: LossConfig = serde_json::from_str(r#"{"kind": "hybrid", "target": "v", "min_snr_gamma": 5}"#).unwrap();
        assert_eq!(l, LossConfig::Hybrid { lambda: 0.001, importance_sampling: false, target: Parameterization::V, min_snr_gamma: Some(5.0) });
        assert!(
            serde_json::from_str::<LossConfig>(r#"{"kind": "hybrid", "min_snr_gamma": -1}"#).unwrap().validate().unwrap_err().contains("loss.min_snr_gamma")
        );
        let l: LossConfig = serde_json::from_str(r#"{"kind": "edm"}"#).unwrap();
        assert_eq!(l, LossConfig::Edm { sigma_data: 0.5, p_mean: -1.2, p_std: 1.2 });
        assert!(LossConfig::DdpmSimple { target: Parameterization::Eps, min_snr_gamma: Some(0.0) }.validate().unwrap_err().contains("loss.min_snr_gamma"));
        assert!(LossConfig::Edm { sigma_data: 0.5, p_mean: -1.2, p_std: -1.0 }.validate().unwrap_err().contains("loss.p_std"));
        assert!(LossConfig::Edm { sigma_data: -0.5, p_mean: -1.2, p_std: 1.0 }.validate().unwrap_err().contains("loss.sigma_data"));
        assert!(
            LossConfig::Hybrid { lambda: -1.0, importance_sampling: false, target: Parameterization::Eps, min_snr_gamma: None }
                .validate()
                .unwrap_err()
                .contains("loss.lambda")
        );
        let e = serde_json::from_str::<LossConfig>(r#"{"kind": "dsm", "weight": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `weight`"), "{e}");
        assert!(OptimConfig { ema_decay: 1.0, ..Default::default() }.validate().unwrap_err().contains("ema_decay"));
        assert!(OptimConfig { lr: -1.0, ..Default::default() }.validate().unwrap_err().contains("lr"));
    }
}
