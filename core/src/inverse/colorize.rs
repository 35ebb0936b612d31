//! Colorization: `A x = sum_c w_c x_c`, a colour image `[n, 3, h, w]` to its grey levels
//! `[n, 1, h, w]` (Song et al. 2021, appendix I.3, with `w = (1/3, 1/3, 1/3)`; or the ITU-R
//! BT.601 luma weights `(0.299, 0.587, 0.114)`).
//!
//! `A A^T = |w|^2 I`, so the pseudo-inverse is `A^T / |w|^2`: the projection method re-imposes
//! the grey component `w (w . x) / |w|^2` of each pixel and leaves the two chroma directions
//! orthogonal to `w` to the prior.

use super::{LinearOperator, Operator};
use burn::tensor::{Tensor, TensorData};

/// The weighted channel sum (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grayscale {
    /// One weight per channel.
    pub weights: [f64; 3],
}

impl Grayscale {
    /// The channel mean, `w = (1/3, 1/3, 1/3)`.
    pub const MEAN: Grayscale = Grayscale { weights: [1.0 / 3.0; 3] };
    /// ITU-R BT.601 luma, `w = (0.299, 0.587, 0.114)`.
    pub const LUMA: Grayscale = Grayscale { weights: [0.299, 0.587, 0.114] };

    fn w(&self, device: &burn::tensor::Device) -> Tensor<4> {
        let w: Vec<f32> = self.weights.iter().map(|&v| v as f32).collect();
        Tensor::from_data(TensorData::new(w, [1, 3, 1, 1]), device)
    }
}

impl Operator<4> for Grayscale {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, c, _, _] = x.dims();
        assert_eq!(c, 3, "colorization: expected 3-channel images, found {c} channels");
        let w = self.w(&x.device());
        (x * w).sum_dim(1) // [n, 1, h, w]
    }
    fn linear(&self) -> Option<&dyn LinearOperator<4>> {
        Some(self)
    }
    fn describe(&self) -> String {
        format!("grey levels with weights {:?}", self.weights)
    }
}

impl LinearOperator<4> for Grayscale {
    fn adjoint(&self, y: Tensor<4>) -> Tensor<4> {
        let w = self.w(&y.device());
        y * w // [n, 3, h, w]
    }
    fn pinv_scale(&self) -> Option<f64> {
        Some(self.weights.iter().map(|w| w * w).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::test_util::*;

    #[test]
    fn gray_is_the_weighted_channel_sum() {
        let dev = device();
        let x = Tensor::<4>::from_data(TensorData::new(vec![0.5f32, -1.0, 1.0, 0.0, 0.2, 0.4], [1, 3, 1, 2]), &dev);
        let y = to_vec(Grayscale::LUMA.forward(x));
        let e = [0.299 * 0.5 + 0.587 * 1.0 + 0.114 * 0.2, 0.299 * -1.0 + 0.587 * 0.0 + 0.114 * 0.4];
        for (g, e) in y.iter().zip(e) {
            assert!((*g as f64 - e).abs() < 1e-6);
        }
    }

    #[test]
    fn adjoint_and_pseudo_inverse() {
        for op in [Grayscale::MEAN, Grayscale::LUMA] {
            check_adjoint(&op, [2, 3, 5, 4], 7);
            check_pinv_scale(&op, [2, 3, 5, 4]);
        }
        assert!((Grayscale::MEAN.pinv_scale().unwrap() - 1.0 / 3.0).abs() < 1e-15);
    }
}
