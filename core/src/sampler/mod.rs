//! Samplers of the reverse process.
//!
//! Every sampler here is written from the SDE's scalar coefficients alone (its marginal at two
//! grid times, its drift and diffusion), so each works for VE, VP, sub-VP and the discrete DDPM
//! schedules without type checks (the Langevin corrector of the reference code crashes on
//! sub-VP because it reads `sde.alphas`; ours does not).
//!
//! # Time grid
//! `n` steps use the grid `t_0 = T > t_1 > ... > t_{n-1} = t_min > t_n = 0` (see [`time_grid`]):
//! the score is evaluated at `t_0 .. t_{n-1}` and the last step lands on the data at `t = 0`.
//! For DDPM's 1000-level schedule and `n = 1000` this is exactly DDPM's grid; fewer steps give
//! a respaced subset.
//!
//! # Interface
//! A [`Sampler`] advances one step at a time (the browser yields between steps), returning a
//! [`Step`] with the new state `x` and its noise-free mean `x_mean` (the final sample is the
//! last `x_mean`, as in the reference code). [`Sampling`] holds the state and counts NFE;
//! [`sample`] runs to the end with a progress callback.

mod ald;
mod ancestral;
pub mod clip;
mod ddim;
mod dpm_solver;
mod euler_maruyama;
mod interp;
mod langevin;
mod ode;
mod pc;
mod reverse_diffusion;
mod rk45;

/// Projection inpainting lives with the other inverse-problem methods in [`crate::inverse`].
pub use crate::inverse::Inpainting;
pub use ald::AnnealedLangevin;
pub use ancestral::{Ancestral, Posterior, Posteriors, Variance};
pub use clip::{Clip, X0Clip};
pub use ddim::Ddim;
pub use dpm_solver::DpmSolver2M;
pub use euler_maruyama::EulerMaruyama;
pub use interp::{ode_decode, ode_encode, slerp};
pub use langevin::{LangevinCorrector, langevin_update};
pub use ode::{OdeEuler, OdeHeun};
pub use pc::{Predictor, PredictorCorrector};
pub use reverse_diffusion::ReverseDiffusion;
pub use rk45::{Rk45, Rk45Sampler};

use crate::model::{Prediction, ScoreFn};
use crate::noise::NoiseSource;
use crate::sde::{Sde, log_snr, time_at_log_snr};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The state after one step.
#[derive(Debug, Clone)]
pub struct Step<const D: usize> {
    /// The new sample.
    pub x: Tensor<D>,
    /// Its mean before the step's noise was added (the denoised output at the last step).
    pub x_mean: Tensor<D>,
}

impl<const D: usize> Step<D> {
    /// A deterministic step: `x_mean = x`.
    pub fn deterministic(x: Tensor<D>) -> Self {
        Self { x_mean: x.clone(), x }
    }
}

