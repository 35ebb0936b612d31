//! The variational bound of a discrete DDPM, term by term.
//!
//! Ho et al. 2020, eq. (5), and Nichol & Dhariwal 2021, "Improved Denoising Diffusion
//! Probabilistic Models", section 2.1:
//! `L_vlb = L_0 + L_1 + ... + L_{T-1} + L_T` with
//! - `L_T = KL(q(x_T | x_0) || p(x_T))`, `p(x_T) = N(0, I)`: the prior term ([`prior_kl`]);
//! - `L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t))` for `t >= 2`: two Gaussians
//!   ([`normal_kl`]), the posterior of Ho et al. eq. (6)-(7) against the model's
//!   `N(mu_theta, Sigma_theta)`;
//! - `L_0 = -log p_theta(x_0 | x_1)`: the discretized Gaussian decoder of Ho et al. eq. (13)
//!   for 8-bit data scaled to `[-1, 1]` ([`discretized_gaussian_log_likelihood`]).
//!
//! On a [`DiscreteVpSde`](crate::sde::DiscreteVpSde) level `i` sits at `t_i = i / N`: the term
//! of level `i` is the step from `t_i` to `t_{i-1}` ([`vlb_term`], the decoder at `i = 1`). The
//! model's mean is `mu~(x_t, x0_hat)` (the posterior mean at the model's `x_0` estimate, the
//! reference code's `p_mean_variance`), its variance fixed or learned
//! ([`Posteriors::model_log_variance`]). All values are in nats; [`to_bits_per_dim`] converts.

use crate::param::Coef;
use crate::sampler::{Posteriors, Variance};
use crate::sde::Sde;
use burn::tensor::Tensor;

/// Half the width of one of the 256 bins of 8-bit data scaled to `[-1, 1]`: `1 / 255`.
pub const HALF_BIN: f64 = 1.0 / 255.0;

/// `KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)))` per element, in nats:
/// `1/2 (-1 + logvar2 - logvar1 + exp(logvar1 - logvar2) + (mean1 - mean2)^2 exp(-logvar2))`.
///
/// # Shapes
/// - all inputs and the output: the same shape
pub fn normal_kl<const D: usize>(mean1: Tensor<D>, logvar1: Tensor<D>, mean2: Tensor<D>, logvar2: Tensor<D>) -> Tensor<D> {
    let ratio = (logvar1.clone() - logvar2.clone()).exp();
    let mahalanobis = (mean1 - mean2).square() * logvar2.clone().neg().exp();
    (logvar2 - logvar1 + ratio + mahalanobis).add_scalar(-1.0).mul_scalar(0.5)
}

/// The standard normal CDF `Phi(z) = (1 + erf(z / sqrt 2)) / 2` (the reference code uses a
/// tanh approximation; `erf` here is exact to f32 rounding).
fn standard_normal_cdf<const D: usize>(z: Tensor<D>) -> Tensor<D> {
    z.mul_scalar(std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0).mul_scalar(0.5)
}

/// `log P(x)` per element under the discretized Gaussian decoder of Ho et al. eq. (13): the
/// mass of `N(mean, exp(log_scale)^2)` on the bin `[x - 1/255, x + 1/255]` of `x`, the bins at
/// `-1` and `1` extended to `-inf` and `+inf`, so the 256 bins of `x = 2k/255 - 1` carry all the
/// mass. Probabilities are clamped at `1e-12` before the logarithm, as in the reference code.
///
/// # Shapes
/// - `x` (values on the 8-bit grid in `[-1, 1]`), `mean`, `log_scale`, output: the same shape
pub fn discretized_gaussian_log_likelihood<const D: usize>(x: Tensor<D>, mean: Tensor<D>, log_scale: Tensor<D>) -> Tensor<D> {
    let centered = x.clone() - mean;
    let inv_std = log_scale.neg().exp();
    let cdf_plus = standard_normal_cdf(centered.clone().add_scalar(HALF_BIN) * inv_std.clone());
    let cdf_min = standard_normal_cdf(centered.add_scalar(-HALF_BIN) * inv_std);
    let log_cdf_plus = cdf_plus.clone().clamp_min(1e-12).log();
    let log_one_minus_cdf_min = cdf_min.clone().neg().add_scalar(1.0).clamp_min(1e-12).log();
    let log_delta = (cdf_plus - cdf_min).clamp_min(1e-12).log();
    let lowest = x.clone().lower_elem(-0.999);
    let highest = x.greater_elem(0.999);
    log_delta.mask_where(lowest, log_cdf_plus).mask_where(highest, log_one_minus_cdf_min)
}

