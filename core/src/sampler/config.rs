//! A sampler's configuration: which sampler with its own options ([`SamplerOptions`], one
//! variant per sampler with that sampler's fields and defaults), the [`Grid`], and the options
//! every sampler shares (the final Tweedie step, clipping of the predicted `x0`).
//!
//! In JSON (the page's requests, `native-cli`'s options) a config is one flat object tagged by
//! `kind`, `{"kind": "ddim", "steps": 50, "eta": 0}` ([`SamplerSpec`]); an option given to a
//! sampler that has no such option is refused with both named, and what is not given takes the
//! sampler's own default grid (a Karras grid for `heun-edm` and `euler-ancestral`, log-SNR
//! spacing for the DPM-Solver family and UniPC, uniform for the others).

use super::{
    Ancestral, AnnealedLangevin, Clip, Ddim, DpmSolver2M, DpmSolverPp, EulerAncestral, EulerMaruyama, Grid, GridSampler, HeunEdm, LangevinCorrector, OdeEuler,
    OdeHeun, Predictor, PredictorCorrector, ReverseDiffusion, Rk45Sampler, Sampler, SigmaKind, SigmaSchedule, Spacing, UniPc, UniPcVariant, X0Clip, clip,
};
use crate::error::{ConfigError, positive};
use crate::param::Variance;
use crate::sde::Sde;
use serde::{Deserialize, Serialize};

/// The samplers, by their names in configs and on the command line.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::EnumIter,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = SamplerKind::unknown)]
pub enum SamplerKind {
    /// DDPM ancestral sampling (Ho et al. 2020, Alg. 2) from the exact posterior.
    #[default]
    Ancestral,
    /// DDIM with `eta` (Song, Meng & Ermon 2021).
    Ddim,
    /// Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1).
    Ald,
    /// Euler–Maruyama on the reverse SDE.
    EulerMaruyama,
    /// The reverse-diffusion predictor (Song et al. 2021, eq. 45).
    ReverseDiffusion,
    /// Predictor–corrector (Song et al. 2021, Alg. 1).
    Pc,
    /// Probability-flow ODE, Euler.
    OdeEuler,
    /// Probability-flow ODE, Heun (2nd order).
    OdeHeun,
    /// Probability-flow ODE, adaptive Dormand–Prince RK45.
    OdeRk45,
    /// DPM-Solver++(2M) (Lu et al. 2022).
    DpmSolver2m,
    /// EDM's stochastic Heun (Karras et al. 2022, Alg. 2).
    HeunEdm,
    /// Euler ancestral (k-diffusion).
    EulerAncestral,
    /// DPM-Solver++(3M) (Lu et al. 2022; k-diffusion's 3M SDE at `eta = 0`).
    DpmSolver3m,
    /// DPM-Solver++(2M) SDE.
    DpmSolver2mSde,
    /// DPM-Solver++(3M) SDE.
    DpmSolver3mSde,
    /// UniPC (Zhao et al. 2023).
    Unipc,
}

