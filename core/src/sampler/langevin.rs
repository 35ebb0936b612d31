//! Langevin dynamics: the corrector of predictor–corrector sampling and the inner loop of
//! annealed Langevin dynamics.
//!
//! Unadjusted Langevin (Song & Ermon 2019, eq. 4): `x <- x + alpha/2 score + sqrt(alpha) z`.
//! The corrector (Song et al. 2021, Alg. 4-5) picks `alpha = 2 eps` with
//! `eps = 2 r (snr ||z|| / ||score||)^2`, the norms averaged over the batch, and
//! `r = a^2` the squared mean coefficient of the forward transition into the current level
//! (`1 - beta_i` for VP, 1 for VE), written from the marginals so it holds for sub-VP too.

use super::Step;
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;

/// One unadjusted Langevin step of size `alpha` from `x` with the given score and noise `z`.
pub fn langevin_update<const D: usize>(x: Tensor<D>, score: Tensor<D>, alpha: f64, z: Tensor<D>) -> Step<D> {
    let x_mean = x + score.mul_scalar(alpha / 2.0);
    Step { x: x_mean.clone() + z.mul_scalar(alpha.sqrt()), x_mean }
}

/// Mean over the batch of the per-sample Euclidean norms.
fn mean_norm<const D: usize>(x: Tensor<D>) -> f64 {
    let b = x.dims()[0];
    x.reshape([b as i32, -1]).square().sum_dim(1).sqrt().mean().into_scalar::<f32>() as f64
}

/// Langevin corrector steps at a fixed time.
#[derive(Debug, Clone, Copy)]
pub struct LangevinCorrector {
    /// Target signal-to-noise ratio.
    pub snr: f64,
    /// Steps per level.
    pub steps: usize,
}

impl LangevinCorrector {
    /// Runs the corrector at time `t`, where `r = a^2` of the forward transition from `t - dt`.
    pub fn correct<const D: usize>(&self, mut step: Step<D>, t: f64, dt: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let (a, _) = f.sde().transition((t - dt).max(0.0), t);
        for _ in 0..self.steps {
            let score = f.score(step.x.clone(), t);
            let z = noise.normal(step.x.dims(), &step.x.device());
            let eps = 2.0 * a * a * (self.snr * mean_norm(z.clone()) / mean_norm(score.clone())).powi(2);
            step = langevin_update(step.x, score, 2.0 * eps, z);
        }
        step
    }
}
