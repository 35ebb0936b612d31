//! Exact likelihood through the probability-flow ODE.
//!
//! Song et al. 2021, appendix D.2 (the instantaneous change of variables of Chen et al. 2018):
//! with `dx/dt = v(x, t)` the probability-flow drift,
//! `log p_{t_min}(x) = log p_T(x_T) + int_{t_min}^{T} div v(x_t, t) dt`, where `x_t` solves the
//! ODE from `x_{t_min} = x`. The state `[x, delta]` is integrated jointly by [`Rk45`], with the
//! divergence either exact (one backward pass per dimension, for small dimension) or
//! Hutchinson's unbiased estimate `E_e[e^T (dv/dx) e]` with one probe `e` (Rademacher or
//! Gaussian) fixed for the whole trajectory (Grathwohl et al. 2019, FFJORD).
//!
//! # Bits per dimension and dequantization
//! For 8-bit data `k in {0..255}^d`, uniform dequantization `y = k + u`, `u ~ U[0,1)^d`, gives
//! `-log P(k) <= E_u[-log p_Y(k + u)]` (Theis et al. 2016). If the model sees
//! `x = a y / 256 + b` (e.g. `a = 2, b = -1` for data in `[-1, 1)`), then
//! `p_Y(y) = p_X(x) (a / 256)^d`, so
//! `bits/dim = -log p_X(x) / (d ln 2) + log2(256 / a)`:
//! `+8` for data in `[0, 1)` and `+7` for data in `[-1, 1)`. This is the reference code's
//! unexplained offset (score_sde issue #51): it is the Jacobian of the data scaling, and it
//! is computed here from `a`, not hard-coded. See [`Dequantization`].
//!
//! [`vlb`]: for a discrete DDPM, the variational bound on the 8-bit data itself (Ho et al. 2020,
//! eq. 5; Nichol & Dhariwal 2021), with the discretized decoder instead of dequantization.

pub mod vlb;
pub use vlb::{Vlb, vlb_likelihood};

use crate::model::{ScoreFn, ScoreModel};
use crate::noise::NoiseSource;
use crate::sampler::{Rk45, ode_drift};
use crate::sde::{Sde, gaussian_logp};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How the divergence of the drift is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = Divergence::unknown)]
pub enum Divergence {
    /// Exact: one backward pass per data dimension.
    Exact,
    /// Hutchinson's estimator with Rademacher probes.
    HutchinsonRademacher,
    /// Hutchinson's estimator with Gaussian probes.
    HutchinsonGaussian,
}

impl Divergence {
    /// Every method.
    pub const ALL: [Divergence; 3] = [Self::Exact, Self::HutchinsonRademacher, Self::HutchinsonGaussian];

    fn unknown(s: &str) -> String {
        crate::names::unknown("divergence", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// Options of [`ode_likelihood`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LikelihoodConfig {
    /// Divergence method.
    pub divergence: Divergence,
    /// RK45 relative tolerance.
    pub rtol: f64,
    /// RK45 absolute tolerance.
    pub atol: f64,
    /// The time the data is placed at (the reference code uses `1e-5`).
    pub t_min: f64,
}

impl Default for LikelihoodConfig {
    fn default() -> Self {
        Self { divergence: Divergence::HutchinsonRademacher, rtol: 1e-5, atol: 1e-5, t_min: 1e-5 }
    }
}

impl LikelihoodConfig {
    /// Checks ranges, naming the offending field.
    pub fn validate(&self) -> Result<(), crate::error::ConfigError> {
        for (name, v) in [("rtol", self.rtol), ("atol", self.atol), ("t_min", self.t_min)] {
            crate::error::positive(name, v)?;
        }
        Ok(())
    }
}

/// Per-sample log-likelihoods in nats.
#[derive(Debug, Clone, PartialEq)]
pub struct Likelihood {
    /// `log p(x)` per sample.
    pub log_prob: Vec<f64>,
    /// `log p_T(x_T)` per sample.
    pub prior_logp: Vec<f64>,
    /// `int div v dt` per sample.
    pub delta_logp: Vec<f64>,
    /// The ODE's latents `x_T`, row-major `[batch, dim]`.
    pub latent: Vec<f64>,
    /// Function evaluations of the augmented ODE.
    pub nfe: usize,
    /// Data dimension `d`.
    pub dim: usize,
}

impl Likelihood {
    /// Mean negative log-likelihood in nats.
    pub fn mean_nll(&self) -> f64 {
        -self.log_prob.iter().sum::<f64>() / self.log_prob.len() as f64
    }

    /// Mean bits per dimension of continuous data (no offset).
    pub fn bits_per_dim(&self) -> f64 {
        self.mean_nll() / (self.dim as f64 * std::f64::consts::LN_2)
    }
}

/// Uniform dequantization of `bits`-bit data mapped to `x = scale * y / 2^bits + shift`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dequantization {
    /// Bits per value (8 for images).
    pub bits: u32,
    /// `a` in `x = a y / 2^bits + b`.
    pub scale: f64,
    /// `b`.
    pub shift: f64,
}

impl Dequantization {
    /// 8-bit data mapped to `[-1, 1)`.
    pub const CENTERED_8BIT: Self = Self { bits: 8, scale: 2.0, shift: -1.0 };

