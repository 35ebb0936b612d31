//! Bits per dimension of 8-bit data by the full variational bound of a discrete DDPM.
//!
//! Ho et al. 2020, eq. (5), and Nichol & Dhariwal 2021, section 2.1:
//! `-log p_theta(x_0) <= L_vlb = L_T + sum_{t=2}^{T} L_{t-1} + L_0`. As the reference code's
//! `calc_bpd_loop`, every term is evaluated at one draw `x_t ~ q(x_t | x_0)` (the terms of
//! [`crate::loss::vlb`]), so the sum is an unbiased estimate of the bound, one network
//! evaluation per level. The decoder `L_0` is the discretized Gaussian over the 256 bins, so the
//! bound is on the probability of the 8-bit data itself: unlike the probability-flow estimate
//! ([`super::ode_likelihood`]) it needs no dequantization and no offset.

use crate::loss::vlb::{prior_kl, to_bits_per_dim, vlb_term};
use crate::model::ScoreModel;
use crate::noise::NoiseSource;
use crate::param::Marginal;
use crate::sampler::Variance;
use crate::sde::DiscreteVpSde;
use burn::tensor::Tensor;

/// The bound's terms per sample, in nats summed over dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Vlb {
    /// The prior term `L_T` per sample.
    pub prior: Vec<f64>,
    /// `sum_{t=2}^{T} L_{t-1}` (the KL terms) per sample.
    pub kl: Vec<f64>,
    /// The decoder's `L_0 = -log p(x_0 | x_1)` per sample.
    pub decoder: Vec<f64>,
    /// Data dimension `d`.
    pub dim: usize,
    /// Network evaluations.
    pub nfe: usize,
}

impl Vlb {
    /// `L_vlb` per sample.
    pub fn total(&self) -> Vec<f64> {
        self.prior.iter().zip(&self.kl).zip(&self.decoder).map(|((p, k), d)| p + k + d).collect()
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    /// Mean `L_vlb` in bits per dimension.
    pub fn bits_per_dim(&self) -> f64 {
        to_bits_per_dim(Self::mean(&self.total()), self.dim)
    }

    /// The mean bits/dim of the prior, KL and decoder parts (they sum to
    /// [`bits_per_dim`](Self::bits_per_dim)).
    pub fn parts_bits_per_dim(&self) -> [f64; 3] {
        [&self.prior, &self.kl, &self.decoder].map(|v| to_bits_per_dim(Self::mean(v), self.dim))
    }

    /// Concatenates per-batch results.
    pub fn merge(parts: Vec<Vlb>) -> Vlb {
        let dim = parts.first().map_or(0, |p| p.dim);
        let mut all = Vlb { prior: vec![], kl: vec![], decoder: vec![], dim, nfe: 0 };
        for p in parts {
            all.prior.extend(p.prior);
            all.kl.extend(p.kl);
            all.decoder.extend(p.decoder);
            all.nfe += p.nfe;
        }
        all
    }
}

fn host(v: Tensor<2>) -> Vec<f64> {
    v.into_data().iter::<f64>().collect()
}

/// The full bound of `x0` under `model` on the schedule `sde` (levels `N..1` and the prior),
/// with the reverse variance `variance`; `clip_denoised` clamps the model's `x_0` estimate to
/// `[-1, 1]` (the reference code's default for evaluation). `progress(k, N)` after each level.
///
/// # Shapes
/// - `x0`: `[batch, ...]`, values on the 8-bit grid `2k / 255 - 1`
///
/// # Panics
/// For [`Variance::Learned`] when the model has no variance output.
pub fn vlb_likelihood<const D: usize>(
    model: &dyn ScoreModel<D>,
    sde: &DiscreteVpSde,
    x0: Tensor<D>,
    variance: Variance,
    clip_denoised: bool,
    noise: &mut NoiseSource,
    mut progress: impl FnMut(usize, usize),
) -> Vlb {
    let (b, n) = (x0.dims()[0], sde.levels());
    let dim = x0.dims()[1..].iter().product();
    let mut kl = vec![0.0; b];
    let mut decoder = vec![0.0; b];
    for (k, i) in (1..=n).rev().enumerate() {
        let (t, s) = (i as f64 / n as f64, (i - 1) as f64 / n as f64);
        let marg = Marginal::at(sde, t);
        let x_t = marg.perturb(x0.clone(), noise.normal(x0.dims(), &x0.device()));
        let (out, v) = model.forward_with_variance(x_t.clone(), &vec![t; b]);
        let mut x0_hat = marg.to_x0(model.parameterization(), x_t.clone(), out);
        if clip_denoised {
            x0_hat = x0_hat.clamp(-1.0, 1.0);
        }
        let term = host(vlb_term(sde, x0.clone(), x_t, x0_hat, v, &vec![t; b], &vec![s; b], variance));
        let acc = if i == 1 { &mut decoder } else { &mut kl };
        acc.iter_mut().zip(term).for_each(|(a, l)| *a += l);
        progress(k + 1, n);
    }
    Vlb { prior: host(prior_kl(sde, x0)), kl, decoder, dim, nfe: n }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::Parameterization;
    use crate::sde::ScheduleKind;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    /// Predicts `x_0 = c` everywhere (and `v = 0`, mid-range, if asked for).
    struct Constant(f32);

    impl ScoreModel<2> for Constant {
        fn parameterization(&self) -> Parameterization {
            Parameterization::X0
        }
        fn forward(&self, x: Tensor<2>, _: &[f64]) -> Tensor<2> {
            x.zeros_like().add_scalar(self.0)
        }
        fn forward_with_variance(&self, x: Tensor<2>, t: &[f64]) -> (Tensor<2>, Option<Tensor<2>>) {
            (self.forward(x.clone(), t), Some(x.zeros_like()))
        }
    }

    fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
        let h = (b - a) / n as f64;
        let inner: f64 = (1..n).map(|k| f(a + k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 }).sum();
        (f(a) + inner + f(b)) * h / 3.0
    }

