//! Inpainting: `A x = M x` with a binary mask `M` (1 = observed, 0 = missing).
//!
//! The measurement keeps the input's shape with the missing entries set to 0, so `A` is the
//! diagonal projection `diag(M)`: self-adjoint, idempotent, and its own pseudo-inverse
//! (`A A^T A = A`, [`LinearOperator::pinv_scale`] = 1). Masks are a box, random pixels drawn
//! from a seed, or given values (a hand-drawn mask), thresholded at 1/2.
//!
//! # Shapes
//! The mask is `[1 or batch, 1 or channels, ...]` and broadcasts against `x`: one mask per
//! pixel shared by the channels and the batch, or one per sample.

use super::{LinearOperator, Operator};
use crate::noise::NoiseSource;
use burn::tensor::{Device, Tensor, TensorData};

/// A binary mask operator.
#[derive(Debug, Clone)]
pub struct Mask<const D: usize> {
    mask: Tensor<D>,
    observed: f64,
}

impl<const D: usize> Mask<D> {
    /// From a tensor of weights: entries `>= 1/2` are observed.
    pub fn new(weights: Tensor<D>) -> Self {
        let mask = weights.greater_equal_elem(0.5).float();
        let n = mask.dims().iter().product::<usize>().max(1);
        let observed = mask.clone().sum().into_scalar::<f32>() as f64 / n as f64;
        Self { mask, observed }
    }

    /// From host weights of `shape` (row-major; `>= 1/2` observed). The observed fraction is
    /// counted on the host, so nothing is read back from the device (WebGPU in the browser
    /// forbids synchronous reads, which [`new`](Self::new) makes).
    ///
    /// # Errors
    /// When `values` does not hold one weight per entry of `shape` (field `mask`).
    pub fn from_values(values: &[f32], shape: [usize; D], device: &Device) -> Result<Self, crate::error::ConfigError> {
        let n: usize = shape.iter().product();
        if values.len() != n {
            return Err(crate::error::ConfigError::new("mask", format!("{n} values (shape {shape:?})"), values.len()));
        }
        let observed = values.iter().filter(|&&v| v >= 0.5).count() as f64 / n.max(1) as f64;
        let mask = Tensor::<D>::from_data(TensorData::new(values.to_vec(), shape), device).greater_equal_elem(0.5).float();
        Ok(Self { mask, observed })
    }

    /// The binary mask tensor.
    pub fn mask(&self) -> &Tensor<D> {
        &self.mask
    }

    /// Fraction of the mask's entries that are observed.
    pub fn observed_fraction(&self) -> f64 {
        self.observed
    }
}

impl Mask<4> {
    /// Every pixel observed but the box `rows top..top + height`, `cols left..left + width`
    /// (clipped to the image), for `height x width` images.
    pub fn boxed([h, w]: [usize; 2], [top, left, height, width]: [usize; 4], device: &Device) -> Self {
        let mut m = vec![1f32; h * w];
        for r in top.min(h)..(top + height).min(h) {
            for c in left.min(w)..(left + width).min(w) {
                m[r * w + c] = 0.0;
            }
        }
        Self::from_pixels(&m, [h, w], device)
    }

    /// Each pixel missing with probability `missing`, independently, from `seed`.
    pub fn random([h, w]: [usize; 2], missing: f64, seed: u64, device: &Device) -> Self {
        let mut noise = NoiseSource::new(seed);
        let m: Vec<f32> = (0..h * w).map(|_| if noise.uniform() < missing { 0.0 } else { 1.0 }).collect();
        Self::from_pixels(&m, [h, w], device)
    }

    /// From `h * w` per-pixel weights (row-major; `>= 1/2` observed), shared by all channels.
    pub fn from_pixels(values: &[f32], [h, w]: [usize; 2], device: &Device) -> Self {
        assert_eq!(values.len(), h * w, "expected {h}x{w} mask values, found {}", values.len());
        Self::new(Tensor::from_data(TensorData::new(values.to_vec(), [1, 1, h, w]), device))
    }
}

impl<const D: usize> Operator<D> for Mask<D> {
    fn forward(&self, x: Tensor<D>) -> Tensor<D> {
        x * self.mask.clone()
    }
    fn linear(&self) -> Option<&dyn LinearOperator<D>> {
        Some(self)
    }
    fn describe(&self) -> String {
        format!("mask ({:.0}% observed)", 100.0 * self.observed)
    }
}

impl<const D: usize> LinearOperator<D> for Mask<D> {
    fn adjoint(&self, y: Tensor<D>) -> Tensor<D> {
        y * self.mask.clone()
    }
    fn pinv_scale(&self) -> Option<f64> {
        Some(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::test_util::*;

    #[test]
    fn box_zeroes_exactly_the_box() {
        let dev = device();
        let op = Mask::boxed([4, 5], [1, 2, 2, 10], &dev);
        let x: Vec<f32> = (0..2 * 20).map(|i| i as f32 + 1.0).collect();
        let y = to_vec(op.forward(Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 2, 4, 5]), &dev)));
        for (i, (a, b)) in x.iter().zip(&y).enumerate() {
            let (r, c) = ((i % 20) / 5, i % 5);
            let missing = (1..3).contains(&r) && c >= 2;
            assert_eq!(*b, if missing { 0.0 } else { *a }, "pixel {i}");
        }
        assert!((op.observed_fraction() - 14.0 / 20.0).abs() < 1e-12);
    }

    #[test]
    fn random_mask_is_seeded_and_has_the_asked_fraction() {
        let dev = device();
        let a = Mask::random([28, 28], 0.7, 3, &dev);
        let b = Mask::random([28, 28], 0.7, 3, &dev);
        assert_eq!(to_vec(a.mask().clone()), to_vec(b.mask().clone()));
        assert_ne!(to_vec(a.mask().clone()), to_vec(Mask::random([28, 28], 0.7, 4, &dev).mask().clone()));
        // Binomial(784, 0.3): std sqrt(784 * 0.21) / 784 = 0.0163; 4 std.
        assert!((a.observed_fraction() - 0.3).abs() < 0.066, "{}", a.observed_fraction());
    }

    #[test]
    fn adjoint_and_pseudo_inverse() {
        let dev = device();
        for op in [Mask::boxed([6, 5], [1, 1, 3, 2], &dev), Mask::random([6, 5], 0.5, 1, &dev)] {
            check_adjoint(&op, [3, 2, 6, 5], 1);
            check_pinv_scale(&op, [3, 2, 6, 5]);
        }
        let m2 = Mask::new(Tensor::<2>::from_data(TensorData::new(vec![1f32, 0.0, 0.7], [1, 3]), &dev));
        assert_eq!(to_vec(m2.mask().clone()), vec![1.0, 0.0, 1.0]);
        check_adjoint(&m2, [4, 3], 2);
    }
}
