//! Adaptive Dormand–Prince RK5(4) (Dormand & Prince 1980), the integrator the reference code
//! takes from `scipy.integrate.solve_ivp(method="RK45")`: same tableau, error norm
//! (RMS of `err / (atol + rtol max(|y|, |y_new|))` over every element of the batch), step-size
//! control (`0.9 err^{-1/5}` clipped to `[0.2, 10]`) and initial-step heuristic (Hairer et al.,
//! "Solving ODEs I", II.4). First-same-as-last: six evaluations per accepted step.
//!
//! [`Rk45`] integrates any `dy/dt = rhs(y, t)` on tensors (the likelihood uses it on the
//! augmented state); [`Rk45Sampler`] applies it to the probability-flow ODE from `T` to `t_min`.

use super::{Sampler, Step, ode_drift};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;

const C: [f64; 6] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0];
const A: [&[f64]; 6] = [
    &[],
    &[1.0 / 5.0],
    &[3.0 / 40.0, 9.0 / 40.0],
    &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
    &[19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
    &[9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
];
const B: [f64; 6] = [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0];
/// `b - b*`: the 5th-order minus the embedded 4th-order weights, over all 7 stages.
const E: [f64; 7] = [71.0 / 57600.0, 0.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0];

/// RMS over all elements.
fn rms<const D: usize>(x: Tensor<D>) -> f64 {
    (x.square().mean().into_scalar::<f32>() as f64).sqrt()
}

/// State of an adaptive integration from `t0` to `t_end` (either direction).
pub struct Rk45<const D: usize> {
    /// Current time.
    pub t: f64,
    /// Current state.
    pub y: Tensor<D>,
    t_end: f64,
    h: Option<f64>,
    f_last: Option<Tensor<D>>,
    rtol: f64,
    atol: f64,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected step attempts.
    pub rejected: usize,
}

impl<const D: usize> Rk45<D> {
    /// Starts at `(t0, y0)`.
    pub fn new(y0: Tensor<D>, t0: f64, t_end: f64, rtol: f64, atol: f64) -> Self {
        Self { t: t0, y: y0, t_end, h: None, f_last: None, rtol, atol, accepted: 0, rejected: 0 }
    }

    /// Whether `t_end` has been reached.
    pub fn is_done(&self) -> bool {
        self.t == self.t_end
    }

    /// Estimated steps left at the current step size.
    pub fn steps_left(&self) -> usize {
        match self.h {
            Some(h) if h != 0.0 => ((self.t_end - self.t) / h).abs().ceil() as usize,
            _ => 1,
        }
    }

    fn scale(&self, y: &Tensor<D>, y_new: Option<&Tensor<D>>) -> Tensor<D> {
        let mut m = y.clone().abs();
        if let Some(n) = y_new {
            m = m.max_pair(n.clone().abs());
        }
        m.mul_scalar(self.rtol).add_scalar(self.atol)
    }

    fn initial_step(&self, f0: &Tensor<D>, rhs: &mut dyn FnMut(Tensor<D>, f64) -> Tensor<D>) -> f64 {
        let dir = (self.t_end - self.t).signum();
        let scale = self.scale(&self.y, None);
        let d0 = rms(self.y.clone() / scale.clone());
        let d1 = rms(f0.clone() / scale.clone());
        let h0 = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 };
        let y1 = self.y.clone() + f0.clone().mul_scalar(h0 * dir);
        let f1 = rhs(y1, self.t + h0 * dir);
        let d2 = rms((f1 - f0.clone()) / scale) / h0;
        let h1 = if d1 <= 1e-15 && d2 <= 1e-15 { (h0 * 1e-3).max(1e-6) } else { (0.01 / d1.max(d2)).powf(0.2) };
        (100.0 * h0).min(h1).min((self.t_end - self.t).abs()) * dir
    }

    /// Takes one accepted step (retrying rejected ones); returns the new state.
    pub fn step(&mut self, rhs: &mut dyn FnMut(Tensor<D>, f64) -> Tensor<D>) -> &Tensor<D> {
        if self.is_done() {
            return &self.y;
        }
        let f0 = match self.f_last.take() {
            Some(f) => f,
            None => rhs(self.y.clone(), self.t),
        };
        let mut h = match self.h {
            Some(h) => h,
            None => self.initial_step(&f0, rhs),
        };
        loop {
            let last = (self.t + h - self.t_end) * h.signum() >= 0.0;
            if last {
                h = self.t_end - self.t;
            }
            let mut k: Vec<Tensor<D>> = vec![f0.clone()];
            for s in 1..6 {
                let mut y = self.y.clone();
                for (j, a) in A[s].iter().enumerate() {
                    if *a != 0.0 {
                        y = y + k[j].clone().mul_scalar(h * a);
                    }
                }
                k.push(rhs(y, self.t + C[s] * h));
            }
            let mut y_new = self.y.clone();
            for (kj, b) in k.iter().zip(B) {
                if b != 0.0 {
                    y_new = y_new + kj.clone().mul_scalar(h * b);
                }
            }
            let t_new = if last { self.t_end } else { self.t + h };
            let f_new = rhs(y_new.clone(), t_new);
            k.push(f_new.clone());
            let mut err = k[0].clone().mul_scalar(h * E[0]);
            for (kj, e) in k.iter().zip(E).skip(1) {
                if e != 0.0 {
                    err = err + kj.clone().mul_scalar(h * e);
                }
            }
            let scale = self.scale(&self.y, Some(&y_new));
            let err = rms(err / scale);
            // A non-finite state (e.g. NaN input) would be rejected forever: stop there and let
            // the caller see the NaN. A step below float resolution is accepted (scipy fails).
            let tiny = h.abs() <= 1e-12 * self.t.abs().max(1.0);
            if !err.is_finite() || tiny {
                self.t = t_new;
                self.y = y_new;
                self.f_last = Some(f_new);
                self.accepted += 1;
                if !err.is_finite() {
                    self.t = self.t_end;
                }
                return &self.y;
            }
            if err <= 1.0 {
                let factor = if err == 0.0 { 10.0 } else { (0.9 * err.powf(-0.2)).min(10.0) };
                self.t = t_new;
                self.y = y_new;
                self.f_last = Some(f_new);
                self.h = Some(h * factor);
                self.accepted += 1;
                return &self.y;
            }
            self.rejected += 1;
            h *= (0.9 * err.powf(-0.2)).max(0.2);
        }
    }

    /// Integrates to the end; returns the final state.
    pub fn solve(mut self, rhs: &mut dyn FnMut(Tensor<D>, f64) -> Tensor<D>) -> Tensor<D> {
        while !self.is_done() {
            self.step(rhs);
        }
        self.y
    }
}

/// The probability-flow ODE solved by [`Rk45`] from `T` to `t_min`; one step per accepted step.
pub struct Rk45Sampler<const D: usize> {
    t0: f64,
    t_end: f64,
    rtol: f64,
    atol: f64,
    solver: Option<Rk45<D>>,
}

impl<const D: usize> Rk45Sampler<D> {
    /// From `t0 = T` to `t_end = t_min`.
    pub fn new(t0: f64, t_end: f64, rtol: f64, atol: f64) -> Self {
        Self { t0, t_end, rtol, atol, solver: None }
    }
}

impl<const D: usize> Sampler<D> for Rk45Sampler<D> {
    fn step(&mut self, x: Tensor<D>, f: &ScoreFn<D>, _: &mut NoiseSource) -> Step<D> {
        let (t0, t_end, rtol, atol) = (self.t0, self.t_end, self.rtol, self.atol);
        let solver = self.solver.get_or_insert_with(|| Rk45::new(x, t0, t_end, rtol, atol));
        let y = solver.step(&mut |y, t| ode_drift(f, y, t)).clone();
        Step::deterministic(y)
    }
    fn is_done(&self) -> bool {
        self.solver.as_ref().is_some_and(|s| s.is_done())
    }
    fn progress(&self) -> (usize, usize) {
        match &self.solver {
            Some(s) => (s.accepted, s.accepted + s.steps_left() * usize::from(!s.is_done())),
            None => (0, 1),
        }
    }
    fn time(&self) -> f64 {
        self.solver.as_ref().map_or(self.t0, |s| s.t)
    }
    /// The adaptive step size reads the error norm back.
    fn reads_back(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    /// `y' = -2 t y` has the solution `y0 exp(-t^2)`; backwards too.
    #[test]
    fn solves_a_known_ode_to_tolerance_both_ways() {
        let dev = device();
        let y0 = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -0.5, 2.0], [3, 1]), &dev);
        let evals = std::cell::Cell::new(0);
        let mut rhs = |y: Tensor<2>, t: f64| {
            evals.set(evals.get() + 1);
            y.mul_scalar(-2.0 * t)
        };
        let y = Rk45::new(y0.clone(), 0.0, 1.5, 1e-6, 1e-8).solve(&mut rhs);
        let expect = (-2.25f64).exp();
        for (g, y0) in to_vec(y.clone()).iter().zip([1.0, -0.5, 2.0]) {
            assert!((*g as f64 - y0 * expect).abs() < 1e-5, "{g}");
        }
        assert!(evals.get() > 10 && evals.get() < 200, "{}", evals.get());
        let back = Rk45::new(y, 1.5, 0.0, 1e-6, 1e-8).solve(&mut rhs);
        assert_close(&back, &y0, 1e-4);
    }
}
