//! Gaussian mixtures with an exact perturbed score.
//!
//! If `p_0 = sum_k w_k N(mu_k, s_k^2 I)` and the kernel is `N(m x_0, sigma^2 I)`, then
//! `p_t = sum_k w_k N(m mu_k, (m^2 s_k^2 + sigma^2) I)` (a Gaussian convolved with a Gaussian),
//! and `grad log p_t(x) = -sum_k r_k(x) (x - m mu_k) / (m^2 s_k^2 + sigma^2)` with the
//! responsibilities `r_k = softmax_k(log w_k + log N(x; m mu_k, v_k I))`.
//! This is the exact score of every SDE here: the tests judge samplers and likelihoods with it,
//! and users can load one from JSON to see a sampler's error without training a network.
//!
//! File format (`mixture.json`):
//! `{"sde": {"kind": "vp", ...}, "weights": [...], "means": [[...], ...], "stds": [...]}`.

use crate::model::ScoreModel;
use crate::noise::NoiseSource;
use crate::param::Parameterization;
use crate::sde::{Sde, SdeConfig, SdeError};
use burn::tensor::{Device, Tensor, TensorData, activation::softmax};
use serde::{Deserialize, Serialize};

/// An isotropic Gaussian mixture `sum_k w_k N(mu_k, s_k^2 I)` in `dim` dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianMixture {
    /// Mixture weights, summing to 1.
    pub weights: Vec<f64>,
    /// Component means, each of length `dim`.
    pub means: Vec<Vec<f64>>,
    /// Component standard deviations (> 0).
    pub stds: Vec<f64>,
}

/// A mixture file or value was invalid.
#[derive(Debug, thiserror::Error)]
pub enum MixtureError {
    /// A field was out of range.
    #[error("invalid field `{field}`: {message}")]
    Field {
        /// The field's name (e.g. `weights`, `means[2]`).
        field: String,
        /// Expected vs found.
        message: String,
    },
    /// The SDE was invalid.
    #[error(transparent)]
    Sde(#[from] SdeError),
    /// The JSON did not parse (serde's message names the line and column).
    #[error("malformed mixture JSON: {0}")]
    Json(serde_json::Error),
}

impl From<serde_json::Error> for MixtureError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e)
    }
}

fn field(field: impl Into<String>, message: String) -> MixtureError {
    MixtureError::Field { field: field.into(), message }
}

impl GaussianMixture {
    /// Validates and builds a mixture.
    pub fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, stds: Vec<f64>) -> Result<Self, MixtureError> {
        let g = Self { weights, means, stds };
        g.validate()?;
        Ok(g)
    }

    /// A single Gaussian `N(mean, std^2 I)`.
    pub fn gaussian(mean: Vec<f64>, std: f64) -> Result<Self, MixtureError> {
        Self::new(vec![1.0], vec![mean], vec![std])
    }

    /// Checks shapes and ranges, naming the offending field.
    pub fn validate(&self) -> Result<(), MixtureError> {
        let k = self.weights.len();
        if k == 0 {
            return Err(field("weights", "expected at least one component, found none".into()));
        }
        for (i, &w) in self.weights.iter().enumerate() {
            if !(w.is_finite() && w >= 0.0) {
                return Err(field(format!("weights[{i}]"), format!("expected a finite number >= 0, found {w}")));
            }
        }
        let sum: f64 = self.weights.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(field("weights", format!("expected weights summing to 1, found sum {sum}")));
        }
        if self.means.len() != k {
            return Err(field("means", format!("expected {k} means (one per weight), found {}", self.means.len())));
        }
        if self.stds.len() != k {
            return Err(field("stds", format!("expected {k} stds (one per weight), found {}", self.stds.len())));
        }
        let dim = self.means[0].len();
        if dim == 0 {
            return Err(field("means[0]", "expected at least one coordinate, found none".into()));
        }
        for (i, m) in self.means.iter().enumerate() {
            if m.len() != dim {
                return Err(field(format!("means[{i}]"), format!("expected {dim} coordinates, found {}", m.len())));
            }
            if let Some(x) = m.iter().find(|x| !x.is_finite()) {
                return Err(field(format!("means[{i}]"), format!("expected finite coordinates, found {x}")));
            }
        }
        for (i, &s) in self.stds.iter().enumerate() {
            if !(s.is_finite() && s > 0.0) {
                return Err(field(format!("stds[{i}]"), format!("expected a finite number > 0, found {s}")));
            }
        }
        Ok(())
    }

    /// Dimension of the data.
    pub fn dim(&self) -> usize {
        self.means[0].len()
    }

    /// The mixture of `p_t` under a kernel with coefficients `(m, sigma)`.
    pub fn perturbed(&self, m: f64, sigma: f64) -> GaussianMixture {
        GaussianMixture {
            weights: self.weights.clone(),
            means: self.means.iter().map(|mu| mu.iter().map(|x| m * x).collect()).collect(),
            stds: self.stds.iter().map(|s| (m * m * s * s + sigma * sigma).sqrt()).collect(),
        }
    }

    /// `log p(x)` for one point.
    pub fn log_density(&self, x: &[f64]) -> f64 {
        let d = self.dim() as f64;
        let terms: Vec<f64> = (0..self.weights.len())
            .map(|k| {
                let v = self.stds[k] * self.stds[k];
                let sq: f64 = x.iter().zip(&self.means[k]).map(|(a, b)| (a - b) * (a - b)).sum();
                self.weights[k].ln() - 0.5 * d * (2.0 * std::f64::consts::PI * v).ln() - 0.5 * sq / v
            })
            .collect();
        let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
    }

    /// Mean vector.
    pub fn mean(&self) -> Vec<f64> {
        let mut mean = vec![0.0; self.dim()];
        for (w, mu) in self.weights.iter().zip(&self.means) {
            for (m, x) in mean.iter_mut().zip(mu) {
                *m += w * x;
            }
        }
        mean
    }

    /// Covariance matrix, row-major `dim x dim`: `sum_k w_k (s_k^2 I + mu_k mu_k^T) - mean mean^T`.
    pub fn covariance(&self) -> Vec<f64> {
        let d = self.dim();
        let mean = self.mean();
        let mut cov = vec![0.0; d * d];
        for k in 0..self.weights.len() {
            let (w, mu, s) = (self.weights[k], &self.means[k], self.stds[k]);
            for i in 0..d {
                for j in 0..d {
                    cov[i * d + j] += w * (mu[i] * mu[j] + if i == j { s * s } else { 0.0 });
                }
            }
        }
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] -= mean[i] * mean[j];
            }
        }
        cov
    }

    /// `n` samples, row-major `[n, dim]`.
    pub fn sample(&self, n: usize, noise: &mut NoiseSource) -> Vec<f64> {
        let d = self.dim();
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let u = noise.uniform();
            let mut acc = 0.0;
            let mut k = self.weights.len() - 1;
            for (i, w) in self.weights.iter().enumerate() {
                acc += w;
                if u < acc {
                    k = i;
                    break;
                }
            }
            for j in 0..d {
                out.push(self.means[k][j] + self.stds[k] * noise.normal_f64());
            }
        }
        out
    }
}

