//! EDM's stochastic Heun sampler (Karras et al. 2022, "Elucidating the Design Space of
//! Diffusion-Based Generative Models", Algorithm 2), for any SDE.
//!
//! Every SDE here is the scaled VE process `x~ = x / m = x0 + sigma eps` with
//! `sigma(t) = s(t) / m(t)` (section 4, eq. 10): the step is taken on `x~` in `sigma` and
//! mapped back with `x = m x~`. From `sigma_i` to `sigma_{i+1}`, with the denoiser
//! `D = x0_hat` and `N` steps:
//!
//! - churn (lines 4-6): `gamma = min(S_churn / N, sqrt(2) - 1)` when
//!   `S_tmin <= sigma_i <= S_tmax`, else 0; `sigma^ = sigma_i (1 + gamma)`;
//!   `x~^ = x~ + sqrt(sigma^2 - sigma_i^2) S_noise z`;
//! - Euler (lines 7-8): `d = (x~^ - D(x~^, sigma^)) / sigma^`,
//!   `x~' = x~^ + (sigma_{i+1} - sigma^) d`;
//! - Heun's correction (lines 9-11), unless `sigma_{i+1} = 0`:
//!   `x~_{i+1} = x~^ + (sigma_{i+1} - sigma^) (d + d') / 2`, `d' = (x~' - D(x~', sigma_{i+1})) / sigma_{i+1}`.
//!
//! `S_churn = 0` (the default) is the deterministic Heun of EDM's Algorithm 1 and diffusers'
//! `HeunDiscreteScheduler`: 2 NFE per step, 1 for a last step to `sigma = 0`. `sigma^` is
//! capped at `sigma(T)`, where the model's time ends (k-diffusion lets it exceed the largest
//! training level at the first step).

use super::schedule::{sigma, time_at_sigma};
use super::{Step, Transition};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;

/// The stochastic Heun transition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeunEdm {
    /// `S_churn`: the total churn over the run (0: deterministic).
    pub s_churn: f64,
    /// `S_tmin`: the smallest noise level that is churned.
    pub s_tmin: f64,
    /// `S_tmax`: the largest noise level that is churned.
    pub s_tmax: f64,
    /// `S_noise`: the churn noise's scale.
    pub s_noise: f64,
    /// `N`, the run's number of steps (`gamma = S_churn / N`).
    pub steps: usize,
}

impl<const D: usize> Transition<D> for HeunEdm {
    fn transition(&mut self, x: Tensor<D>, t: f64, s: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let sde = f.sde();
        let (mt, st) = sde.marginal(t);
        let (ms, ss) = sde.marginal(s);
        let (sig_t, sig_s) = (st / mt, ss / ms);
        let churned = self.s_churn > 0.0 && (self.s_tmin..=self.s_tmax).contains(&sig_t);
        let gamma = if churned { (self.s_churn / self.steps.max(1) as f64).min(std::f64::consts::SQRT_2 - 1.0) } else { 0.0 };
        let mut xt = x.mul_scalar(1.0 / mt);
        let (t_hat, sig_hat) = if gamma > 0.0 {
            let t_hat = time_at_sigma(sde, sig_t * (1.0 + gamma), t, sde.t_max());
            let sig_hat = sigma(sde, t_hat).max(sig_t);
            let z = noise.normal(xt.dims(), &xt.device());
            xt = xt + z.mul_scalar(self.s_noise * (sig_hat * sig_hat - sig_t * sig_t).max(0.0).sqrt());
            (t_hat, sig_hat)
        } else {
            (t, sig_t)
        };
        let m_hat = sde.marginal(t_hat).0;
        let d0 = f.eval(xt.clone().mul_scalar(m_hat), t_hat).x0();
        let slope = (xt.clone() - d0).mul_scalar(1.0 / sig_hat);
        let euler = xt.clone() + slope.clone().mul_scalar(sig_s - sig_hat);
        if ss <= 0.0 {
            return Step::deterministic(euler.mul_scalar(ms));
        }
        let d1 = f.eval(euler.clone().mul_scalar(ms), s).x0();
        let slope2 = (euler - d1).mul_scalar(1.0 / sig_s);
        Step::deterministic((xt + (slope + slope2).mul_scalar(0.5 * (sig_s - sig_hat))).mul_scalar(ms))
    }
}
