//! Phase retrieval: `A(x) = |F P u|`, the magnitude of the 2-D discrete Fourier transform of the
//! image's intensity `u = (x + 1) / 2 in [0, 1]`, zero-padded to twice its size (oversampling 2,
//! enough for uniqueness up to the trivial ambiguities in 2-D: Hayes 1982; Fienup 1982).
//!
//! The DFT is unitary, `Y[p, q] = (M N)^{-1/2} sum_{j, k} u[j, k] exp(-2 pi i (p j / M + q k / N))`
//! with `M = 2 h`, `N = 2 w`, written as real matrix products so that burn's autodiff
//! differentiates it: with `C_M[p, j] = cos(2 pi p j / M) / sqrt(M)` and `S_M` the sine (only the
//! first `h` columns: the padding), `Re Y = C u C^T - S u S^T` and `Im Y = -(S u C^T + C u S^T)`.
//! The magnitude is `sqrt(Re^2 + Im^2 + 1e-12)`, the constant keeping the gradient finite at a
//! zero coefficient. Parseval: `sum |Y|^2 = sum u^2`.
//!
//! Phase retrieval is done in intensity space rather than on `x in [-1, 1]` so that the padding
//! is black like the background: the zero-padded image then has the usual ambiguities, which
//! leave `|Y|` unchanged: translations of the content and the 180-degree rotation (the
//! conjugate-reflected image). [`align_phase`] removes them before comparing with the truth.
//! DPS's code applies the operator to `[-1, 1]` images directly; there the padded border and the
//! background differ and the support is the whole frame.

use super::{Matrix, Operator, separable};
use burn::tensor::Tensor;

/// A reconstruction counts as recovered when its PSNR against the ground truth, after
/// [`align_phase`], is at least this (20 dB on `[-1, 1]` images: RMS error 0.2, a tenth of the
/// range, about a 30% relative error on the ink of an MNIST digit).
pub const RECOVERED_PSNR_DB: f64 = 20.0;

/// `|F P (x + 1) / 2|` (see the module docs).
#[derive(Debug, Clone)]
pub struct FourierMagnitude {
    cos_h: Matrix,
    sin_h: Matrix,
    cos_w: Matrix,
    sin_w: Matrix,
}

/// `[2 n, n]` cosine and sine matrices of the unitary DFT of size `2 n`, first `n` columns.
fn dft_matrices(n: usize) -> (Matrix, Matrix) {
    let m = 2 * n;
    let norm = (m as f64).sqrt();
    let mut c = vec![0.0; m * n];
    let mut s = vec![0.0; m * n];
    for p in 0..m {
        for j in 0..n {
            // Reduce p j mod m first: exact angles for large indices.
            let a = 2.0 * std::f64::consts::PI * ((p * j) % m) as f64 / m as f64;
            c[p * n + j] = a.cos() / norm;
            s[p * n + j] = a.sin() / norm;
        }
    }
    (Matrix { rows: m, cols: n, data: c }, Matrix { rows: m, cols: n, data: s })
}

impl FourierMagnitude {
    /// The operator for `h x w` images.
    pub fn new([h, w]: [usize; 2]) -> Self {
        let (cos_h, sin_h) = dft_matrices(h);
        let (cos_w, sin_w) = dft_matrices(w);
        Self { cos_h, sin_h, cos_w, sin_w }
    }

    /// Real and imaginary parts of the padded DFT of `u`, each `[n, c, 2 h, 2 w]`.
    pub fn dft(&self, u: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let re = separable(u.clone(), &self.cos_h, &self.cos_w) - separable(u.clone(), &self.sin_h, &self.sin_w);
        let im = (separable(u.clone(), &self.sin_h, &self.cos_w) + separable(u, &self.cos_h, &self.sin_w)).neg();
        (re, im)
    }
}

impl Operator<4> for FourierMagnitude {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let u = x.add_scalar(1.0).mul_scalar(0.5);
        let (re, im) = self.dft(u);
        (re.square() + im.square()).add_scalar(1e-12).sqrt()
    }
    fn image_valued(&self) -> bool {
        false
    }
    fn describe(&self) -> String {
        "Fourier magnitude, oversampling 2".into()
    }
}

