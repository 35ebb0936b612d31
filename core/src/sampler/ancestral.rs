//! DDPM ancestral sampling, for any SDE.
//!
//! Ho et al. 2020, Alg. 2 and eq. (6)-(7): sample `x_s ~ q(x_s | x_t, x_0 = x0_hat(x_t))`, the
//! Gaussian posterior of the forward process. Written from the marginals at `s < t` only:
//! with `a = m_t / m_s` and `v = s_t^2 - a^2 s_s^2` (the forward transition), the posterior is
//! `N((a s_s^2 / s_t^2) x_t + (m_s v / s_t^2) x0_hat, (v s_s^2 / s_t^2) I)`.
//! For VP this is DDPM's `mu~_t` and `beta~_t` ("fixed small"); "fixed large" uses the
//! forward variance `v = beta_t` instead (Ho et al., section 3.2). For VE it is the ancestral
//! predictor of Song et al. 2021, eq. (47): `x + (s_t^2 - s_s^2) score`.

use super::{PredictionStep, Step, Transition};
use crate::model::{Prediction, ScoreFn};
use crate::noise::NoiseSource;
use crate::sde::Sde;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// DDPM's choice of reverse-process variance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Variance {
    /// The posterior variance `beta~_t` (optimal for deterministic `x_0`).
    #[default]
    Small,
    /// The forward variance `beta_t` (optimal for `x_0 ~ N(0, I)`).
    Large,
}

impl FromStr for Variance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "small" => Ok(Self::Small),
            "large" => Ok(Self::Large),
            _ => Err(format!("unknown variance `{s}`: expected small or large")),
        }
    }
}

impl std::fmt::Display for Variance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Small => "small",
            Self::Large => "large",
        })
    }
}

/// Posterior coefficients `(c_x, c_x0, std)` of `q(x_s | x_t, x_0)` for `s < t`.
pub(crate) fn posterior(sde: &dyn crate::sde::Sde, t: f64, s: f64, variance: Variance) -> (f64, f64, f64) {
    let (ms, ss) = sde.marginal(s);
    let (_, st) = sde.marginal(t);
    let (a, std_ts) = sde.transition(s, t);
    let v = std_ts * std_ts;
    let var = match variance {
        Variance::Small => v * ss * ss / (st * st),
        Variance::Large => v,
    };
    (a * ss * ss / (st * st), ms * v / (st * st), var.sqrt())
}

/// The ancestral transition.
#[derive(Debug, Clone, Copy)]
pub struct Ancestral {
    /// Fixed small or fixed large variance.
    pub variance: Variance,
}

impl<const D: usize> Transition<D> for Ancestral {
    fn transition(&mut self, x: Tensor<D>, t: f64, s: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let pred = f.eval(x.clone(), t);
        self.step_from(x, &pred, t, s, f.sde(), noise)
    }
}

impl<const D: usize> PredictionStep<D> for Ancestral {
    fn step_from(&self, x: Tensor<D>, pred: &Prediction<D>, t: f64, s: f64, sde: &dyn Sde, noise: &mut NoiseSource) -> Step<D> {
        let (cx, cx0, std) = posterior(sde, t, s, self.variance);
        let x_mean = x.mul_scalar(cx) + pred.x0().mul_scalar(cx0);
        let z = noise.normal(x_mean.dims(), &x_mean.device());
        Step { x: x_mean.clone() + z.mul_scalar(std), x_mean }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::{DiscreteVpSde, ScheduleKind, Sde, VeSde, VpSde};

    /// Ho et al. eq. (7): `mu~ = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t`,
    /// `beta~ = (1 - ab_{t-1}) / (1 - ab_t) beta_t`, from the betas alone.
    #[test]
    fn matches_ddpm_posterior_on_the_discrete_grid() {
        let sde = DiscreteVpSde::new(ScheduleKind::Linear, 1000).unwrap();
        for i in [2usize, 10, 500, 1000] {
            let b = sde.betas[i - 1];
            let (ab, ab_prev) = (sde.alpha_bar(i), sde.alpha_bar(i - 1));
            let (cx, cx0, std) = posterior(&sde, i as f64 / 1000.0, (i - 1) as f64 / 1000.0, Variance::Small);
            assert!((cx0 - ab_prev.sqrt() * b / (1.0 - ab)).abs() < 1e-12, "i={i}");
            assert!((cx - (1.0 - b).sqrt() * (1.0 - ab_prev) / (1.0 - ab)).abs() < 1e-12);
            assert!((std * std - (1.0 - ab_prev) / (1.0 - ab) * b).abs() < 1e-12);
            let (_, _, large) = posterior(&sde, i as f64 / 1000.0, (i - 1) as f64 / 1000.0, Variance::Large);
            assert!((large * large - b).abs() < 1e-12);
        }
    }

    /// The continuous VP SDE's DDPM discretization (`beta_i = beta(t_i) / N`) and its exact
    /// posterior agree to first order in `1/N`.
    #[test]
    fn continuous_vp_posterior_matches_its_ddpm_discretization() {
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let n = 1000.0;
        for t in [0.1, 0.5, 0.9] {
            let (_, g) = sde.discretize(t, 1.0 / n);
            let b = g * g;
            let (m_prev, s_prev) = sde.marginal(t - 1.0 / n);
            let (_, st) = sde.marginal(t);
            let (cx, cx0, std) = posterior(&sde, t, t - 1.0 / n, Variance::Small);
            let rel = |a: f64, e: f64| (a - e).abs() / e.abs();
            // beta(t)/N and the exact 1 - alpha_bar_t / alpha_bar_{t-1/N} = 1 - exp(-int beta)
            // differ by the midpoint shift and the exponential: relative error at most
            // (beta' / (2 beta) + beta) / N <= (99.5 / 2.09 + 20) / N here.
            let tol = (99.5 / 2.09 + 20.0) / n;
            assert!(rel(cx0, m_prev * b / (st * st)) < tol, "t={t} {cx0} {}", m_prev * b / (st * st));
            assert!(rel(cx, (1.0 - b).sqrt() * s_prev * s_prev / (st * st)) < tol);
            assert!(rel(std * std, s_prev * s_prev / (st * st) * b) < tol);
        }
    }

    #[test]
    fn ve_posterior_is_the_ancestral_predictor() {
        let sde = VeSde::new(0.01, 50.0).unwrap();
        let (t, s) = (0.6, 0.5);
        let (cx, cx0, std) = posterior(&sde, t, s, Variance::Small);
        let (st, ss) = (sde.sigma(t), sde.sigma(s));
        // x_mean = x + (st^2 - ss^2) score with score = (x0 - x)/st^2.
        let d = st * st - ss * ss;
        assert!((cx - (1.0 - d / (st * st))).abs() < 1e-12);
        assert!((cx0 - d / (st * st)).abs() < 1e-12);
        assert!((std * std - ss * ss * d / (st * st)).abs() < 1e-12);
    }
}
