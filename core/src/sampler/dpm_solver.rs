//! DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2), for any SDE.
//!
//! In terms of `lambda_t = log(m_t / s_t)` and the data prediction `x0_hat`, a step from `t`
//! to `s` with `h = lambda_s - lambda_t` is
//! `x_s = (s_s / s_t) x_t - m_s (e^{-h} - 1) D`, where `D = x0_hat(t)` on the first step and
//! `D = (1 + 1/(2r)) x0_hat(t) - 1/(2r) x0_hat(t_prev)` after it, `r = h_prev / h`.
//! A step that lands where `s = 0` (the data, for VP) is taken at first order, which there
//! returns `m_s x0_hat` exactly ("lower order final").

use super::{Step, Transition};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;

/// The multistep solver; it remembers the previous `x0_hat` and step.
#[derive(Debug, Clone, Default)]
pub struct DpmSolver2M<const D: usize> {
    prev: Option<(Tensor<D>, f64)>,
}

impl<const D: usize> Transition<D> for DpmSolver2M<D> {
    fn transition(&mut self, x: Tensor<D>, t: f64, s: f64, f: &ScoreFn<D>, _: &mut NoiseSource) -> Step<D> {
        let x0 = f.eval(x.clone(), t).x0();
        let (mt, st) = f.sde().marginal(t);
        let (ms, ss) = f.sde().marginal(s);
        if ss <= 0.0 {
            self.prev = None;
            return Step::deterministic(x0.mul_scalar(ms));
        }
        let h = (ms / ss).ln() - (mt / st).ln();
        let d = match self.prev.take() {
            Some((x0_prev, h_prev)) => {
                let r = h_prev / h;
                x0.clone().mul_scalar(1.0 + 0.5 / r) - x0_prev.mul_scalar(0.5 / r)
            }
            None => x0.clone(),
        };
        self.prev = Some((x0, h));
        Step::deterministic(x.mul_scalar(ss / st) - d.mul_scalar(ms * (-h).exp_m1()))
    }
    fn memoryless(&self) -> bool {
        false
    }
}