impl SamplerKind {
    /// Every sampler, in the order of the menus and `--help`.
    pub fn all() -> impl Iterator<Item = SamplerKind> {
        <Self as strum::IntoEnumIterator>::iter()
    }

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// A one-line description, naming the sampler's own options.
    pub fn about(self) -> &'static str {
        match self {
            Self::Ancestral => "DDPM ancestral sampling from the exact posterior q(x_s | x_t, x0_hat); variance small, large or learned",
            Self::Ddim => "DDIM; eta 0 is deterministic, 1 is ancestral",
            Self::Ald => "annealed Langevin dynamics (NCSN); corrector steps per level, step lr",
            Self::EulerMaruyama => "Euler-Maruyama on the reverse SDE",
            Self::ReverseDiffusion => "reverse-diffusion predictor (the SDE's own discretization)",
            Self::Pc => "predictor-corrector: the predictor, then corrector steps of Langevin at snr",
            Self::OdeEuler => "probability-flow ODE, Euler (1 NFE per step)",
            Self::OdeHeun => "probability-flow ODE, Heun (2 NFE per step)",
            Self::OdeRk45 => "probability-flow ODE, adaptive Dormand-Prince RK45; rtol, atol",
            Self::DpmSolver2m => "DPM-Solver++(2M), multistep 2nd order for few steps",
            Self::HeunEdm => "EDM's stochastic Heun (2 NFE per step); s_churn (0: deterministic), s_tmin, s_tmax, s_noise",
            Self::EulerAncestral => "Euler ancestral (k-diffusion); eta, s_noise",
            Self::DpmSolver3m => "DPM-Solver++(3M), multistep 3rd order for few steps",
            Self::DpmSolver2mSde => "DPM-Solver++(2M) SDE, stochastic multistep; eta, s_noise",
            Self::DpmSolver3mSde => "DPM-Solver++(3M) SDE, stochastic multistep; eta, s_noise",
            Self::Unipc => "UniPC predictor-corrector multistep; order (1-3), solver_type bh1 or bh2",
        }
    }

    /// The spacing of the grid unless told otherwise: log-SNR for DPM-Solver++ and UniPC (Lu et
    /// al.'s choice), uniform for the others (the samplers on a Karras grid by default,
    /// [`default_grid`](Self::default_grid), use it when a spacing is asked for).
    pub fn default_spacing(self) -> Spacing {
        match self {
            Self::DpmSolver2m | Self::DpmSolver3m | Self::DpmSolver2mSde | Self::DpmSolver3mSde | Self::Unipc => Spacing::LogSnr,
            _ => Spacing::Uniform,
        }
    }

    /// The grid of `steps` steps unless told otherwise: Karras et al.'s (`rho = 7`) for EDM's
    /// Heun and Euler ancestral, as in k-diffusion; [`default_spacing`](Self::default_spacing)
    /// for the others.
    pub fn default_grid(self, steps: usize) -> Grid {
        match self {
            Self::HeunEdm | Self::EulerAncestral => Grid::Sigmas { steps, schedule: SigmaSchedule::new(SigmaKind::Karras) },
            _ => Grid::Spaced { steps, spacing: self.default_spacing() },
        }
    }

    /// The sampler's own options (besides the grid and the shared ones), as configs name them.
    pub fn own_options(self) -> &'static [&'static str] {
        SamplerOptions::defaults(self).fields()
    }

    /// Whether the sampler reads a value back in the middle of a step ([`Sampler::reads_back`]).
    pub fn reads_back(self) -> bool {
        self.probe().reads_back()
    }

    /// Whether the sampler's steps can be retaken ([`Sampler::can_rewind`]).
    pub fn can_rewind(self) -> bool {
        self.probe().can_rewind()
    }

    /// The sampler with its defaults on a two-step VP grid, for questions about what it can do.
    fn probe(self) -> Box<dyn Sampler<2>> {
        let sde = crate::sde::VpSde::new(0.1, 20.0).expect("a valid VP SDE");
        SamplerConfig::new(self, 2).build(&sde)
    }

    fn unknown(s: &str) -> String {
        crate::names::unknown("sampler", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// A sampler with its own options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerOptions {
    /// DDPM ancestral sampling.
    Ancestral {
        /// The reverse variance.
        variance: Variance,
    },
    /// DDIM.
    Ddim {
        /// `eta` in `[0, 1]`: 0 deterministic, 1 the ancestral (posterior) variance.
        eta: f64,
    },
    /// Annealed Langevin dynamics.
    Ald {
        /// Langevin steps per level.
        corrector_steps: usize,
        /// The step size relative to the smallest level: `alpha_i = step_lr s_i^2` with `s_i`
        /// the noise std at level `i` over the one at `t_min` (NCSN's `epsilon / sigma_L^2`).
        step_lr: f64,
    },
    /// Euler–Maruyama on the reverse SDE.
    EulerMaruyama,
    /// The reverse-diffusion predictor.
    ReverseDiffusion,
    /// Predictor–corrector.
    Pc {
        /// The predictor.
        predictor: Predictor,
        /// The ancestral predictor's variance.
        variance: Variance,
        /// The Langevin corrector's signal-to-noise ratio.
        snr: f64,
        /// Corrector steps per level.
        corrector_steps: usize,
    },
    /// Probability-flow ODE, Euler.
    OdeEuler,
    /// Probability-flow ODE, Heun.
    OdeHeun,
    /// Probability-flow ODE, adaptive RK45.
    OdeRk45 {
        /// Relative tolerance.
        rtol: f64,
        /// Absolute tolerance.
        atol: f64,
    },
    /// DPM-Solver++(2M).
    DpmSolver2m,
    /// EDM's stochastic Heun.
    HeunEdm {
        /// `S_churn >= 0`: the total churn (0: deterministic).
        s_churn: f64,
        /// `S_tmin`: the smallest noise level `sigma = s / m` churned.
        s_tmin: f64,
        /// `S_tmax`: the largest noise level churned (may be infinite).
        s_tmax: f64,
        /// `S_noise`: the churn noise's scale.
        s_noise: f64,
    },
    /// Euler ancestral.
    EulerAncestral {
        /// The share of the posterior noise (1: ancestral, 0: the ODE's Euler).
        eta: f64,
        /// The scale of the added noise.
        s_noise: f64,
    },
    /// DPM-Solver++(3M).
    DpmSolver3m,
    /// DPM-Solver++(2M) SDE.
    DpmSolver2mSde {
        /// The noise share (1: the reverse SDE, 0: the ODE solver).
        eta: f64,
        /// The scale of the added noise.
        s_noise: f64,
    },
    /// DPM-Solver++(3M) SDE.
    DpmSolver3mSde {
        /// The noise share (1: the reverse SDE, 0: the ODE solver).
        eta: f64,
        /// The scale of the added noise.
        s_noise: f64,
    },
    /// UniPC.
    Unipc {
        /// The highest order, 1 to 3.
        order: usize,
        /// `B(h)`: bh1 or bh2.
        solver_type: UniPcVariant,
    },
}

impl SamplerOptions {
    /// `kind` with its defaults (the reference code's).
    pub fn defaults(kind: SamplerKind) -> Self {
        match kind {
            SamplerKind::Ancestral => Self::Ancestral { variance: Variance::Small },
            SamplerKind::Ddim => Self::Ddim { eta: 0.0 },
            SamplerKind::Ald => Self::Ald { corrector_steps: 1, step_lr: 0.2 },
            SamplerKind::EulerMaruyama => Self::EulerMaruyama,
            SamplerKind::ReverseDiffusion => Self::ReverseDiffusion,
            SamplerKind::Pc => Self::Pc { predictor: Predictor::ReverseDiffusion, variance: Variance::Small, snr: 0.16, corrector_steps: 1 },
            SamplerKind::OdeEuler => Self::OdeEuler,
            SamplerKind::OdeHeun => Self::OdeHeun,
            SamplerKind::OdeRk45 => Self::OdeRk45 { rtol: 1e-5, atol: 1e-5 },
            SamplerKind::DpmSolver2m => Self::DpmSolver2m,
            SamplerKind::HeunEdm => Self::HeunEdm { s_churn: 0.0, s_tmin: 0.0, s_tmax: f64::INFINITY, s_noise: 1.0 },
            SamplerKind::EulerAncestral => Self::EulerAncestral { eta: 1.0, s_noise: 1.0 },
            SamplerKind::DpmSolver3m => Self::DpmSolver3m,
            SamplerKind::DpmSolver2mSde => Self::DpmSolver2mSde { eta: 1.0, s_noise: 1.0 },
            SamplerKind::DpmSolver3mSde => Self::DpmSolver3mSde { eta: 1.0, s_noise: 1.0 },
            SamplerKind::Unipc => Self::Unipc { order: 2, solver_type: UniPcVariant::Bh2 },
        }
    }

    /// Which sampler.
    pub fn kind(&self) -> SamplerKind {
        match self {
            Self::Ancestral { .. } => SamplerKind::Ancestral,
            Self::Ddim { .. } => SamplerKind::Ddim,
            Self::Ald { .. } => SamplerKind::Ald,
            Self::EulerMaruyama => SamplerKind::EulerMaruyama,
            Self::ReverseDiffusion => SamplerKind::ReverseDiffusion,
            Self::Pc { .. } => SamplerKind::Pc,
            Self::OdeEuler => SamplerKind::OdeEuler,
            Self::OdeHeun => SamplerKind::OdeHeun,
            Self::OdeRk45 { .. } => SamplerKind::OdeRk45,
            Self::DpmSolver2m => SamplerKind::DpmSolver2m,
            Self::HeunEdm { .. } => SamplerKind::HeunEdm,
            Self::EulerAncestral { .. } => SamplerKind::EulerAncestral,
            Self::DpmSolver3m => SamplerKind::DpmSolver3m,
            Self::DpmSolver2mSde { .. } => SamplerKind::DpmSolver2mSde,
            Self::DpmSolver3mSde { .. } => SamplerKind::DpmSolver3mSde,
            Self::Unipc { .. } => SamplerKind::Unipc,
        }
    }

    /// The option names of this sampler.
    pub fn fields(&self) -> &'static [&'static str] {
        match self {
            Self::Ancestral { .. } => &["variance"],
            Self::Ddim { .. } => &["eta"],
            Self::Ald { .. } => &["corrector_steps", "step_lr"],
            Self::Pc { .. } => &["predictor", "variance", "snr", "corrector_steps"],
            Self::OdeRk45 { .. } => &["rtol", "atol"],
            Self::HeunEdm { .. } => &["s_churn", "s_tmin", "s_tmax", "s_noise"],
            Self::EulerAncestral { .. } | Self::DpmSolver2mSde { .. } | Self::DpmSolver3mSde { .. } => &["eta", "s_noise"],
            Self::Unipc { .. } => &["order", "solver_type"],
            Self::EulerMaruyama | Self::ReverseDiffusion | Self::OdeEuler | Self::OdeHeun | Self::DpmSolver2m | Self::DpmSolver3m => &[],
        }
    }

    /// The reverse variance, for the samplers that take one (ancestral, pc).
    pub fn variance(&self) -> Option<Variance> {
        match self {
            Self::Ancestral { variance } | Self::Pc { variance, .. } => Some(*variance),
            _ => None,
        }
    }

    fn variance_mut(&mut self) -> Option<&mut Variance> {
        match self {
            Self::Ancestral { variance } | Self::Pc { variance, .. } => Some(variance),
            _ => None,
        }
    }

    /// Checks the ranges of the options.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Self::Ddim { eta } if !(0.0..=1.0).contains(&eta) => Err(ConfigError::new("eta", "a number in [0, 1]", eta)),
            Self::Ald { step_lr, .. } => positive("step_lr", step_lr),
            Self::Pc { snr, .. } => positive("snr", snr),
            Self::OdeRk45 { rtol, atol } => positive("rtol", rtol).and_then(|()| positive("atol", atol)),
            Self::HeunEdm { s_churn, s_tmin, s_tmax, s_noise } => {
                non_negative("s_churn", s_churn)?;
                non_negative("s_tmin", s_tmin)?;
                non_negative("s_noise", s_noise)?;
                if s_tmax.is_nan() || s_tmax < s_tmin {
                    return Err(ConfigError::new("s_tmax", format!("a number at least s_tmin = {s_tmin} (or infinite)"), s_tmax));
                }
                Ok(())
            }
            Self::EulerAncestral { eta, s_noise } | Self::DpmSolver2mSde { eta, s_noise } | Self::DpmSolver3mSde { eta, s_noise } => {
                non_negative("eta", eta).and_then(|()| non_negative("s_noise", s_noise))
            }
            Self::Unipc { order, .. } if !(1..=3).contains(&order) => Err(ConfigError::new("order", "1, 2 or 3", order)),
            _ => Ok(()),
        }
    }
}

