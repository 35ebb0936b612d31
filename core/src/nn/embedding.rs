//! Time embeddings: the noise level `t` as a feature vector for a network.
//!
//! Two feature maps of the scalar `t`, each followed by a two-layer MLP (Linear-SiLU-Linear)
//! to the network's embedding width, as in both DDPM and NCSN++:
//! - [`TimeEmbedding::Sinusoidal`]: the Transformer position encoding (Vaswani et al. 2017,
//!   section 3.5) used by DDPM (Ho et al. 2020, appendix B; `get_timestep_embedding` in their
//!   code) on `scale * t`: `[sin(scale t f_i), cos(scale t f_i)]` with
//!   `f_i = 10000^(-i / (half - 1))`, `i = 0..half`. With `scale = 1000` and `t` in `[0, 1]` this
//!   is DDPM's embedding of its 1000 discrete steps, here on a continuous grid.
//! - [`TimeEmbedding::Fourier`]: Gaussian Fourier features (Tancik et al. 2020, eq. 5)
//!   `[sin(2 pi W t), cos(2 pi W t)]` with fixed random frequencies `W ~ N(0, scale^2)`, as in
//!   the continuous-time NCSN++/DDPM++ of Song et al. 2021 (`GaussianFourierProjection`,
//!   scale 16). The frequencies are drawn once from a fixed seed and kept in the module as a
//!   parameter that never receives a gradient, so they are saved with the weights and a loaded
//!   model is the trained one exactly.

use crate::noise::NoiseSource;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Seed of the fixed Fourier frequencies (a constant: the frequencies are part of the weights).
pub const FOURIER_SEED: u64 = 0x5c0e_d1ff;

/// How the time `t` becomes features, before the embedding MLP.
///
/// JSON: `{"kind": "sinusoidal", "scale": 1000.0}` or `{"kind": "fourier", "scale": 16.0}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TimeEmbedding {
    /// Transformer/DDPM sinusoidal embedding of `scale * t` (Ho et al. 2020).
    Sinusoidal {
        /// Multiplies `t` first (1000 reproduces DDPM's step indices for `t` in `[0, 1]`).
        scale: f64,
    },
    /// Gaussian Fourier features with frequencies `W ~ N(0, scale^2)` (Tancik et al. 2020;
    /// Song et al. 2021).
    Fourier {
        /// Standard deviation of the random frequencies.
        scale: f64,
    },
}

impl Default for TimeEmbedding {
    fn default() -> Self {
        Self::Sinusoidal { scale: 1000.0 }
    }
}

impl TimeEmbedding {
    /// The scale, whichever the kind.
    pub fn scale(&self) -> f64 {
        match *self {
            Self::Sinusoidal { scale } | Self::Fourier { scale } => scale,
        }
    }

    /// Checks the scale (finite, > 0) and that `features` is even and positive.
    pub fn validate(&self, features: usize) -> Result<(), String> {
        let s = self.scale();
        if !(s.is_finite() && s > 0.0) {
            return Err(format!("expected a finite time-embedding scale > 0, found {s}"));
        }
        if features == 0 || !features.is_multiple_of(2) {
            return Err(format!("expected an even number of time features > 0, found {features}"));
        }
        Ok(())
    }

    /// Builds the feature map with `features` features followed by Linear(features, width),
    /// SiLU, Linear(width, width).
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init(&self, features: usize, width: usize, device: &Device) -> TimeEmbedder {
        if let Err(e) = self.validate(features) {
            panic!("invalid time embedding: {e}");
        }
        let freqs = match *self {
            Self::Sinusoidal { .. } => None,
            Self::Fourier { scale } => {
                let w: Vec<f32> = NoiseSource::new(FOURIER_SEED).normal_vec(features / 2).into_iter().map(|z| (z as f64 * scale) as f32).collect();
                let n = w.len();
                Some(Param::from_data(TensorData::new(w, [n]), device).set_require_grad(false))
            }
        };
        TimeEmbedder {
            freqs,
            linear1: LinearConfig::new(features, width).init(device),
            linear2: LinearConfig::new(width, width).init(device),
            kind: *self,
            features,
        }
    }
}

/// DDPM's sinusoidal features of `scale * t`, computed on the host in `f64`: row `b` is
/// `[sin(scale t_b f_0), .., sin(scale t_b f_{h-1}), cos(scale t_b f_0), .., cos(scale t_b f_{h-1})]`
/// with `h = features / 2` and `f_i = exp(-ln(10000) i / (h - 1))` (`f_0 = 1` when `h = 1`).
///
/// # Shapes
/// - output: `t.len() * features` values, row-major `[batch, features]`
pub fn sinusoidal_features(t: &[f64], scale: f64, features: usize) -> Vec<f64> {
    let half = features / 2;
    let step = 10000f64.ln() / (half.max(2) - 1) as f64;
    let freqs: Vec<f64> = (0..half).map(|i| (-step * i as f64).exp()).collect();
    let mut out = Vec::with_capacity(t.len() * features);
    for &ti in t {
        let a = scale * ti;
        out.extend(freqs.iter().map(|f| (a * f).sin()));
        out.extend(freqs.iter().map(|f| (a * f).cos()));
    }
    out
}

