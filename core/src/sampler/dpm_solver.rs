//! The DPM-Solver++ multistep family (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided
//! Sampling of Diffusion Probabilistic Models", Alg. 2 and appendix), for any SDE: 2M and 3M,
//! as ODE solvers and as SDE solvers (diffusers' `DPMSolverMultistepScheduler` with
//! `algorithm_type` `dpmsolver++` or `sde-dpmsolver++` and `solver_order` 2 or 3; k-diffusion's
//! `sample_dpmpp_2m`, `sample_dpmpp_2m_sde` and `sample_dpmpp_3m_sde`). One file, as diffusers
//! has one scheduler: the four differ only in the order and the noise share `eta`.
//!
//! With `lambda = log(m / s)`, `h = lambda_s - lambda_t`, `h_eta = (1 + eta) h` and the data
//! predictions `D_0 = x0_hat(t)` and `D_1`, `D_2` of the previous steps (steps `h_1`, `h_2`):
//!
//! - the first-order step (the exponential integrator of the reverse SDE with noise share
//!   `eta`; DDIM at `eta = 0`):
//!   `x_s = (s_s / s_t) e^{-eta h} x_t + m_s (1 - e^{-h_eta}) D_0 + s_s sqrt(1 - e^{-2 eta h}) S_noise z`;
//! - **2M** (the midpoint rule, k-diffusion's `solver_type = "midpoint"`, Alg. 2's
//!   `D = (1 + 1/(2r)) D_0 - 1/(2r) D_1`): adds `m_s (1 - e^{-h_eta}) / (2 r) (D_0 - D_1)`,
//!   `r = h_1 / h`;
//! - **3M**: with `r_0 = h_1 / h`, `r_1 = h_2 / h`, `d_0 = (D_0 - D_1) / r_0`,
//!   `d_1 = (D_1 - D_2) / r_1`, `d' = d_0 + (d_0 - d_1) r_0 / (r_0 + r_1)`,
//!   `d'' = (d_0 - d_1) / (r_0 + r_1)`, `phi_2 = (e^{-h_eta} - 1) / h_eta + 1` and
//!   `phi_3 = phi_2 / h_eta - 1/2`, adds `m_s (phi_2 d' - phi_3 d'')` (diffusers'
//!   `multistep_dpm_solver_third_order_update`); its second step, with one previous prediction,
//!   is 2M's midpoint step, as in diffusers (k-diffusion's `sample_dpmpp_3m_sde` adds
//!   `m_s phi_2 d_0` there instead). Over a grid of fewer than 15 steps, 3M takes the
//!   second-to-last step at second order, as diffusers' `lower_order_final` does (the step
//!   count comes with [`DpmSolverPp::with_steps`]; k-diffusion's samplers do not lower it).
//!
//! A step that lands where `s = 0` (the data, for VP) is taken at first order, which there
//! returns `m_s x0_hat` exactly ("lower order final").

use super::{Step, Transition};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;

/// A DPM-Solver++ multistep solver; it remembers the previous `x0_hat` and steps.
#[derive(Debug, Clone)]
pub struct DpmSolverPp<const D: usize> {
    /// 2 or 3.
    pub order: usize,
    /// The noise share (0: the ODE solver, 1: the reverse SDE).
    pub eta: f64,
    /// The scale of the added noise.
    pub s_noise: f64,
    /// The grid's step count, when known: 3M lowers its second-to-last step below 15.
    steps: Option<usize>,
    /// Steps taken so far.
    taken: usize,
    /// `(D_1, h_1)` then `(D_2, h_2)`, the latest first.
    prev: Vec<(Tensor<D>, f64)>,
}

/// Below this many grid steps, 3M takes the second-to-last step at second order (diffusers'
/// `DPMSolverMultistepScheduler`, `lower_order_final`, "for steps < 15").
pub const LOWER_ORDER_FINAL_BELOW: usize = 15;

/// DPM-Solver++(2M), the ODE solver: [`DpmSolverPp::default`].
pub type DpmSolver2M<const D: usize> = DpmSolverPp<D>;

impl<const D: usize> Default for DpmSolverPp<D> {
    /// DPM-Solver++(2M).
    fn default() -> Self {
        Self::new(2, 0.0, 1.0)
    }
}

impl<const D: usize> DpmSolverPp<D> {
    /// The solver of `order` (2 or 3; clamped) with noise share `eta` and scale `s_noise`.
    pub fn new(order: usize, eta: f64, s_noise: f64) -> Self {
        Self { order: order.clamp(2, 3), eta, s_noise, steps: None, taken: 0, prev: Vec::new() }
    }

    /// The solver over a grid of `steps` steps, so that 3M takes the second-to-last step at
    /// second order when `steps < 15` (diffusers' `lower_order_final`).
    pub fn with_steps(self, steps: usize) -> Self {
        Self { steps: Some(steps), ..self }
    }

    /// The order of the step about to be taken: 3M's second-to-last step of a short grid is
    /// second order.
    fn order_now(&self) -> usize {
        match self.steps {
            Some(n) if self.order == 3 && n < LOWER_ORDER_FINAL_BELOW && self.taken + 2 == n => 2,
            _ => self.order,
        }
    }
}

impl<const D: usize> Transition<D> for DpmSolverPp<D> {
    fn transition(&mut self, x: Tensor<D>, t: f64, s: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let x0 = f.eval(x.clone(), t).x0();
        let (mt, st) = f.sde().marginal(t);
        let (ms, ss) = f.sde().marginal(s);
        let order = self.order_now();
        self.taken += 1;
        if ss <= 0.0 {
            self.prev.clear();
            self.taken = 0;
            return Step::deterministic(x0.mul_scalar(ms));
        }
        let h = (ms / ss).ln() - (mt / st).ln();
        let h_eta = (1.0 + self.eta) * h;
        let c = -(-h_eta).exp_m1();
        let mut x_mean = x.mul_scalar(ss / st * (-self.eta * h).exp()) + x0.clone().mul_scalar(ms * c);
        let phi_2 = (-h_eta).exp_m1() / h_eta + 1.0;
        match (order, self.prev.as_slice()) {
            (3, [(d1, h1), (d2, h2), ..]) => {
                let (r0, r1) = (h1 / h, h2 / h);
                let d1_0 = (x0.clone() - d1.clone()).mul_scalar(1.0 / r0);
                let d1_1 = (d1.clone() - d2.clone()).mul_scalar(1.0 / r1);
                let diff = d1_0.clone() - d1_1;
                let first = d1_0 + diff.clone().mul_scalar(r0 / (r0 + r1));
                let second = diff.mul_scalar(1.0 / (r0 + r1));
                let phi_3 = phi_2 / h_eta - 0.5;
                x_mean = x_mean + first.mul_scalar(ms * phi_2) - second.mul_scalar(ms * phi_3);
            }
            (_, [(d1, h1), ..]) => x_mean = x_mean + (x0.clone() - d1.clone()).mul_scalar(ms * 0.5 * c * h / h1),
            _ => {}
        }
        self.prev.insert(0, (x0, h));
        self.prev.truncate(self.order - 1);
        let std = ss * (-(-2.0 * self.eta * h).exp_m1()).max(0.0).sqrt() * self.s_noise;
        if std == 0.0 {
            return Step::deterministic(x_mean);
        }
        let z = noise.normal(x_mean.dims(), &x_mean.device());
        Step { x: x_mean.clone() + z.mul_scalar(std), x_mean }
    }
    fn memoryless(&self) -> bool {
        false
    }
}