    /// Data at one point `c` (an interior 8-bit level) and a model that knows it: the model's
    /// mean is the true posterior mean at every step, so the bound is, per dimension,
    /// `KL(N(m_T c, s_T^2) || N(0, 1))`, plus `sum_{i >= 2} 1/2 (-1 + log(sigma_i^2 / beta~_i) + beta~_i / sigma_i^2)`,
    /// plus the decoder's `-log` of the mass of `N(c, sigma_1^2)` within `c +- 1/255`. Here `beta`,
    /// `beta~` come from Ho et al.'s formulas on the betas and `alpha_bar`, the Gaussian mass by
    /// Simpson's rule: independently of the code under test.
    #[test]
    fn a_point_mass_known_to_the_model_has_the_closed_form_bound() {
        let (levels, d, b) = (100usize, 3usize, 2usize);
        let sde = DiscreteVpSde::new(ScheduleKind::Linear, levels).unwrap();
        let c = (200.0f32 / 127.5 - 1.0) as f64;
        let x0 = Tensor::<2>::from_data(TensorData::new(vec![c as f32; b * d], [b, d]), &device());
        let beta = |i: usize| sde.betas[i - 1];
        let beta_tilde = |i: usize| (1.0 - sde.alpha_bar(i - 1)) / (1.0 - sde.alpha_bar(i)) * beta(i);
        let (m_t, s_t2) = (sde.alpha_bar(levels).sqrt(), 1.0 - sde.alpha_bar(levels));
        let prior = 0.5 * (-1.0 - s_t2.ln() + s_t2 + (m_t * c).powi(2));
        let half_bin = 1.0 / 255.0;
        let decoder = |var: f64| {
            let s = var.sqrt();
            -simpson(|y| (-(y * y) / (2.0 * var)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt()), -half_bin, half_bin, 2000).ln()
        };
        // The clipped beta~ at the decoder: one step up, beta~ of level 2 (the reference code's
        // posterior_variance[1]).
        let small = beta_tilde(2);
        let cases: [(Variance, Box<dyn Fn(usize) -> f64>, f64); 3] = [
            (Variance::Small, Box::new(beta_tilde), small),
            (Variance::Large, Box::new(beta), small),
            (Variance::Learned, Box::new(|i| (beta(i) * beta_tilde(i)).sqrt()), (beta(1) * small).sqrt()),
        ];
        for (variance, sigma2, decoder_var) in cases {
            let kl: f64 = (2..=levels).map(|i| 0.5 * (-1.0 + (sigma2(i) / beta_tilde(i)).ln() + beta_tilde(i) / sigma2(i))).sum();
            let expect = d as f64 * (prior + kl + decoder(decoder_var));
            let mut noise = NoiseSource::new(7);
            let mut calls = 0;
            let got = vlb_likelihood(&Constant(c as f32), &sde, x0.clone(), variance, true, &mut noise, |_, _| calls += 1);
            assert_eq!((calls, got.nfe, got.prior.len()), (levels, levels, b));
            for total in got.total() {
                // f32 terms: ~1e-6 relative each over 100 KLs and the decoder.
                assert!((total - expect).abs() < 1e-4 * (1.0 + expect), "{variance:?}: {total} vs {expect}");
            }
            let parts = got.parts_bits_per_dim();
            assert!((parts.iter().sum::<f64>() - got.bits_per_dim()).abs() < 1e-12);
            assert!((got.bits_per_dim() - expect / (d as f64 * std::f64::consts::LN_2)).abs() < 1e-4);
        }
    }
}
