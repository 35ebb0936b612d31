//! Variance-preserving SDE (DDPM in continuous time).
//!
//! Song et al. 2021, eq. (11) and (32): `beta(t) = beta_min + t (beta_max - beta_min)`,
//! `dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw`, with marginal
//! `N(x_0 e^{-1/2 B(t)}, (1 - e^{-B(t)}) I)` where `B(t) = int_0^t beta`.
//! Its discretization (eq. 20) is DDPM with `beta_i = beta(t_i) / N`:
//! `x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z`; `beta_min = 0.1`, `beta_max = 20`
//! over `N = 1000` reproduces Ho et al.'s linear betas `1e-4 .. 0.02`.

use super::{positive, Sde, SdeError};

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
            return Err(SdeError {
                field: "beta_max",
                message: format!("expected beta_max >= beta_min = {beta_min}, found {beta_max}"),
            });
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
    /// DDPM: `beta_i = beta(t) dt`, `f = sqrt(1 - beta_i) - 1`, `G = sqrt(beta_i)`.
    fn discretize(&self, t: f64, dt: f64) -> (f64, f64) {
        let b = self.beta(t) * dt;
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
        // Ho et al. 2020: beta_1 = 1e-4, beta_1000 = 0.02 linearly; with t_i = i / N the VP
        // discretization gives beta_i = beta(t_i)/N = (0.1 + t_i 19.9) / 1000, which is linear
        // from 1.199e-4 to 0.02 (the paper's code starts the grid at t = 1/N, so its first
        // beta is 1e-4 + 19.9e-6 rather than exactly 1e-4).
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let n = 1000.0;
        let (f, g) = sde.discretize(1.0, 1.0 / n);
        assert!((g * g - 0.02).abs() < 1e-15);
        assert!((f - ((1.0f64 - 0.02).sqrt() - 1.0)).abs() < 1e-15);
        let (_, g) = sde.discretize(0.0, 1.0 / n);
        assert!((g * g - 1e-4).abs() < 1e-15);
    }
}
