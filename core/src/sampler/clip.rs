//! Clipping of the predicted `x0` where a sampler forms one.
//!
//! - **Static** clipping to the data range `[lo, hi]`: what DDPM's reference sampler does with
//!   `x0_hat` in `[-1, 1]` (Ho et al. 2020, `clip_denoised`; diffusers' `clip_sample`).
//! - **Dynamic thresholding** (Saharia et al. 2022, "Photorealistic Text-to-Image Diffusion
//!   Models with Deep Language Understanding", section 2.3): per sample, `s` is the `p`-th
//!   percentile of `|x0_hat|`, `s = max(s, 1)`, and `x0_hat = clip(x0_hat, -s, s) / s`. For a range
//!   `[lo, hi]` other than `[-1, 1]` the rule acts on `u = (x0_hat - c) / r`, `c = (lo + hi) / 2`,
//!   `r = (hi - lo) / 2`, which for `[-1, 1]` is Imagen's rule itself.
//!
//! The percentile is the order statistic `|u|_(k)`, `k = ceil(p n)` of the `n` values of a
//! sample: the smallest `s` with at most a `1 - p` share of `|u|` above it. It is found on the
//! device by bisection on `s` (the share above is a mean of a comparison), so no sample is read
//! back to the host: a synchronous read would fail on WebGPU, and burn's sort does one there.
//!
//! A clipped prediction also changes the noise a sampler reads: the model's prediction becomes
//! the clipped `x0_c` itself, so `eps_hat = (x_t - m x0_c) / s` and `score = -eps_hat / s`
//! ([`crate::model::ScoreFn::clipped`]), as diffusers' DDIM does after clipping; DDIM,
//! DPM-Solver++, ancestral steps, DPS and the ODE samplers all see one consistent clipped
//! model, and the clipping runs once per evaluation.

use crate::error::ConfigError;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Imagen's percentile `p` (Saharia et al. 2022 use 99.5%).
pub const DEFAULT_PERCENTILE: f64 = 0.995;

/// Which clipping a sampler applies (the sampler option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = Clip::unknown)]
pub enum Clip {
    /// Static clipping when the model has a data range (image models), none otherwise
    /// (mixtures, 2-D toys).
    #[default]
    Auto,
    /// No clipping.
    Off,
    /// Clip to the data range.
    Static,
    /// Dynamic thresholding at the sampler's `clip_percentile`.
    Dynamic,
}

impl Clip {
    /// Every choice.
    pub const ALL: [Clip; 4] = [Self::Auto, Self::Off, Self::Static, Self::Dynamic];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        self.into()
    }

    fn unknown(s: &str) -> String {
        crate::names::unknown("clipping", s, <Self as strum::VariantNames>::VARIANTS)
    }

    /// The clipping for a model whose data range is `range` (`None`: no range, a model of
    /// unbounded data); `None` when nothing is clipped.
    ///
    /// # Errors
    /// `Static` or `Dynamic` without a range (validated with its field by
    /// [`crate::sampler::SamplerConfig::validate`]).
    pub fn resolve(self, range: Option<[f64; 2]>, percentile: f64) -> Result<Option<X0Clip>, ConfigError> {
        match (self, range) {
            (Self::Off, _) | (Self::Auto, None) => Ok(None),
            (Self::Auto | Self::Static, Some(range)) => Ok(Some(X0Clip { range, percentile: None })),
            (Self::Dynamic, Some(range)) => Ok(Some(X0Clip { range, percentile: Some(percentile) })),
            (kind, None) => {
                Err(ConfigError::new("clip", "off or auto: clipping needs the data's range, and this model has none (a mixture or 2-D model)", kind))
            }
        }
    }
}

/// A resolved clipping of `x0_hat`: to `range`, statically or by dynamic thresholding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct X0Clip {
    /// The data range `[lo, hi]`.
    pub range: [f64; 2],
    /// Dynamic thresholding's percentile `p` in `(0, 1]`; `None`: static clipping.
    pub percentile: Option<f64>,
}