/// Everything a sampler needs.
///
/// Serialised as the flat [`SamplerSpec`] (`{"kind": "ddim", "steps": 50, "eta": 0}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SamplerSpec", into = "SamplerSpec")]
pub struct SamplerConfig {
    /// Which sampler, with its own options.
    pub options: SamplerOptions,
    /// The times it steps through (levels for ALD; RK45 only starts at the first and stops at
    /// the last positive one).
    pub grid: Grid,
    /// Replace the last step by Tweedie's denoiser at `t_min` (for RK45 and ALD, which stop at
    /// `t_min`; for grid samplers, instead of their own last step to `t = 0`).
    pub denoise: bool,
    /// Clipping of the predicted `x0` ([`clip`]): `auto` (static clipping to `data_range` when
    /// there is one), `off`, `static` or `dynamic`.
    pub clip: Clip,
    /// Dynamic thresholding's percentile `p` (Imagen's 0.995).
    pub clip_percentile: f64,
    /// The data's range `[lo, hi]` (the model card's; `[-1, 1]` for the image models), `None`
    /// for unbounded data (mixtures, 2-D toys).
    pub data_range: Option<[f64; 2]>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self::new(SamplerKind::Ancestral, 1000)
    }
}

impl SamplerConfig {
    /// `kind` with its defaults and `steps` steps of its default spacing.
    pub fn new(kind: SamplerKind, steps: usize) -> Self {
        Self::with_options(SamplerOptions::defaults(kind), steps)
    }

