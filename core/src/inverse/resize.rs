//! Super-resolution: downsampling by an integer factor `k`, as separable linear maps
//! `X -> L X R^T` on each image plane.
//!
//! - Average pooling over `k x k` blocks: `L = R = P` with `P_ij = 1/k` for `j` in block `i`.
//!   `P P^T = I / k`, so `A A^T = I / k^2` and the pseudo-inverse is `k^2 A^T` (nearest-neighbour
//!   upsampling): [`LinearOperator::pinv_scale`] = `1 / k^2`.
//! - Bicubic downsampling as MATLAB's `imresize` does it (the operator of the super-resolution
//!   literature and of DPS's code): Keys' cubic convolution kernel with `a = -1/2` (Keys, "Cubic
//!   convolution interpolation for digital image processing", 1981), stretched by `k` for antialiasing, `w_ij ∝ cubic((u_i - j) / k) / k` with the
//!   output pixel's centre `u_i = (i + 1/2) k - 1/2` in input coordinates, each row normalised
//!   to sum 1, symmetric (edge-repeating) boundary. The same [`cubic_resize_matrix`] with
//!   scale > 1 is bicubic *up*sampling, the super-resolution baseline.

use super::{LinearOperator, Matrix, Operator, separable};
use burn::tensor::Tensor;

/// Keys' cubic convolution kernel with `a = -1/2` (Keys 1981; MATLAB's `cubic`).
pub fn keys_cubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x <= 1.0 {
        (a + 2.0) * x.powi(3) - (a + 3.0) * x * x + 1.0
    } else if x < 2.0 {
        a * x.powi(3) - 5.0 * a * x * x + 8.0 * a * x - 4.0 * a
    } else {
        0.0
    }
}

/// The `[n_out, n_in]` matrix of 1-D bicubic resampling from `n_in` to `n_out` samples
/// (MATLAB `imresize(..., 'bicubic')` with antialiasing when shrinking; see the module docs).
pub fn cubic_resize_matrix(n_in: usize, n_out: usize) -> Matrix {
    let scale = n_out as f64 / n_in as f64;
    // Shrinking stretches the kernel by 1 / scale (antialiasing).
    let stretch = if scale < 1.0 { 1.0 / scale } else { 1.0 };
    let half_width = 2.0 * stretch;
    let mut data = vec![0.0; n_out * n_in];
    for i in 0..n_out {
        let u = (i as f64 + 0.5) / scale - 0.5;
        let first = (u - half_width).floor() as i64;
        let last = (u + half_width).ceil() as i64;
        let taps: Vec<(usize, f64)> = (first..=last)
            .map(|j| {
                // Symmetric boundary with the edge repeated: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
                let period = 2 * n_in as i64;
                let m = j.rem_euclid(period);
                let src = if m < n_in as i64 { m } else { period - 1 - m };
                (src as usize, keys_cubic((u - j as f64) / stretch) / stretch)
            })
            .collect();
        let total: f64 = taps.iter().map(|(_, w)| w).sum();
        for (src, w) in taps {
            data[i * n_in + src] += w / total;
        }
    }
    Matrix { rows: n_out, cols: n_in, data }
}

/// The `[n / k, n]` block-averaging matrix.
fn pool_matrix(n: usize, k: usize) -> Matrix {
    let mut data = vec![0.0; (n / k) * n];
    for i in 0..n / k {
        for j in i * k..(i + 1) * k {
            data[i * n + j] = 1.0 / k as f64;
        }
    }
    Matrix { rows: n / k, cols: n, data }
}

/// A separable downsampling operator `[n, c, h, w] -> [n, c, h / k, w / k]`.
#[derive(Debug, Clone)]
pub struct Resample {
    left: Matrix,
    right: Matrix,
    pinv_scale: Option<f64>,
    name: String,
}

/// Average pooling by `k` (see the module docs).
pub struct AvgPool;

/// Bicubic (MATLAB `imresize`) downsampling by `k` (see the module docs).
pub struct Bicubic;

/// Checks that `k` divides both sides.
fn check_factor(k: usize, [h, w]: [usize; 2]) -> Result<(), String> {
    if k < 2 || !h.is_multiple_of(k) || !w.is_multiple_of(k) {
        return Err(format!("super-resolution factor: expected a factor >= 2 dividing the image size {h}x{w}, found {k}"));
    }
    Ok(())
}

impl AvgPool {
    /// Average pooling of `h x w` images by `k`.
    ///
    /// # Errors
    /// When `k < 2` or `k` does not divide `h` and `w`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(k: usize, [h, w]: [usize; 2]) -> Result<Resample, String> {
        check_factor(k, [h, w])?;
        let s = 1.0 / (k * k) as f64;
        Ok(Resample { left: pool_matrix(h, k), right: pool_matrix(w, k), pinv_scale: Some(s), name: format!("average pooling x{k}") })
    }
}

