//! Continuous-time denoising score matching (Song et al. 2021, eq. 7; Vincent 2011).
//!
//! `L = E_t E_{x_0} E_eps [ 1/2 lambda(t) || s_theta(x_t, t) + eps / s(t) ||^2 ]`,
//! `x_t = m(t) x_0 + s(t) eps`, `t ~ U(t_min, T)`. With `lambda = s^2` the integrand is
//! `1/2 ||s(t) s_theta + eps||^2` (the reference code's default, `reduce_mean = False`); with
//! the likelihood weighting `lambda = g(t)^2` the loss bounds the negative log-likelihood
//! (Song, Durkan, Murray & Ermon 2021, Theorem 1).
//! At the exact score of `N(mu, c^2 I)` data, `E||s s_theta + eps||^2 = d m^2 c^2 / (m^2 c^2 + s^2)`.

use super::{sq_norm, weighted_mean};
use crate::model::ScoreModel;
use crate::noise::NoiseSource;
use crate::param::{Marginal, Parameterization};
use crate::sde::Sde;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// `lambda(t)` of the DSM objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Weighting {
    /// `lambda(t) = s(t)^2`.
    #[default]
    Std2,
    /// `lambda(t) = g(t)^2` (likelihood weighting).
    Likelihood,
}

/// `mean_i c_i || s(t_i) s_theta(x_t, t_i) + eps_i ||^2` at given per-sample times and
/// coefficients: the common core of DSM, `L_simple` and NCSN. `s score + eps = eps - eps_hat`,
/// so this is [`objective_at`] measured in `eps`.
///
/// # Shapes
/// - `x0`: `[batch, ...]`; `ts`, `coefs`: `batch` values
pub fn dsm_at<const D: usize>(model: &dyn ScoreModel<D>, sde: &dyn Sde, x0: Tensor<D>, ts: &[f64], coefs: &[f64], noise: &mut NoiseSource) -> Tensor<1> {
    objective_at(model, sde, x0, ts, coefs, Parameterization::Eps, noise)
}

/// `mean_i c_i || y_hat_i - y_i ||^2` with `y` the regression target in parameterization
/// `target` (`eps`, `x0`, `v` or the score) of `x_t = m(t_i) x0 + s(t_i) eps`, and `y_hat` the
/// model's output converted to it ([`Marginal::convert`]): the loss *measured in* `target`,
/// whatever the network predicts. Measured in `v` this is Salimans & Ho's v-prediction
/// objective (2022, section 4); in `x0` with EDM's weights, Karras et al.'s (Table 1).
///
/// # Shapes
/// - `x0`: `[batch, ...]`; `ts`, `coefs`: `batch` values
pub fn objective_at<const D: usize>(
    model: &dyn ScoreModel<D>,
    sde: &dyn Sde,
    x0: Tensor<D>,
    ts: &[f64],
    coefs: &[f64],
    target: Parameterization,
    noise: &mut NoiseSource,
) -> Tensor<1> {
    let eps = noise.normal(x0.dims(), &x0.device());
    let marg = Marginal::per_sample(sde, ts);
    let xt = marg.perturb(x0.clone(), eps.clone());
    let out = model.forward(xt.clone(), ts);
    let pred = marg.convert(target, model.parameterization(), xt, out);
    weighted_mean(sq_norm(pred - marg.target(target, x0, eps)), coefs)
}

/// Samples `t ~ U(t_min, T)` per example and returns the weighted DSM loss.
pub fn dsm_loss<const D: usize>(
    model: &dyn ScoreModel<D>,
    sde: &dyn Sde,
    x0: Tensor<D>,
    weighting: Weighting,
    t_min: f64,
    noise: &mut NoiseSource,
) -> Tensor<1> {
    let b = x0.dims()[0];
    let ts: Vec<f64> = (0..b).map(|_| t_min + (sde.t_max() - t_min) * noise.uniform()).collect();
    let coefs: Vec<f64> = ts
        .iter()
        .map(|&t| match weighting {
            Weighting::Std2 => 0.5,
            Weighting::Likelihood => 0.5 * sde.diffusion(t).powi(2) / sde.marginal(t).1.powi(2),
        })
        .collect();
    dsm_at(model, sde, x0, &ts, &coefs, noise)
}

/// Closed form of `E|| s s* + eps ||^2 / d` at the exact score `s*` of `N(mu, c^2 I)` data.
pub fn gaussian_optimum_per_dim(sde: &dyn Sde, t: f64, c: f64) -> f64 {
    let (m, s) = sde.marginal(t);
    m * m * c * c / (m * m * c * c + s * s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixture::{GaussianMixture, MixtureScore};
    use crate::sde::SdeConfig;
    use crate::test_util::*;

    /// Monte-Carlo DSM at the exact score equals the closed form within 5 standard errors.
    #[test]
    fn exact_score_attains_the_closed_form() {
        let dev = device();
        let (d, c, n) = (4usize, 0.7, 4000usize);
        let configs = [
            SdeConfig::Ve { sigma_min: 0.01, sigma_max: 10.0 },
            SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 },
            SdeConfig::SubVp { beta_min: 0.1, beta_max: 20.0 },
        ];
        for (k, config) in configs.iter().enumerate() {
            let sde = config.build().unwrap();
            let mix = GaussianMixture::gaussian(vec![0.5; d], c).unwrap();
            let mut noise = NoiseSource::new(k as u64);
            let x0: Vec<f32> = mix.sample(n, &mut noise).iter().map(|&v| v as f32).collect();
            let x0 = Tensor::<2>::from_data(burn::tensor::TensorData::new(x0, [n, d]), &dev);
            for t in [0.05, 0.5, 0.9] {
                let model = MixtureScore::new(mix.clone(), config.build().unwrap(), &dev).unwrap();
                let got = dsm_at(&model, sde.as_ref(), x0.clone(), &vec![t; n], &vec![1.0; n], &mut noise).into_scalar::<f32>() as f64;
                let expect = d as f64 * gaussian_optimum_per_dim(sde.as_ref(), t, c);
                // The per-sample sum of d squared Gaussians with per-dim mean p has variance <= 2 d;
                // use that bound for the standard error.
                let se = (2.0 * d as f64 / n as f64).sqrt();
                assert!((got - expect).abs() < 5.0 * se, "{sde:?} t={t}: {got} vs {expect}");
            }
        }
    }
}