    /// The sampler `options` with `steps` steps of its default spacing.
    pub fn with_options(options: SamplerOptions, steps: usize) -> Self {
        let grid = options.kind().default_grid(steps);
        Self { options, grid, denoise: false, clip: Clip::Auto, clip_percentile: clip::DEFAULT_PERCENTILE, data_range: None }
    }

    /// Which sampler.
    pub fn kind(&self) -> SamplerKind {
        self.options.kind()
    }

    /// The number of grid steps.
    pub fn steps(&self) -> usize {
        self.grid.steps()
    }

    /// Checks ranges, naming the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.grid.validate(None)?;
        self.options.validate()?;
        if !(self.clip_percentile > 0.0 && self.clip_percentile <= 1.0) {
            return Err(ConfigError::new("clip_percentile", "a number in (0, 1]", self.clip_percentile));
        }
        if let Some([lo, hi]) = self.data_range
            && !(lo.is_finite() && hi.is_finite() && lo < hi)
        {
            return Err(ConfigError::new("data_range", "finite [lo, hi] with lo < hi", format!("[{lo}, {hi}]")));
        }
        self.x0_clip()?;
        Ok(())
    }

    /// The clipping of `x0_hat` this config asks for, resolved against its data range.
    pub fn x0_clip(&self) -> Result<Option<X0Clip>, ConfigError> {
        self.clip.resolve(self.data_range, self.clip_percentile)
    }

    /// Builds the sampler for `sde`.
    pub fn build<const D: usize>(&self, sde: &dyn Sde) -> Box<dyn Sampler<D>> {
        self.build_from(sde, sde.t_max())
    }

    /// Builds the sampler for `sde` on a grid that starts at `t_start` instead of `T`.
    pub fn build_from<const D: usize>(&self, sde: &dyn Sde, t_start: f64) -> Box<dyn Sampler<D>> {
        let mut times = self.grid.times(sde, t_start);
        match self.options {
            SamplerOptions::Ald { corrector_steps, step_lr } => return Box::new(AnnealedLangevin::new(sde, times, corrector_steps, step_lr)),
            SamplerOptions::OdeRk45 { rtol, atol } => return Box::new(Rk45Sampler::new(times[0], sde.t_min(), rtol, atol)),
            _ if self.denoise => {
                // The last step is Tweedie's denoiser instead (see `Sampling`).
                times.pop();
            }
            _ => {}
        }
        let steps = times.len().saturating_sub(1);
        match self.options {
            SamplerOptions::Ancestral { variance } => Box::new(GridSampler::new(times, Ancestral { variance })),
            SamplerOptions::Ddim { eta } => Box::new(GridSampler::new(times, Ddim { eta })),
            SamplerOptions::EulerMaruyama => Box::new(GridSampler::new(times, EulerMaruyama)),
            SamplerOptions::ReverseDiffusion => Box::new(GridSampler::new(times, ReverseDiffusion)),
            SamplerOptions::Pc { predictor, variance, snr, corrector_steps } => {
                Box::new(GridSampler::new(times, PredictorCorrector { predictor, variance, corrector: LangevinCorrector { snr, steps: corrector_steps } }))
            }
            SamplerOptions::OdeEuler => Box::new(GridSampler::new(times, OdeEuler)),
            SamplerOptions::OdeHeun => Box::new(GridSampler::new(times, OdeHeun)),
            SamplerOptions::DpmSolver2m => Box::new(GridSampler::new(times, DpmSolver2M::default())),
            SamplerOptions::HeunEdm { s_churn, s_tmin, s_tmax, s_noise } => {
                Box::new(GridSampler::new(times, HeunEdm { s_churn, s_tmin, s_tmax, s_noise, steps }))
            }
            SamplerOptions::EulerAncestral { eta, s_noise } => Box::new(GridSampler::new(times, EulerAncestral { eta, s_noise })),
            SamplerOptions::DpmSolver3m => Box::new(GridSampler::new(times, DpmSolverPp::new(3, 0.0, 1.0).with_steps(steps))),
            SamplerOptions::DpmSolver2mSde { eta, s_noise } => Box::new(GridSampler::new(times, DpmSolverPp::new(2, eta, s_noise))),
            SamplerOptions::DpmSolver3mSde { eta, s_noise } => Box::new(GridSampler::new(times, DpmSolverPp::new(3, eta, s_noise).with_steps(steps))),
            SamplerOptions::Unipc { order, solver_type } => Box::new(GridSampler::new(times, UniPc::new(order, solver_type, true, steps))),
            SamplerOptions::Ald { .. } | SamplerOptions::OdeRk45 { .. } => unreachable!("built above"),
        }
    }
}