/// A time embedding: features of `t` then a two-layer MLP. Built by [`TimeEmbedding::init`].
#[derive(Module, Debug)]
pub struct TimeEmbedder {
    /// Fixed Fourier frequencies `W` (`[features / 2]`, no gradient); `None` for sinusoidal.
    freqs: Option<Param<Tensor<1>>>,
    linear1: Linear,
    linear2: Linear,
    #[module(skip)]
    kind: TimeEmbedding,
    #[module(skip)]
    features: usize,
}

impl TimeEmbedder {
    /// The feature map.
    pub fn kind(&self) -> TimeEmbedding {
        self.kind
    }

    /// The features of `t` before the MLP.
    ///
    /// # Shapes
    /// - output: `[t.len(), features]`
    pub fn features(&self, t: &[f64], device: &Device) -> Tensor<2> {
        let b = t.len();
        match (&self.freqs, self.kind) {
            (Some(w), _) => {
                let half = self.features / 2;
                let tt: Vec<f32> = t.iter().map(|&x| x as f32).collect();
                let tt = Tensor::<2>::from_data(TensorData::new(tt, [b, 1]), device); // [b, 1]
                // The frequencies are constants: never let a gradient reach them.
                let w = w.val().detach().reshape([1, half]); // [1, half]
                let arg = tt.matmul(w).mul_scalar(2.0 * std::f64::consts::PI); // [b, half]
                Tensor::cat(vec![arg.clone().sin(), arg.cos()], 1) // [b, features]
            }
            (None, kind) => {
                let v: Vec<f32> = sinusoidal_features(t, kind.scale(), self.features).into_iter().map(|x| x as f32).collect();
                Tensor::from_data(TensorData::new(v, [b, self.features]), device) // [b, features]
            }
        }
    }

    /// Embeds the times `t` (one per sample).
    ///
    /// # Shapes
    /// - output: `[t.len(), width]`
    pub fn forward(&self, t: &[f64], device: &Device) -> Tensor<2> {
        let f = self.features(t, device); // [b, features]
        self.linear2.forward(silu(self.linear1.forward(f))) // [b, width]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    /// features = 4: `h = 2`, `f = [1, 1e-4]`; at `t = 0.5`, scale 1000 the arguments are
    /// `500` and `0.05`.
    #[test]
    fn sinusoidal_matches_hand_computation() {
        let got = sinusoidal_features(&[0.0, 0.5], 1000.0, 4);
        let expect = [0.0, 0.0, 1.0, 1.0, 500f64.sin(), 0.05f64.sin(), 500f64.cos(), 0.05f64.cos()];
        for (g, e) in got.iter().zip(expect) {
            assert!((g - e).abs() < 1e-12, "{got:?}");
        }
        let dev = device();
        let emb = TimeEmbedding::Sinusoidal { scale: 1000.0 }.init(4, 8, &dev);
        let f = to_vec(emb.features(&[0.0, 0.5], &dev));
        for (g, e) in f.iter().zip(expect) {
            assert!((*g as f64 - e).abs() < 1e-6);
        }
        assert_eq!(emb.forward(&[0.0, 0.5, 1.0], &dev).dims(), [3, 8]);
    }

    #[test]
    fn fourier_frequencies_are_fixed_and_features_bounded() {
        let dev = device();
        let kind = TimeEmbedding::Fourier { scale: 16.0 };
        let (a, b) = (kind.init(8, 16, &dev), kind.init(8, 16, &dev));
        let fa = to_vec(a.features(&[0.1, 0.7], &dev));
        assert_eq!(fa, to_vec(b.features(&[0.1, 0.7], &dev)));
        // sin^2 + cos^2 = 1 for each frequency.
        for row in fa.chunks(8) {
            for i in 0..4 {
                assert!((row[i].powi(2) + row[i + 4].powi(2) - 1.0).abs() < 1e-5);
            }
        }
        // W is a saved parameter, not a trainable one, even on an autodiff device.
        let ad = kind.init(8, 16, &dev.autodiff());
        assert!(!ad.freqs.as_ref().unwrap().is_require_grad());
        assert!(ad.linear1.weight.is_require_grad());
        assert_eq!(a.num_params(), 4 + (8 * 16 + 16) + (16 * 16 + 16));
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, r#"{"kind":"fourier","scale":16.0}"#);
        assert!(TimeEmbedding::Sinusoidal { scale: 1.0 }.validate(3).is_err());
    }
}