/// The JSON file: a mixture and the SDE it is perturbed by.
#[derive(Debug, Clone, PartialEq)]
pub struct MixtureFile {
    /// The forward SDE.
    pub sde: SdeConfig,
    /// The data distribution.
    pub mixture: GaussianMixture,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MixtureFileRepr {
    sde: SdeConfig,
    weights: Vec<f64>,
    means: Vec<Vec<f64>>,
    stds: Vec<f64>,
}

impl MixtureFile {
    /// Parses and validates a `mixture.json`.
    pub fn from_json(text: &str) -> Result<Self, MixtureError> {
        let r: MixtureFileRepr = serde_json::from_str(text)?;
        let mixture = GaussianMixture::new(r.weights, r.means, r.stds)?;
        r.sde.build()?;
        Ok(Self { sde: r.sde, mixture })
    }

    /// Serialises to the JSON format [`from_json`](Self::from_json) reads.
    pub fn to_json(&self) -> String {
        let GaussianMixture { weights, means, stds } = self.mixture.clone();
        serde_json::to_string_pretty(&MixtureFileRepr { sde: self.sde.clone(), weights, means, stds }).expect("plain numbers serialise")
    }

    /// The analytic score model.
    pub fn model(&self, device: &Device) -> Result<MixtureScore, MixtureError> {
        MixtureScore::new(self.mixture.clone(), self.sde.build()?, device)
    }
}

/// The exact score of a Gaussian mixture perturbed by an SDE: a [`ScoreModel`] on
/// `[batch, dim]` tensors.
#[derive(Debug)]
pub struct MixtureScore {
    /// The data distribution.
    pub mixture: GaussianMixture,
    /// The SDE.
    pub sde: Box<dyn Sde>,
    means: Tensor<3>,      // [1, K, dim]
    log_weights: Vec<f64>, // [K]
}

impl MixtureScore {
    /// Uploads the mixture's parameters to `device`.
    pub fn new(mixture: GaussianMixture, sde: Box<dyn Sde>, device: &Device) -> Result<Self, MixtureError> {
        mixture.validate()?;
        let (k, d) = (mixture.weights.len(), mixture.dim());
        let flat: Vec<f32> = mixture.means.iter().flatten().map(|&x| x as f32).collect();
        let means = Tensor::<3>::from_data(TensorData::new(flat, [1, k, d]), device);
        let log_weights = mixture.weights.iter().map(|w| w.ln()).collect();
        Ok(Self { mixture, sde, means, log_weights })
    }
}

impl ScoreModel<2> for MixtureScore {
    fn parameterization(&self) -> Parameterization {
        Parameterization::Score
    }