/// `estimate` (`[c, h, w]` row-major, in `[-1, 1]`) moved by the trivial ambiguities of phase
/// retrieval to best match `truth`: every translation of its intensity `(x + 1) / 2` with black
/// fill, with and without the 180-degree rotation, the one of least squared error.
pub fn align_phase(estimate: &[f32], truth: &[f32], [c, h, w]: [usize; 3]) -> Vec<f32> {
    assert_eq!((estimate.len(), truth.len()), (c * h * w, c * h * w), "expected two {c}x{h}x{w} images");
    let u: Vec<f64> = estimate.iter().map(|&v| (v as f64 + 1.0) / 2.0).collect();
    let v: Vec<f64> = truth.iter().map(|&v| (v as f64 + 1.0) / 2.0).collect();
    let at = |flip: bool, dy: i64, dx: i64, ch: usize, i: usize, j: usize| -> f64 {
        let (si, sj) = (i as i64 + dy, j as i64 + dx);
        if si < 0 || sj < 0 || si >= h as i64 || sj >= w as i64 {
            return 0.0;
        }
        let (si, sj) = if flip { (h - 1 - si as usize, w - 1 - sj as usize) } else { (si as usize, sj as usize) };
        u[ch * h * w + si * w + sj]
    };
    let mut best = (f64::MAX, false, 0, 0);
    for flip in [false, true] {
        for dy in -(h as i64 - 1)..h as i64 {
            for dx in -(w as i64 - 1)..w as i64 {
                let mut err = 0.0;
                for ch in 0..c {
                    for i in 0..h {
                        for j in 0..w {
                            err += (at(flip, dy, dx, ch, i, j) - v[ch * h * w + i * w + j]).powi(2);
                        }
                    }
                }
                if err < best.0 {
                    best = (err, flip, dy, dx);
                }
            }
        }
    }
    let (_, flip, dy, dx) = best;
    let mut out = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        for i in 0..h {
            for j in 0..w {
                out.push((2.0 * at(flip, dy, dx, ch, i, j) - 1.0) as f32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    /// The matrix form against the DFT sum written out on a 3x2 image (6x4 padded).
    #[test]
    fn matches_the_direct_dft_sum() {
        let dev = device();
        let (h, w) = (3, 2);
        let x: Vec<f32> = vec![0.2, -0.4, 1.0, -1.0, 0.6, 0.0];
        let op = FourierMagnitude::new([h, w]);
        let y = to_vec(op.forward(Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 1, h, w]), &dev)));
        let (m, n) = (2 * h, 2 * w);
        for p in 0..m {
            for q in 0..n {
                let (mut re, mut im) = (0.0, 0.0);
                for j in 0..h {
                    for k in 0..w {
                        let u = (x[j * w + k] as f64 + 1.0) / 2.0;
                        let a = -2.0 * std::f64::consts::PI * (p as f64 * j as f64 / m as f64 + q as f64 * k as f64 / n as f64);
                        re += u * a.cos();
                        im += u * a.sin();
                    }
                }
                let mag = (re * re + im * im).sqrt() / ((m * n) as f64).sqrt();
                assert!((y[p * n + q] as f64 - mag).abs() < 1e-5, "({p}, {q}): {} vs {mag}", y[p * n + q]);
            }
        }
    }

    #[test]
    fn parseval() {
        let dev = device();
        let x = NoiseSource::new(4).normal([2, 1, 8, 6], &dev);
        let u = to_vec(x.clone().add_scalar(1.0).mul_scalar(0.5));
        let y = to_vec(FourierMagnitude::new([8, 6]).forward(x));
        for b in 0..2 {
            let e: f64 = u[b * 48..(b + 1) * 48].iter().map(|&v| (v as f64).powi(2)).sum();
            let g: f64 = y[b * 192..(b + 1) * 192].iter().map(|&v| (v as f64).powi(2)).sum();
            // f32 products summed over 192 terms; 192 * 1e-12 from the stabiliser.
            assert!((g - e).abs() < 1e-5 * e, "sample {b}: {g} vs {e}");
        }
    }

    /// A shifted and rotated copy has the same magnitude, and alignment undoes the ambiguity.
    #[test]
    fn ambiguities_leave_the_magnitude_and_alignment_undoes_them() {
        let dev = device();
        let (h, w) = (6, 6);
        // A small blob on black, away from the border.
        let mut x = vec![-1f32; h * w];
        for (i, j, v) in [(1, 1, 1.0), (1, 2, 0.5), (2, 1, 0.0), (3, 2, 0.8)] {
            x[i * w + j] = v;
        }
        // Shift by (2, 1) and rotate by 180 degrees.
        let mut moved = vec![-1f32; h * w];
        for i in 0..h {
            for j in 0..w {
                if i >= 2 && j >= 1 {
                    moved[(h - 1 - i) * w + (w - 1 - j)] = x[(i - 2) * w + (j - 1)];
                }
            }
        }
        let op = FourierMagnitude::new([h, w]);
        let t = |v: &Vec<f32>| Tensor::<4>::from_data(TensorData::new(v.clone(), [1, 1, h, w]), &dev);
        assert_close(&op.forward(t(&moved)), &op.forward(t(&x)), 1e-5);
        assert_eq!(align_phase(&moved, &x, [1, h, w]), x);
    }
}
