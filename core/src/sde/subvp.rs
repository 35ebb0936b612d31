//! Sub-VP SDE.
//!
//! Song et al. 2021, eq. (12) and (33): `dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - e^{-2 B(t)})) dw`
//! with the same linear `beta(t)` as [`VpSde`](super::VpSde); marginal
//! `N(x_0 e^{-1/2 B(t)}, (1 - e^{-B(t)})^2 I)`. Its variance is bounded by the VP one at
//! every `t`, which gave the paper's best likelihoods.

use super::{Sde, SdeError, vp::VpSde};

/// The sub-VP SDE; `beta(t)` is the VP SDE's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubVpSde {
    /// The VP SDE whose `beta(t)` this shares.
    pub vp: VpSde,
}

impl SubVpSde {
    /// Validates `0 < beta_min <= beta_max`.
    pub fn new(beta_min: f64, beta_max: f64) -> Result<Self, SdeError> {
        Ok(Self { vp: VpSde::new(beta_min, beta_max)? })
    }
}

impl Sde for SubVpSde {
    fn t_min(&self) -> f64 {
        1e-3
    }
    fn drift_coef(&self, t: f64) -> f64 {
        self.vp.drift_coef(t)
    }
    fn diffusion(&self, t: f64) -> f64 {
        let b = self.vp.beta_integral(t);
        (self.vp.beta(t) * -(-2.0 * b).exp_m1()).sqrt()
    }
    fn marginal(&self, t: f64) -> (f64, f64) {
        let b = self.vp.beta_integral(t);
        ((-0.5 * b).exp(), -(-b).exp_m1())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::tests::*;

    #[test]
    fn marginal_closed_form_by_hand() {
        let sde = SubVpSde::new(0.1, 20.0).unwrap();
        let (m, s) = sde.marginal(1.0);
        assert!((m - (-5.025f64).exp()).abs() < 1e-15);
        assert!((s - (1.0 - (-10.05f64).exp())).abs() < 1e-15);
        // Sub-VP variance never exceeds VP's: (1 - e^-B)^2 <= 1 - e^-B.
        for t in [0.01, 0.2, 0.9] {
            assert!(sde.marginal(t).1 <= sde.vp.marginal(t).1);
        }
    }

    #[test]
    fn marginal_solves_the_moment_odes() {
        check_marginal_odes(&SubVpSde::new(0.1, 20.0).unwrap(), &[0.05, 0.3, 0.7, 0.95], 1e-5);
    }

    #[test]
    fn marginal_matches_simulation() {
        check_marginal_by_simulation(&SubVpSde::new(0.1, 20.0).unwrap(), 0.3, 3);
    }
}
