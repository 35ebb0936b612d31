//! UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling
//! of Diffusion Models", Algorithms 2 and 3 with the data prediction; diffusers'
//! `UniPCMultistepScheduler`, `predict_x0 = True`), for any SDE.
//!
//! With `lambda = log(m / s)`, the data predictions `D_0 = x0_hat(t)` and earlier `D_k` at
//! `lambda_k`, a step from `t` to `s` of order `p` has `h = lambda_s - lambda_t`,
//! `r_k = (lambda_k - lambda_t) / h` and `D1_k = (D_k - D_0) / r_k` (`k = 1 .. p - 1`):
//!
//! - **UniP** (the predictor, eq. 8 with `B(h)`):
//!   `x_s = (s_s / s_t) x_t - m_s (e^{-h} - 1) D_0 - m_s B(h) sum_k rho_k D1_k`;
//! - **UniC** (the corrector, eq. 11): once the model has been evaluated at the predicted `x_s`
//!   (the next step's evaluation, so no extra NFE), `x_s` is replaced by the same update from
//!   `x_t` with `D1_p = D(x_s) - D_0` (`r_p = 1`) added to the sum, with weights `rho^c`.
//!
//! The weights solve `R rho = b` (section 3.2, eq. 9) with `R_{ik} = r_k^(i-1)` and, in
//! diffusers' recursion with `hh = -h`: `g_1 = (e^{hh} - 1) / hh - 1`,
//! `g_{i+1} = g_i / hh - 1 / (i + 1)!`, `b_i = g_i i! / B(h)`, where `B(h) = hh` for `bh1` and
//! `B(h) = e^{hh} - 1` for `bh2`. As diffusers does, the second-order predictor
//! uses `rho = 1/2` and the first-order corrector `rho^c = 1/2`. The order rises by one per
//! step up to `order` (warm-up) and falls at the end (`lower_order_final`: at most the number
//! of steps left), so the last step is first order and a step to `s = 0` returns `m_s x0_hat`;
//! the last sample is not corrected (there is no evaluation after it).

use super::{Step, Transition};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// UniPC's choice of `B(h)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = UniPcVariant::unknown)]
pub enum UniPcVariant {
    /// `B(h) = h` (in diffusers' sign, `-h` for the data prediction): for few steps.
    Bh1,
    /// `B(h) = e^h - 1` (diffusers' default).
    #[default]
    Bh2,
}

impl UniPcVariant {
    /// Both variants.
    pub const ALL: [UniPcVariant; 2] = [Self::Bh1, Self::Bh2];

