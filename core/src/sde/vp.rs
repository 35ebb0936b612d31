//! Variance-preserving SDE (DDPM in continuous time).
//!
//! Song et al. 2021, eq. (11) and (32): `beta(t) = beta_min + t (beta_max - beta_min)`,
//! `dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw`, with marginal
//! `N(x_0 e^{-1/2 B(t)}, (1 - e^{-B(t)}) I)` where `B(t) = int_0^t beta`.
//! Its discretization (eq. 20) is DDPM: `x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z`.
//! The paper takes `beta_i = beta(t_i) / N`, which with `beta_min = 0.1`, `beta_max = 20`,
//! `N = 1000` gives Ho et al.'s linear betas `1e-4 .. 0.02`; we take the exact
//! `beta_i = 1 - exp(-int_{t_{i-1}}^{t_i} beta)`, equal to it up to `O(1/N^2)` but still a valid
//! variance on coarse grids (the paper's exceeds 1 once `beta(t) dt > 1`, e.g. 20 steps).

use super::{Sde, SdeError, positive};

pub(crate) fn default_beta_min() -> f64 {
    0.1
}
pub(crate) fn default_beta_max() -> f64 {
    20.0
}

/// `dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw` with linear `beta(t)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpSde {
    /// `beta(0)`.
    pub beta_min: f64,
    /// `beta(1)`.
    pub beta_max: f64,
}

impl VpSde {
    /// Validates `0 < beta_min <= beta_max`.
    pub fn new(beta_min: f64, beta_max: f64) -> Result<Self, SdeError> {
        positive("beta_min", beta_min)?;
        positive("beta_max", beta_max)?;
        if beta_max < beta_min {
            return Err(SdeError { field: "beta_max", message: format!("expected beta_max >= beta_min = {beta_min}, found {beta_max}") });
        }
        Ok(Self { beta_min, beta_max })
    }

    /// `beta(t)`.
    pub fn beta(&self, t: f64) -> f64 {
        self.beta_min + t * (self.beta_max - self.beta_min)
    }

    /// `B(t) = int_0^t beta(s) ds`.
    pub fn beta_integral(&self, t: f64) -> f64 {
        self.beta_min * t + 0.5 * t * t * (self.beta_max - self.beta_min)
    }
}

impl Sde for VpSde {
    fn t_min(&self) -> f64 {
        1e-3
    }
    fn drift_coef(&self, t: f64) -> f64 {
        -0.5 * self.beta(t)
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.beta(t).sqrt()
    }
    fn marginal(&self, t: f64) -> (f64, f64) {
        let b = self.beta_integral(t);
        ((-0.5 * b).exp(), (-(-b).exp_m1()).sqrt())
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
    /// DDPM: `beta_i = 1 - exp(-(B(t) - B(t - dt)))`, `f = sqrt(1 - beta_i) - 1`, `G = sqrt(beta_i)`.
    fn discretize(&self, t: f64, dt: f64) -> (f64, f64) {
        let b = -(-(self.beta_integral(t) - self.beta_integral((t - dt).max(0.0)))).exp_m1();
        ((1.0 - b).sqrt() - 1.0, b.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::tests::*;

    #[test]
    fn marginal_closed_form_by_hand() {
        let sde = VpSde::new(0.1, 20.0).unwrap();
        // B(1) = 0.1 + 19.9 / 2 = 10.05.
        let (m, s) = sde.marginal(1.0);
        assert!((m - (-5.025f64).exp()).abs() < 1e-15);
        assert!((s * s - (1.0 - (-10.05f64).exp())).abs() < 1e-15);
        // B(0.5) = 0.05 + 0.25 * 19.9 / 2 = 2.5375.
        let (m, _) = sde.marginal(0.5);
        assert!((m - (-2.5375f64 / 2.0).exp()).abs() < 1e-15);
        assert_eq!(sde.marginal(0.0), (1.0, 0.0));
    }

    #[test]
    fn marginal_solves_the_moment_odes() {
        check_marginal_odes(&VpSde::new(0.1, 20.0).unwrap(), &[0.05, 0.3, 0.7, 0.95], 1e-5);
    }

    #[test]
    fn marginal_matches_simulation() {
        check_marginal_by_simulation(&VpSde::new(0.1, 20.0).unwrap(), 0.2, 2);
    }

    #[test]
    fn discretization_gives_ddpm_linear_betas() {
        // Ho et al. 2020: betas linear from 1e-4 to 0.02 over N = 1000 steps; the paper's
        // beta(t_i)/N at t = 1 is 0.02, and the exact integral over the last interval is
        // 1 - exp(-(20 - 0.0199/2)/1000), within (beta dt)^2 / 2 + beta' dt^2 / 2 of it.
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let n = 1000.0;
        let tol = 0.02f64.powi(2) / 2.0 + 19.9 / (2.0 * n * n);
        let (f, g) = sde.discretize(1.0, 1.0 / n);
        let exact = 1.0 - (-(20.0 - 19.9 / (2.0 * n)) / n).exp();
        // B(1) - B(0.999) is a difference of two numbers near 10: allow their rounding.
        assert!((g * g - exact).abs() < 1e-12);
        assert!((g * g - 0.02).abs() < tol);
        assert!((f - ((1.0 - g * g).sqrt() - 1.0)).abs() < 1e-15);
        let (_, g) = sde.discretize(1.0 / n, 1.0 / n);
        assert!((g * g - 1e-4).abs() < tol);
        // A coarse grid still gives a valid step (beta(1) dt = 2 here).
        let (f, g) = sde.discretize(1.0, 0.1);
        assert!(g > 0.0 && g < 1.0 && f.is_finite());
    }
}