/// A sampler config as a flat object tagged by `kind`: what the page's requests and
/// `native-cli`'s options give. Every field but `kind` is optional; [`SamplerSpec::build`]
/// fills in the sampler's defaults and refuses an option the sampler does not have.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerSpec {
    /// Which sampler (default: ancestral).
    #[serde(default)]
    pub kind: SamplerKind,
    /// Grid steps (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Grid spacing (default: the sampler's, [`SamplerKind::default_spacing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spacing: Option<Spacing>,
    /// Given grid times instead of `steps` and `spacing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<Vec<f64>>,
    /// A noise-level schedule (karras, exponential, polyexponential) instead of `spacing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigmas: Option<SigmaKind>,
    /// The schedule's `rho` (karras: 7, polyexponential: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rho: Option<f64>,
    /// The schedule's smallest noise level (default: the SDE's at `t_min`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma_min: Option<f64>,
    /// The schedule's largest noise level (default: the SDE's at the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma_max: Option<f64>,
    /// DDIM's `eta`; the noise share of euler-ancestral and the SDE solvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<f64>,
    /// The variance of ancestral steps (ancestral, pc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variance: Option<Variance>,
    /// PC's predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor: Option<Predictor>,
    /// PC's corrector signal-to-noise ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snr: Option<f64>,
    /// Corrector steps per level (pc), Langevin steps per level (ald).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrector_steps: Option<usize>,
    /// ALD's relative step size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_lr: Option<f64>,
    /// RK45's relative tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtol: Option<f64>,
    /// RK45's absolute tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atol: Option<f64>,
    /// EDM Heun's `S_churn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s_churn: Option<f64>,
    /// EDM Heun's `S_tmin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s_tmin: Option<f64>,
    /// EDM Heun's `S_tmax` (absent: infinite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s_tmax: Option<f64>,
    /// The scale of the added noise (heun-edm, euler-ancestral, the SDE solvers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s_noise: Option<f64>,
    /// UniPC's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<usize>,
    /// UniPC's `B(h)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solver_type: Option<UniPcVariant>,
    /// Finish with Tweedie's denoiser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denoise: Option<bool>,
    /// Clipping of the predicted `x0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<Clip>,
    /// Dynamic thresholding's percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_percentile: Option<f64>,
    /// The data's range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_range: Option<[f64; 2]>,
}

impl SamplerSpec {
    /// `kind` with nothing else given.
    pub fn new(kind: SamplerKind) -> Self {
        Self { kind, ..Self::default() }
    }