/// The prior term `L_T = KL(q(x_T | x_0) || N(0, prior_std^2 I))` per sample, in nats, summed
/// over the data dimensions.
///
/// # Shapes
/// - `x0`: `[batch, ...]`; output: `[batch, 1]`
pub fn prior_kl<const D: usize>(sde: &dyn Sde, x0: Tensor<D>) -> Tensor<2> {
    let (m, s) = sde.marginal(sde.t_max());
    let zeros = x0.zeros_like();
    let logvar = zeros.clone().add_scalar(2.0 * s.ln());
    let prior_logvar = zeros.clone().add_scalar(2.0 * sde.prior_std().ln());
    per_sample_sum(normal_kl(x0.mul_scalar(m), logvar, zeros, prior_logvar))
}

/// Sum over all but the batch dimension: `[batch, ...] -> [batch, 1]`.
fn per_sample_sum<const D: usize>(x: Tensor<D>) -> Tensor<2> {
    let b = x.dims()[0];
    x.reshape([b as i32, -1]).sum_dim(1)
}

/// The bound's term of the step from `ts[i]` to `ss[i] < ts[i]` for each sample, in nats
/// summed over dimensions: `KL(q(x_s | x_t, x_0) || p_theta(x_s | x_t))` where `ss[i] > 0`, the
/// decoder's `-log p_theta(x_0 | x_t)` where `ss[i] = 0`.
///
/// `x0_hat` is the model's estimate of `x_0` at `x_t` (detach it for the hybrid loss's
/// stop-gradient, clip it to `[-1, 1]` for the reference code's evaluation); `v` is the model's
/// learned-variance output, needed for [`Variance::Learned`]. For the decoder, `x0` must lie on
/// the 8-bit grid.
///
/// # Shapes
/// - `x0`, `x_t`, `x0_hat`, `v`: `[batch, ...]`; `ts`, `ss`: `batch` times; output: `[batch, 1]`
#[allow(clippy::too_many_arguments)]
pub fn vlb_term<const D: usize>(
    sde: &dyn Sde,
    x0: Tensor<D>,
    x_t: Tensor<D>,
    x0_hat: Tensor<D>,
    v: Option<Tensor<D>>,
    ts: &[f64],
    ss: &[f64],
    variance: Variance,
) -> Tensor<2> {
    let post = Posteriors::per_sample(sde, ts, ss);
    let model_mean = post.mean(x_t.clone(), x0_hat);
    let model_logvar = post.model_log_variance(variance, v, &x0);
    let at_data: Vec<f64> = ss.iter().map(|&s| if s <= 0.0 { 1.0 } else { 0.0 }).collect();
    let kl = (at_data.iter().any(|&w| w == 0.0)).then(|| {
        let true_mean = post.mean(x_t, x0.clone());
        let true_logvar = post.log_var_small(&x0);
        per_sample_sum(normal_kl(true_mean, true_logvar, model_mean.clone(), model_logvar.clone()))
    });
    let nll =
        (at_data.iter().any(|&w| w == 1.0)).then(|| per_sample_sum(discretized_gaussian_log_likelihood(x0, model_mean, model_logvar.mul_scalar(0.5))).neg());
    match (kl, nll) {
        (Some(kl), None) => kl,
        (None, Some(nll)) => nll,
        // Both finite, so the blend by 0/1 weights selects exactly.
        (Some(kl), Some(nll)) => Coef::PerSample(at_data.clone()).apply(nll) + Coef::PerSample(at_data.iter().map(|w| 1.0 - w).collect()).apply(kl),
        (None, None) => unreachable!("a batch has at least one sample"),
    }
}

