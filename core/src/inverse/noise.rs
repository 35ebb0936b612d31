//! Measurement noise `y = A(x) + n` (Chung et al. 2023, sec. 3.1-3.2).
//!
//! - Gaussian: `n ~ N(0, sigma_y^2 I)` added in the data's own `[-1, 1]` scale (as DPS's code
//!   does; the paper's `sigma_y = 0.05` is that scale, i.e. 0.025 on `[0, 1]` images).
//! - Poisson: photon counts `k ~ Poisson(rate * u)` of the measurement's intensity
//!   `u = max((y + 1) / 2, 0)` (a white pixel collects `rate` photons on average), mapped back
//!   as `y = 2 k / rate - 1`. DPS's code draws `Poisson(255 lambda u) / (255 lambda)`: our
//!   `rate` is its `255 lambda`.
//!
//! DPS's Poisson likelihood (Alg. 2) is the Gaussian approximation `N(mean k, var k)` of the
//! counts, `||y - A x0||^2_Lambda` with `Lambda_jj = 1 / (2 k_j)` in count space; in `[-1, 1]`
//! space (`k = rate (y + 1) / 2`, residuals scaled by `rate / 2`) that is
//! `Lambda_jj = rate / (4 (y_j + 1))`, where `y_j + 1` is floored at one photon, `2 / rate`, so
//! that a pixel with no counts has a finite weight. [`MeasurementNoise::weights`] gives it.

use crate::error::ConfigError;
use crate::noise::NoiseSource;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The noise of a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MeasurementNoise {
    /// Noise-free.
    #[default]
    None,
    /// Additive `N(0, sigma^2)`.
    Gaussian {
        /// `sigma_y`, in the `[-1, 1]` data scale.
        sigma: f64,
    },
    /// Photon counts with `rate` photons for a white pixel.
    Poisson {
        /// Expected count of a white pixel.
        rate: f64,
    },
}

impl MeasurementNoise {
    /// A noisy copy of the clean measurement `ax`.
    pub fn apply<const D: usize>(&self, ax: Tensor<D>, noise: &mut NoiseSource) -> Tensor<D> {
        match *self {
            Self::None => ax,
            Self::Gaussian { sigma } => {
                let z = noise.normal(ax.dims(), &ax.device());
                ax + z.mul_scalar(sigma)
            }
            Self::Poisson { rate } => {
                let (dims, device) = (ax.dims(), ax.device());
                let values: Vec<f32> = ax.into_data().try_to_vec::<f32>().expect("f32 measurement");
                let noisy: Vec<f32> = values
                    .iter()
                    .map(|&y| {
                        let u = ((y as f64 + 1.0) / 2.0).max(0.0);
                        (2.0 * noise.poisson(rate * u) / rate - 1.0) as f32
                    })
                    .collect();
                Tensor::from_data(TensorData::new(noisy, dims), &device)
            }
        }
    }

    /// The diagonal `Lambda` of DPS's Poisson likelihood for the measurement `y` (see the
    /// module docs); `None` (the plain Euclidean norm) for the other noises.
    pub fn weights<const D: usize>(&self, y: &Tensor<D>) -> Option<Tensor<D>> {
        match *self {
            Self::Poisson { rate } => Some(y.clone().add_scalar(1.0).clamp_min(2.0 / rate).recip().mul_scalar(rate / 4.0)),
            _ => None,
        }
    }

    /// The Gaussian standard deviation (0 for none; the standard deviation of a mid-grey pixel,
    /// `sqrt(2 / rate)`, for Poisson): the noise level regularised baselines assume.
    pub fn sigma(&self) -> f64 {
        match *self {
            Self::None => 0.0,
            Self::Gaussian { sigma } => sigma,
            Self::Poisson { rate } => (2.0 / rate).sqrt(),
        }
    }

    /// Checks ranges (field `noise`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Self::Gaussian { sigma } if !(sigma.is_finite() && sigma >= 0.0) => Err(ConfigError::new("noise", "gaussian with a standard deviation >= 0", self)),
            Self::Poisson { rate } if !(rate.is_finite() && rate > 0.0) => Err(ConfigError::new("noise", "poisson with a rate > 0", self)),
            _ => Ok(()),
        }
    }
}

impl FromStr for MeasurementNoise {
    type Err = String;
    /// `none`, `gaussian:SIGMA` or `poisson:RATE`.
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected none, gaussian:SIGMA or poisson:RATE";
        let value = |v: &str| v.parse::<f64>().map_err(|_| format!("unknown noise `{s}`: {expected} with a number, found `{v}`"));
        let noise = match s.split_once(':') {
            None if s == "none" => Self::None,
            Some(("gaussian", v)) => Self::Gaussian { sigma: value(v)? },
            Some(("poisson", v)) => Self::Poisson { rate: value(v)? },
            _ => return Err(format!("unknown noise `{s}`: {expected}")),
        };
        noise.validate().map_err(|e| e.to_string())?;
        Ok(noise)
    }
}

impl std::fmt::Display for MeasurementNoise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Gaussian { sigma } => write!(f, "gaussian:{sigma}"),
            Self::Poisson { rate } => write!(f, "poisson:{rate}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn parses_and_prints() {
        for s in ["none", "gaussian:0.05", "poisson:100"] {
            assert_eq!(s.parse::<MeasurementNoise>().unwrap().to_string(), s);
        }
        for bad in ["gauss:1", "gaussian:x", "poisson:0", "gaussian:-1", ""] {
            assert!(bad.parse::<MeasurementNoise>().is_err(), "{bad}");
        }
    }

    /// Moments: Gaussian noise has std sigma; Poisson counts of intensity u have mean rate u and
    /// variance rate u, so `y` has mean `2u - 1` and variance `4 u / rate`.
    #[test]
    fn noise_moments() {
        let dev = device();
        let n = 20_000;
        let clean = Tensor::<2>::full([n, 1], 0.2, &dev); // u = 0.6
        let mut noise = NoiseSource::new(1);
        let stats = |v: Vec<f32>| {
            let m = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
            (m, v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n as f64)
        };
        let (m, var) = stats(to_vec(MeasurementNoise::Gaussian { sigma: 0.1 }.apply(clean.clone(), &mut noise)));
        // Standard errors: 0.1 / sqrt(n) = 7e-4 for the mean, 0.01 sqrt(2 / n) = 1e-4 for the variance.
        assert!((m - 0.2).abs() < 4e-3 && (var - 0.01).abs() < 6e-4, "{m} {var}");
        let rate = 50.0;
        let (m, var) = stats(to_vec(MeasurementNoise::Poisson { rate }.apply(clean.clone(), &mut noise)));
        let v = 4.0 * 0.6 / rate;
        assert!((m - 0.2).abs() < 5.0 * (v / n as f64).sqrt(), "{m}");
        assert!((var - v).abs() < 5.0 * v * (2.0 / n as f64).sqrt() * 1.2, "{var} vs {v}");
        // Lambda at y = 0.2: rate / (4 * 1.2); at y = -1 (no photons) floored at one photon.
        let w = to_vec(MeasurementNoise::Poisson { rate }.weights(&Tensor::<1>::from_floats([0.2, -1.0], &dev)).unwrap());
        assert!((w[0] as f64 - rate / 4.8).abs() < 1e-4 && (w[1] as f64 - rate * rate / 8.0).abs() < 1e-2, "{w:?}");
        assert!(MeasurementNoise::Gaussian { sigma: 0.1 }.weights(&clean).is_none());
    }
}