/// A sampler that advances one step at a time.
pub trait Sampler<const D: usize> {
    /// Advances from `x` by one step.
    fn step(&mut self, x: Tensor<D>, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D>;
    /// Whether the last step has been taken.
    fn is_done(&self) -> bool;
    /// `(steps taken, steps in all)`; for adaptive samplers the total is an estimate.
    fn progress(&self) -> (usize, usize);
    /// The time the current state is at.
    fn time(&self) -> f64;
    /// Steps back to the previous time of the grid, so that the step just taken can be taken
    /// again from a re-noised state (RePaint's resampling); `false`, changing nothing, at the
    /// start or for samplers whose steps remember earlier ones (multistep, adaptive).
    fn rewind(&mut self) -> bool {
        false
    }
}

/// One transition of a grid sampler, from `t` to `t_next < t`.
pub trait Transition<const D: usize> {
    /// Moves `x` at time `t` to time `t_next`.
    fn transition(&mut self, x: Tensor<D>, t: f64, t_next: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D>;
    /// Whether a step depends on its state and times alone, so that the grid may step back and
    /// take it again (false for multistep methods, which keep the previous prediction).
    fn memoryless(&self) -> bool {
        true
    }
}

/// A transition computed from the model's prediction at `(x, t)` alone (DDPM ancestral, DDIM):
/// what methods that need the prediction first build on (DPS differentiates it before the step).
pub trait PredictionStep<const D: usize> {
    /// The step from `x` at `t` to `s < t`, given the model's prediction `pred` at `(x, t)`.
    fn step_from(&self, x: Tensor<D>, pred: &Prediction<D>, t: f64, s: f64, sde: &dyn Sde, noise: &mut NoiseSource) -> Step<D>;
}

/// A sampler that applies a [`Transition`] along a fixed time grid.
pub struct GridSampler<T> {
    times: Vec<f64>,
    k: usize,
    transition: T,
}

impl<T> GridSampler<T> {
    /// Runs `transition` along `times` (decreasing, see [`time_grid`]).
    pub fn new(times: Vec<f64>, transition: T) -> Self {
        Self { times, k: 0, transition }
    }
}

impl<const D: usize, T: Transition<D>> Sampler<D> for GridSampler<T> {
    fn step(&mut self, x: Tensor<D>, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let (t, t_next) = (self.times[self.k], self.times[self.k + 1]);
        self.k += 1;
        self.transition.transition(x, t, t_next, f, noise)
    }
    fn is_done(&self) -> bool {
        self.k + 1 >= self.times.len()
    }
    fn progress(&self) -> (usize, usize) {
        (self.k, self.times.len() - 1)
    }
    fn time(&self) -> f64 {
        self.times[self.k]
    }
    fn rewind(&mut self) -> bool {
        if self.k == 0 || !self.transition.memoryless() {
            return false;
        }
        self.k -= 1;
        true
    }
}

/// How the grid's times are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Spacing {
    /// Uniform in `t` (DDIM's "uniform" skipping).
    #[default]
    Uniform,
    /// Quadratic in `t`, denser near the data (DDIM's "quadratic" skipping, Song et al. 2021a,
    /// appendix D.2).
    Quadratic,
    /// Uniform in the half log-SNR `lambda(t) = log(m(t) / s(t))` (DPM-Solver, Lu et al. 2022,
    /// section 3.3): geometric in sigma for VE; the default of `dpm-solver2m`.
    LogSnr,
}

impl Spacing {
    /// The spacing a sampler uses unless told otherwise.
    pub fn default_for(kind: SamplerKind) -> Self {
        match kind {
            SamplerKind::DpmSolver2m => Spacing::LogSnr,
            _ => Spacing::Uniform,
        }
    }
}

impl FromStr for Spacing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(Self::Uniform),
            "quadratic" => Ok(Self::Quadratic),
            "log-snr" => Ok(Self::LogSnr),
            _ => Err(format!("unknown spacing `{s}`: expected uniform, quadratic or log-snr")),
        }
    }
}

impl std::fmt::Display for Spacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Uniform => "uniform",
            Self::Quadratic => "quadratic",
            Self::LogSnr => "log-snr",
        })
    }
}

/// The `n + 1` times `T = t_0 > ... > t_{n-1} = t_min > t_n = 0`, snapped to the SDE's grid
/// (duplicates after snapping removed, so a discrete schedule may give fewer).
pub fn time_grid(sde: &dyn Sde, n: usize, spacing: Spacing) -> Vec<f64> {
    time_grid_from(sde, sde.t_max(), n, spacing)
}

/// As [`time_grid`], starting at `t_start <= T` instead of `T` (SDEdit starts part-way).
pub fn time_grid_from(sde: &dyn Sde, t_start: f64, n: usize, spacing: Spacing) -> Vec<f64> {
    let (t_max, t_min) = (t_start.clamp(sde.t_min(), sde.t_max()), sde.t_min());
    let (l_max, l_min) = (log_snr(sde, t_min), log_snr(sde, t_max));
    let mut times: Vec<f64> = (0..n)
        .map(|k| {
            let u = if n == 1 { 1.0 } else { (n - 1 - k) as f64 / (n - 1) as f64 };
            let t = match spacing {
                Spacing::Uniform => t_min + (t_max - t_min) * u,
                Spacing::Quadratic => t_min + (t_max - t_min) * u * u,
                Spacing::LogSnr if u == 0.0 => t_min,
                Spacing::LogSnr if u == 1.0 => t_max,
                Spacing::LogSnr => time_at_log_snr(sde, l_max + (l_min - l_max) * u, t_min, t_max),
            };
            sde.snap(t)
        })
        .collect();
    times.dedup();
    times.push(0.0);
    times
}

