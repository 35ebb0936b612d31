//! Noise-level grids: schedules of the noise level `sigma(t) = s(t) / m(t)` turned into times
//! through the SDE's marginal, and diffusers' timestep spacings of a discrete schedule.
//!
//! A schedule of `n` levels `sigma_0 > ... > sigma_{n-1}` followed by `sigma_n = 0` (as
//! k-diffusion's `get_sigmas_*`, which `append_zero`) becomes the times `t_i` with
//! `s(t_i) / m(t_i) = sigma_i` (bisection on the half log-SNR `lambda = -ln sigma`,
//! [`time_at_log_snr`]) and the last time `0`. The levels are clamped to the SDE's range
//! `[sigma(t_min), sigma(T)]`; by default they span it exactly. Every SDE here is the scaled VE
//! process `x / m = x0 + sigma eps` (Karras et al. 2022, section 4, eq. 10), so a sigma grid
//! means the same thing under VE, VP, sub-VP and a discrete DDPM schedule.
//!
//! - **Karras** (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
//!   Generative Models", eq. 5; `get_sigmas_karras`):
//!   `sigma_i = (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho`,
//!   `rho = 7`.
//! - **Exponential** (`get_sigmas_exponential`): uniform in `ln sigma`, i.e. uniform in the
//!   log-SNR between the given ends.
//! - **Polyexponential** (`get_sigmas_polyexponential`):
//!   `ln sigma_i = ln sigma_min + r_i^rho (ln sigma_max - ln sigma_min)`, `r_i = 1 - i / (n - 1)`;
//!   `rho = 1` is the exponential schedule.
//!
//! Diffusers' `timestep_spacing` (`DDIMScheduler.set_timesteps`) picks `n` of the `N` training
//! timesteps `k in 0..N` (0-based; diffusers' timestep `k` is our level `k + 1`, time
//! `(k + 1) / N`), then steps to the data at `t = 0` (their `final_alpha_cumprod = 1`):
//! - `linspace`: `round(linspace(0, N - 1, n))`, reversed;
//! - `leading`: `k * (N / n)` with integer division, `k = n - 1, ..., 0` (never reaches `T`);
//! - `trailing`: `round(arange(N, 0, -N / n)) - 1` (starts at `T`, Lin et al. 2024, table 2).
//!
//! A continuous SDE is treated as the discrete one with `N = round(T / t_min)` levels at
//! `t = i t_min` (1000 levels for VP with `t_min = 1e-3`).

use crate::error::ConfigError;
use crate::sde::{Sde, time_at_log_snr};
use serde::{Deserialize, Serialize};

/// A schedule of noise levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = SigmaKind::unknown)]
pub enum SigmaKind {
    /// Karras et al. 2022, eq. (5): uniform in `sigma^(1/rho)`.
    Karras,
    /// Uniform in `ln sigma`.
    Exponential,
    /// `ln sigma` spread by a power `rho` of a uniform ramp.
    Polyexponential,
}

impl SigmaKind {
    /// Every schedule.
    pub const ALL: [SigmaKind; 3] = [Self::Karras, Self::Exponential, Self::Polyexponential];

    /// `rho` unless told otherwise (k-diffusion's): 7 for Karras, 1 for polyexponential; `None`
    /// for the exponential schedule, which has no `rho`.
    pub fn default_rho(self) -> Option<f64> {
        match self {
            Self::Karras => Some(7.0),
            Self::Exponential => None,
            Self::Polyexponential => Some(1.0),
        }
    }

