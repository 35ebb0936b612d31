//! Gaussian mixtures with an exact perturbed score.
//!
//! If `p_0 = sum_k w_k N(mu_k, s_k^2 I)` and the kernel is `N(m x_0, sigma^2 I)`, then
//! `p_t = sum_k w_k N(m mu_k, (m^2 s_k^2 + sigma^2) I)` (a Gaussian convolved with a Gaussian),
//! and `grad log p_t(x) = -sum_k r_k(x) (x - m mu_k) / (m^2 s_k^2 + sigma^2)` with the
//! responsibilities `r_k = softmax_k(log w_k + log N(x; m mu_k, v_k I))`.
//! This is the exact score of every SDE here: the tests judge samplers and likelihoods with it,
//! and users can load one from JSON to see a sampler's error without training a network.
//!
//! [`GaussianMixture::component_shares`] assigns points to components by their largest
//! responsibility (the Bayes classifier of the mixture) and compares each component's share with
//! its weight in binomial standard errors: how the page and the tests judge whether a sampler
//! keeps the weights of separated modes (Song & Ermon 2019, section 3.2.2, Fig. 3: Langevin
//! dynamics at one small noise level does not, annealed Langevin does).
//! [`GaussianMixture::score_error_by_density`] measures a learned score against the exact one
//! in high- and low-density regions (their section 3.1: the score is learned badly where data
//! are rare).
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

/// One component's share of a set of points against its weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ComponentShare {
    /// The component's weight `w_k`.
    pub weight: f64,
    /// Points assigned to it.
    pub count: usize,
    /// `count / n`.
    pub fraction: f64,
    /// The binomial standard error of the fraction of `n` points each in the component with
    /// probability `w_k`: `sqrt(w_k (1 - w_k) / n)`.
    pub se: f64,
    /// `(fraction - weight) / se` (0 when `se` is 0 and the fraction equals the weight,
    /// infinite when it does not).
    pub z: f64,
}

/// Points assigned to the components of a mixture ([`GaussianMixture::component_shares`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentShares {
    /// Points in all, assigned or not.
    pub n: usize,
    /// Points with a non-finite coordinate, assigned to no component.
    pub unassigned: usize,
    /// One per component, in the mixture's order.
    pub shares: Vec<ComponentShare>,
}

impl ComponentShares {
    /// The largest `|z|` over the components.
    pub fn max_abs_z(&self) -> f64 {
        self.shares.iter().map(|s| s.z.abs()).fold(0.0, f64::max)
    }
}

/// The error of a learned score in one density region.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegionError {
    /// Points in the region.
    pub points: usize,
    /// Median relative error over them (NaN when the region is empty).
    pub median: f64,
    /// Mean relative error over them (NaN when the region is empty).
    pub mean: f64,
}

/// A learned score against the exact one, by data density
/// ([`GaussianMixture::score_error_by_density`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreErrorByDensity {
    /// Per point: `|s_learned - s_exact| / max(|s_exact|, 1 / s_min)`, with `s_min` the
    /// smallest component std (the exact score's norm one std from a mode: the floor keeps the
    /// error finite at a mode's centre, where the exact score vanishes).
    pub relative_error: Vec<f64>,
    /// Per point: the density relative to the largest density over the points, `p(x) / max p`.
    pub relative_density: Vec<f64>,
    /// Points with relative density at least `high`.
    pub high: RegionError,
    /// Points with relative density below `low`.
    pub low: RegionError,
    /// The thresholds `[high, low]`.
    pub thresholds: [f64; 2],
}

/// Relative density at or above which a point counts as high-density in
/// [`GaussianMixture::score_error_by_density`]: within about 2 std of the major mode of a
/// two-component mixture, and of a minor mode of weight above 0.1 of it.
pub const HIGH_DENSITY: f64 = 0.1;

/// Relative density below which a point counts as low-density: beyond about 4.3 std of every
/// mode (`exp(-4.3^2 / 2) = 1e-4`), where samples of the data are rare (1 in 10^4).
pub const LOW_DENSITY: f64 = 1e-4;

fn region(errors: impl Iterator<Item = f64>) -> RegionError {
    let mut v: Vec<f64> = errors.filter(|e| !e.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    };
    let mean = if n == 0 { f64::NAN } else { v.iter().sum::<f64>() / n as f64 };
    RegionError { points: n, median, mean }
}

impl GaussianMixture {
    /// `log w_k + log N(x; mu_k, s_k^2 I)` for every component `k` (the unnormalised log
    /// responsibilities).
    fn log_joint(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim() as f64;
        (0..self.weights.len())
            .map(|k| {
                let v = self.stds[k] * self.stds[k];
                let sq: f64 = x.iter().zip(&self.means[k]).map(|(a, b)| (a - b) * (a - b)).sum();
                self.weights[k].ln() - 0.5 * d * (2.0 * std::f64::consts::PI * v).ln() - 0.5 * sq / v
            })
            .collect()
    }