/// The reverse-time drift `f(t) x - lambda g(t)^2 score`, with `lambda = 1` for the reverse SDE
/// (Song et al. 2021, eq. 6) and `lambda = 1/2` for the probability-flow ODE (eq. 13).
pub fn reverse_drift<const D: usize>(f: &ScoreFn<D>, x: Tensor<D>, t: f64, lambda: f64) -> Tensor<D> {
    let sde = f.sde();
    let g = sde.diffusion(t);
    let score = f.score(x.clone(), t);
    x.mul_scalar(sde.drift_coef(t)) - score.mul_scalar(lambda * g * g)
}

/// The probability-flow ODE's velocity `dx/dt = f(t) x - 1/2 g(t)^2 score` (eq. 13).
pub fn ode_drift<const D: usize>(f: &ScoreFn<D>, x: Tensor<D>, t: f64) -> Tensor<D> {
    reverse_drift(f, x, t, 0.5)
}

/// `N(0, prior_std^2 I)`: where sampling starts.
pub fn prior_sample<const D: usize>(sde: &dyn Sde, shape: [usize; D], noise: &mut NoiseSource, device: &Device) -> Tensor<D> {
    noise.normal(shape, device).mul_scalar(sde.prior_std())
}

/// Tweedie's `E[x_0 | x_t]` at `t`: the optional final denoising step.
pub fn tweedie_denoise<const D: usize>(f: &ScoreFn<D>, x: Tensor<D>, t: f64) -> Tensor<D> {
    f.eval(x, t).x0()
}

/// The sampler families, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// DDPM ancestral sampling (Ho et al. 2020, Alg. 2) from the exact posterior.
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
}

impl SamplerKind {
    /// Every sampler with its name and a one-line description.
    pub const ALL: [(SamplerKind, &'static str, &'static str); 10] = [
        (SamplerKind::Ancestral, "ancestral", "DDPM ancestral sampling from the exact posterior q(x_s | x_t, x0_hat); --variance small|large|learned"),
        (SamplerKind::Ddim, "ddim", "DDIM; --eta 0 is deterministic, 1 is ancestral; --spacing uniform|quadratic"),
        (SamplerKind::Ald, "ald", "annealed Langevin dynamics (NCSN); --corrector-steps per level, --step-lr"),
        (SamplerKind::EulerMaruyama, "euler-maruyama", "Euler-Maruyama on the reverse SDE"),
        (SamplerKind::ReverseDiffusion, "reverse-diffusion", "reverse-diffusion predictor (the SDE's own discretization)"),
        (SamplerKind::Pc, "pc", "predictor-corrector: --predictor then --corrector-steps Langevin steps at --snr"),
        (SamplerKind::OdeEuler, "ode-euler", "probability-flow ODE, Euler (1 NFE per step)"),
        (SamplerKind::OdeHeun, "ode-heun", "probability-flow ODE, Heun (2 NFE per step)"),
        (SamplerKind::OdeRk45, "ode-rk45", "probability-flow ODE, adaptive Dormand-Prince RK45; --rtol, --atol"),
        (SamplerKind::DpmSolver2m, "dpm-solver2m", "DPM-Solver++(2M), multistep 2nd order for few steps"),
    ];

    /// Whether the sampler's steps can be retaken from another state at the same time
    /// ([`Sampler::rewind`]): every one-step grid sampler; not DPM-Solver++(2M) (multistep),
    /// RK45 (adaptive) or annealed Langevin (no reverse steps).
    pub fn can_rewind(self) -> bool {
        !matches!(self, Self::DpmSolver2m | Self::OdeRk45 | Self::Ald)
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(k, _, _)| *k == self).map(|(_, n, _)| *n).unwrap_or("?")
    }
}

