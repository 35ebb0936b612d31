//! Shared fixtures for the workspace tests: the target distributions the statistical sampler
//! tests use.

use scorediff::mixture::{GaussianMixture, MixtureFile};
use scorediff::sde::{ScheduleKind, SdeConfig};

/// A 2-D mixture of three components with different weights, means and widths.
pub fn mixture_2d() -> GaussianMixture {
    GaussianMixture::new(vec![0.2, 0.3, 0.5], vec![vec![-1.5, 0.5], vec![1.0, 1.5], vec![0.5, -1.0]], vec![0.3, 0.5, 0.4]).expect("valid mixture")
}

/// A 1-D Gaussian.
pub fn gaussian_1d() -> GaussianMixture {
    GaussianMixture::gaussian(vec![0.7], 0.5).expect("valid")
}

/// A 16-D Gaussian with a non-trivial mean.
pub fn gaussian_16d() -> GaussianMixture {
    GaussianMixture::gaussian((0..16).map(|i| (i as f64 - 7.5) / 10.0).collect(), 0.6).expect("valid")
}

/// The SDEs the tests run every sampler under.
pub fn sdes() -> Vec<(&'static str, SdeConfig)> {
    vec![
        ("vp", SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 }),
        ("ve", SdeConfig::Ve { sigma_min: 0.01, sigma_max: 10.0 }),
        ("subvp", SdeConfig::SubVp { beta_min: 0.1, beta_max: 20.0 }),
        ("ddpm-cosine", SdeConfig::ddpm(ScheduleKind::Cosine, 1000)),
    ]
}

/// A mixture file under an SDE.
pub fn file(mixture: &GaussianMixture, sde: SdeConfig) -> MixtureFile {
    MixtureFile { sde, mixture: mixture.clone() }
}

/// `n` draws from the Gaussian with the mean and covariance of the 2-D `data` (Cholesky factor):
/// the baseline a 2-D model must clearly beat (right first two moments, none of the shape).
pub fn gaussian_fit(data: &[f64], n: usize, noise: &mut scorediff::noise::NoiseSource) -> Vec<f64> {
    use scorediff::metrics::{covariance, mean};
    let (mu, c) = (mean(data, 2), covariance(data, 2));
    let l11 = c[0].sqrt();
    let l21 = c[2] / l11;
    let l22 = (c[3] - l21 * l21).sqrt();
    (0..n)
        .flat_map(|_| {
            let (z1, z2) = (noise.normal_f64(), noise.normal_f64());
            [mu[0] + l11 * z1, mu[1] + l21 * z1 + l22 * z2]
        })
        .collect()
}
