//! Time grids and the sampler that walks one.
//!
//! `n` steps use the grid `t_0 = T > t_1 > ... > t_{n-1} = t_min > t_n = 0` (see [`time_grid`]):
//! the score is evaluated at `t_0 .. t_{n-1}` and the last step lands on the data at `t = 0`.
//! For DDPM's 1000-level schedule and `n = 1000` this is exactly DDPM's grid; fewer steps give
//! a respaced subset. The grid is an argument of a run ([`Grid`]): a spacing with a step count,
//! given times (a respaced subset of a DDPM schedule, [`crate::sde::Respaced::times`]), or a
//! schedule of noise levels (Karras, exponential, polyexponential; [`SigmaSchedule`]), as
//! k-diffusion's samplers take their `sigmas`. Diffusers' timestep spacings (linspace, leading,
//! trailing) are spacings of the SDE's levels (see [`super::schedule`]).

use super::schedule::{SigmaSchedule, TimestepSpacing, discrete_times};
use super::{Sampler, Step, Transition};
use crate::error::ConfigError;
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use crate::sde::{Sde, log_snr, time_at_log_snr};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How the grid's times are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = Spacing::unknown)]
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
    /// Diffusers' `timestep_spacing = "linspace"` on the SDE's levels ([`TimestepSpacing`]).
    Linspace,
    /// Diffusers' `"leading"`: every `N / n`-th level from the first; never reaches `T`.
    Leading,
    /// Diffusers' `"trailing"`: every `N / n`-th level from `T` down (Lin et al. 2024, table 2).
    Trailing,
}

impl Spacing {
    /// Every spacing.
    pub const ALL: [Spacing; 6] = [Self::Uniform, Self::Quadratic, Self::LogSnr, Self::Linspace, Self::Leading, Self::Trailing];

    /// The diffusers spacing this is, if it is one.
    pub fn timestep_spacing(self) -> Option<TimestepSpacing> {
        match self {
            Self::Linspace => Some(TimestepSpacing::Linspace),
            Self::Leading => Some(TimestepSpacing::Leading),
            Self::Trailing => Some(TimestepSpacing::Trailing),
            _ => None,
        }
    }

    fn unknown(s: &str) -> String {
        crate::names::unknown("spacing", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// The times a run steps through.
#[derive(Debug, Clone, PartialEq)]
pub enum Grid {
    /// `steps` times spread by `spacing` from the start time down to `t_min`, then `t = 0`
    /// ([`time_grid_from`]).
    Spaced {
        /// Number of steps (noise levels for annealed Langevin).
        steps: usize,
        /// How the times are spread.
        spacing: Spacing,
    },
    /// Given times, decreasing, the last `0` (a respaced subset, a hand-made grid).
    Times(Vec<f64>),
    /// `steps` noise levels of a schedule (Karras, exponential, polyexponential) at their
    /// times, then `t = 0` ([`SigmaSchedule::times`]).
    Sigmas {
        /// Number of steps.
        steps: usize,
        /// The levels.
        schedule: SigmaSchedule,
    },
}

impl Grid {
    /// The number of steps.
    pub fn steps(&self) -> usize {
        match self {
            Self::Spaced { steps, .. } | Self::Sigmas { steps, .. } => *steps,
            Self::Times(t) => t.len().saturating_sub(1),
        }
    }

    /// The times from `t_start` (the SDE's `T` for a run from the prior; given times above it
    /// are dropped).
    pub fn times(&self, sde: &dyn Sde, t_start: f64) -> Vec<f64> {
        match self {
            Self::Spaced { steps, spacing } => time_grid_from(sde, t_start, *steps, *spacing),
            Self::Times(t) => t.iter().copied().filter(|&t| t <= t_start).collect(),
            Self::Sigmas { steps, schedule } => schedule.times(sde, t_start, *steps),
        }
    }

    /// Checks the step count, or that given times decrease from at most `t_max` to 0.
    pub fn validate(&self, t_max: Option<f64>) -> Result<(), ConfigError> {
        match self {
            Self::Spaced { steps: 0, .. } | Self::Sigmas { steps: 0, .. } => Err(ConfigError::new("steps", "at least 1", 0)),
            Self::Spaced { .. } => Ok(()),
            Self::Sigmas { schedule, .. } => schedule.validate(),
            Self::Times(t) => {
                let decreasing = t.windows(2).all(|w| w[0] > w[1]) && t.iter().all(|v| v.is_finite());
                let ends = t.len() >= 2 && t.last() == Some(&0.0) && t_max.is_none_or(|m| t[0] <= m);
                if decreasing && ends { Ok(()) } else { Err(ConfigError::new("times", "at least two finite, decreasing times ending at 0", format!("{t:?}"))) }
            }
        }
    }
}

/// The `n + 1` times `T = t_0 > ... > t_{n-1} = t_min > t_n = 0`, snapped to the SDE's grid
/// (duplicates after snapping removed, so a discrete schedule may give fewer).
pub fn time_grid(sde: &dyn Sde, n: usize, spacing: Spacing) -> Vec<f64> {
    time_grid_from(sde, sde.t_max(), n, spacing)
}

/// As [`time_grid`], starting at `t_start <= T` instead of `T` (SDEdit starts part-way; the
/// diffusers spacings keep their levels at or below `t_start`).
pub fn time_grid_from(sde: &dyn Sde, t_start: f64, n: usize, spacing: Spacing) -> Vec<f64> {
    if let Some(spacing) = spacing.timestep_spacing() {
        return discrete_times(sde, t_start, n, spacing);
    }
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
                Spacing::Linspace | Spacing::Leading | Spacing::Trailing => unreachable!("diffusers spacings are handled above"),
            };
            sde.snap(t)
        })
        .collect();
    times.dedup();
    times.push(0.0);
    times
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
    fn can_rewind(&self) -> bool {
        self.transition.memoryless()
    }
    fn rewind(&mut self) -> bool {
        if self.k == 0 || !self.transition.memoryless() {
            return false;
        }
        self.k -= 1;
        true
    }
    fn reads_back(&self) -> bool {
        self.transition.reads_back()
    }
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
    fn given_times_are_checked_and_cut_at_the_start() {
        let vp = VpSde::new(0.1, 20.0).unwrap();
        let grid = Grid::Times(vec![1.0, 0.5, 0.1, 0.0]);
        assert!(grid.validate(Some(1.0)).is_ok());
        assert_eq!(grid.steps(), 3);
        assert_eq!(grid.times(&vp, 0.6), vec![0.5, 0.1, 0.0]);
        for bad in [vec![0.5, 0.7, 0.0], vec![1.0, 0.5], vec![0.0], vec![2.0, 0.0]] {
            assert_eq!(Grid::Times(bad).validate(Some(1.0)).unwrap_err().field, "times");
        }
        assert_eq!(Grid::Spaced { steps: 0, spacing: Spacing::Uniform }.validate(None).unwrap_err().field, "steps");
        crate::names::serde_agrees(&Spacing::ALL);
    }
}