impl FromStr for SamplerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.iter().find(|(_, n, _)| *n == s).map(|(k, _, _)| *k).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|(_, n, _)| *n).collect();
            format!("unknown sampler `{s}`: expected one of {}", names.join(", "))
        })
    }
}

impl std::fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a sampler needs, with the reference code's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplerConfig {
    /// Which sampler.
    pub kind: SamplerKind,
    /// Number of grid steps (levels for ALD; ignored by RK45).
    pub steps: usize,
    /// Grid spacing.
    pub spacing: Spacing,
    /// DDIM's `eta`.
    pub eta: f64,
    /// Ancestral variance choice.
    pub variance: Variance,
    /// PC's predictor.
    pub predictor: Predictor,
    /// Langevin corrector's signal-to-noise ratio (PC).
    pub snr: f64,
    /// Corrector steps per level (PC), Langevin steps per level (ALD).
    pub corrector_steps: usize,
    /// ALD's step size `epsilon` relative to the smallest level: `alpha_i = step_lr s_i^2`
    /// with `s_i` the noise std at level `i` over the one at `t_min` (NCSN's `epsilon / sigma_L^2`).
    pub step_lr: f64,
    /// RK45 relative tolerance.
    pub rtol: f64,
    /// RK45 absolute tolerance.
    pub atol: f64,
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
        Self {
            kind: SamplerKind::Ancestral,
            steps: 1000,
            spacing: Spacing::Uniform,
            eta: 0.0,
            variance: Variance::Small,
            predictor: Predictor::ReverseDiffusion,
            snr: 0.16,
            corrector_steps: 1,
            step_lr: 0.2,
            rtol: 1e-5,
            atol: 1e-5,
            denoise: false,
            clip: Clip::Auto,
            clip_percentile: clip::DEFAULT_PERCENTILE,
            data_range: None,
        }
    }
}

impl SamplerConfig {
    /// A config for `kind` with `steps` steps and defaults otherwise (including the sampler's
    /// default [`Spacing`]).
    pub fn new(kind: SamplerKind, steps: usize) -> Self {
        Self { kind, steps, spacing: Spacing::default_for(kind), ..Self::default() }
    }

    /// Checks ranges, naming the offending option.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps == 0 {
            return Err("--steps: expected at least 1, found 0".into());
        }
        if !(0.0..=1.0).contains(&self.eta) {
            return Err(format!("--eta: expected a number in [0, 1], found {}", self.eta));
        }
        for (name, v) in [("--snr", self.snr), ("--step-lr", self.step_lr), ("--rtol", self.rtol), ("--atol", self.atol)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name}: expected a finite number > 0, found {v}"));
            }
        }
        if !(self.clip_percentile > 0.0 && self.clip_percentile <= 1.0) {
            return Err(format!("--clip-percentile: expected a number in (0, 1], found {}", self.clip_percentile));
        }
        if let Some([lo, hi]) = self.data_range
            && !(lo.is_finite() && hi.is_finite() && lo < hi)
        {
            return Err(format!("data_range: expected finite [lo, hi] with lo < hi, found [{lo}, {hi}]"));
        }
        self.x0_clip().map_err(|e| format!("--clip: {e}"))?;
        Ok(())
    }

    /// The clipping of `x0_hat` this config asks for, resolved against its data range.
    pub fn x0_clip(&self) -> Result<Option<X0Clip>, String> {
        self.clip.resolve(self.data_range, self.clip_percentile)
    }

    /// Builds the sampler for `sde`.
    pub fn build<const D: usize>(&self, sde: &dyn Sde) -> Box<dyn Sampler<D>> {
        self.build_from(sde, sde.t_max())
    }

    /// Builds the sampler for `sde` on a grid that starts at `t_start` instead of `T`.
    pub fn build_from<const D: usize>(&self, sde: &dyn Sde, t_start: f64) -> Box<dyn Sampler<D>> {
        let mut times = time_grid_from(sde, t_start, self.steps, self.spacing);
        let corrector = LangevinCorrector { snr: self.snr, steps: self.corrector_steps };
        let sampler: Box<dyn Sampler<D>> = match self.kind {
            SamplerKind::Ald => Box::new(AnnealedLangevin::new(sde, times, self.corrector_steps, self.step_lr)),
            SamplerKind::OdeRk45 => Box::new(Rk45Sampler::new(times[0], sde.t_min(), self.rtol, self.atol)),
            kind => {
                if self.denoise {
                    // The last step is Tweedie's denoiser instead (see `Denoised`).
                    times.pop();
                }
                match kind {
                    SamplerKind::Ancestral => Box::new(GridSampler::new(times, Ancestral { variance: self.variance })),
                    SamplerKind::Ddim => Box::new(GridSampler::new(times, Ddim { eta: self.eta })),
                    SamplerKind::EulerMaruyama => Box::new(GridSampler::new(times, EulerMaruyama)),
                    SamplerKind::ReverseDiffusion => Box::new(GridSampler::new(times, ReverseDiffusion)),
                    SamplerKind::Pc => Box::new(GridSampler::new(times, PredictorCorrector { predictor: self.predictor, variance: self.variance, corrector })),
                    SamplerKind::OdeEuler => Box::new(GridSampler::new(times, OdeEuler)),
                    SamplerKind::OdeHeun => Box::new(GridSampler::new(times, OdeHeun)),
                    SamplerKind::DpmSolver2m => Box::new(GridSampler::new(times, DpmSolver2M::default())),
                    SamplerKind::Ald | SamplerKind::OdeRk45 => unreachable!(),
                }
            }
        };
        sampler
    }
}

