//! DDPM's simplified objective (Ho et al. 2020, eq. 14):
//! `L_simple = E_{i ~ U{1..N}} E ||eps - eps_theta(sqrt(ab_i) x_0 + sqrt(1 - ab_i) eps, i)||^2`,
//! on the levels `t_i = i / N` of the SDE's grid. With `eps_theta = -s score` this is
//! [`dsm_at`](super::dsm_at) with coefficient 1 (twice the `lambda = s^2` DSM integrand).
//!
//! Two options change the objective and keep the level distribution:
//! - `target`: the parameterization the error is measured in ([`objective_at`]); `v` is
//!   Salimans & Ho's v-prediction loss `||v - v_theta||^2` (2022, section 4), whatever the
//!   network's head predicts;
//! - `min_snr_gamma`: Hang et al.'s Min-SNR-gamma weight per level ([`super::min_snr`]).

use super::min_snr::min_snr_weights;
use super::objective_at;
use crate::model::ScoreModel;
use crate::noise::NoiseSource;
use crate::param::Parameterization;
use crate::sde::Sde;
use burn::tensor::Tensor;

/// `L_simple` with levels drawn uniformly from `1..=levels`.
pub fn ddpm_simple_loss<const D: usize>(model: &dyn ScoreModel<D>, sde: &dyn Sde, x0: Tensor<D>, levels: usize, noise: &mut NoiseSource) -> Tensor<1> {
    ddpm_loss(model, sde, x0, levels, Parameterization::Eps, None, noise)
}

/// The `L_simple` level distribution with the error measured in `target` and weighted by
/// Min-SNR-`gamma` when `min_snr_gamma` is given (else weight 1).
pub fn ddpm_loss<const D: usize>(
    model: &dyn ScoreModel<D>,
    sde: &dyn Sde,
    x0: Tensor<D>,
    levels: usize,
    target: Parameterization,
    min_snr_gamma: Option<f64>,
    noise: &mut NoiseSource,
) -> Tensor<1> {
    let b = x0.dims()[0];
    let ts: Vec<f64> = (0..b).map(|_| (1 + noise.index(levels)) as f64 / levels as f64).collect();
    let coefs = min_snr_weights(sde, &ts, target, min_snr_gamma);
    objective_at(model, sde, x0, &ts, &coefs, target, noise)
}
