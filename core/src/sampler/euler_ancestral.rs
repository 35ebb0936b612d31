//! Euler ancestral sampling (k-diffusion's `sample_euler_ancestral`, diffusers'
//! `EulerAncestralDiscreteScheduler`), for any SDE.
//!
//! On the scaled VE process `x~ = x / m = x0 + sigma eps`, `sigma = s / m` (Karras et al. 2022,
//! eq. 10), a step from `sigma_t` to `sigma_s` splits the target level into a deterministic
//! part and fresh noise (k-diffusion's `get_ancestral_step`):
//! `sigma_up = min(sigma_s, eta sqrt(sigma_s^2 (sigma_t^2 - sigma_s^2) / sigma_t^2))`,
//! `sigma_down = sqrt(sigma_s^2 - sigma_up^2)`; an Euler step of the probability-flow ODE
//! `dx~/dsigma = (x~ - D) / sigma` to `sigma_down`, then `+ S_noise sigma_up z`, and `x = m x~`.
//! With `eta = 1` the step's variance is the DDPM posterior's (`sigma_up^2` is its variance in
//! `x~`, Ho et al. 2020, eq. 7); `eta = 0` is the ODE's Euler step. A step to `sigma = 0`
//! returns the denoised `m x0_hat`.

use super::{Step, Transition};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;

/// The Euler ancestral transition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EulerAncestral {
    /// The share of the posterior noise, in `[0, 1]` (1: ancestral, 0: the ODE).
    pub eta: f64,
    /// The scale of the added noise.
    pub s_noise: f64,
}

impl EulerAncestral {
    /// `(sigma_down, sigma_up)` of a step from `sigma_t` to `sigma_s`.
    pub fn split(&self, sig_t: f64, sig_s: f64) -> (f64, f64) {
        let up = (self.eta * (sig_s * sig_s * (sig_t * sig_t - sig_s * sig_s) / (sig_t * sig_t)).max(0.0).sqrt()).min(sig_s);
        ((sig_s * sig_s - up * up).max(0.0).sqrt(), up)
    }
}

impl<const D: usize> Transition<D> for EulerAncestral {
    fn transition(&mut self, x: Tensor<D>, t: f64, s: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let x0 = f.eval(x.clone(), t).x0();
        let (mt, st) = f.sde().marginal(t);
        let (ms, ss) = f.sde().marginal(s);
        if ss <= 0.0 {
            return Step::deterministic(x0.mul_scalar(ms));
        }
        let (sig_t, sig_s) = (st / mt, ss / ms);
        let (down, up) = self.split(sig_t, sig_s);
        // x~ + (down - sigma_t) (x~ - D) / sigma_t = (down / sigma_t) x~ + (1 - down / sigma_t) D.
        let r = down / sig_t;
        let x_mean = x.mul_scalar(r * ms / mt) + x0.mul_scalar((1.0 - r) * ms);
        if up == 0.0 || self.s_noise == 0.0 {
            return Step::deterministic(x_mean);
        }
        let z = noise.normal(x_mean.dims(), &x_mean.device());
        Step { x: x_mean.clone() + z.mul_scalar(self.s_noise * up * ms), x_mean }
    }
}
