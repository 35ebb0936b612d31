//! Deblurring: `A x = k ⋆ x`, every channel correlated with a normalised `K x K` kernel (`K`
//! odd) with zero padding of `K / 2` ("same" size).
//!
//! The adjoint of a zero-padded "same" correlation with `k` is the zero-padded correlation
//! with the kernel rotated by 180 degrees, `k'(i, j) = k(K-1-i, K-1-j)`.
//!
//! Kernels:
//! - Gaussian, `k(i, j) ∝ exp(-((i - c)^2 + (j - c)^2) / (2 sigma^2))`, `c = (K - 1) / 2`;
//! - motion blur ([`motion_kernel`]): a camera-shake trajectory after Boracchi & Foi 2012
//!   ("Modeling the performance of image restoration from motion blur", IEEE TIP),
//!   simplified: a unit-speed random walk whose direction turns by Gaussian accelerations of
//!   standard deviation `intensity` (0: a straight line), scaled to fit the kernel, centred and
//!   rasterised by bilinear splatting, normalised to sum 1. DPS's experiments draw their motion
//!   kernels from the same family (the `motionblur` package, `intensity = 0.5`).

use super::{LinearOperator, Operator};
use crate::noise::NoiseSource;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

/// A blur by correlation with a `K x K` kernel (see the module docs).
#[derive(Debug, Clone)]
pub struct Blur {
    size: usize,
    kernel: Vec<f64>,
    name: String,
}

impl Blur {
    /// A blur with the given row-major `size x size` kernel (normalised to sum 1).
    ///
    /// # Errors
    /// When `size` is even or zero, the kernel has another length, or its sum is not positive.
    pub fn new(kernel: Vec<f64>, size: usize, name: &str) -> Result<Self, String> {
        if size == 0 || size.is_multiple_of(2) {
            return Err(format!("blur kernel size: expected an odd size, found {size}"));
        }
        if kernel.len() != size * size {
            return Err(format!("blur kernel: expected {size}x{size} = {} values, found {}", size * size, kernel.len()));
        }
        let total: f64 = kernel.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return Err(format!("blur kernel: expected a positive sum, found {total}"));
        }
        Ok(Self { size, kernel: kernel.iter().map(|v| v / total).collect(), name: name.to_string() })
    }

    /// A Gaussian blur of standard deviation `sigma` pixels on a `size x size` support.
    ///
    /// # Errors
    /// When `size` is even or `sigma` not positive.
    pub fn gaussian(size: usize, sigma: f64) -> Result<Self, String> {
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(format!("blur sigma: expected a positive number, found {sigma}"));
        }
        let c = (size as f64 - 1.0) / 2.0;
        let kernel = (0..size * size)
            .map(|k| {
                let (i, j) = ((k / size) as f64 - c, (k % size) as f64 - c);
                (-(i * i + j * j) / (2.0 * sigma * sigma)).exp()
            })
            .collect();
        Self::new(kernel, size, &format!("Gaussian blur {size}x{size}, sigma {sigma}"))
    }

    /// A motion blur from [`motion_kernel`].
    ///
    /// # Errors
    /// When `size` is even or `intensity` negative.
    pub fn motion(size: usize, intensity: f64, seed: u64) -> Result<Self, String> {
        if !(intensity.is_finite() && intensity >= 0.0) {
            return Err(format!("motion blur intensity: expected a number >= 0, found {intensity}"));
        }
        if size == 0 || size.is_multiple_of(2) {
            return Err(format!("blur kernel size: expected an odd size, found {size}"));
        }
        Self::new(motion_kernel(size, intensity, seed), size, &format!("motion blur {size}x{size}, intensity {intensity}, seed {seed}"))
    }

    /// The normalised kernel, row-major `size x size`.
    pub fn kernel(&self) -> &[f64] {
        &self.kernel
    }

    /// The kernel's side.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Zero-padded "same" correlation of every plane with `kernel`.
    fn correlate(&self, x: Tensor<4>, kernel: Vec<f64>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let k = self.size;
        let weight: Vec<f32> = kernel.into_iter().map(|v| v as f32).collect();
        let weight = Tensor::<4>::from_data(TensorData::new(weight, [1, 1, k, k]), &x.device());
        let options = ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1);
        conv2d(x.reshape([n * c, 1, h, w]), weight, None, options).reshape([n, c, h, w])
    }
}

