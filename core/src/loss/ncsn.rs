//! NCSN's annealed denoising score matching (Song & Ermon 2019, eq. 5-6).
//!
//! `L = 1/L sum_i lambda(sigma_i) 1/2 E || s_theta(x~, sigma_i) + (x~ - x) / sigma_i^2 ||^2` over
//! `L` geometric noise levels `sigma_1 > ... > sigma_L`, with `lambda(sigma) = sigma^2`; a level
//! is drawn uniformly per example. On the VE SDE the levels are `sigma(t_i)` at
//! `t_i = i / (L - 1)`, i.e. geometric from `sigma_min` to `sigma_max`; on any other SDE the same
//! grid of times is used.

use super::dsm_at;
use crate::model::ScoreModel;
use crate::noise::NoiseSource;
use crate::sde::Sde;
use burn::tensor::Tensor;

/// NCSN's loss over `levels >= 2` noise levels.
pub fn ncsn_loss<const D: usize>(model: &dyn ScoreModel<D>, sde: &dyn Sde, x0: Tensor<D>, levels: usize, noise: &mut NoiseSource) -> Tensor<1> {
    let b = x0.dims()[0];
    let l = levels.max(2);
    let ts: Vec<f64> = (0..b).map(|_| sde.t_max() * noise.index(l) as f64 / (l - 1) as f64).collect();
    dsm_at(model, sde, x0, &ts, &vec![0.5; b], noise)
}
