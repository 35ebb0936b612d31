//! Forward SDEs with scalar coefficients.
//!
//! Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations"
//! (ICLR 2021), eq. (5): every forward process here is linear,
//! `dx = f(t) x dt + g(t) dw`, so it is described by plain `f64` functions of time:
//! the drift coefficient `f(t)`, the diffusion `g(t)`, and the perturbation kernel
//! `p_{0t}(x_t | x_0) = N(m(t) x_0, s(t)^2 I)` (eq. 29 and appendix B).
//!
//! Tensors never enter this module: samplers, losses and the likelihood combine these scalars
//! with tensors themselves, so one formula serves every SDE without type checks.
//!
//! Time is continuous, `t in [0, T]`; discrete schedules (DDPM's 1000 levels, NCSN's geometric
//! sigmas) are grids on that same time axis (see [`discrete`]).

pub mod discrete;
mod posterior;
pub mod respace;
pub mod subvp;
pub mod ve;
pub mod vp;

pub use discrete::{DiscreteVpSde, ScheduleKind};
pub use posterior::{Posterior, Posteriors};
pub use respace::{Respaced, space_timesteps};
pub use subvp::SubVpSde;
pub use ve::VeSde;
pub use vp::VpSde;

use serde::{Deserialize, Serialize};

/// A linear forward SDE `dx = f(t) x dt + g(t) dw` on `t in [0, T]`.
///
/// All coefficients are scalars; the state is any tensor shape.
pub trait Sde: Send + Sync + std::fmt::Debug {
    /// End time `T` of the forward process (1 for all SDEs here).
    fn t_max(&self) -> f64 {
        1.0
    }

    /// Smallest time a sampler evaluates the score at (the paper's `epsilon`); samplers take
    /// their last step from here to `t = 0`.
    fn t_min(&self) -> f64;

    /// Drift coefficient `f(t)`: the drift is `f(t) * x`.
    fn drift_coef(&self, t: f64) -> f64;

    /// Diffusion coefficient `g(t)`.
    fn diffusion(&self, t: f64) -> f64;

    /// Perturbation kernel `p_{0t}(x_t | x_0) = N(mean * x_0, std^2 I)`: returns `(mean, std)`.
    fn marginal(&self, t: f64) -> (f64, f64);

    /// Standard deviation of the prior `p_T = N(0, prior_std^2 I)` that sampling starts from.
    fn prior_std(&self) -> f64 {
        let (_, s) = self.marginal(self.t_max());
        s
    }

    /// Snaps a time onto the grid the SDE is defined on (identity for continuous SDEs,
    /// the nearest level `i / N` for discrete schedules).
    fn snap(&self, t: f64) -> f64 {
        t
    }

    /// One forward step from `t - dt` to `t` in the form `x_t = (1 + f) x + G z`: returns
    /// `(f, G)`. Default: Euler–Maruyama, `f = f(t) dt`, `G = g(t) sqrt(dt)` (Song et al. 2021,
    /// eq. 6 discretised). VE and VP override it with the NCSN and DDPM updates (eq. 19, 20).
    fn discretize(&self, t: f64, dt: f64) -> (f64, f64) {
        (self.drift_coef(t) * dt, self.diffusion(t) * dt.sqrt())
    }

    /// Exact Gaussian transition `x_t | x_s ~ N(a x_s, std^2 I)` for `s < t`, derived from the
    /// marginals: `a = m(t) / m(s)`, `std^2 = s(t)^2 - a^2 s(s)^2`. Holds for every linear SDE
    /// (the solution of `dm/dt = f m` and `d(s^2)/dt = 2 f s^2 + g^2` composes).
    fn transition(&self, s: f64, t: f64) -> (f64, f64) {
        let (ms, ss) = self.marginal(s);
        let (mt, st) = self.marginal(t);
        let a = mt / ms;
        (a, (st * st - a * a * ss * ss).max(0.0).sqrt())
    }
}

/// The half log-SNR `lambda(t) = log(m(t) / s(t))` (Lu et al. 2022, section 3.1; `-ln sigma`
/// in EDM's notation), decreasing in `t` for every SDE here.
pub fn log_snr(sde: &dyn Sde, t: f64) -> f64 {
    let (m, s) = sde.marginal(t);
    (m / s).ln()
}

