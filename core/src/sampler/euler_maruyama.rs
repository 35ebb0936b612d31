//! Euler–Maruyama on the reverse-time SDE.
//!
//! Song et al. 2021, eq. (6): `dx = [f(t) x - g(t)^2 score] dt + g(t) dw_bar`, stepped backwards
//! from `t` to `t - dt`: `x <- x - [f x - g^2 score] dt + g sqrt(dt) z`.

use super::{Step, Transition, reverse_drift};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;

/// The Euler–Maruyama transition.
#[derive(Debug, Clone, Copy)]
pub struct EulerMaruyama;

impl<const D: usize> Transition<D> for EulerMaruyama {
    fn transition(&mut self, x: Tensor<D>, t: f64, t_next: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let dt = t - t_next;
        let x_mean = x.clone() - reverse_drift(f, x, t, 1.0).mul_scalar(dt);
        let z = noise.normal(x_mean.dims(), &x_mean.device());
        let g = f.sde().diffusion(t);
        Step { x: x_mean.clone() + z.mul_scalar(g * dt.sqrt()), x_mean }
    }
}
