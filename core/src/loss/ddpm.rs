//! DDPM's simplified objective (Ho et al. 2020, eq. 14):
//! `L_simple = E_{i ~ U{1..N}} E ||eps - eps_theta(sqrt(ab_i) x_0 + sqrt(1 - ab_i) eps, i)||^2`,
//! on the levels `t_i = i / N` of the SDE's grid. With `eps_theta = -s score` this is
//! [`dsm_at`](super::dsm_at) with coefficient 1 (twice the `lambda = s^2` DSM integrand).

use super::dsm_at;
use crate::model::ScoreModel;
use crate::noise::NoiseSource;
use crate::sde::Sde;
use burn::tensor::Tensor;

/// `L_simple` with levels drawn uniformly from `1..=levels`.
pub fn ddpm_simple_loss<const D: usize>(model: &dyn ScoreModel<D>, sde: &dyn Sde, x0: Tensor<D>, levels: usize, noise: &mut NoiseSource) -> Tensor<1> {
    let b = x0.dims()[0];
    let ts: Vec<f64> = (0..b).map(|_| (1 + noise.index(levels)) as f64 / levels as f64).collect();
    dsm_at(model, sde, x0, &ts, &vec![1.0; b], noise)
}
