//! Training objectives.
//!
//! All losses are means over the batch of a per-sample sum over data dimensions, and take the
//! model's output in any [`Parameterization`](crate::param::Parameterization), converted to the
//! score through the SDE's marginal: the parameterization only changes what the network's head
//! predicts, never the objective.
//!
//! - [`dsm`]: continuous-time denoising score matching (Song et al. 2021, eq. 7) with
//!   `lambda(t) = s(t)^2` or the likelihood weighting `g(t)^2` (Song et al. 2021b, eq. 9);
//! - [`ddpm`]: Ho et al.'s `L_simple` on the discrete grid, optionally measured in `v`
//!   (Salimans & Ho 2022) and weighted by Min-SNR-gamma ([`min_snr`], Hang et al. 2023);
//! - [`edm`]: Karras et al.'s objective (2022, Table 1): log-normal `sigma`, weight `lambda(sigma)`,
//!   measured in `x0`;
//! - [`ncsn`]: NCSN's annealed DSM over geometric sigmas (Song & Ermon 2019, eq. 5-6);
//! - [`ssm`]: sliced score matching (Song et al. 2019), Rademacher or Gaussian projections,
//!   plain or variance-reduced;
//! - [`vlb`]: the terms of a discrete DDPM's variational bound (Ho et al. 2020, eq. 5; Nichol &
//!   Dhariwal 2021, section 2.1): Gaussian KLs, the discretized decoder, the prior term;
//! - [`hybrid`]: Nichol & Dhariwal's `L_simple + lambda L_vlb` (eq. 16) for a learned variance,
//!   with timesteps importance-sampled by the loss's second moment ([`importance`], section 3.3).

pub mod ddpm;
pub mod dsm;
pub mod edm;
pub mod hybrid;
pub mod importance;
pub mod min_snr;
pub mod ncsn;
pub mod ssm;
pub mod vlb;

pub use ddpm::{ddpm_loss, ddpm_simple_loss};
pub use dsm::{Weighting, dsm_at, dsm_loss, objective_at};
pub use edm::edm_loss;
pub use hybrid::{DEFAULT_LAMBDA, hybrid_loss};
pub use importance::LossSecondMoment;
pub use min_snr::min_snr_weight;
pub use ncsn::ncsn_loss;
pub use ssm::{Projection, ssm_loss};

use burn::tensor::Tensor;

/// Per-sample squared norm over all but the batch dimension: `[batch, ...] -> [batch, 1]`.
pub(crate) fn sq_norm<const D: usize>(x: Tensor<D>) -> Tensor<2> {
    let b = x.dims()[0];
    x.reshape([b as i32, -1]).square().sum_dim(1)
}