impl Bicubic {
    /// Bicubic downsampling of `h x w` images by `k`.
    ///
    /// # Errors
    /// When `k < 2` or `k` does not divide `h` and `w`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(k: usize, [h, w]: [usize; 2]) -> Result<Resample, String> {
        check_factor(k, [h, w])?;
        Ok(Resample { left: cubic_resize_matrix(h, h / k), right: cubic_resize_matrix(w, w / k), pinv_scale: None, name: format!("bicubic x{k}") })
    }
}

impl Operator<4> for Resample {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        separable(x, &self.left, &self.right)
    }
    fn linear(&self) -> Option<&dyn LinearOperator<4>> {
        Some(self)
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl LinearOperator<4> for Resample {
    fn adjoint(&self, y: Tensor<4>) -> Tensor<4> {
        separable(y, &self.left.t(), &self.right.t())
    }
    fn pinv_scale(&self) -> Option<f64> {
        self.pinv_scale
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    #[test]
    fn average_pooling_is_the_block_mean() {
        let dev = device();
        let (h, w, k) = (4, 6, 2);
        let x: Vec<f32> = (0..2 * h * w).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let op = AvgPool::new(k, [h, w]).unwrap();
        let y = to_vec(op.forward(Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 2, h, w]), &dev)));
        assert_eq!(y.len(), 2 * (h / k) * (w / k));
        for c in 0..2 {
            for i in 0..h / k {
                for j in 0..w / k {
                    let mut s = 0.0;
                    for a in 0..k {
                        for b in 0..k {
                            s += x[c * h * w + (i * k + a) * w + j * k + b];
                        }
                    }
                    let got = y[c * (h / k) * (w / k) + i * (w / k) + j];
                    assert!((got - s / 4.0).abs() < 1e-6, "{got} vs {}", s / 4.0);
                }
            }
        }
    }

    /// Keys' kernel interpolates (1 at 0, 0 at the other integers), its integer translates sum to
    /// 1, and the antialiased rows of MATLAB's shrink sum to 1 with the known x2 taps: for a
    /// factor 2 the stretched kernel at distances 0.5, 1.5, 2.5, 3.5 (divided by 2) gives
    /// `cubic(0.25), cubic(0.75), cubic(1.25), cubic(1.75)` on each side.
    #[test]
    fn cubic_kernel_and_matrices() {
        assert_eq!(keys_cubic(0.0), 1.0);
        for k in [1.0, 2.0, 3.0] {
            assert_eq!(keys_cubic(k), 0.0);
        }
        for u in [0.1, 0.37, 0.5] {
            let s: f64 = (-3..=3).map(|j| keys_cubic(u - j as f64)).sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
        let m = cubic_resize_matrix(16, 8);
        for row in m.data.chunks_exact(16) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        // Row 4 (centre u = 8.5), far from the edges: taps at 5..=12.
        let taps = [1.75, 1.25, 0.75, 0.25, 0.25, 0.75, 1.25, 1.75].map(keys_cubic);
        let total: f64 = taps.iter().sum();
        for (j, t) in (5..=12).zip(taps) {
            assert!((m.data[4 * 16 + j] - t / total).abs() < 1e-12, "tap {j}");
        }
        // Upsampling reproduces a linear ramp away from the edges (cubic convolution is exact
        // on polynomials of degree <= 2 for a = -1/2).
        let up = cubic_resize_matrix(8, 16);
        let ramp: Vec<f64> = (0..8).map(|i| i as f64).collect();
        let out = up.apply(&ramp);
        for (i, v) in out.iter().enumerate().take(13).skip(3) {
            let u = (i as f64 + 0.5) / 2.0 - 0.5;
            assert!((v - u).abs() < 1e-12, "{i}: {v} vs {u}");
        }
    }

    #[test]
    fn adjoints_and_pseudo_inverse() {
        for k in [2, 4] {
            let pool = AvgPool::new(k, [8, 12]).unwrap();
            check_adjoint(&pool, [2, 3, 8, 12], k as u64);
            check_pinv_scale(&pool, [2, 3, 8, 12]);
            assert_eq!(pool.pinv_scale(), Some(1.0 / (k * k) as f64));
            let cubic = Bicubic::new(k, [8, 12]).unwrap();
            check_adjoint(&cubic, [2, 3, 8, 12], 10 + k as u64);
            assert_eq!(cubic.pinv_scale(), None);
        }
        assert!(AvgPool::new(3, [28, 28]).unwrap_err().contains("28x28"));
        assert!(Bicubic::new(1, [28, 28]).is_err());
    }
}
