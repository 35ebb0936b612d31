//! Variance-exploding SDE (SMLD / NCSN).
//!
//! Song et al. 2021, eq. (9) and (30): `sigma(t) = sigma_min (sigma_max / sigma_min)^t`,
//! `dx = sigma(t) sqrt(2 log(sigma_max / sigma_min)) dw`. Its discretization is NCSN's
//! geometric sequence of noise levels (Song & Ermon 2019), eq. (19):
//! `x_i = x_{i-1} + sqrt(sigma_i^2 - sigma_{i-1}^2) z`.
//!
//! Convention (as the paper's code): the marginal std is `sigma(t)` itself, i.e. the data at
//! `t = 0` is taken to carry the tiny noise `sigma_min` already; the exact SDE started from a
//! clean `x_0` would have variance `sigma(t)^2 - sigma_min^2` (eq. 31). Transitions between
//! two times are exact either way.

use super::{Sde, SdeError, positive};

pub(crate) fn default_sigma_min() -> f64 {
    0.01
}
pub(crate) fn default_sigma_max() -> f64 {
    50.0
}

/// `dx = sigma(t) sqrt(2 log(sigma_max / sigma_min)) dw`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VeSde {
    /// Smallest noise level, `sigma(0)`.
    pub sigma_min: f64,
    /// Largest noise level, `sigma(1)`: the prior is `N(0, sigma_max^2 I)`.
    pub sigma_max: f64,
}

impl VeSde {
    /// Validates `0 < sigma_min < sigma_max`.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self, SdeError> {
        positive("sigma_min", sigma_min)?;
        positive("sigma_max", sigma_max)?;
        if sigma_max <= sigma_min {
            return Err(SdeError { field: "sigma_max", message: format!("expected sigma_max > sigma_min = {sigma_min}, found {sigma_max}") });
        }
        Ok(Self { sigma_min, sigma_max })
    }

    /// `sigma(t) = sigma_min (sigma_max / sigma_min)^t`.
    pub fn sigma(&self, t: f64) -> f64 {
        self.sigma_min * (self.sigma_max / self.sigma_min).powf(t)
    }
}

impl Sde for VeSde {
    fn t_min(&self) -> f64 {
        1e-5
    }
    fn drift_coef(&self, _t: f64) -> f64 {
        0.0
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.sigma(t) * (2.0 * (self.sigma_max / self.sigma_min).ln()).sqrt()
    }
    fn marginal(&self, t: f64) -> (f64, f64) {
        (1.0, self.sigma(t))
    }
    /// NCSN: `f = 0`, `G = sqrt(sigma(t)^2 - sigma(t - dt)^2)` (`sigma(0) = sigma_min` below `t = 0`).
    fn discretize(&self, t: f64, dt: f64) -> (f64, f64) {
        let prev = self.sigma((t - dt).max(0.0));
        (0.0, (self.sigma(t).powi(2) - prev * prev).max(0.0).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::tests::*;

    #[test]
    fn sigma_is_geometric() {
        let sde = VeSde::new(0.01, 50.0).unwrap();
        assert!((sde.sigma(0.0) - 0.01).abs() < 1e-15);
        assert!((sde.sigma(1.0) - 50.0).abs() < 1e-12);
        // Geometric mean at t = 1/2: sqrt(0.01 * 50).
        assert!((sde.sigma(0.5) - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(sde.prior_std(), sde.sigma(1.0));
        // g(t)^2 = d sigma^2 / dt = 2 sigma^2 log(sigma_max/sigma_min) at t = 0.5.
        let g2 = sde.diffusion(0.5).powi(2);
        assert!((g2 - 2.0 * 0.5 * (5000.0f64).ln()).abs() < 1e-9);
    }

    #[test]
    fn marginal_solves_the_moment_odes() {
        let sde = VeSde::new(0.01, 50.0).unwrap();
        check_marginal_odes(&sde, &[0.1, 0.4, 0.8], 1e-5);
    }

    #[test]
    fn marginal_matches_simulation() {
        // From t=0 the simulated process adds sigma(t)^2 - sigma_min^2 to the data; at t=0.3
        // with sigma_min = 0.01 that is indistinguishable from sigma(t)^2 at this sample size.
        check_marginal_by_simulation(&VeSde::new(0.01, 5.0).unwrap(), 0.7, 1);
    }

    #[test]
    fn discretization_is_ncsn() {
        let sde = VeSde::new(0.01, 50.0).unwrap();
        let n = 10;
        // Geometric sigmas sigma_i = sigma(i/N); G_i^2 = sigma_i^2 - sigma_{i-1}^2.
        for i in 1..=n {
            let t = i as f64 / n as f64;
            let (f, g) = sde.discretize(t, 1.0 / n as f64);
            let si = 0.01 * 5000f64.powf(t);
            let sp = 0.01 * 5000f64.powf((i - 1) as f64 / n as f64);
            assert_eq!(f, 0.0);
            assert!((g * g - (si * si - sp * sp)).abs() < 1e-9 * si * si);
        }
    }
}