    fn unknown(s: &str) -> String {
        crate::names::unknown("UniPC variant", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// A previous evaluation: `x0_hat` at the half log-SNR `lambda`.
#[derive(Debug, Clone)]
struct Eval<const D: usize> {
    x0: Tensor<D>,
    lambda: f64,
}

/// The UniPC transition; it remembers the previous evaluations and the last state.
#[derive(Debug, Clone)]
pub struct UniPc<const D: usize> {
    /// The highest order, 1 to 3.
    pub order: usize,
    /// `B(h)`.
    pub variant: UniPcVariant,
    /// Whether UniC corrects each predicted state (false: UniP alone).
    pub corrector: bool,
    steps: usize,
    taken: usize,
    /// The latest last.
    history: Vec<Eval<D>>,
    /// The state the last step started from, its marginal and its order.
    last: Option<(Tensor<D>, (f64, f64), usize)>,
}

impl<const D: usize> UniPc<D> {
    /// UniPC of at most `order` (clamped to 1..=3) over a grid of `steps` steps.
    pub fn new(order: usize, variant: UniPcVariant, corrector: bool, steps: usize) -> Self {
        Self { order: order.clamp(1, 3), variant, corrector, steps, taken: 0, history: Vec::new(), last: None }
    }

    /// The weights' system for a step of `h` with ratios `rks` (the last 1): `(R, b, h phi_1, B(h))`.
    fn system(&self, h: f64, rks: &[f64]) -> (Vec<Vec<f64>>, Vec<f64>, f64, f64) {
        let hh = -h;
        let h_phi_1 = hh.exp_m1();
        let b_h = match self.variant {
            UniPcVariant::Bh1 => hh,
            UniPcVariant::Bh2 => hh.exp_m1(),
        };
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let mut factorial = 1.0;
        let (mut r, mut b) = (Vec::new(), Vec::new());
        for i in 1..=rks.len() {
            r.push(rks.iter().map(|rk| rk.powi(i as i32 - 1)).collect());
            b.push(h_phi_k * factorial / b_h);
            factorial *= (i + 1) as f64;
            h_phi_k = h_phi_k / hh - 1.0 / factorial;
        }
        (r, b, h_phi_1, b_h)
    }

    /// `m_s`-scaled update from `x` (marginal `(m_t, s_t)`) to `(m_s, s_s)` with the base
    /// prediction `d0` and the weighted differences `sum`.
    fn update(x: Tensor<D>, (_, st): (f64, f64), (ms, ss): (f64, f64), d0: Tensor<D>, h_phi_1: f64, b_h: f64, sum: Option<Tensor<D>>) -> Tensor<D> {
        let base = x.mul_scalar(ss / st) - d0.mul_scalar(ms * h_phi_1);
        match sum {
            Some(sum) => base - sum.mul_scalar(ms * b_h),
            None => base,
        }
    }

    /// The differences `D1_k = (D_k - D_0) / r_k` and ratios `r_k` of the `p - 1` evaluations
    /// before the latest, for a step of `h` from `lambda_0`.
    fn differences(&self, p: usize, lambda_0: f64, h: f64) -> (Vec<Tensor<D>>, Vec<f64>) {
        let n = self.history.len();
        let d0 = &self.history[n - 1].x0;
        (1..p)
            .map(|k| {
                let e = &self.history[n - 1 - k];
                let rk = (e.lambda - lambda_0) / h;
                ((e.x0.clone() - d0.clone()).mul_scalar(1.0 / rk), rk)
            })
            .unzip()
    }

    /// UniC: corrects the state `x_t` predicted from the last state, given `x0_hat` there.
    fn correct(&self, x_last: Tensor<D>, last_marginal: (f64, f64), p: usize, model_t: &Tensor<D>, marginal_t: (f64, f64)) -> Tensor<D> {
        let lambda_0 = self.history[self.history.len() - 1].lambda;
        let lambda_t = (marginal_t.0 / marginal_t.1).ln();
        let h = lambda_t - lambda_0;
        let (d1s, mut rks) = self.differences(p, lambda_0, h);
        rks.push(1.0);
        let (r, b, h_phi_1, b_h) = self.system(h, &rks);
        let rhos = if p == 1 { vec![0.5] } else { solve(r, b) };
        let d0 = self.history[self.history.len() - 1].x0.clone();
        let mut sum = (model_t.clone() - d0.clone()).mul_scalar(rhos[p - 1]);
        for (d1, rho) in d1s.into_iter().zip(&rhos) {
            sum = sum + d1.mul_scalar(*rho);
        }
        Self::update(x_last, last_marginal, marginal_t, d0, h_phi_1, b_h, Some(sum))
    }

    /// UniP of order `p` from `x` at `marginal_t` to `marginal_s`.
    fn predict(&self, x: Tensor<D>, p: usize, marginal_t: (f64, f64), marginal_s: (f64, f64)) -> Tensor<D> {
        let lambda_0 = (marginal_t.0 / marginal_t.1).ln();
        let h = (marginal_s.0 / marginal_s.1).ln() - lambda_0;
        let (d1s, mut rks) = self.differences(p, lambda_0, h);
        rks.push(1.0);
        let (r, b, h_phi_1, b_h) = self.system(h, &rks);
        let rhos = match p {
            1 => vec![],
            2 => vec![0.5],
            _ => solve(r[..p - 1].iter().map(|row| row[..p - 1].to_vec()).collect(), b[..p - 1].to_vec()),
        };
        let sum = d1s.into_iter().zip(&rhos).map(|(d1, rho)| d1.mul_scalar(*rho)).reduce(|a, b| a + b);
        let d0 = self.history[self.history.len() - 1].x0.clone();
        Self::update(x, marginal_t, marginal_s, d0, h_phi_1, b_h, sum)
    }
}

impl<const D: usize> Transition<D> for UniPc<D> {
    fn transition(&mut self, x: Tensor<D>, t: f64, s: f64, f: &ScoreFn<D>, _: &mut NoiseSource) -> Step<D> {
        let marginal_t = f.sde().marginal(t);
        let marginal_s = f.sde().marginal(s);
        let x0 = f.eval(x.clone(), t).x0();
        let x = match self.last.take() {
            Some((x_last, last_marginal, p)) if self.corrector => self.correct(x_last, last_marginal, p, &x0, marginal_t),
            _ => x,
        };
        self.history.push(Eval { x0: x0.clone(), lambda: (marginal_t.0 / marginal_t.1).ln() });
        if self.history.len() > self.order {
            self.history.remove(0);
        }
        let left = self.steps.saturating_sub(self.taken).max(1);
        let p = self.order.min(left).min(self.history.len());
        self.taken += 1;
        if marginal_s.1 <= 0.0 {
            self.last = None;
            return Step::deterministic(x0.mul_scalar(marginal_s.0));
        }
        let next = self.predict(x.clone(), p, marginal_t, marginal_s);
        self.last = Some((x, marginal_t, p));
        Step::deterministic(next)
    }
    fn memoryless(&self) -> bool {
        false
    }
}

/// Solves the small system `a x = b` (at most 3 x 3) by Gaussian elimination with partial
/// pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col].clone();
            for (v, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *v -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_small_systems() {
        let x = solve(vec![vec![1.0, 1.0, 1.0], vec![0.5, -1.0, 1.0], vec![0.25, 1.0, 1.0]], vec![6.0, 1.5, 3.25]);
        let a = [[1.0, 1.0, 1.0], [0.5, -1.0, 1.0], [0.25, 1.0, 1.0]];
        for (row, bi) in a.iter().zip([6.0, 1.5, 3.25]) {
            let lhs: f64 = row.iter().zip(&x).map(|(a, x)| a * x).sum();
            assert!((lhs - bi).abs() < 1e-12, "{x:?}");
        }
        assert_eq!(solve(vec![vec![0.0, 2.0], vec![1.0, 0.0]], vec![4.0, 3.0]), vec![3.0, 2.0]);
        crate::names::serde_agrees(&UniPcVariant::ALL);
    }
}
