//! EDM preconditioning (Karras, Aittala, Aila & Laine 2022, "Elucidating the Design Space of
//! Diffusion-Based Generative Models", Table 1 and appendix B.6), written through the SDE's
//! marginal so that an EDM-trained network is a score model like any other.
//!
//! EDM works in the variance-exploding variable `x^ = x0 + sigma n`. Every SDE here has the
//! kernel `x_t = m(t) x0 + s(t) eps`, so `x^ = x_t / m` with `sigma(t) = s(t) / m(t)`. The raw
//! network `F` is wrapped as the denoiser
//!
//! `D(x^; sigma) = c_skip(sigma) x^ + c_out(sigma) F(c_in(sigma) x^; c_noise(sigma))`,
//!
//! - `c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)`,
//! - `c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)`,
//! - `c_in = 1 / sqrt(sigma^2 + sigma_data^2)`,
//! - `c_noise = ln(sigma) / 4`,
//!
//! which is an `x0` prediction: the samplers, the likelihood and the inverse-problem methods
//! read it through [`crate::param::Parameterization::X0`]. On a VP SDE (`m^2 + s^2 = 1`) with
//! `sigma_data = 1`, `c_in / m = 1`: the network sees `x_t` itself.
//!
//! The training objective (Table 1, "Training"): `ln sigma ~ N(P_mean, P_std^2)` and the weight
//! `lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2`, so that
//! `lambda ||D - x0||^2 = ||F - F_target||^2` has unit weight at every noise level
//! ([`crate::loss::edm`]).

use crate::model::ScoreModel;
use crate::param::{Coef, Parameterization};
use crate::sde::Sde;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The default `sigma_data` (Karras et al. use 0.5 for every data set in `[-1, 1]`).
pub const DEFAULT_SIGMA_DATA: f64 = 0.5;

/// How a network's raw output is turned into its prediction.
///
/// JSON (a U-Net's `preconditioning`): `{"kind": "edm", "sigma_data": 0.5}`; absent or `null`
/// for none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Preconditioning {
    /// Karras et al.'s `c_skip`, `c_out`, `c_in`, `c_noise` (Table 1).
    Edm {
        /// The data's standard deviation `sigma_data`.
        #[serde(default = "default_sigma_data")]
        sigma_data: f64,
    },
}

fn default_sigma_data() -> f64 {
    DEFAULT_SIGMA_DATA
}

impl Preconditioning {
    /// Checks `sigma_data`: a finite number above 0.
    pub fn validate(&self) -> Result<(), String> {
        let Self::Edm { sigma_data } = *self;
        if !(sigma_data.is_finite() && sigma_data > 0.0) {
            return Err(format!("expected sigma_data a finite number > 0 (0.5 in Karras et al.), found {sigma_data}"));
        }
        Ok(())
    }
}

/// EDM's coefficients at one noise level, for data of standard deviation `sigma_data`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdmCoefs {
    /// `c_skip(sigma)`.
    pub skip: f64,
    /// `c_out(sigma)`.
    pub out: f64,
    /// `c_in(sigma)`.
    pub input: f64,
    /// `c_noise(sigma)`, the network's noise label.
    pub noise: f64,
}

/// Smallest `sigma` the coefficients are taken at: `t = 0` (`sigma = 0`) would give
/// `c_noise = -inf`.
const SIGMA_FLOOR: f64 = 1e-12;

impl EdmCoefs {
    /// The coefficients at `sigma` (floored at `1e-12`).
    pub fn at(sigma: f64, sigma_data: f64) -> Self {
        let sigma = sigma.max(SIGMA_FLOOR);
        let (s2, d2) = (sigma * sigma, sigma_data * sigma_data);
        let root = (s2 + d2).sqrt();
        Self { skip: d2 / (s2 + d2), out: sigma * sigma_data / root, input: 1.0 / root, noise: sigma.ln() / 4.0 }
    }
}

/// The loss weight `lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2`.
pub fn edm_weight(sigma: f64, sigma_data: f64) -> f64 {
    let sigma = sigma.max(SIGMA_FLOOR);
    (sigma * sigma + sigma_data * sigma_data) / (sigma * sigma_data).powi(2)
}

/// `sigma = s / m` of a marginal `(m, s)`: the noise level of `x_t / m`.
pub fn sigma_of(mean: f64, std: f64) -> f64 {
    std / mean
}

/// The coefficients that act on `x_t` itself at a time with marginal `(m, s)`: the network's
/// input scale `c_in / m`, the skip scale `c_skip / m`, `c_out` and `c_noise`.
pub fn on_marginal(mean: f64, std: f64, sigma_data: f64) -> EdmCoefs {
    let c = EdmCoefs::at(sigma_of(mean, std), sigma_data);
    EdmCoefs { skip: c.skip / mean, input: c.input / mean, ..c }
}