    /// The validated config: the sampler's defaults where nothing is given.
    ///
    /// # Errors
    /// An option the sampler does not have, both `times` and `steps` or `spacing`, or a value
    /// out of range; the error names the field.
    pub fn build(self) -> Result<SamplerConfig, ConfigError> {
        let kind = self.kind;
        let mut options = SamplerOptions::defaults(kind);
        let mut rest = self;
        match &mut options {
            SamplerOptions::Ancestral { variance } => take(&mut rest.variance, variance),
            SamplerOptions::Ddim { eta } => take(&mut rest.eta, eta),
            SamplerOptions::Ald { corrector_steps, step_lr } => {
                take(&mut rest.corrector_steps, corrector_steps);
                take(&mut rest.step_lr, step_lr);
            }
            SamplerOptions::Pc { predictor, variance, snr, corrector_steps } => {
                take(&mut rest.predictor, predictor);
                take(&mut rest.variance, variance);
                take(&mut rest.snr, snr);
                take(&mut rest.corrector_steps, corrector_steps);
            }
            SamplerOptions::OdeRk45 { rtol, atol } => {
                take(&mut rest.rtol, rtol);
                take(&mut rest.atol, atol);
            }
            SamplerOptions::HeunEdm { s_churn, s_tmin, s_tmax, s_noise } => {
                take(&mut rest.s_churn, s_churn);
                take(&mut rest.s_tmin, s_tmin);
                take(&mut rest.s_tmax, s_tmax);
                take(&mut rest.s_noise, s_noise);
            }
            SamplerOptions::EulerAncestral { eta, s_noise }
            | SamplerOptions::DpmSolver2mSde { eta, s_noise }
            | SamplerOptions::DpmSolver3mSde { eta, s_noise } => {
                take(&mut rest.eta, eta);
                take(&mut rest.s_noise, s_noise);
            }
            SamplerOptions::Unipc { order, solver_type } => {
                take(&mut rest.order, order);
                take(&mut rest.solver_type, solver_type);
            }
            SamplerOptions::EulerMaruyama
            | SamplerOptions::ReverseDiffusion
            | SamplerOptions::OdeEuler
            | SamplerOptions::OdeHeun
            | SamplerOptions::DpmSolver2m
            | SamplerOptions::DpmSolver3m => {}
        }
        // What the sampler did not take is not its option.
        let left = [
            ("eta", rest.eta.is_some()),
            ("variance", rest.variance.is_some()),
            ("predictor", rest.predictor.is_some()),
            ("snr", rest.snr.is_some()),
            ("corrector_steps", rest.corrector_steps.is_some()),
            ("step_lr", rest.step_lr.is_some()),
            ("rtol", rest.rtol.is_some()),
            ("atol", rest.atol.is_some()),
            ("s_churn", rest.s_churn.is_some()),
            ("s_tmin", rest.s_tmin.is_some()),
            ("s_tmax", rest.s_tmax.is_some()),
            ("s_noise", rest.s_noise.is_some()),
            ("order", rest.order.is_some()),
            ("solver_type", rest.solver_type.is_some()),
        ];
        if let Some((field, _)) = left.into_iter().find(|(_, given)| *given) {
            let own = options.fields();
            let own = if own.is_empty() { "none but the grid and the shared ones".to_string() } else { own.join(", ") };
            return Err(ConfigError::new(field, format!("an option of {kind} (its own: {own})"), format!("{field}, which {kind} does not have")));
        }
        let grid = match (rest.times, rest.steps, rest.spacing, rest.sigmas) {
            (Some(_), Some(_), _, _) | (Some(_), _, Some(_), _) | (Some(_), _, _, Some(_)) => {
                return Err(ConfigError::new("times", "either given times or steps and a spacing or sigmas", "both"));
            }
            (None, _, Some(spacing), Some(sigmas)) => {
                return Err(ConfigError::new("sigmas", "either a spacing or a noise-level schedule", format!("spacing {spacing} and sigmas {sigmas}")));
            }
            (Some(times), None, None, None) => Grid::Times(times),
            (None, steps, Some(spacing), None) => Grid::Spaced { steps: steps.unwrap_or(1000), spacing },
            (None, steps, None, Some(sigmas)) => Grid::Sigmas { steps: steps.unwrap_or(1000), schedule: SigmaSchedule::new(sigmas) },
            (None, steps, None, None) => kind.default_grid(steps.unwrap_or(1000)),
        };
        let grid = schedule_options(grid, rest.rho, rest.sigma_min, rest.sigma_max)?;
        let config = SamplerConfig {
            options,
            grid,
            denoise: rest.denoise.unwrap_or(false),
            clip: rest.clip.unwrap_or_default(),
            clip_percentile: rest.clip_percentile.unwrap_or(clip::DEFAULT_PERCENTILE),
            data_range: rest.data_range,
        };
        config.validate()?;
        Ok(config)
    }