/// A sampling run in progress: the state, the sampler, and whether to finish with Tweedie.
pub struct Sampling<const D: usize> {
    sampler: Box<dyn Sampler<D>>,
    pub(crate) state: Step<D>,
    denoise: bool,
    finished: bool,
    clip: Option<X0Clip>,
}

impl<const D: usize> Sampling<D> {
    /// Starts from a prior sample of `shape`.
    pub fn new(config: &SamplerConfig, sde: &dyn Sde, shape: [usize; D], noise: &mut NoiseSource, device: &Device) -> Self {
        let x = prior_sample(sde, shape, noise, device);
        Self::from_state(config, sde, x)
    }

    /// Starts from a given `x_T` (e.g. an ODE latent).
    pub fn from_state(config: &SamplerConfig, sde: &dyn Sde, x: Tensor<D>) -> Self {
        Self::from_state_at(config, sde, x, sde.t_max())
    }

    /// Starts from a given `x` at time `t_start` (SDEdit: a noised image part-way).
    ///
    /// The config's clipping ([`SamplerConfig::x0_clip`]) applies to every prediction; a config
    /// that fails [`SamplerConfig::validate`] there clips nothing.
    pub fn from_state_at(config: &SamplerConfig, sde: &dyn Sde, x: Tensor<D>, t_start: f64) -> Self {
        let clip = config.x0_clip().unwrap_or(None);
        Self { sampler: config.build_from(sde, t_start), state: Step::deterministic(x), denoise: config.denoise, finished: false, clip }
    }

    /// Runs a sampler built elsewhere (DPS's guided grid) from `x`, without a final Tweedie step,
    /// its predictions clipped by `clip`.
    pub fn with_sampler(sampler: Box<dyn Sampler<D>>, x: Tensor<D>, clip: Option<X0Clip>) -> Self {
        Self { sampler, state: Step::deterministic(x), denoise: false, finished: false, clip }
    }

    /// The clipping of `x0_hat` this run applies.
    pub fn clip(&self) -> Option<X0Clip> {
        self.clip
    }

    /// The sampler's current time.
    pub fn time(&self) -> f64 {
        self.sampler.time()
    }

    /// The current state.
    pub fn state(&self) -> &Step<D> {
        &self.state
    }

    /// `(steps taken, steps in all)`.
    pub fn progress(&self) -> (usize, usize) {
        let (k, n) = self.sampler.progress();
        let extra = usize::from(self.denoise);
        (k + usize::from(self.finished && self.denoise), n + extra)
    }

    /// Whether sampling has finished.
    pub fn is_done(&self) -> bool {
        self.finished
    }