    fn unknown(s: &str) -> String {
        crate::names::unknown("sigma schedule", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// A noise-level schedule with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SigmaSchedule {
    /// Which schedule.
    pub kind: SigmaKind,
    /// The exponent (Karras, polyexponential; ignored by the exponential schedule).
    pub rho: f64,
    /// The smallest level (default: `sigma(t_min)`).
    pub sigma_min: Option<f64>,
    /// The largest level (default: `sigma` at the start time, `sigma(T)` from the prior).
    pub sigma_max: Option<f64>,
}

impl SigmaSchedule {
    /// `kind` with its default `rho`, spanning the SDE's range.
    pub fn new(kind: SigmaKind) -> Self {
        Self { kind, rho: kind.default_rho().unwrap_or(1.0), sigma_min: None, sigma_max: None }
    }

    /// Checks `rho > 0` and `0 < sigma_min < sigma_max` where given.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::error::positive("rho", self.rho)?;
        if let Some(lo) = self.sigma_min {
            crate::error::positive("sigma_min", lo)?;
        }
        if let Some(hi) = self.sigma_max {
            crate::error::positive("sigma_max", hi)?;
            if let Some(lo) = self.sigma_min
                && hi <= lo
            {
                return Err(ConfigError::new("sigma_max", format!("a number above sigma_min = {lo}"), hi));
            }
        }
        Ok(())
    }

    /// The `n` levels from `sigma_max` down to `sigma_min`, then `0` (`n + 1` values).
    pub fn sigmas(&self, n: usize, sigma_min: f64, sigma_max: f64) -> Vec<f64> {
        let ramp = |i: usize| if n <= 1 { 0.0 } else { i as f64 / (n - 1) as f64 };
        let (lo, hi) = (sigma_min.ln(), sigma_max.ln());
        let mut out: Vec<f64> = (0..n)
            .map(|i| match self.kind {
                SigmaKind::Karras => {
                    let (a, b) = (sigma_max.powf(1.0 / self.rho), sigma_min.powf(1.0 / self.rho));
                    (a + ramp(i) * (b - a)).powf(self.rho)
                }
                SigmaKind::Exponential => (hi + ramp(i) * (lo - hi)).exp(),
                SigmaKind::Polyexponential => ((1.0 - ramp(i)).powf(self.rho) * (hi - lo) + lo).exp(),
            })
            .collect();
        out.push(0.0);
        out
    }

    /// The `n + 1` times of `n` steps from `t_start`: the levels' times, then `0` (levels
    /// clamped to the SDE's range; duplicates after clamping removed).
    pub fn times(&self, sde: &dyn Sde, t_start: f64, n: usize) -> Vec<f64> {
        let (t_max, t_min) = (t_start.clamp(sde.t_min(), sde.t_max()), sde.t_min());
        let (s_lo, s_hi) = (sigma(sde, t_min), sigma(sde, t_max));
        let (lo, hi) = (self.sigma_min.unwrap_or(s_lo).clamp(s_lo, s_hi), self.sigma_max.unwrap_or(s_hi).clamp(s_lo, s_hi));
        // The ends are the range's own times (`exp(ln sigma)` may round below `sigma(T)`).
        let mut times: Vec<f64> = self.sigmas(n, lo, hi)[..n]
            .iter()
            .enumerate()
            .map(|(i, &s)| match i {
                0 if hi == s_hi => t_max,
                i if i + 1 == n && n > 1 && lo == s_lo => t_min,
                _ => time_at_sigma(sde, s, t_min, t_max),
            })
            .collect();
        times.dedup();
        times.push(0.0);
        times
    }
}

/// The noise level `s(t) / m(t)`.
pub fn sigma(sde: &dyn Sde, t: f64) -> f64 {
    let (m, s) = sde.marginal(t);
    s / m
}

/// The time in `[lo, hi]` whose noise level is `sigma` (`lo` or `hi` exactly at or beyond
/// their levels).
pub fn time_at_sigma(sde: &dyn Sde, sigma_t: f64, lo: f64, hi: f64) -> f64 {
    if sigma_t >= sigma(sde, hi) {
        hi
    } else if sigma_t <= sigma(sde, lo) {
        lo
    } else {
        time_at_log_snr(sde, -sigma_t.ln(), lo, hi)
    }
}

/// Diffusers' `timestep_spacing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestepSpacing {
    /// `round(linspace(0, N - 1, n))`.
    Linspace,
    /// `k * (N / n)`, integer division.
    Leading,
    /// `round(arange(N, 0, -N / n)) - 1`.
    Trailing,
}

