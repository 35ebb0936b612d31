//! The hybrid objective of Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic
//! Models", eq. (16): `L_hybrid = L_simple + lambda L_vlb`, `lambda = 0.001`.
//!
//! For a sample at level `i` of `N` (`t_i = i / N`, `x_t = m x_0 + s eps`) the per-sample loss is
//! `||eps - eps_hat||^2 + lambda N L_{i-1} / ln 2`:
//! - `N L_{i-1}` is the one-sample estimate of `L_vlb` (its prior term has no parameters), the
//!   term of [`vlb_term`] (KL for `i >= 2`, the decoder at `i = 1`);
//! - as in the reference code (`_vb_terms_bpd`), the bound is measured in bits;
//! - both terms are summed over the data dimensions (the reference code averages both, the
//!   same ratio);
//! - the bound sees the model's mean through a stop-gradient (section 3.1, the reference code's
//!   `frozen_out`): `L_vlb` trains only the learned variance, `L_simple` only the mean.
//!
//! The `L_simple` term takes the options of [`super::ddpm`]: measured in `target` (`v` is Salimans
//! & Ho's loss) and weighted by Min-SNR-gamma per level ([`super::min_snr`]); with `eps` and no
//! weight it is the paper's `||eps - eps_hat||^2`. The bound term is the same whatever the target.
//!
//! Levels are uniform, or drawn by the loss's second moment ([`LossSecondMoment`],
//! section 3.3) with weights `1 / (N p_t)`; the history records the per-sample hybrid loss,
//! as the reference training loop does (`update_with_local_losses(t, losses["loss"])`).

use super::importance::{LossSecondMoment, uniform_levels};
use super::min_snr::min_snr_weights;
use super::vlb::vlb_term;
use super::{sq_norm, weighted_mean};
use crate::model::ScoreModel;
use crate::noise::NoiseSource;
use crate::param::{Coef, Marginal, Parameterization};
use crate::sampler::Variance;
use crate::sde::Sde;
use burn::tensor::Tensor;

/// The default `lambda` (section 3.1).
pub const DEFAULT_LAMBDA: f64 = 0.001;

/// The options of the hybrid loss's `L_simple` term (the defaults are the paper's).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SimpleTerm {
    /// What the error is measured in (`eps` in the paper).
    pub target: Parameterization,
    /// Min-SNR-gamma weight per level (none in the paper).
    pub min_snr_gamma: Option<f64>,
}

/// The hybrid loss at given levels (`1..=levels`) with per-sample weights: returns the weighted
/// mean and the per-sample unweighted losses (for the importance sampler's history).
///
/// # Shapes
/// - `x0`: `[batch, ...]` on the 8-bit grid in `[-1, 1]`; `at`, `weights`: `batch` values
///
/// # Panics
/// If the model has no learned-variance output (see
/// [`ScoreModel::forward_with_variance`]).
#[allow(clippy::too_many_arguments)]
pub fn hybrid_at<const D: usize>(
    model: &dyn ScoreModel<D>,
    sde: &dyn Sde,
    x0: Tensor<D>,
    at: &[usize],
    levels: usize,
    lambda: f64,
    simple: SimpleTerm,
    weights: &[f64],
    noise: &mut NoiseSource,
) -> (Tensor<1>, Vec<f64>) {
    let n = levels as f64;
    let ts: Vec<f64> = at.iter().map(|&i| i as f64 / n).collect();
    let ss: Vec<f64> = at.iter().map(|&i| (i - 1) as f64 / n).collect();
    let eps = noise.normal(x0.dims(), &x0.device());
    let marg = Marginal::per_sample(sde, &ts);
    let x_t = marg.perturb(x0.clone(), eps.clone());
    let (out, v) = model.forward_with_variance(x_t.clone(), &ts);
    let p = model.parameterization();
    let SimpleTerm { target, min_snr_gamma } = simple;
    let err = sq_norm(marg.convert(target, p, x_t.clone(), out.clone()) - marg.target(target, x0.clone(), eps)); // [b, 1]
    let simple = Coef::PerSample(min_snr_weights(sde, &ts, target, min_snr_gamma)).apply(err);
    let x0_hat = marg.to_x0(p, x_t.clone(), out.detach()); // the stop-gradient on the mean
    let vlb = vlb_term(sde, x0, x_t, x0_hat, v, &ts, &ss, Variance::Learned); // [b, 1], nats
    let per_sample = simple + vlb.mul_scalar(lambda * n / std::f64::consts::LN_2); // [b, 1]
    let values = per_sample.clone().into_data().iter::<f64>().collect();
    (weighted_mean(per_sample, weights), values)
}