/// Bisection steps of the percentile: the threshold is found to `2^-40` of the largest value.
const BISECTION_STEPS: usize = 40;

impl X0Clip {
    /// Clips `x0` (`[batch, ...]`; dynamic thresholding per sample).
    pub fn apply<const D: usize>(&self, x0: Tensor<D>) -> Tensor<D> {
        let [lo, hi] = self.range;
        let Some(p) = self.percentile else {
            return x0.clamp(lo, hi);
        };
        let (c, r) = (0.5 * (lo + hi), 0.5 * (hi - lo));
        let dims = x0.dims();
        let b = dims[0];
        let u = x0.sub_scalar(c).div_scalar(r).reshape([b as i32, -1]); // [b, n]
        let n = u.dims()[1];
        let s = percentile_abs(u.clone(), p).clamp_min(1.0).repeat_dim(1, n); // [b, n], one s per row
        let clipped = u.max_pair(s.clone().neg()).min_pair(s.clone()).div(s);
        clipped.mul_scalar(r).add_scalar(c).reshape(dims)
    }
}

/// Per row of `u` (`[b, n]`), the order statistic `|u|_(ceil(p n))` (see the module docs),
/// `[b, 1]`, by bisection on the device.
fn percentile_abs(u: Tensor<2>, p: f64) -> Tensor<2> {
    let n = u.dims()[1];
    let a = u.abs();
    // Too low while more than floor(n (1 - p)) values lie above: counts are integers, so the
    // share is compared half a count above that, safe from rounding in the f32 mean.
    let allowed = ((n as f64 * (1.0 - p) + 1e-9).floor() + 0.5) / n as f64;
    let mut lo = a.clone().max_dim(1).zeros_like(); // [b, 1]
    let mut hi = a.clone().max_dim(1); // [b, 1]
    for _ in 0..BISECTION_STEPS {
        let mid = (lo.clone() + hi.clone()).div_scalar(2.0);
        let share = a.clone().greater(mid.clone().repeat_dim(1, n)).float().mean_dim(1); // [b, 1]
        let too_low = share.greater_elem(allowed);
        lo = lo.mask_where(too_low.clone(), mid.clone());
        hi = mid.mask_where(too_low, hi);
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    fn tensor(v: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, shape), &device())
    }

    /// Dynamic thresholding against a hand computation: 10 values a row, `p = 0.8`, so `s` is
    /// the 8th smallest `|x|`.
    #[test]
    fn dynamic_thresholding_matches_a_hand_computation() {
        // Row 0: |x| sorted 0.1 0.2 0.3 0.5 0.8 1.0 1.5 2.0 3.0 4.0 -> s = 2.0: x / 2 after
        // clipping to [-2, 2]. Row 1: all inside [-1, 1] -> s = max(0.7, 1) = 1, unchanged.
        let row0 = [0.1f32, -0.2, 0.3, 0.5, -0.8, 1.0, 1.5, -2.0, 3.0, -4.0];
        let row1 = [0.1f32, -0.2, 0.3, 0.5, -0.6, 0.7, 0.0, 0.2, -0.3, 0.4];
        let x = tensor(row0.iter().chain(&row1).copied().collect(), [2, 10]);
        let clip = X0Clip { range: [-1.0, 1.0], percentile: Some(0.8) };
        let got = to_vec(clip.apply(x));
        let expect0: Vec<f32> = row0.iter().map(|v| v.clamp(-2.0, 2.0) / 2.0).collect();
        for (g, e) in got.iter().zip(expect0.iter().chain(&row1)) {
            assert!((g - e).abs() < 1e-5, "{got:?}");
        }
    }

    /// On another range the rule acts on `(x - c) / r`: `[0, 4]` has `c = 2`, `r = 2`.
    #[test]
    fn dynamic_thresholding_on_another_range_and_static_clipping() {
        let x = tensor(vec![2.0, 2.2, 1.8, 2.0, 2.4, 1.6, 10.0, -6.0], [1, 8]);
        // u = 0, .1, -.1, 0, .2, -.2, 4, -4: p = 0.75 -> 6th smallest |u| = 0.2 -> s = 1.
        let got = to_vec(X0Clip { range: [0.0, 4.0], percentile: Some(0.75) }.apply(x.clone()));
        let expect = [2.0f32, 2.2, 1.8, 2.0, 2.4, 1.6, 4.0, 0.0];
        assert!(got.iter().zip(expect).all(|(g, e)| (g - e).abs() < 1e-5), "{got:?}");
        // p = 1: s = 4, so u / 4 -> x = 2 + 2 u / 4.
        let got = to_vec(X0Clip { range: [0.0, 4.0], percentile: Some(1.0) }.apply(x.clone()));
        let expect = [2.0f32, 2.05, 1.95, 2.0, 2.1, 1.9, 4.0, 0.0];
        assert!(got.iter().zip(expect).all(|(g, e)| (g - e).abs() < 1e-5), "{got:?}");
        assert_eq!(to_vec(X0Clip { range: [0.0, 4.0], percentile: None }.apply(x)), vec![2.0, 2.2, 1.8, 2.0, 2.4, 1.6, 4.0, 0.0]);
    }

    /// Samples of the 2-D test mixture (within about [-3, 3]) with a clipping range of
    /// [-10, 10] are those without clipping, statically and dynamically (all `|u| < 1`, so
    /// `s = 1`), for the samplers that form `x0_hat`; a tight range changes them, and DDIM's
    /// last step then lands inside it.
    #[test]
    fn clipping_changes_nothing_inside_the_range() {
        use crate::eval::sample_model;
        use crate::sampler::{SamplerConfig, SamplerKind};
        let dev = device();
        let file = crate::mixture::MixtureFile {
            sde: crate::sde::SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 },
            mixture: crate::mixture::GaussianMixture::new(vec![0.3, 0.7], vec![vec![-1.0, 0.5], vec![1.0, -0.5]], vec![0.3, 0.4]).unwrap(),
        };
        let model = file.model(&dev).unwrap();
        let sde = file.sde.build().unwrap();
        for kind in [SamplerKind::Ancestral, SamplerKind::Ddim, SamplerKind::DpmSolver2m] {
            let run = |clip: Clip, range: Option<[f64; 2]>| {
                let config = SamplerConfig { clip, data_range: range, ..SamplerConfig::new(kind, 20) };
                config.validate().unwrap();
                sample_model(&model, sde.as_ref(), &config, [256, 2], 3, &dev).data
            };
            let off = run(Clip::Off, Some([-10.0, 10.0]));
            for clip in [Clip::Static, Clip::Dynamic, Clip::Auto] {
                let got = run(clip, Some([-10.0, 10.0]));
                let worst = got.iter().zip(&off).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(worst < 1e-4, "{kind} {clip}: moved by {worst}");
            }
            assert_eq!(run(Clip::Auto, None), off, "{kind}: auto without a range is off");
            let tight = run(Clip::Static, Some([-0.5, 0.5]));
            assert!(tight.iter().zip(&off).any(|(a, b)| (a - b).abs() > 0.1), "{kind}: a tight range changed nothing");
            if kind == SamplerKind::Ddim {
                assert!(tight.iter().all(|v| v.abs() <= 0.5 + 1e-6), "ddim's last step is the clipped x0_hat");
            }
        }
    }

    #[test]
    fn resolve_follows_the_data_range() {
        assert_eq!(Clip::Auto.resolve(None, 0.995).unwrap(), None);
        assert_eq!(Clip::Auto.resolve(Some([-1.0, 1.0]), 0.995).unwrap(), Some(X0Clip { range: [-1.0, 1.0], percentile: None }));
        assert_eq!(Clip::Dynamic.resolve(Some([-1.0, 1.0]), 0.9).unwrap().unwrap().percentile, Some(0.9));
        assert_eq!(Clip::Off.resolve(Some([-1.0, 1.0]), 0.9).unwrap(), None);
        assert!(Clip::Static.resolve(None, 0.9).unwrap_err().to_string().contains("needs the data's range"));
        crate::names::serde_agrees(&Clip::ALL);
    }
}