/// EDM's denoiser `D(x_t; t) = (c_skip / m) x_t + c_out F((c_in / m) x_t; c_noise)` per sample,
/// with `raw` the network `F(input, noise labels)` and `(m, s)` the marginal of `sde` at each
/// sample's time: the one implementation the U-Net and [`Preconditioned`] share.
///
/// # Shapes
/// - `x`: `[batch, ...]`; `t`: `batch` times; `raw` maps `[batch, ...]` and `batch` labels to
///   the shape of `x`; output: the shape of `x`
pub fn precondition<const D: usize>(sde: &dyn Sde, sigma_data: f64, x: Tensor<D>, t: &[f64], raw: impl FnOnce(Tensor<D>, &[f64]) -> Tensor<D>) -> Tensor<D> {
    let coefs: Vec<EdmCoefs> = t
        .iter()
        .map(|&ti| {
            let (m, s) = sde.marginal(ti);
            on_marginal(m, s, sigma_data)
        })
        .collect();
    let per_sample = |f: fn(&EdmCoefs) -> f64| Coef::PerSample(coefs.iter().map(f).collect());
    let labels: Vec<f64> = coefs.iter().map(|c| c.noise).collect();
    let out = raw(per_sample(|c| c.input).apply(x.clone()), &labels); // F(c_in x^; c_noise)
    per_sample(|c| c.skip).apply(x) + per_sample(|c| c.out).apply(out)
}

/// Any model of the raw `F` (called with the preconditioned input and EDM's noise labels
/// `c_noise` in place of times) seen through EDM's preconditioning on `sde`: an `x0` predictor
/// that every sampler takes (see the [module docs](self)).
pub struct Preconditioned<'a, const D: usize> {
    /// The raw network `F`.
    pub raw: &'a dyn ScoreModel<D>,
    /// The SDE whose marginal gives `sigma(t) = s / m`.
    pub sde: &'a dyn Sde,
    /// `sigma_data`.
    pub sigma_data: f64,
}

impl<const D: usize> ScoreModel<D> for Preconditioned<'_, D> {
    fn parameterization(&self) -> Parameterization {
        Parameterization::X0
    }

    fn forward(&self, x: Tensor<D>, t: &[f64]) -> Tensor<D> {
        precondition(self.sde, self.sigma_data, x, t, |input, labels| self.raw.forward(input, labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table 1's closed forms at hand-picked sigmas, and the identities they satisfy:
    /// `c_skip + c_out^2 / sigma_data^2 = 1` and `lambda c_out^2 = 1`.
    #[test]
    fn coefficients_are_table_1() {
        let d = 0.5;
        for (sigma, skip, out, input) in [
            (0.5, 0.5, 0.5 / 2f64.sqrt(), 1.0 / (0.5 * 2f64.sqrt())),
            (1.5, 0.25 / 2.5, 0.75 / 2.5f64.sqrt(), 1.0 / 2.5f64.sqrt()),
            (0.002, 0.25 / (0.25 + 4e-6), 0.001 / (0.25 + 4e-6f64).sqrt(), 1.0 / (0.25 + 4e-6f64).sqrt()),
        ] {
            let c = EdmCoefs::at(sigma, d);
            assert!((c.skip - skip).abs() < 1e-12, "c_skip({sigma}) = {} vs {skip}", c.skip);
            assert!((c.out - out).abs() < 1e-12, "c_out({sigma}) = {} vs {out}", c.out);
            assert!((c.input - input).abs() < 1e-12, "c_in({sigma}) = {} vs {input}", c.input);
            assert!((c.noise - sigma.ln() / 4.0).abs() < 1e-12);
            assert!((c.skip + c.out * c.out / (d * d) - 1.0).abs() < 1e-12);
            assert!((edm_weight(sigma, d) * c.out * c.out - 1.0).abs() < 1e-12);
        }
    }

    /// On a VP marginal (`m^2 + s^2 = 1`) with `sigma_data = 1` the input scale is 1.
    #[test]
    fn vp_with_unit_sigma_data_feeds_x_t_unchanged() {
        for t in [0.1f64, 0.5, 0.9] {
            let m = (-t).exp();
            let s = (1.0 - m * m).sqrt();
            let c = on_marginal(m, s, 1.0);
            assert!((c.input - 1.0).abs() < 1e-12, "{}", c.input);
            assert!((c.skip - m).abs() < 1e-12, "c_skip / m = m^2 / m at sigma_data 1: {} vs {m}", c.skip);
        }
    }

    #[test]
    fn config_parses_with_defaults_and_rejects_bad_sigma_data() {
        let p: Preconditioning = serde_json::from_str(r#"{"kind": "edm"}"#).unwrap();
        assert_eq!(p, Preconditioning::Edm { sigma_data: 0.5 });
        assert!(Preconditioning::Edm { sigma_data: 0.0 }.validate().unwrap_err().contains("sigma_data"));
        assert!(serde_json::from_str::<Preconditioning>(r#"{"kind": "edm", "sigma": 1}"#).is_err());
    }
}
