//! EDM's training objective (Karras et al. 2022, Table 1, "Training"; eq. 2 and 8):
//! `E_{sigma, x0, n} [ lambda(sigma) || D(x0 + sigma n; sigma) - x0 ||^2 ]` with
//! `ln sigma ~ N(P_mean, P_std^2)` and `lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2`.
//!
//! On an SDE with kernel `x_t = m x0 + s eps`, `x_t / m = x0 + sigma eps` at the time `t` with
//! `s(t) / m(t) = sigma` ([`crate::sde::time_at_log_snr`] of `-ln sigma`), so the objective is
//! the loss measured in `x0` ([`objective_at`]) at that `t`, weighted by `lambda`. A drawn
//! `sigma` outside the SDE's range `[sigma(t_min), sigma(T)]` is moved to the nearer end (with
//! `P_mean = -1.2`, `P_std = 1.2` and DDPM's linear schedule, `sigma < 0.01` about 0.2% of the
//! time). With EDM's preconditioning ([`crate::precond`]) and the same `sigma_data`,
//! `lambda c_out^2 = 1`: the network's own regression target has unit weight at every level.

use super::objective_at;
use crate::model::ScoreModel;
use crate::noise::NoiseSource;
use crate::param::Parameterization;
use crate::precond::{edm_weight, sigma_of};
use crate::sde::{Sde, time_at_log_snr};
use burn::tensor::Tensor;

/// EDM's `P_mean`.
pub const DEFAULT_P_MEAN: f64 = -1.2;
/// EDM's `P_std`.
pub const DEFAULT_P_STD: f64 = 1.2;

/// The time whose noise level `s / m` is `sigma`, clamped to `[t_min, T]`.
pub fn time_of_sigma(sde: &dyn Sde, sigma: f64) -> f64 {
    time_at_log_snr(sde, -sigma.ln(), sde.t_min(), sde.t_max())
}

/// EDM's loss on the batch `x0`, drawing `sigma` and the noise from `noise`.
pub fn edm_loss<const D: usize>(
    model: &dyn ScoreModel<D>,
    sde: &dyn Sde,
    x0: Tensor<D>,
    sigma_data: f64,
    p_mean: f64,
    p_std: f64,
    noise: &mut NoiseSource,
) -> Tensor<1> {
    let b = x0.dims()[0];
    let ts: Vec<f64> = (0..b).map(|_| time_of_sigma(sde, (p_mean + p_std * noise.normal_f64()).exp())).collect();
    let coefs: Vec<f64> = ts
        .iter()
        .map(|&t| {
            let (m, s) = sde.marginal(t);
            edm_weight(sigma_of(m, s), sigma_data)
        })
        .collect();
    objective_at(model, sde, x0, &ts, &coefs, Parameterization::X0, noise)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::SdeConfig;

    #[test]
    fn time_of_sigma_inverts_the_marginal_and_clamps() {
        for config in [SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 }, SdeConfig::Ve { sigma_min: 0.01, sigma_max: 50.0 }] {
            let sde = config.build().unwrap();
            for sigma in [0.05, 0.5, 3.0, 20.0] {
                let t = time_of_sigma(sde.as_ref(), sigma);
                let (m, s) = sde.marginal(t);
                assert!((s / m / sigma - 1.0).abs() < 1e-9, "{config:?}: sigma {sigma} at t {t}: {}", s / m);
            }
            assert!((time_of_sigma(sde.as_ref(), 1e-9) - sde.t_min()).abs() < 1e-12);
            assert!((time_of_sigma(sde.as_ref(), 1e9) - sde.t_max()).abs() < 1e-12);
        }
    }
}