    fn forward(&self, x: Tensor<2>, t: &[f64]) -> Tensor<2> {
        let [b, d] = x.dims();
        let k = self.log_weights.len();
        let device = x.device();
        // Per sample and component: m(t), the variance v_k(t) and the constant part of log N.
        let (mut ms, mut vs, mut consts) = (Vec::with_capacity(b), Vec::with_capacity(b * k), Vec::with_capacity(b * k));
        for &ti in t {
            let (m, s) = self.sde.marginal(ti);
            ms.push(m as f32);
            for j in 0..k {
                let v = m * m * self.mixture.stds[j].powi(2) + s * s;
                vs.push(v as f32);
                consts.push((self.log_weights[j] - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * v).ln()) as f32);
            }
        }
        let m = Tensor::<3>::from_data(TensorData::new(ms, [b, 1, 1]), &device);
        let v = Tensor::<3>::from_data(TensorData::new(vs, [b, k, 1]), &device);
        let c = Tensor::<3>::from_data(TensorData::new(consts, [b, k, 1]), &device);
        let diff = x.unsqueeze_dim::<3>(1) - self.means.clone() * m; // [b, k, d]
        let sq = diff.clone().square().sum_dim(2); // [b, k, 1]
        let logits = c - sq / v.clone() * 0.5; // [b, k, 1]
        let r = softmax(logits, 1); // [b, k, 1]
        (diff * (r / v)).sum_dim(1).neg().reshape([b, d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::VpSde;
    use crate::test_util::*;

    /// The tensor score equals a central finite difference of the host log-density of the
    /// perturbed mixture (two independent implementations of the closed form).
    #[test]
    fn score_is_gradient_of_log_density() {
        let dev = device();
        let mix =
            GaussianMixture::new(vec![0.2, 0.5, 0.3], vec![vec![-1.0, 0.5, 0.0], vec![1.0, 1.0, -0.5], vec![0.0, -1.5, 1.0]], vec![0.3, 0.5, 0.4]).unwrap();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let model = MixtureScore::new(mix.clone(), Box::new(sde), &dev).unwrap();
        let pts = [[0.3, -0.2, 0.1], [-1.0, 0.4, 0.2], [0.9, 1.1, -0.3]];
        let ts = [0.05, 0.3, 0.8];
        let flat: Vec<f32> = pts.iter().flatten().map(|&x| x as f32).collect();
        let x = Tensor::<2>::from_data(TensorData::new(flat, [3, 3]), &dev);
        let got = to_vec(model.forward(x, &ts));
        for (i, (p, &t)) in pts.iter().zip(&ts).enumerate() {
            let (m, s) = sde.marginal(t);
            let pt = mix.perturbed(m, s);
            for j in 0..3 {
                let h = 1e-5;
                let (mut a, mut b) = (p.to_vec(), p.to_vec());
                a[j] += h;
                b[j] -= h;
                let fd = (pt.log_density(&a) - pt.log_density(&b)) / (2.0 * h);
                assert!((got[i * 3 + j] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()), "{i},{j}: {} vs {fd}", got[i * 3 + j]);
            }
        }
    }

    #[test]
    fn moments_and_validation() {
        let mix = GaussianMixture::new(vec![0.25, 0.75], vec![vec![0.0, 2.0], vec![4.0, -2.0]], vec![1.0, 2.0]).unwrap();
        // mean = (3, -1); var_x = 0.25*(0+1) + 0.75*(16+4) - 9 = 6.25; cov_xy = 0.25*0 + 0.75*(-8) + 3 = -3.
        assert_eq!(mix.mean(), vec![3.0, -1.0]);
        let c = mix.covariance();
        assert!((c[0] - 6.25).abs() < 1e-12 && (c[1] + 3.0).abs() < 1e-12);
        let bad = r#"{"sde": {"kind": "vp"}, "weights": [0.5, 0.6], "means": [[0], [1]], "stds": [1, 1]}"#;
        let e = MixtureFile::from_json(bad).unwrap_err().to_string();
        assert!(e.contains("`weights`") && e.contains("summing to 1"), "{e}");
        let bad = r#"{"sde": {"kind": "vp"}, "weights": [1], "means": [[0]], "stds": [-1]}"#;
        assert!(MixtureFile::from_json(bad).unwrap_err().to_string().contains("`stds[0]`"));
        let bad = r#"{"sde": {"kind": "ve", "sigma_min": 0.01}, "weights": [1], "means": [[0]], "stds": [1], "x": 1}"#;
        assert!(MixtureFile::from_json(bad).unwrap_err().to_string().contains("unknown field `x`"));
    }
}