    /// [`build`](Self::build) for a model whose own reverse variance is `own` and whose data lie
    /// in `data_range` (the model card's; `clip: auto` clips to it): an ancestral or PC sampler
    /// without a `variance` takes the model's own ([`Variance::resolve`]).
    ///
    /// # Errors
    /// As [`build`](Self::build), and a learned variance asked of a model without one.
    pub fn build_for(self, own: Variance, data_range: Option<[f64; 2]>) -> Result<SamplerConfig, ConfigError> {
        let requested = self.variance;
        let mut config = Self { data_range: data_range.or(self.data_range), ..self }.build()?;
        if let Some(v) = config.options.variance_mut() {
            *v = Variance::resolve(requested, own)?;
        }
        Ok(config)
    }
}

/// Puts the given `rho`, `sigma_min` and `sigma_max` into a noise-level schedule; refuses them
/// for another grid, and `rho` for the exponential schedule.
fn schedule_options(grid: Grid, rho: Option<f64>, sigma_min: Option<f64>, sigma_max: Option<f64>) -> Result<Grid, ConfigError> {
    match grid {
        Grid::Sigmas { steps, mut schedule } => {
            if let Some(rho) = rho {
                if schedule.kind.default_rho().is_none() {
                    return Err(ConfigError::new("rho", "an option of karras or polyexponential sigmas", format!("rho with {} sigmas", schedule.kind)));
                }
                schedule.rho = rho;
            }
            schedule.sigma_min = sigma_min.or(schedule.sigma_min);
            schedule.sigma_max = sigma_max.or(schedule.sigma_max);
            Ok(Grid::Sigmas { steps, schedule })
        }
        other => match [("rho", rho), ("sigma_min", sigma_min), ("sigma_max", sigma_max)].into_iter().find(|(_, v)| v.is_some()) {
            Some((field, _)) => Err(ConfigError::new(
                field,
                "an option of a noise-level schedule (sigmas: karras, exponential, polyexponential)",
                format!("{field} with a spaced or given grid"),
            )),
            None => Ok(other),
        },
    }
}

/// Checks that `value` is finite and at least 0.
fn non_negative(field: &str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value >= 0.0 { Ok(()) } else { Err(ConfigError::new(field, "a finite number >= 0", value)) }
}

/// Moves a given option into its sampler's field.
fn take<T>(value: &mut Option<T>, into: &mut T) {
    if let Some(v) = value.take() {
        *into = v;
    }
}

impl TryFrom<SamplerSpec> for SamplerConfig {
    type Error = ConfigError;
    fn try_from(spec: SamplerSpec) -> Result<Self, ConfigError> {
        spec.build()
    }
}

impl From<SamplerConfig> for SamplerSpec {
    fn from(c: SamplerConfig) -> Self {
        let mut spec = SamplerSpec::new(c.kind());
        match c.grid {
            Grid::Spaced { steps, spacing } => (spec.steps, spec.spacing) = (Some(steps), Some(spacing)),
            Grid::Times(t) => spec.times = Some(t),
            Grid::Sigmas { steps, schedule } => {
                (spec.steps, spec.sigmas) = (Some(steps), Some(schedule.kind));
                spec.rho = schedule.kind.default_rho().map(|_| schedule.rho);
                (spec.sigma_min, spec.sigma_max) = (schedule.sigma_min, schedule.sigma_max);
            }
        }
        match c.options {
            SamplerOptions::Ancestral { variance } => spec.variance = Some(variance),
            SamplerOptions::Ddim { eta } => spec.eta = Some(eta),
            SamplerOptions::Ald { corrector_steps, step_lr } => (spec.corrector_steps, spec.step_lr) = (Some(corrector_steps), Some(step_lr)),
            SamplerOptions::Pc { predictor, variance, snr, corrector_steps } => {
                (spec.predictor, spec.variance, spec.snr, spec.corrector_steps) = (Some(predictor), Some(variance), Some(snr), Some(corrector_steps));
            }
            SamplerOptions::OdeRk45 { rtol, atol } => (spec.rtol, spec.atol) = (Some(rtol), Some(atol)),
            SamplerOptions::HeunEdm { s_churn, s_tmin, s_tmax, s_noise } => {
                (spec.s_churn, spec.s_tmin, spec.s_noise) = (Some(s_churn), Some(s_tmin), Some(s_noise));
                // JSON has no infinity: an absent S_tmax is infinite.
                spec.s_tmax = s_tmax.is_finite().then_some(s_tmax);
            }
            SamplerOptions::EulerAncestral { eta, s_noise }
            | SamplerOptions::DpmSolver2mSde { eta, s_noise }
            | SamplerOptions::DpmSolver3mSde { eta, s_noise } => {
                (spec.eta, spec.s_noise) = (Some(eta), Some(s_noise));
            }
            SamplerOptions::Unipc { order, solver_type } => (spec.order, spec.solver_type) = (Some(order), Some(solver_type)),
            SamplerOptions::EulerMaruyama
            | SamplerOptions::ReverseDiffusion
            | SamplerOptions::OdeEuler
            | SamplerOptions::OdeHeun
            | SamplerOptions::DpmSolver2m
            | SamplerOptions::DpmSolver3m => {}
        }
        spec.denoise = Some(c.denoise);
        spec.clip = Some(c.clip);
        spec.clip_percentile = Some(c.clip_percentile);
        spec.data_range = c.data_range;
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let all: Vec<SamplerKind> = SamplerKind::all().collect();
        assert_eq!(all.len(), 16);
        let names: Vec<&str> = all[10..].iter().map(|k| k.name()).collect();
        assert_eq!(names, ["heun-edm", "euler-ancestral", "dpm-solver3m", "dpm-solver2m-sde", "dpm-solver3m-sde", "unipc"]);
        crate::names::serde_agrees(&all);
        assert_eq!(SamplerKind::DpmSolver2m.name(), "dpm-solver2m");
        assert!("euler".parse::<SamplerKind>().unwrap_err().contains("ode-euler"));
    }

