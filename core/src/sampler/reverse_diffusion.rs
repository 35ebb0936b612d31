//! The reverse-diffusion predictor.
//!
//! Song et al. 2021, eq. (45) and appendix E: discretize the reverse SDE the same way as the
//! forward one, `x_{i+1} = x_i + f_i(x_i) + G_i z`, giving
//! `x_i = x_{i+1} - f_{i+1}(x_{i+1}) + G_{i+1}^2 score + G_{i+1} z`. The forward discretization
//! `(f_i, G_i)` is the SDE's own [`Sde::discretize`](crate::sde::Sde::discretize) (NCSN for VE,
//! DDPM for VP).

use super::{Step, Transition};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;

/// The reverse-diffusion transition.
#[derive(Debug, Clone, Copy)]
pub struct ReverseDiffusion;

impl<const D: usize> Transition<D> for ReverseDiffusion {
    fn transition(&mut self, x: Tensor<D>, t: f64, t_next: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let (fc, g) = f.sde().discretize(t, t - t_next);
        let score = f.score(x.clone(), t);
        // x - f x + G^2 score
        let x_mean = x.mul_scalar(1.0 - fc) + score.mul_scalar(g * g);
        let z = noise.normal(x_mean.dims(), &x_mean.device());
        Step { x: x_mean.clone() + z.mul_scalar(g), x_mean }
    }
}