    /// The responsibilities `r_k(x) = w_k N(x; mu_k, s_k^2 I) / p(x)` of one point.
    pub fn responsibilities(&self, x: &[f64]) -> Vec<f64> {
        let l = self.log_joint(x);
        let max = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = l.iter().map(|v| (v - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.into_iter().map(|v| v / sum).collect()
    }

    /// The component of largest responsibility (the first on a tie); `None` for a point with
    /// a non-finite coordinate.
    pub fn assign(&self, x: &[f64]) -> Option<usize> {
        if x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let l = self.log_joint(x);
        (0..l.len()).reduce(|best, k| if l[k] > l[best] { k } else { best })
    }

    /// The exact score `grad log p(x) = -sum_k r_k(x) (x - mu_k) / s_k^2` of one point.
    pub fn score(&self, x: &[f64]) -> Vec<f64> {
        let r = self.responsibilities(x);
        let mut s = vec![0.0; x.len()];
        for (k, rk) in r.iter().enumerate() {
            let v = self.stds[k] * self.stds[k];
            for (j, sj) in s.iter_mut().enumerate() {
                *sj -= rk * (x[j] - self.means[k][j]) / v;
            }
        }
        s
    }

    fn check_points(&self, points: &[f64], what: &str) -> Result<usize, MixtureError> {
        let d = self.dim();
        if points.is_empty() || !points.len().is_multiple_of(d) {
            return Err(field(what, format!("expected a whole number of {d}-D points, at least one, found {} numbers", points.len())));
        }
        Ok(points.len() / d)
    }

    /// Assigns each of `points` (row-major `[n, dim]`) to its component ([`assign`](Self::assign))
    /// and compares each component's share with its weight in binomial standard errors.
    pub fn component_shares(&self, points: &[f64]) -> Result<ComponentShares, MixtureError> {
        let n = self.check_points(points, "points")?;
        let mut counts = vec![0usize; self.weights.len()];
        let mut unassigned = 0;
        for x in points.chunks(self.dim()) {
            match self.assign(x) {
                Some(k) => counts[k] += 1,
                None => unassigned += 1,
            }
        }
        let shares = counts
            .iter()
            .zip(&self.weights)
            .map(|(&count, &weight)| {
                let fraction = count as f64 / n as f64;
                let se = (weight * (1.0 - weight) / n as f64).sqrt();
                let z = if se > 0.0 {
                    (fraction - weight) / se
                } else if fraction == weight {
                    0.0
                } else {
                    f64::INFINITY
                };
                ComponentShare { weight, count, fraction, se, z }
            })
            .collect();
        Ok(ComponentShares { n, unassigned, shares })
    }

    /// A learned score at `points` (row-major `[n, dim]`, `learned` the same layout) against
    /// this mixture's exact score ([`score`](Self::score); pass the mixture perturbed to the
    /// time compared, [`perturbed`](Self::perturbed)), by density region: relative density at
    /// least `high` and below `low` ([`HIGH_DENSITY`], [`LOW_DENSITY`]).
    pub fn score_error_by_density(&self, points: &[f64], learned: &[f64], high: f64, low: f64) -> Result<ScoreErrorByDensity, MixtureError> {
        let n = self.check_points(points, "points")?;
        if learned.len() != points.len() {
            return Err(field("learned", format!("expected {} numbers (one score per point), found {}", points.len(), learned.len())));
        }
        if !(low > 0.0 && low <= high && high <= 1.0) {
            return Err(field("thresholds", format!("expected 0 < low <= high <= 1, found low {low}, high {high}")));
        }
        let d = self.dim();
        let floor = 1.0 / self.stds.iter().cloned().fold(f64::INFINITY, f64::min);
        let log_p: Vec<f64> = points.chunks(d).map(|x| self.log_density(x)).collect();
        let max = log_p.iter().cloned().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
        let relative_density: Vec<f64> = log_p.iter().map(|l| (l - max).exp()).collect();
        let relative_error: Vec<f64> = (0..n)
            .map(|i| {
                let (x, s) = (&points[i * d..(i + 1) * d], &learned[i * d..(i + 1) * d]);
                let exact = self.score(x);
                let diff = exact.iter().zip(s).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
                let norm = exact.iter().map(|a| a * a).sum::<f64>().sqrt();
                diff / norm.max(floor)
            })
            .collect();
        let pick = |keep: &dyn Fn(f64) -> bool| region((0..n).filter(|&i| keep(relative_density[i])).map(|i| relative_error[i]));
        let high_region = pick(&|p| p >= high);
        let low_region = pick(&|p| p < low);
        Ok(ScoreErrorByDensity { relative_error, relative_density, high: high_region, low: low_region, thresholds: [high, low] })
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
        crate::limits::sde(&r.sde).map_err(|e| field(format!("sde.{}", e.field), format!("expected {}, found {}", e.expected, e.found)))?;
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

    /// Assignment and shares against a hand computation. Mixture `0.2 N((-1, 0), 1) +
    /// 0.8 N((1, 0), 1)`: the log-odds of component 0 at `x` are `ln(0.2/0.8) - 2 x_1`, so the
    /// boundary is `x_1 = ln(1/4) / 2 = -0.693`; points at `x_1 = -0.8` go to 0, at `-0.6` to 1.
    #[test]
    fn component_shares_by_hand() {
        let mix = GaussianMixture::new(vec![0.2, 0.8], vec![vec![-1.0, 0.0], vec![1.0, 0.0]], vec![1.0, 1.0]).unwrap();
        assert_eq!(mix.assign(&[-0.8, 3.0]), Some(0));
        assert_eq!(mix.assign(&[-0.6, -3.0]), Some(1));
        assert_eq!(mix.assign(&[f64::NAN, 0.0]), None);
        // r_0 at the origin: 0.2 / (0.2 + 0.8) (equal distances).
        assert!((mix.responsibilities(&[0.0, 0.0])[0] - 0.2).abs() < 1e-12);
        // 5 points: 2 in component 0, 2 in 1, 1 unassigned. n = 5: se_0 = sqrt(0.16 / 5) = 0.178885,
        // z_0 = (0.4 - 0.2) / 0.178885 = 1.118034; z_1 = (0.4 - 0.8) / 0.178885 = -2.236068.
        let pts = [-5.0, 0.0, -0.8, 1.0, 2.0, 0.0, -0.6, 0.0, f64::INFINITY, 0.0];
        let s = mix.component_shares(&pts).unwrap();
        assert_eq!((s.n, s.unassigned), (5, 1));
        assert_eq!((s.shares[0].count, s.shares[1].count), (2, 2));
        assert!((s.shares[0].se - 0.178885).abs() < 1e-6 && (s.shares[1].se - 0.178885).abs() < 1e-6);
        assert!((s.shares[0].z - 1.118034).abs() < 1e-6 && (s.shares[1].z + 2.236068).abs() < 1e-6);
        assert!((s.max_abs_z() - 2.236068).abs() < 1e-6);
        let e = mix.component_shares(&[1.0, 2.0, 3.0]).unwrap_err().to_string();
        assert!(e.contains("`points`") && e.contains("3 numbers"), "{e}");
        assert!(mix.component_shares(&[]).is_err());
    }

    /// The host score is the gradient of the host log-density, and the error summary splits
    /// points by density: the exact score has zero error, a score off by 1 in `x_1` has error
    /// `1 / max(|s|, 1)` (the floor: `1 / s_min = 1`).
    #[test]
    fn score_error_by_density_by_hand() {
        let mix = GaussianMixture::new(vec![0.2, 0.8], vec![vec![-3.0, 0.0], vec![3.0, 0.0]], vec![1.0, 1.0]).unwrap();
        let x = [0.7, -0.4];
        let s = mix.score(&x);
        for j in 0..2 {
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            a[j] += 1e-5;
            b[j] -= 1e-5;
            let fd = (mix.log_density(&a) - mix.log_density(&b)) / 2e-5;
            assert!((s[j] - fd).abs() < 1e-6, "{j}: {} vs {fd}", s[j]);
        }
        // At the major mode (3, 0): relative density 1, exact score ~0 (error over the floor 1).
        // At (10, 0): relative density exp(-49 / 2) ~ 2e-11, |s| = 7.
        let pts = [3.0, 0.0, 10.0, 0.0];
        let exact: Vec<f64> = pts.chunks(2).flat_map(|p| mix.score(p)).collect();
        let e = mix.score_error_by_density(&pts, &exact, HIGH_DENSITY, LOW_DENSITY).unwrap();
        assert!(e.relative_error.iter().all(|&v| v < 1e-9));
        assert!((e.relative_density[0] - 1.0).abs() < 1e-9 && e.relative_density[1] < 1e-10);
        let off: Vec<f64> = exact.iter().enumerate().map(|(i, v)| v + if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
        let e = mix.score_error_by_density(&pts, &off, HIGH_DENSITY, LOW_DENSITY).unwrap();
        assert!((e.high.median - 1.0).abs() < 1e-6 && e.high.points == 1, "{:?}", e.high);
        assert!((e.low.median - 1.0 / 7.0).abs() < 1e-6 && e.low.points == 1, "{:?}", e.low);
        assert!(mix.score_error_by_density(&pts, &off[..2], HIGH_DENSITY, LOW_DENSITY).unwrap_err().to_string().contains("`learned`"));
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