/// Nats summed over `dim` dimensions to bits per dimension: `nats / (dim ln 2)`.
pub fn to_bits_per_dim(nats: f64, dim: usize) -> f64 {
    nats / (dim as f64 * std::f64::consts::LN_2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    fn t1(v: &[f64]) -> Tensor<1> {
        Tensor::<1>::from_data(TensorData::new(v.iter().map(|&x| x as f32).collect(), [v.len()]), &device())
    }

    /// Composite Simpson's rule with `n` (even) intervals.
    fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
        let h = (b - a) / n as f64;
        let inner: f64 = (1..n).map(|k| f(a + k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 }).sum();
        (f(a) + inner + f(b)) * h / 3.0
    }

    fn density(x: f64, m: f64, s: f64) -> f64 {
        (-(x - m).powi(2) / (2.0 * s * s)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
    }

    /// KL of 1-D Gaussians against the textbook form `log(s2/s1) + (s1^2 + (m1-m2)^2)/(2 s2^2) - 1/2`
    /// and against `int p1 log(p1/p2)` by Simpson's rule.
    #[test]
    fn normal_kl_matches_the_closed_form_and_quadrature() {
        let cases = [(0.0, 1.0, 0.0, 1.0), (0.3, 0.5, -0.2, 1.5), (1.0, 0.01, 0.9, 0.02), (-2.0, 2.0, 1.0, 0.7), (0.1, 0.03, 0.1, 0.01)];
        let col = |k: usize, f: fn(f64) -> f64| t1(&cases.iter().map(|c| f([c.0, c.1, c.2, c.3][k])).collect::<Vec<_>>());
        let id = |x: f64| x;
        let logvar = |s: f64| 2.0 * s.ln();
        let got = to_vec(normal_kl(col(0, id), col(1, logvar), col(2, id), col(3, logvar)));
        for (c, &g) in cases.iter().zip(&got) {
            let (m1, s1, m2, s2) = *c;
            let closed = (s2 / s1).ln() + (s1 * s1 + (m1 - m2).powi(2)) / (2.0 * s2 * s2) - 0.5;
            let quad = simpson(|x| density(x, m1, s1) * (density(x, m1, s1) / density(x, m2, s2)).ln(), m1 - 12.0 * s1, m1 + 12.0 * s1, 20_000);
            // f32 evaluation: relative 1e-6 of the terms, which are at most ~ (m1-m2)^2/s2^2.
            let tol = 1e-5 * (1.0 + closed.abs());
            assert!((g as f64 - closed).abs() < tol, "{c:?}: {g} vs closed {closed}");
            assert!((closed - quad).abs() < 1e-8 * (1.0 + closed.abs()), "{c:?}: closed {closed} vs quadrature {quad}");
        }
    }

    /// The 256 bins' probabilities: each the Gaussian's mass over its bin (Simpson's rule,
    /// the end bins to +-12 sd), and together 1.
    #[test]
    fn decoder_bins_match_quadrature_and_sum_to_one() {
        let grid: Vec<f64> = (0..256).map(|k| 2.0 * k as f64 / 255.0 - 1.0).collect();
        for (m, s) in [(0.0f64, 0.01f64), (0.3, 0.1), (-0.99, 0.05), (1.0, 0.5), (0.5, 0.003), (-0.2, 2.0)] {
            let x = t1(&grid);
            let logp = discretized_gaussian_log_likelihood(x, t1(&[m; 256]), t1(&[s.ln(); 256]));
            // The quadrature sees the f32 inputs the tensors hold (at sd 0.003 the rounding of
            // x and the mean alone moves a bin's mass by ~1e-5).
            let (m, grid): (f64, Vec<f64>) = (m as f32 as f64, grid.iter().map(|&x| x as f32 as f64).collect());
            let p: Vec<f64> = to_vec(logp).iter().map(|&l| (l as f64).exp()).collect();
            let total: f64 = p.iter().sum();
            assert!((total - 1.0).abs() < 2e-5, "mean {m} sd {s}: bins sum to {total}");
            for (k, &xk) in grid.iter().enumerate() {
                let lo = if k == 0 { (m - 12.0 * s).min(xk - HALF_BIN) } else { xk - HALF_BIN };
                let hi = if k == 255 { (m + 12.0 * s).max(xk + HALF_BIN) } else { xk + HALF_BIN };
                let quad = simpson(|y| density(y, m, s), lo, hi, 2000);
                // erf in f32: absolute error of a CDF difference below ~1e-6 (the 1e-12 clamp
                // only touches bins with less mass than that).
                assert!((p[k] - quad).abs() < 2e-6, "mean {m} sd {s} bin {k}: {} vs {quad}", p[k]);
            }
        }
    }

    #[test]
    fn prior_kl_is_the_kl_to_the_standard_normal() {
        let sde = crate::sde::DiscreteVpSde::new(crate::sde::ScheduleKind::Linear, 1000).unwrap();
        let x0 = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -1.0, 0.5, 0.0], [2, 2]), &device());
        let got = to_vec(prior_kl(&sde, x0));
        let (m, s) = sde.marginal(1.0);
        let kl1 = |x: f64| (1.0 / s).ln() + (s * s + (m * x).powi(2)) / 2.0 - 0.5;
        let expect = [kl1(1.0) + kl1(-1.0), kl1(0.5) + kl1(0.0)];
        for (g, e) in got.iter().zip(expect) {
            assert!((*g as f64 - e).abs() < 1e-6 + 1e-4 * e.abs(), "{g} vs {e}");
        }
        assert!((to_bits_per_dim(std::f64::consts::LN_2 * 6.0, 3) - 2.0).abs() < 1e-15);
    }
}