impl Operator<4> for Blur {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.correlate(x, self.kernel.clone())
    }
    fn linear(&self) -> Option<&dyn LinearOperator<4>> {
        Some(self)
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl LinearOperator<4> for Blur {
    fn adjoint(&self, y: Tensor<4>) -> Tensor<4> {
        self.correlate(y, self.kernel.iter().rev().copied().collect())
    }
}

/// A random motion-blur kernel, row-major `size x size`, summing to 1 (see the module docs).
pub fn motion_kernel(size: usize, intensity: f64, seed: u64) -> Vec<f64> {
    let mut noise = NoiseSource::new(seed);
    let steps = 8 * size;
    let angle = 2.0 * std::f64::consts::PI * noise.uniform();
    let (mut vx, mut vy) = (angle.cos(), angle.sin());
    let (mut px, mut py) = (0.0f64, 0.0f64);
    let mut path = vec![(px, py)];
    for _ in 0..steps {
        vx += intensity * noise.normal_f64();
        vy += intensity * noise.normal_f64();
        let speed = (vx * vx + vy * vy).sqrt().max(1e-12);
        (vx, vy) = (vx / speed, vy / speed);
        px += vx;
        py += vy;
        path.push((px, py));
    }
    let (min_x, max_x) = path.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (min_y, max_y) = path.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    // Fit the longer side into [0, size - 1], centred.
    let extent = (max_x - min_x).max(max_y - min_y).max(1e-12);
    let scale = (size as f64 - 1.0) / extent;
    let c = (size as f64 - 1.0) / 2.0;
    let (cx, cy) = ((min_x + max_x) / 2.0, (min_y + max_y) / 2.0);
    let mut kernel = vec![0.0; size * size];
    for (x, y) in path {
        let (u, v) = (c + (x - cx) * scale, c + (y - cy) * scale);
        let (u0, v0) = (u.floor().clamp(0.0, size as f64 - 1.0), v.floor().clamp(0.0, size as f64 - 1.0));
        let (fu, fv) = ((u - u0).clamp(0.0, 1.0), (v - v0).clamp(0.0, 1.0));
        for (du, wu) in [(0, 1.0 - fu), (1, fu)] {
            for (dv, wv) in [(0, 1.0 - fv), (1, fv)] {
                let (col, row) = ((u0 as usize + du).min(size - 1), (v0 as usize + dv).min(size - 1));
                kernel[row * size + col] += wu * wv;
            }
        }
    }
    let total: f64 = kernel.iter().sum();
    kernel.iter().map(|k| k / total).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::test_util::*;

    /// A 3x3 kernel on a 4x4 image against the correlation sum written out, with zero padding.
    #[test]
    fn blur_is_the_zero_padded_correlation() {
        let dev = device();
        let kernel = vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let op = Blur::new(kernel.clone(), 3, "test").unwrap();
        let kn: Vec<f64> = kernel.iter().map(|v| v / 36.0).collect();
        let x: Vec<f32> = (0..16).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
        let y = to_vec(op.forward(Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 1, 4, 4]), &dev)));
        for r in 0..4i64 {
            for c in 0..4i64 {
                let mut e = 0.0;
                for i in 0..3i64 {
                    for j in 0..3i64 {
                        let (rr, cc) = (r + i - 1, c + j - 1);
                        if (0..4).contains(&rr) && (0..4).contains(&cc) {
                            e += kn[(i * 3 + j) as usize] * x[(rr * 4 + cc) as usize] as f64;
                        }
                    }
                }
                let got = y[(r * 4 + c) as usize] as f64;
                assert!((got - e).abs() < 1e-5, "({r}, {c}): {got} vs {e}");
            }
        }
    }

    #[test]
    fn kernels_are_normalised_and_gaussian_is_symmetric() {
        let g = Blur::gaussian(9, 1.5).unwrap();
        assert!((g.kernel().iter().sum::<f64>() - 1.0).abs() < 1e-12);
        for i in 0..9 {
            for j in 0..9 {
                assert!((g.kernel()[i * 9 + j] - g.kernel()[j * 9 + i]).abs() < 1e-15);
                assert!((g.kernel()[i * 9 + j] - g.kernel()[(8 - i) * 9 + (8 - j)]).abs() < 1e-15);
            }
        }
        // Ratio of the centre to its neighbour: exp(1 / (2 sigma^2)).
        assert!((g.kernel()[40] / g.kernel()[41] - (1.0f64 / 4.5).exp()).abs() < 1e-12);
        let m = motion_kernel(9, 0.5, 3);
        assert!((m.iter().sum::<f64>() - 1.0).abs() < 1e-12 && m.iter().all(|&v| v >= 0.0));
        assert_eq!(m, motion_kernel(9, 0.5, 3));
        assert_ne!(m, motion_kernel(9, 0.5, 4));
        // Intensity 0 is a straight line through the centre: the kernel is point-symmetric.
        let line = motion_kernel(9, 0.0, 5);
        for k in 0..81 {
            assert!((line[k] - line[80 - k]).abs() < 1e-9, "{k}");
        }
        assert!(Blur::gaussian(4, 1.0).is_err() && Blur::gaussian(5, 0.0).is_err());
    }

    #[test]
    fn adjoints() {
        check_adjoint(&Blur::gaussian(5, 1.0).unwrap(), [2, 3, 7, 6], 1);
        check_adjoint(&Blur::motion(7, 0.5, 2).unwrap(), [2, 1, 9, 8], 2);
        // An asymmetric kernel, where a wrong flip would show.
        check_adjoint(&Blur::new((0..9).map(|v| v as f64).collect(), 3, "ramp").unwrap(), [1, 2, 5, 5], 3);
    }
}
