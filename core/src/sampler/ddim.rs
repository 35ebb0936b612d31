//! DDIM (Song, Meng & Ermon, ICLR 2021), eq. (12), for any SDE.
//!
//! `x_s = m_s x0_hat + sqrt(s_s^2 - c^2) eps_hat + c z` with `c = eta * std~`, where `std~` is
//! the ancestral posterior std from `t` to `s` (eq. 16): `eta = 0` is the deterministic DDIM
//! (the probability-flow ODE's exponential integrator), `eta = 1` is DDPM ancestral sampling.
//! For VE (`m = 1`) it is the same update in sigma space.

use super::{Posterior, PredictionStep, Step, Transition};
use crate::model::{Prediction, ScoreFn};
use crate::noise::NoiseSource;
use crate::sde::Sde;
use burn::tensor::Tensor;

/// The DDIM transition.
#[derive(Debug, Clone, Copy)]
pub struct Ddim {
    /// `eta in [0, 1]`.
    pub eta: f64,
}

impl<const D: usize> Transition<D> for Ddim {
    fn transition(&mut self, x: Tensor<D>, t: f64, s: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let pred = f.eval(x.clone(), t);
        self.step_from(x, &pred, None, t, s, f.sde(), noise)
    }
}

impl<const D: usize> PredictionStep<D> for Ddim {
    fn step_from(&self, _x: Tensor<D>, pred: &Prediction<D>, _v: Option<Tensor<D>>, t: f64, s: f64, sde: &dyn Sde, noise: &mut NoiseSource) -> Step<D> {
        let (x0, eps) = (pred.x0(), pred.eps());
        let (ms, ss) = sde.marginal(s);
        let std_post = Posterior::new(sde, t, s).var_small.sqrt();
        let c = self.eta * std_post;
        let x_mean = x0.mul_scalar(ms) + eps.mul_scalar((ss * ss - c * c).max(0.0).sqrt());
        if c == 0.0 {
            return Step::deterministic(x_mean);
        }
        let z = noise.normal(x_mean.dims(), &x_mean.device());
        Step { x: x_mean.clone() + z.mul_scalar(c), x_mean }
    }
}