    /// `x = a (k + u) / 2^bits + b` with `u ~ U[0, 1)`.
    pub fn dequantize(&self, values: &[u8], noise: &mut NoiseSource) -> Vec<f32> {
        let levels = 2f64.powi(self.bits as i32);
        values.iter().map(|&k| (self.scale * (k as f64 + noise.uniform()) / levels + self.shift) as f32).collect()
    }

    /// The bits/dim offset `log2(2^bits / a)` (see the module docs).
    pub fn offset_bits(&self) -> f64 {
        self.bits as f64 - self.scale.log2()
    }

    /// Bits/dim of the discrete data from a model-space log-likelihood result.
    pub fn bits_per_dim(&self, l: &Likelihood) -> f64 {
        l.bits_per_dim() + self.offset_bits()
    }
}

/// Exact divergence of `drift` w.r.t. `x` (`[b, n]`), one backward pass per dimension.
fn divergence_exact(drift_fn: &dyn Fn(Tensor<2>) -> Tensor<2>, x: &Tensor<2>) -> Tensor<2> {
    let [b, n] = x.dims();
    let mut div = Tensor::<2>::zeros([b, 1], &x.device());
    for i in 0..n {
        let xr = x.clone().detach().require_grad();
        let out = drift_fn(xr.clone()).slice([0..b, i..i + 1]).sum();
        let grads = out.backward();
        let g = xr.grad(&grads).expect("x requires grad");
        div = div + g.slice([0..b, i..i + 1]);
    }
    div
}

/// Hutchinson's estimate `e^T (d drift / dx) e` per sample.
fn divergence_hutchinson(drift_fn: &dyn Fn(Tensor<2>) -> Tensor<2>, x: &Tensor<2>, e: &Tensor<2>) -> Tensor<2> {
    let xr = x.clone().detach().require_grad();
    let out = (drift_fn(xr.clone()) * e.clone()).sum();
    let grads = out.backward();
    let g = xr.grad(&grads).expect("x requires grad");
    (g * e.clone()).sum_dim(1)
}

/// Log-likelihood of `x` (`[batch, ...]`, placed at `t_min`) under the model's
/// probability-flow ODE. `x` must live on an autodiff device (`device.autodiff()`), and so must
/// the model's parameters.
pub fn ode_likelihood<const D: usize>(
    model: &dyn ScoreModel<D>,
    sde: &dyn Sde,
    x: Tensor<D>,
    config: &LikelihoodConfig,
    noise: &mut NoiseSource,
) -> Likelihood {
    let shape = x.dims();
    let b = shape[0];
    let n: usize = shape[1..].iter().product();
    let dev = x.device();
    let f = ScoreFn::new(model, sde);
    let drift_fn = |xf: Tensor<2>, t: f64| -> Tensor<2> { ode_drift(&f, xf.reshape(shape), t).reshape([b, n]) };
    let probe = match config.divergence {
        Divergence::Exact => None,
        Divergence::HutchinsonRademacher => Some(noise.rademacher([b, n], &dev)),
        Divergence::HutchinsonGaussian => Some(noise.normal([b, n], &dev)),
    };
    let mut evals = 0usize;
    let mut rhs = |y: Tensor<2>, t: f64| -> Tensor<2> {
        evals += 1;
        let xf = y.slice([0..b, 0..n]).detach();
        let at_t = |z: Tensor<2>| drift_fn(z, t);
        let div = match &probe {
            None => divergence_exact(&at_t, &xf),
            Some(e) => divergence_hutchinson(&at_t, &xf, e),
        };
        let v = drift_fn(xf, t).detach();
        Tensor::cat(vec![v, div.detach()], 1)
    };
    let y0 = Tensor::cat(vec![x.reshape([b, n]).detach(), Tensor::zeros([b, 1], &dev)], 1);
    let t_min = sde.snap(config.t_min).max(config.t_min.min(sde.t_min()));
    let y = Rk45::new(y0, t_min, sde.t_max(), config.rtol, config.atol).solve(&mut rhs);
    let vals: Vec<f32> = y.into_data().try_to_vec().expect("f32 state");
    let prior_std = sde.prior_std();
    let (mut prior_logp, mut delta_logp, mut log_prob, mut latent) = (vec![], vec![], vec![], vec![]);
    for row in vals.chunks_exact(n + 1) {
        latent.extend(row[..n].iter().map(|&v| v as f64));
        let sq: f64 = row[..n].iter().map(|&v| (v as f64).powi(2)).sum();
        let p = gaussian_logp(sq, n, prior_std);
        let dl = row[n] as f64;
        prior_logp.push(p);
        delta_logp.push(dl);
        log_prob.push(p + dl);
    }
    Likelihood { log_prob, prior_logp, delta_logp, latent, nfe: evals, dim: n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_the_scaling_jacobian() {
        // Data in [-1, 1): log2(256 / 2) = 7; data in [0, 1): 8 (score_sde's constants).
        assert_eq!(Dequantization::CENTERED_8BIT.offset_bits(), 7.0);
        assert_eq!(Dequantization { bits: 8, scale: 1.0, shift: 0.0 }.offset_bits(), 8.0);
        let mut noise = NoiseSource::new(0);
        let x = Dequantization::CENTERED_8BIT.dequantize(&[0, 255, 128], &mut noise);
        assert!(x[0] >= -1.0 && x[0] < -1.0 + 2.0 / 256.0);
        assert!(x[1] >= 1.0 - 2.0 / 256.0 && x[1] < 1.0);
        assert!(x[2] >= 0.0 && x[2] < 2.0 / 256.0);
    }
}