    /// Steps the sampler back one time of its grid without touching the state (see
    /// [`Sampler::rewind`]; the caller puts a state at that time); `false` once finished.
    pub fn rewind(&mut self) -> bool {
        !self.finished && self.sampler.rewind()
    }

    /// Takes one step; returns `false` once finished.
    pub fn next(&mut self, f: &ScoreFn<D>, noise: &mut NoiseSource) -> bool {
        if self.finished {
            return false;
        }
        let clipped = self.clip.map(|c| f.clipped(Some(c)));
        let f = clipped.as_ref().unwrap_or(f);
        if !self.sampler.is_done() {
            self.state = self.sampler.step(self.state.x.clone(), f, noise);
        } else {
            // Tweedie at the sampler's last time, from the noisy state.
            let t = self.sampler.time();
            self.state = Step::deterministic(tweedie_denoise(f, self.state.x.clone(), t));
            self.finished = true;
            return true;
        }
        if self.sampler.is_done() && !self.denoise {
            self.finished = true;
        }
        true
    }

    /// The sample: the last step's noise-free mean.
    pub fn output(self) -> Tensor<D> {
        self.state.x_mean
    }
}

/// Runs a sampler from the prior to the end; `callback(step, total, state)` after each step.
pub fn sample<const D: usize>(
    config: &SamplerConfig,
    f: &ScoreFn<D>,
    shape: [usize; D],
    noise: &mut NoiseSource,
    device: &Device,
    mut callback: impl FnMut(usize, usize, &Step<D>),
) -> Tensor<D> {
    let mut run = Sampling::new(config, f.sde(), shape, noise, device);
    while run.next(f, noise) {
        let (k, n) = run.progress();
        callback(k, n, run.state());
    }
    run.output()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::{DiscreteVpSde, ScheduleKind, VpSde};

    #[test]
    fn grid_is_ddpm_for_1000_levels_and_respaced_otherwise() {
        let sde = DiscreteVpSde::new(ScheduleKind::Linear, 1000).unwrap();
        let g = time_grid(&sde, 1000, Spacing::Uniform);
        assert_eq!(g.len(), 1001);
        for (k, t) in g.iter().enumerate() {
            assert!((t - (1000 - k) as f64 / 1000.0).abs() < 1e-12);
        }
        let g = time_grid(&sde, 10, Spacing::Quadratic);
        assert_eq!(g.len(), 11);
        assert_eq!((g[0], g[9], g[10]), (1.0, 0.001, 0.0));
        assert!(g.windows(2).all(|w| w[0] > w[1]));
        // Quadratic spacing is denser near the data.
        assert!(g[8] - g[9] < g[0] - g[1]);
        let c = VpSde::new(0.1, 20.0).unwrap();
        let g = time_grid(&c, 3, Spacing::Uniform);
        assert_eq!(g, vec![1.0, 0.5005, 0.001, 0.0]);
    }

    #[test]
    fn log_snr_grid_is_uniform_in_lambda_and_geometric_for_ve() {
        let vp = VpSde::new(0.1, 20.0).unwrap();
        let g = time_grid(&vp, 6, Spacing::LogSnr);
        let l: Vec<f64> = g[..6].iter().map(|&t| log_snr(&vp, t)).collect();
        for w in l.windows(3) {
            assert!(((w[1] - w[0]) - (w[2] - w[1])).abs() < 1e-9, "{l:?}");
        }
        let ve = crate::sde::VeSde::new(0.01, 50.0).unwrap();
        let g = time_grid(&ve, 5, Spacing::LogSnr);
        let s: Vec<f64> = g[..5].iter().map(|&t| ve.sigma(t)).collect();
        let ratio = (s[0] / s[4]).powf(0.25);
        assert!((ratio - (50.0 / ve.sigma(ve.t_min())).powf(0.25)).abs() < 1e-9);
        for w in s.windows(2) {
            assert!((w[0] / w[1] - ratio).abs() < 1e-6, "{s:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for (k, n, _) in SamplerKind::ALL {
            assert_eq!(n.parse::<SamplerKind>().unwrap(), k);
            assert_eq!(k.name(), n);
        }
        assert!("euler".parse::<SamplerKind>().unwrap_err().contains("ode-euler"));
    }
}