    #[test]
    fn json_round_trips_and_takes_each_samplers_defaults() {
        for kind in SamplerKind::all() {
            let config = SamplerConfig::new(kind, 7);
            let json = serde_json::to_string(&config).unwrap();
            assert_eq!(serde_json::from_str::<SamplerConfig>(&json).unwrap(), config, "{json}");
            let bare: SamplerConfig = serde_json::from_str(&format!(r#"{{"kind": "{kind}", "steps": 7}}"#)).unwrap();
            assert_eq!(bare, config, "{kind}");
        }
        let dpm: SamplerConfig = serde_json::from_str(r#"{"kind": "dpm-solver2m", "steps": 10}"#).unwrap();
        assert_eq!(dpm.grid, Grid::Spaced { steps: 10, spacing: Spacing::LogSnr });
        let given: SamplerConfig = serde_json::from_str(r#"{"kind": "ddim", "times": [1.0, 0.5, 0.0]}"#).unwrap();
        assert_eq!(given.grid, Grid::Times(vec![1.0, 0.5, 0.0]));
        let e = serde_json::from_str::<SamplerConfig>(r#"{"kind": "ddim", "times": [1.0, 0.0], "steps": 3}"#).unwrap_err();
        assert!(e.to_string().contains("times"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let field = |spec: SamplerSpec| spec.build().unwrap_err().field;
        assert_eq!(field(SamplerSpec { steps: Some(0), ..SamplerSpec::new(SamplerKind::Ddim) }), "steps");
        assert_eq!(field(SamplerSpec { eta: Some(2.0), ..SamplerSpec::new(SamplerKind::Ddim) }), "eta");
        assert_eq!(field(SamplerSpec { snr: Some(0.0), ..SamplerSpec::new(SamplerKind::Pc) }), "snr");
        assert_eq!(field(SamplerSpec { clip_percentile: Some(0.0), ..SamplerSpec::default() }), "clip_percentile");
        assert_eq!(field(SamplerSpec { clip: Some(Clip::Static), ..SamplerSpec::default() }), "clip");
        assert_eq!(field(SamplerSpec { eta: Some(0.5), ..SamplerSpec::new(SamplerKind::Ancestral) }), "eta");
    }

    #[test]
    fn the_models_own_variance_unless_another_is_asked_for() {
        let spec = |v: Option<Variance>| SamplerSpec { variance: v, ..SamplerSpec::new(SamplerKind::Ancestral) };
        assert_eq!(spec(None).build_for(Variance::Learned, None).unwrap().options.variance(), Some(Variance::Learned));
        assert_eq!(spec(Some(Variance::Large)).build_for(Variance::Learned, None).unwrap().options.variance(), Some(Variance::Large));
        assert_eq!(spec(Some(Variance::Learned)).build_for(Variance::Small, None).unwrap_err().field, "variance");
        // A sampler without a variance ignores the model's.
        assert_eq!(SamplerSpec::new(SamplerKind::Ddim).build_for(Variance::Learned, None).unwrap().options.variance(), None);
    }

    /// The capabilities come from the samplers themselves.
    #[test]
    fn capabilities() {
        let rewinds: Vec<SamplerKind> = SamplerKind::all().filter(|k| !k.can_rewind()).collect();
        assert_eq!(
            rewinds,
            [
                SamplerKind::Ald,
                SamplerKind::OdeRk45,
                SamplerKind::DpmSolver2m,
                SamplerKind::DpmSolver3m,
                SamplerKind::DpmSolver2mSde,
                SamplerKind::DpmSolver3mSde,
                SamplerKind::Unipc
            ]
        );
        let reads: Vec<SamplerKind> = SamplerKind::all().filter(|k| k.reads_back()).collect();
        assert_eq!(reads, [SamplerKind::Pc, SamplerKind::OdeRk45]);
    }
}
