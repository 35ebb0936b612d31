//! Simple baselines the diffusion methods are compared with.
//!
//! - The masked input: `A^T y`, the observed pixels with the missing ones at 0 (mid-grey).
//! - Bicubic upsampling of the low-resolution image ([`bicubic_upsample`], MATLAB `imresize`'s
//!   kernel, [`super::cubic_resize_matrix`]).
//! - Wiener deconvolution ([`wiener`]): the linear MMSE estimate for a white signal prior of
//!   variance `sigma_x^2` and white noise `sigma_y^2`, `x = (A^T A + lambda I)^{-1} A^T y` with
//!   `lambda = sigma_y^2 / sigma_x^2` (Wiener 1949; for a circulant `A` it is the familiar
//!   `conj(K) Y / (|K|^2 + lambda)` in Fourier space). Solved by conjugate gradients on the
//!   operator itself (Hestenes & Stiefel 1952), so the blur's zero-padded boundary is exact.
//!   `sigma_x = 1` (the data's `[-1, 1]` scale); noise-free measurements use `sigma_y = 0.01`.
//! - Colorization: the grey level in every channel, `A^+ y`.

use super::{LinearOperator, Operator, per_sample_sum};
use crate::param::Coef;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Which baseline a task is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineKind {
    /// `A^T y`: the observed pixels, 0 elsewhere.
    MaskedInput,
    /// Bicubic upsampling by the task's factor.
    Bicubic,
    /// Wiener deconvolution.
    Wiener,
    /// The grey level copied to every channel (`A^+ y`).
    Gray,
}

impl BaselineKind {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::MaskedInput => "masked input",
            Self::Bicubic => "bicubic",
            Self::Wiener => "wiener",
            Self::Gray => "grey input",
        }
    }
}

/// The noise level below which [`wiener`] is regularised as if `sigma_y` were this.
pub const WIENER_MIN_SIGMA: f64 = 0.01;

/// Conjugate-gradient iterations of [`baseline`]'s Wiener deconvolution.
pub const WIENER_ITERATIONS: usize = 200;

/// The baseline reconstruction of `kind` from the measurement `y` of `op` with noise standard
/// deviation `sigma_y`; `factor` is the super-resolution factor.
///
/// # Errors
/// When `op` is not linear.
pub fn baseline(kind: BaselineKind, op: &dyn Operator<4>, y: Tensor<4>, sigma_y: f64, factor: usize) -> Result<Tensor<4>, String> {
    let lin = op.linear().ok_or_else(|| format!("baseline {}: expected a linear operator, found {}", kind.name(), op.describe()))?;
    Ok(match kind {
        BaselineKind::MaskedInput => lin.adjoint(y),
        BaselineKind::Bicubic => bicubic_upsample(y, factor),
        BaselineKind::Wiener => wiener(lin, y, sigma_y.max(WIENER_MIN_SIGMA).powi(2), WIENER_ITERATIONS),
        BaselineKind::Gray => super::pseudo_inverse(lin, y).ok_or_else(|| format!("grey input: {} has no simple pseudo-inverse", op.describe()))?,
    })
}

/// Bicubic upsampling of `[n, c, h, w]` to `[n, c, k h, k w]`.
pub fn bicubic_upsample(y: Tensor<4>, k: usize) -> Tensor<4> {
    let [_, _, h, w] = y.dims();
    super::separable(y, &super::cubic_resize_matrix(h, k * h), &super::cubic_resize_matrix(w, k * w))
}

/// Per-sample inner products `<a_i, b_i>`.
fn dots<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Vec<f64> {
    per_sample_sum(a * b).into_data().try_to_vec::<f32>().expect("f32").into_iter().map(f64::from).collect()
}