/// The 0-based training timesteps diffusers keeps for `n` steps of `levels` (decreasing,
/// duplicates removed).
pub fn diffusers_timesteps(levels: usize, n: usize, spacing: TimestepSpacing) -> Vec<usize> {
    let n_f = n as f64;
    let mut k: Vec<usize> = match spacing {
        TimestepSpacing::Linspace => {
            (0..n).rev().map(|i| if n == 1 { 0 } else { ((levels - 1) as f64 * i as f64 / (n_f - 1.0)).round_ties_even() as usize }).collect()
        }
        TimestepSpacing::Leading => {
            let ratio = (levels / n).max(1);
            (0..n).rev().map(|i| (i * ratio).min(levels - 1)).collect()
        }
        TimestepSpacing::Trailing => {
            let ratio = levels as f64 / n_f;
            let mut v = Vec::with_capacity(n);
            let mut x = levels as f64;
            while x > 0.0 && v.len() < n {
                v.push((x.round_ties_even() as usize).saturating_sub(1));
                x -= ratio;
            }
            v
        }
    };
    k.dedup();
    k
}

/// The times of `n` diffusers-spaced steps on `sde`, starting at or below `t_start`, then `0`.
pub fn discrete_times(sde: &dyn Sde, t_start: f64, n: usize, spacing: TimestepSpacing) -> Vec<f64> {
    let levels = ((sde.t_max() / sde.t_min()).round() as usize).max(1);
    let dt = sde.t_max() / levels as f64;
    let mut times: Vec<f64> =
        diffusers_timesteps(levels, n.max(1), spacing).into_iter().map(|k| sde.snap((k + 1) as f64 * dt)).filter(|&t| t <= t_start + 1e-12).collect();
    times.dedup();
    times.push(0.0);
    times
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::{DiscreteVpSde, ScheduleKind, VeSde, VpSde};

    /// Karras et al.'s eq. (5) by hand: n = 3, rho = 7, sigma in [0.002, 80]; the middle level is
    /// `((80^(1/7) + 0.002^(1/7)) / 2)^7`.
    #[test]
    fn karras_levels_by_hand() {
        let s = SigmaSchedule::new(SigmaKind::Karras).sigmas(3, 0.002, 80.0);
        assert_eq!(s.len(), 4);
        assert!((s[0] - 80.0).abs() < 1e-12 && (s[2] - 0.002).abs() < 1e-15 && s[3] == 0.0, "{s:?}");
        // ((80^(1/7) + 0.002^(1/7)) / 2)^7 = 2.515218976147159 (Python).
        assert!((s[1] - 2.515_218_976_147_159).abs() < 1e-12, "{s:?}");
        // rho = 1 is uniform in sigma.
        let lin = SigmaSchedule { rho: 1.0, ..SigmaSchedule::new(SigmaKind::Karras) }.sigmas(5, 1.0, 9.0);
        assert_eq!(lin, vec![9.0, 7.0, 5.0, 3.0, 1.0, 0.0]);
    }

    #[test]
    fn exponential_is_geometric_and_polyexponential_with_rho_1_is_exponential() {
        let e = SigmaSchedule::new(SigmaKind::Exponential).sigmas(4, 0.01, 10.0);
        for (a, b) in e.iter().zip([10.0, 1.0, 0.1, 0.01, 0.0]) {
            assert!((a - b).abs() < 1e-12 * b.max(1.0), "{e:?}");
        }
        let p = SigmaSchedule::new(SigmaKind::Polyexponential).sigmas(4, 0.01, 10.0);
        for (a, b) in p.iter().zip(&e) {
            assert!((a - b).abs() < 1e-12);
        }
        // rho = 2: ln sigma_1 = ln 0.01 + (2/3)^2 ln 1000.
        let p2 = SigmaSchedule { rho: 2.0, ..SigmaSchedule::new(SigmaKind::Polyexponential) }.sigmas(4, 0.01, 10.0);
        assert!((p2[1] - (0.01f64.ln() + 4.0 / 9.0 * 1000f64.ln()).exp()).abs() < 1e-12);
    }

    /// The times carry the levels: `s(t_i) / m(t_i) = sigma_i`, the ends are `T`, `t_min` and 0.
    #[test]
    fn times_have_the_levels_noise() {
        let sdes: Vec<Box<dyn Sde>> = vec![
            Box::new(VpSde::new(0.1, 20.0).unwrap()),
            Box::new(VeSde::new(0.01, 50.0).unwrap()),
            Box::new(DiscreteVpSde::new(ScheduleKind::Linear, 1000).unwrap()),
        ];
        for sde in &sdes {
            for kind in SigmaKind::ALL {
                let sched = SigmaSchedule::new(kind);
                let t = sched.times(sde.as_ref(), sde.t_max(), 10);
                assert_eq!(t.len(), 11);
                assert_eq!((t[0], t[9], t[10]), (sde.t_max(), sde.t_min(), 0.0), "{sde:?} {kind}");
                let levels = sched.sigmas(10, sigma(sde.as_ref(), sde.t_min()), sigma(sde.as_ref(), 1.0));
                for (ti, si) in t[..10].iter().zip(&levels) {
                    assert!((sigma(sde.as_ref(), *ti) / si - 1.0).abs() < 1e-9, "{sde:?} {kind}: {ti}");
                }
            }
        }
        // Given ends are clamped to the SDE's range.
        let vp = VpSde::new(0.1, 20.0).unwrap();
        let wide = SigmaSchedule { sigma_min: Some(1e-9), sigma_max: Some(1e9), ..SigmaSchedule::new(SigmaKind::Karras) };
        let t = wide.times(&vp, 1.0, 5);
        assert_eq!((t[0], t[4]), (1.0, vp.t_min()));
        assert_eq!(
            SigmaSchedule { sigma_min: Some(2.0), sigma_max: Some(1.0), ..SigmaSchedule::new(SigmaKind::Karras) }.validate().unwrap_err().field,
            "sigma_max"
        );
        assert_eq!(SigmaSchedule { rho: 0.0, ..SigmaSchedule::new(SigmaKind::Karras) }.validate().unwrap_err().field, "rho");
        crate::names::serde_agrees(&SigmaKind::ALL);
    }

    /// Diffusers' `DDIMScheduler.set_timesteps(10)` on 1000 training steps (their printed
    /// timesteps): linspace `[999, 888, ..., 111, 0]`, leading `[900, 800, ..., 0]`, trailing
    /// `[999, 899, ..., 99]`.
    #[test]
    fn diffusers_timestep_spacings() {
        let lin = diffusers_timesteps(1000, 10, TimestepSpacing::Linspace);
        assert_eq!(lin, vec![999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
        assert_eq!(diffusers_timesteps(1000, 10, TimestepSpacing::Leading), (0..10).rev().map(|k| 100 * k).collect::<Vec<_>>());
        assert_eq!(diffusers_timesteps(1000, 10, TimestepSpacing::Trailing), (0..10).rev().map(|k| 100 * k + 99).collect::<Vec<_>>());
        // 1000 / 3 = 333.33: trailing round(1000, 666.67, 333.33) - 1 = 999, 666, 332.
        assert_eq!(diffusers_timesteps(1000, 3, TimestepSpacing::Trailing), vec![999, 666, 332]);
        // linspace(0, 999, 4) = 0, 333, 666, 999.
        assert_eq!(diffusers_timesteps(1000, 4, TimestepSpacing::Linspace), vec![999, 666, 333, 0]);
        let sde = DiscreteVpSde::new(ScheduleKind::Linear, 1000).unwrap();
        let t = discrete_times(&sde, 1.0, 10, TimestepSpacing::Trailing);
        assert_eq!((t.len(), t[0], t[9], t[10]), (11, 1.0, 0.1, 0.0));
        let t = discrete_times(&sde, 1.0, 10, TimestepSpacing::Leading);
        assert_eq!((t[0], t[9]), (0.901, 0.001));
        let vp = VpSde::new(0.1, 20.0).unwrap();
        let t = discrete_times(&vp, 1.0, 10, TimestepSpacing::Linspace);
        assert!((t[0] - 1.0).abs() < 1e-12 && (t[1] - 0.889).abs() < 1e-12, "{t:?}");
    }
}