/// `L_hybrid` on the batch `x0`, levels drawn uniformly or from `history` (which is then
/// updated with this batch's losses).
pub fn hybrid_loss<const D: usize>(
    model: &dyn ScoreModel<D>,
    sde: &dyn Sde,
    x0: Tensor<D>,
    levels: usize,
    lambda: f64,
    simple: SimpleTerm,
    history: Option<&mut LossSecondMoment>,
    noise: &mut NoiseSource,
) -> Tensor<1> {
    let b = x0.dims()[0];
    let (at, weights) = match &history {
        Some(h) => h.sample(b, noise),
        None => (uniform_levels(b, levels, noise), vec![1.0; b]),
    };
    let (loss, values) = hybrid_at(model, sde, x0, &at, levels, lambda, simple, &weights, noise);
    if let Some(h) = history {
        h.update(&at, &values);
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixture::{GaussianMixture, MixtureScore};
    use crate::param::Parameterization;
    use crate::sampler::Posterior;
    use crate::sde::{DiscreteVpSde, ScheduleKind, SdeConfig};
    use crate::test_util::*;
    use burn::tensor::{Device, TensorData};

    /// At the exact score of `N(mu, c^2 I)` data and level `i >= 2` the expected per-sample loss
    /// is `d [m^2 c^2 / (m^2 c^2 + s^2)] + lambda N / ln 2 * d KL_1`, where `KL_1` is the KL of
    /// `N(mu~, beta~)` to `N(mu_theta, sigma^2)` per dimension averaged over the posterior:
    /// `1/2 (-1 + log sigma^2 - log beta~ + beta~ / sigma^2 + c_x0^2 Var(x_0 | x_t) / sigma^2)` with
    /// `Var(x_0 | x_t) = c^2 s^2 / (m^2 c^2 + s^2)`; `sigma^2 = beta~` at `v = -1`, `beta` at `v = 1`.
    #[test]
    fn exact_model_attains_the_closed_form() {
        let dev = device();
        let (d, c, n, levels, i, lambda) = (2usize, 0.5, 6000usize, 1000usize, 300usize, 0.001);
        let cfg = SdeConfig::ddpm(ScheduleKind::Linear, levels);
        let sde = cfg.build().unwrap();
        let mix = GaussianMixture::gaussian(vec![0.2, -0.4], c).unwrap();
        let exact = MixtureScore::new(mix.clone(), cfg.build().unwrap(), &dev).unwrap();
        let mut noise = NoiseSource::new(11);
        let x0: Vec<f32> = mix.sample(n, &mut noise).iter().map(|&v| v as f32).collect();
        let x0 = Tensor::<2>::from_data(TensorData::new(x0, [n, d]), &dev);
        let t = i as f64 / levels as f64;
        let (m, s) = sde.marginal(t);
        let post = Posterior::new(sde.as_ref(), t, (i - 1) as f64 / levels as f64);
        let simple = m * m * c * c / (m * m * c * c + s * s);
        let var_post = c * c * s * s / (m * m * c * c + s * s);
        for (v, sigma2) in [(-1.0f32, post.var_small), (1.0, post.var_large)] {
            let kl = 0.5 * (-1.0 + sigma2.ln() - post.var_small.ln() + post.var_small / sigma2 + post.coef_x0.powi(2) * var_post / sigma2);
            let expect = d as f64 * (simple + lambda * levels as f64 / std::f64::consts::LN_2 * kl);
            let (loss, values) =
                hybrid_at(&WithV(&exact, v), sde.as_ref(), x0.clone(), &vec![i; n], levels, lambda, SimpleTerm::default(), &vec![1.0; n], &mut noise);
            let mean = values.iter().sum::<f64>() / n as f64;
            let sd = (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
            assert!((loss.into_scalar::<f32>() as f64 - mean).abs() < 1e-4 * mean, "the loss is the mean of the per-sample values");
            assert!((mean - expect).abs() < 5.0 * sd / (n as f64).sqrt(), "v = {v}: {mean} vs {expect} (sd {sd})");
        }
    }

    /// Parameters standing in for a network's two heads: the output `a` (eps) and `v`, as
    /// leaves of the autodiff graph.
    struct Heads {
        a: Tensor<2>,
        v: Tensor<2>,
    }

    impl ScoreModel<2> for Heads {
        fn parameterization(&self) -> Parameterization {
            Parameterization::Eps
        }
        fn forward(&self, _: Tensor<2>, _: &[f64]) -> Tensor<2> {
            self.a.clone()
        }
        fn forward_with_variance(&self, _: Tensor<2>, _: &[f64]) -> (Tensor<2>, Option<Tensor<2>>) {
            (self.a.clone(), Some(self.v.clone()))
        }
    }

    /// The stop-gradient: the mean's gradient is `L_simple`'s alone, whatever `lambda`; the
    /// variance gets one only from `L_vlb`. Levels include 1 (decoder) and higher (KL).
    #[test]
    fn the_bound_trains_only_the_variance() {
        let dev = Device::flex().autodiff();
        let sde = DiscreteVpSde::new(ScheduleKind::Cosine, 10).unwrap();
        let grads_at = |lambda: f64| {
            let mut noise = NoiseSource::new(3);
            let heads = Heads { a: noise.normal([4, 3], &dev).require_grad(), v: noise.normal([4, 3], &dev).mul_scalar(0.5).require_grad() };
            let pixels: Vec<f32> = (0..12).map(|k| (k * 21) as f32 / 127.5 - 1.0).collect();
            let x0 = Tensor::<2>::from_data(TensorData::new(pixels, [4, 3]), &dev);
            let (loss, _) = hybrid_at(&heads, &sde, x0, &[1, 2, 5, 10], 10, lambda, SimpleTerm::default(), &[1.0; 4], &mut noise);
            let grads = loss.backward();
            let g = |x: &Tensor<2>| x.grad(&grads).map(|g| to_vec(g)).unwrap_or_else(|| vec![0.0; 12]);
            (g(&heads.a), g(&heads.v))
        };
        let (ga0, gv0) = grads_at(0.0);
        let (ga1, gv1) = grads_at(0.5);
        assert_eq!(ga0, ga1, "the bound must not reach the mean");
        assert!(gv0.iter().all(|&g| g == 0.0), "{gv0:?}");
        assert!(gv1.iter().all(|g| g.is_finite()) && gv1.iter().filter(|&&g| g.abs() > 1e-6).count() >= 9, "{gv1:?}");
    }

    #[test]
    fn importance_sampling_fills_the_history() {
        let dev = device();
        let cfg = SdeConfig::ddpm(ScheduleKind::Cosine, 4);
        let sde = cfg.build().unwrap();
        let mix = GaussianMixture::gaussian(vec![0.0, 0.0], 0.5).unwrap();
        let exact = MixtureScore::new(mix, cfg.build().unwrap(), &dev).unwrap();
        let model = WithV(&exact, 0.0);
        let mut h = LossSecondMoment::new(4);
        let mut noise = NoiseSource::new(5);
        let x0 = Tensor::<2>::from_data(TensorData::new(vec![0.0f32; 16], [8, 2]), &dev);
        for _ in 0..20 {
            let loss = hybrid_loss(&model, sde.as_ref(), x0.clone(), 4, DEFAULT_LAMBDA, SimpleTerm::default(), Some(&mut h), &mut noise);
            assert!(loss.into_scalar::<f32>().is_finite());
        }
        assert!(h.warmed_up(), "160 uniform draws over 4 levels fill 10 each");
        let p = h.probabilities();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12 && p.windows(2).any(|w| w[0] != w[1]), "{p:?}");
    }

    /// On a VP schedule `v - v_hat = (eps - eps_hat) / m` and `(SNR + 1) m^2 = 1`, so the
    /// Min-SNR-gamma term measured in v equals the Min-SNR-gamma term measured in eps on the same
    /// draws; both differ from the unweighted term where `SNR > gamma` (low levels).
    #[test]
    fn min_snr_in_v_equals_min_snr_in_eps() {
        let dev = device();
        let sde = DiscreteVpSde::new(ScheduleKind::Linear, 1000).unwrap();
        let at = [1, 20, 80, 300, 700, 1000];
        let loss = |simple: SimpleTerm| {
            let mut noise = NoiseSource::new(11);
            let heads = Heads { a: noise.normal([6, 3], &dev), v: noise.normal([6, 3], &dev).mul_scalar(0.5) };
            let x0 = noise.normal([6, 3], &dev).clamp(-1.0, 1.0);
            let (l, values) = hybrid_at(&heads, &sde, x0, &at, 1000, DEFAULT_LAMBDA, simple, &[1.0; 6], &mut noise);
            (l.into_scalar::<f64>(), values)
        };
        let (v, vv) = loss(SimpleTerm { target: Parameterization::V, min_snr_gamma: Some(5.0) });
        let (e, ve) = loss(SimpleTerm { target: Parameterization::Eps, min_snr_gamma: Some(5.0) });
        let (plain, vp) = loss(SimpleTerm::default());
        for (a, b) in vv.iter().zip(&ve) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{vv:?} vs {ve:?}");
        }
        assert!((v - e).abs() <= 1e-4 * e.abs(), "{v} vs {e}");
        assert!(vp[1] > 2.0 * ve[1] && (vp[5] - ve[5]).abs() <= 1e-4 * vp[5].abs(), "level 20 is down-weighted, level 1000 is not: {vp:?} vs {ve:?}");
        assert!(plain > e);
    }
}