/// `(A^T A + lambda I)^{-1} A^T y` per sample by at most `iterations` conjugate-gradient steps
/// (stopping when every residual is below `1e-6` of its right-hand side).
pub fn wiener<const D: usize>(op: &dyn LinearOperator<D>, y: Tensor<D>, lambda: f64, iterations: usize) -> Tensor<D> {
    let normal = |v: Tensor<D>| op.adjoint(op.forward(v.clone())) + v.mul_scalar(lambda);
    let rhs = op.adjoint(y);
    let bb = dots(rhs.clone(), rhs.clone());
    let mut x = rhs.zeros_like();
    let mut r = rhs.clone();
    let mut p = r.clone();
    let mut rr = bb.clone();
    for _ in 0..iterations {
        if rr.iter().zip(&bb).all(|(r, b)| *r <= 1e-12 * b) {
            break;
        }
        let ap = normal(p.clone());
        let pap = dots(p.clone(), ap.clone());
        let alpha = Coef::PerSample(rr.iter().zip(&pap).map(|(r, q)| if *q > 0.0 { r / q } else { 0.0 }).collect());
        x = x + alpha.apply(p.clone());
        r = r - alpha.apply(ap);
        let rr_new = dots(r.clone(), r.clone());
        let beta = Coef::PerSample(rr_new.iter().zip(&rr).map(|(n, o)| if *o > 0.0 { n / o } else { 0.0 }).collect());
        p = r.clone() + beta.apply(p);
        rr = rr_new;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::super::{Blur, Dense, Matrix};
    use super::*;
    use crate::noise::NoiseSource;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    /// Against the normal equations solved directly (Cramer's rule on the 2x2 system).
    #[test]
    fn wiener_solves_the_regularised_normal_equations() {
        let dev = device();
        let a = Matrix { rows: 3, cols: 2, data: vec![1.0, 2.0, 0.5, -1.0, 0.0, 3.0] };
        let op = Dense::new(a.clone());
        let y = [0.3, -0.7, 1.1];
        let lambda = 0.1;
        let x = to_vec(wiener(&op, Tensor::<2>::from_data(TensorData::new(y.map(|v| v as f32).to_vec(), [1, 3]), &dev), lambda, 10));
        let col = |j: usize| (0..3).map(|i| a.data[i * 2 + j]).collect::<Vec<f64>>();
        let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(p, q)| p * q).sum::<f64>();
        let (c0, c1) = (col(0), col(1));
        let (m00, m01, m11) = (dot(&c0, &c0) + lambda, dot(&c0, &c1), dot(&c1, &c1) + lambda);
        let (b0, b1) = (dot(&c0, &y), dot(&c1, &y));
        let det = m00 * m11 - m01 * m01;
        let expect = [(b0 * m11 - b1 * m01) / det, (m00 * b1 - m01 * b0) / det];
        for (g, e) in x.iter().zip(expect) {
            assert!((*g as f64 - e).abs() < 1e-5, "{x:?} vs {expect:?}");
        }
    }

    /// Deblurring a noise-free blurred image with a small lambda beats the blurred image itself
    /// by a wide margin (the residual `A x - y` is driven to the regularisation's level).
    #[test]
    fn wiener_deblurs() {
        let dev = device();
        let blur = Blur::gaussian(5, 1.0).unwrap();
        let x = NoiseSource::new(3).normal([2, 1, 12, 12], &dev).clamp(-1.0, 1.0);
        let y = blur.forward(x.clone());
        let est = wiener(&blur, y.clone(), 1e-4, 300);
        let err = |a: Tensor<4>| to_vec((a - x.clone()).square().mean())[0];
        assert!(err(est.clone()) < 0.25 * err(y), "{} vs {}", err(est), err(blur.forward(x.clone())));
    }

    #[test]
    fn bicubic_upsampling_shape_and_constants() {
        let dev = device();
        let y = Tensor::<4>::full([1, 2, 7, 7], 0.3, &dev);
        let up = bicubic_upsample(y, 4);
        assert_eq!(up.dims(), [1, 2, 28, 28]);
        assert!(to_vec(up).iter().all(|v| (v - 0.3).abs() < 1e-6));
    }
}