/// `mean_i c_i v_i` for per-sample values `v: [batch, 1]` and host coefficients `c`.
pub(crate) fn weighted_mean(v: Tensor<2>, c: &[f64]) -> Tensor<1> {
    crate::param::Coef::PerSample(c.to_vec()).apply(v).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixture::{GaussianMixture, MixtureScore};
    use crate::noise::NoiseSource;
    use crate::param::Parameterization;
    use crate::sde::{Sde, SdeConfig};
    use crate::test_util::*;
    use burn::tensor::TensorData;

    const D: usize = 2;
    const C: f64 = 0.6;
    const N: usize = 20_000;

    /// At the exact score of `N(mu, C^2 I)` data every loss is an average of
    /// `coef(t) d m^2 C^2 / (m^2 C^2 + s^2)` over its time distribution (see `dsm`). Per-sample
    /// values are `coef p chi^2_d` with `p <= 1`, so their sd is at most `coef sqrt(d^2 + 2d)`.
    fn setup(config: &SdeConfig) -> (MixtureScore, Box<dyn Sde>, Tensor<2>, NoiseSource) {
        let dev = device();
        let mix = GaussianMixture::gaussian(vec![0.4, -0.2], C).unwrap();
        let mut noise = NoiseSource::new(17);
        let x0: Vec<f32> = mix.sample(N, &mut noise).iter().map(|&v| v as f32).collect();
        let x0 = Tensor::<2>::from_data(TensorData::new(x0, [N, D]), &dev);
        (MixtureScore::new(mix, config.build().unwrap(), &dev).unwrap(), config.build().unwrap(), x0, noise)
    }

    fn assert_within(got: f64, expect: f64, coef_max: f64) {
        let se = coef_max * ((D * D + 2 * D) as f64 / N as f64).sqrt();
        assert!((got - expect).abs() < 5.0 * se, "{got} vs {expect} (se {se})");
    }

    fn optimum(sde: &dyn Sde, t: f64) -> f64 {
        D as f64 * dsm::gaussian_optimum_per_dim(sde, t, C)
    }

    #[test]
    fn ddpm_simple_loss_at_the_exact_score() {
        let cfg = SdeConfig::ddpm(crate::sde::ScheduleKind::Linear, 1000);
        let (model, sde, x0, mut noise) = setup(&cfg);
        let got = ddpm_simple_loss(&model, sde.as_ref(), x0, 1000, &mut noise).into_scalar::<f32>() as f64;
        let expect = (1..=1000).map(|i| optimum(sde.as_ref(), i as f64 / 1000.0)).sum::<f64>() / 1000.0;
        assert_within(got, expect, 1.0);
    }

    /// On a VP schedule `eps_hat = s x_t + m v_hat`, so `||v - v_hat||^2 = ||eps - eps_hat||^2 / m^2`
    /// and Min-SNR's v weight `min(SNR, g) / (SNR + 1)` times `1 / m^2 = (SNR + 1) / SNR` is its
    /// eps weight: the two losses are one number on the same draws. Without Min-SNR, the v loss
    /// is the eps loss weighted by `1 / m^2 = 1 + 1 / SNR`, checked against `objective_at`.
    #[test]
    fn v_and_eps_losses_agree_by_their_identity() {
        let cfg = SdeConfig::ddpm(crate::sde::ScheduleKind::Linear, 1000);
        let (model, sde, x0, _) = setup(&cfg);
        let loss = |target, gamma, seed| {
            let mut noise = NoiseSource::new(seed);
            ddpm_loss(&model, sde.as_ref(), x0.clone(), 1000, target, gamma, &mut noise).into_scalar::<f32>() as f64
        };
        let (v, e) = (loss(Parameterization::V, Some(5.0), 3), loss(Parameterization::Eps, Some(5.0), 3));
        assert!((v - e).abs() < 1e-4 * e, "Min-SNR-5: v loss {v} vs eps loss {e}");
        // The plain v loss against the eps loss with coefficients 1 / m^2 on the same draws.
        let mut noise = NoiseSource::new(4);
        let plain_v = ddpm_loss(&model, sde.as_ref(), x0.clone(), 1000, Parameterization::V, None, &mut noise).into_scalar::<f32>() as f64;
        let mut noise = NoiseSource::new(4);
        let ts: Vec<f64> = (0..N).map(|_| (1 + noise.index(1000)) as f64 / 1000.0).collect();
        let coefs: Vec<f64> = ts.iter().map(|&t| sde.marginal(t).0.powi(-2)).collect();
        let weighted_eps = objective_at(&model, sde.as_ref(), x0, &ts, &coefs, Parameterization::Eps, &mut noise).into_scalar::<f32>() as f64;
        assert!((plain_v - weighted_eps).abs() < 1e-3 * weighted_eps, "{plain_v} vs {weighted_eps}");
        assert!(plain_v > 1.05 * e, "the v loss weights low SNRs up: {plain_v} vs {e}");
    }

    #[test]
    fn ncsn_loss_at_the_exact_score() {
        let cfg = SdeConfig::Ve { sigma_min: 0.01, sigma_max: 10.0 };
        let (model, sde, x0, mut noise) = setup(&cfg);
        let got = ncsn_loss(&model, sde.as_ref(), x0, 10, &mut noise).into_scalar::<f32>() as f64;
        let expect = (0..10).map(|i| 0.5 * optimum(sde.as_ref(), i as f64 / 9.0)).sum::<f64>() / 10.0;
        assert_within(got, expect, 0.5);
    }

    #[test]
    fn dsm_losses_at_the_exact_score() {
        let cfg = SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 };
        let (model, sde, x0, mut noise) = setup(&cfg);
        let t_min = 1e-3;
        // Midpoint rule on 20 000 intervals of [t_min, 1]: an independent quadrature of E_t.
        let quad = |f: &dyn Fn(f64) -> f64| {
            let k = 20_000;
            let h = (1.0 - t_min) / k as f64;
            (0..k).map(|j| f(t_min + (j as f64 + 0.5) * h)).sum::<f64>() * h / (1.0 - t_min)
        };
        let got = dsm_loss(&model, sde.as_ref(), x0.clone(), Weighting::Std2, t_min, &mut noise).into_scalar::<f32>() as f64;
        assert_within(got, quad(&|t| 0.5 * optimum(sde.as_ref(), t)), 0.5);
        let lw = |t: f64| 0.5 * sde.diffusion(t).powi(2) / sde.marginal(t).1.powi(2);
        let got = dsm_loss(&model, sde.as_ref(), x0, Weighting::Likelihood, t_min, &mut noise).into_scalar::<f32>() as f64;
        let coef_max = lw(t_min).max(lw(1.0));
        // The likelihood weight is unbounded near t = 0 (g^2/s^2 ~ 1/t), so bound the sd by its
        // second moment under the quadrature instead of by coef_max.
        let second = quad(&|t| lw(t).powi(2) * ((D * D + 2 * D) as f64));
        let se = (second / N as f64).sqrt();
        let expect = quad(&|t| lw(t) * optimum(sde.as_ref(), t));
        assert!((got - expect).abs() < 5.0 * se, "{got} vs {expect} (se {se}, coef_max {coef_max})");
    }
}
