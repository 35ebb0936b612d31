//! Fixed-step solvers of the probability-flow ODE.
//!
//! Song et al. 2021, eq. (13): `dx/dt = f(t) x - 1/2 g(t)^2 score(x, t)`, integrated from `T`
//! to 0. Euler is first order; Heun (Karras et al. 2022, Alg. 1) is the trapezoidal second-order
//! method, falling back to Euler on a step that ends where the score is undefined (`s(0) = 0`).

use super::{Step, Transition};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;

/// The reverse-time drift `f(t) x - lambda g(t)^2 score`, with `lambda = 1` for the reverse SDE
/// (Song et al. 2021, eq. 6) and `lambda = 1/2` for the probability-flow ODE (eq. 13).
pub fn reverse_drift<const D: usize>(f: &ScoreFn<D>, x: Tensor<D>, t: f64, lambda: f64) -> Tensor<D> {
    let sde = f.sde();
    let g = sde.diffusion(t);
    let score = f.score(x.clone(), t);
    x.mul_scalar(sde.drift_coef(t)) - score.mul_scalar(lambda * g * g)
}

/// The probability-flow ODE's velocity `dx/dt = f(t) x - 1/2 g(t)^2 score` (eq. 13).
pub fn ode_drift<const D: usize>(f: &ScoreFn<D>, x: Tensor<D>, t: f64) -> Tensor<D> {
    reverse_drift(f, x, t, 0.5)
}

/// Euler steps of the probability-flow ODE.
#[derive(Debug, Clone, Copy)]
pub struct OdeEuler;

impl<const D: usize> Transition<D> for OdeEuler {
    fn transition(&mut self, x: Tensor<D>, t: f64, t_next: f64, f: &ScoreFn<D>, _: &mut NoiseSource) -> Step<D> {
        let d = ode_drift(f, x.clone(), t);
        Step::deterministic(x - d.mul_scalar(t - t_next))
    }
}

/// Heun (explicit trapezoidal) steps of the probability-flow ODE.
#[derive(Debug, Clone, Copy)]
pub struct OdeHeun;

impl<const D: usize> Transition<D> for OdeHeun {
    fn transition(&mut self, x: Tensor<D>, t: f64, t_next: f64, f: &ScoreFn<D>, _: &mut NoiseSource) -> Step<D> {
        let dt = t - t_next;
        let d1 = ode_drift(f, x.clone(), t);
        let euler = x.clone() - d1.clone().mul_scalar(dt);
        if f.sde().marginal(t_next).1 <= 0.0 {
            return Step::deterministic(euler);
        }
        let d2 = ode_drift(f, euler, t_next);
        Step::deterministic(x - (d1 + d2).mul_scalar(0.5 * dt))
    }
}