/// The `t in [lo, hi]` where the decreasing [`log_snr`] equals `lambda` (bisection; `lo` or
/// `hi` when `lambda` lies outside their range).
pub fn time_at_log_snr(sde: &dyn Sde, lambda: f64, mut lo: f64, mut hi: f64) -> f64 {
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if log_snr(sde, mid) > lambda {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Log-density of the prior `N(0, std^2 I_d)` at a point with squared norm `sq_norm`.
pub fn gaussian_logp(sq_norm: f64, dim: usize, std: f64) -> f64 {
    let d = dim as f64;
    -0.5 * d * (2.0 * std::f64::consts::PI * std * std).ln() - 0.5 * sq_norm / (std * std)
}

/// The serialisable choice of SDE, as written in `config.json` and the mixture files.
///
/// ```
/// use scorediff::sde::SdeConfig;
/// let c: SdeConfig = serde_json::from_str(r#"{"kind": "vp", "beta_min": 0.1, "beta_max": 20}"#).unwrap();
/// let sde = c.build().unwrap();
/// let (m, s) = sde.marginal(0.0);
/// assert_eq!((m, s), (1.0, 0.0));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SdeConfig {
    /// Variance exploding (SMLD / NCSN).
    Ve {
        /// Smallest noise level.
        #[serde(default = "ve::default_sigma_min")]
        sigma_min: f64,
        /// Largest noise level.
        #[serde(default = "ve::default_sigma_max")]
        sigma_max: f64,
    },
    /// Variance preserving (DDPM in continuous time).
    Vp {
        /// `beta(0)`.
        #[serde(default = "vp::default_beta_min")]
        beta_min: f64,
        /// `beta(1)`.
        #[serde(default = "vp::default_beta_max")]
        beta_max: f64,
    },
    /// Sub-variance preserving.
    #[serde(rename = "subvp")]
    SubVp {
        /// `beta(0)`.
        #[serde(default = "vp::default_beta_min")]
        beta_min: f64,
        /// `beta(1)`.
        #[serde(default = "vp::default_beta_max")]
        beta_max: f64,
    },
    /// A discrete DDPM schedule on the grid `t_i = i / N`.
    Ddpm {
        /// Linear, cosine or scaled-linear betas.
        schedule: ScheduleKind,
        /// Number of levels `N`.
        #[serde(default = "discrete::default_levels")]
        levels: usize,
        /// Rescale the betas to a zero terminal SNR (Lin et al. 2024, Algorithm 1;
        /// [`DiscreteVpSde::with_zero_terminal_snr`]). Only a v- or x0-predicting network can
        /// be trained or sampled on it: eps is not identifiable at SNR = 0.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        zero_terminal_snr: bool,
    },
}

/// An SDE's parameters were out of range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid SDE field `{field}`: {message}")]
pub struct SdeError {
    /// The offending field.
    pub field: &'static str,
    /// What was expected and found.
    pub message: String,
}

fn positive(field: &'static str, v: f64) -> Result<(), SdeError> {
    if v.is_finite() && v > 0.0 { Ok(()) } else { Err(SdeError { field, message: format!("expected a finite number > 0, found {v}") }) }
}

impl SdeConfig {
    /// A discrete DDPM schedule of `levels` levels (no zero-terminal-SNR rescaling).
    pub const fn ddpm(schedule: ScheduleKind, levels: usize) -> Self {
        SdeConfig::Ddpm { schedule, levels, zero_terminal_snr: false }
    }

    /// Whether the SDE reaches SNR = 0 at its last time, where an eps prediction carries no
    /// information about `x_0` (a rescaled DDPM schedule).
    pub fn zero_terminal_snr(&self) -> bool {
        matches!(self, SdeConfig::Ddpm { zero_terminal_snr: true, .. })
    }

    /// The `kind` name in `config.json`.
    pub fn kind(&self) -> &'static str {
        match self {
            SdeConfig::Ve { .. } => "ve",
            SdeConfig::Vp { .. } => "vp",
            SdeConfig::SubVp { .. } => "subvp",
            SdeConfig::Ddpm { .. } => "ddpm",
        }
    }

    /// Validates the parameters and builds the SDE.
    pub fn build(&self) -> Result<Box<dyn Sde>, SdeError> {
        Ok(match *self {
            SdeConfig::Ve { sigma_min, sigma_max } => Box::new(VeSde::new(sigma_min, sigma_max)?),
            SdeConfig::Vp { beta_min, beta_max } => Box::new(VpSde::new(beta_min, beta_max)?),
            SdeConfig::SubVp { beta_min, beta_max } => Box::new(SubVpSde::new(beta_min, beta_max)?),
            SdeConfig::Ddpm { schedule, levels, zero_terminal_snr } => {
                let sde = DiscreteVpSde::new(schedule, levels)?;
                Box::new(if zero_terminal_snr { sde.with_zero_terminal_snr() } else { sde })
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Central finite difference.
    fn deriv(f: impl Fn(f64) -> f64, t: f64) -> f64 {
        let h = 1e-6;
        (f(t + h) - f(t - h)) / (2.0 * h)
    }

    /// The marginal of a linear SDE solves `dm/dt = f m` and `d(s^2)/dt = 2 f s^2 + g^2`
    /// (Saerkkae & Solin, eq. 5.51 for scalar coefficients). Checked at interior times.
    pub fn check_marginal_odes(sde: &dyn Sde, ts: &[f64], tol: f64) {
        for &t in ts {
            let m = |t| sde.marginal(t).0;
            let v = |t| sde.marginal(t).1.powi(2);
            let (mt, st) = sde.marginal(t);
            let f = sde.drift_coef(t);
            let g = sde.diffusion(t);
            let dm = deriv(m, t);
            let dv = deriv(v, t);
            assert!((dm - f * mt).abs() <= tol * (1.0 + dm.abs()), "{sde:?} t={t}: dm/dt={dm} f m={}", f * mt);
            let rhs = 2.0 * f * st * st + g * g;
            assert!((dv - rhs).abs() <= tol * (1.0 + rhs.abs()), "{sde:?} t={t}: ds2/dt={dv} rhs={rhs}");
        }
    }

    /// Monte-Carlo check of the marginal, independent of the closed forms: simulate the scalar
    /// SDE from `x_0 = x0` with fine Euler–Maruyama steps and compare mean and variance at `t`.
    pub fn check_marginal_by_simulation(sde: &dyn Sde, t: f64, seed: u64) {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (n, steps, x0) = (20_000usize, 2_000usize, 1.5f64);
        let (m0, s0) = sde.marginal(0.0);
        let dt = t / steps as f64;
        let mut xs: Vec<f64> = (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                m0 * x0 + s0 * z
            })
            .collect();
        for k in 0..steps {
            let tk = (k as f64 + 0.5) * dt;
            let (f, g) = (sde.drift_coef(tk), sde.diffusion(tk));
            for x in xs.iter_mut() {
                let z: f64 = StandardNormal.sample(&mut rng);
                *x += f * *x * dt + g * dt.sqrt() * z;
            }
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let (m, s) = sde.marginal(t);
        let (em, ev) = (m * x0, s * s);
        // 5 standard errors of the sample mean and variance, plus 1% for the time step.
        let tol_m = 5.0 * (ev / n as f64).sqrt() + 0.01 * em.abs();
        let tol_v = 5.0 * ev * (2.0 / n as f64).sqrt() + 0.01 * ev;
        assert!((mean - em).abs() < tol_m, "{sde:?} t={t}: mean {mean} vs {em}");
        assert!((var - ev).abs() < tol_v, "{sde:?} t={t}: var {var} vs {ev}");
    }

    #[test]
    fn transition_composes_marginals() {
        let sdes: Vec<Box<dyn Sde>> =
            vec![Box::new(VeSde::new(0.01, 50.0).unwrap()), Box::new(VpSde::new(0.1, 20.0).unwrap()), Box::new(SubVpSde::new(0.1, 20.0).unwrap())];
        for sde in &sdes {
            for (s, t) in [(0.1, 0.3), (0.5, 0.9), (0.02, 1.0)] {
                // x_t = a x_s + std z composed with x_s = m_s x0 + s_s z' gives the marginal at t.
                let (a, std) = sde.transition(s, t);
                let (ms, ss) = sde.marginal(s);
                let (mt, st) = sde.marginal(t);
                assert!((a * ms - mt).abs() < 1e-12);
                assert!((a * a * ss * ss + std * std - st * st).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn config_rejects_bad_values_and_names_the_field() {
        let c = SdeConfig::Ve { sigma_min: -1.0, sigma_max: 50.0 };
        assert_eq!(c.build().unwrap_err().field, "sigma_min");
        let c = SdeConfig::Vp { beta_min: 0.1, beta_max: f64::NAN };
        assert_eq!(c.build().unwrap_err().field, "beta_max");
        let e = serde_json::from_str::<SdeConfig>(r#"{"kind": "vx"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `vx`"), "{e}");
    }
}
