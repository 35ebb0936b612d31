//! What a measurement `y = A(x) + n` (Chung et al., "Diffusion Posterior Sampling for General
//! Noisy Inverse Problems", ICLR 2023, eq. 1) looks like, drawn at the image's size beside the
//! reconstruction (the paper's figures show the measurement in the same place):
//!
//! - inpainting and colorization: the pseudo-inverse `A^+ y = A^T y / c` (the kept pixels, the
//!   missing ones at 0; the grey level in every channel);
//! - super-resolution: the low-resolution image enlarged by pixel repetition (each of its pixels
//!   drawn as a `k x k` block, `k = h / h_y`), so that the viewer sees the measured pixels and not
//!   an interpolation;
//! - the blurs: the blurred image itself;
//! - phase retrieval (`|F x|`, `[2 h, 2 w]` per channel): the log-magnitude `ln(1 + |F x|)`,
//!   centred (`fftshift`: frequency `(p, q)` drawn at `((p + h_y / 2) mod h_y, ...)`), averaged
//!   over `2 x 2` blocks to the image's size and stretched linearly to `[-1, 1]` per image.

use super::{Operator, TaskKind, pseudo_inverse};
use burn::tensor::Tensor;

/// The measurements `y` (`[batch, ...]`) of `op`, the operator of a `kind` task on images of
/// `[c, h, w]`, as images `[batch, c_y, h, w]` row-major (see the module docs; `c_y` is `c`
/// except for phase retrieval, whose measurement has one magnitude plane per channel too).
///
/// # Errors
/// When `y` does not have the shape the task's operator gives (a low-resolution image whose side
/// does not divide the image's, a spectrum that is not twice the image's side) or a linear task
/// whose operator has no pseudo-inverse of the form `A^T / c`.
pub fn measurement_preview(kind: TaskKind, op: &dyn Operator<4>, y: Tensor<4>, [c, h, w]: [usize; 3]) -> Result<Vec<f32>, String> {
    let [n, cy, hy, wy] = y.dims();
    let read = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().map_err(|e| format!("reading the measurement: {e:?}"));
    match kind {
        TaskKind::Inpaint | TaskKind::Colorize => {
            let lin = op.linear().ok_or_else(|| format!("{kind}: expected a linear operator, found {}", op.describe()))?;
            read(pseudo_inverse(lin, y).ok_or_else(|| format!("{kind}: {} has no pseudo-inverse A^T / c", op.describe()))?)
        }
        TaskKind::SuperResolution => {
            if hy == 0 || wy == 0 || !h.is_multiple_of(hy) || !w.is_multiple_of(wy) || cy != c {
                return Err(format!("super-resolution measurement: expected [batch, {c}, {h} / k, {w} / k], found {:?}", y.dims()));
            }
            let (ky, kx) = (h / hy, w / wy);
            let v = read(y)?;
            let mut out = Vec::with_capacity(n * c * h * w);
            for plane in v.chunks_exact(hy * wy) {
                for i in 0..h {
                    out.extend((0..w).map(|j| plane[(i / ky) * wy + j / kx]));
                }
            }
            Ok(out)
        }
        TaskKind::Deblur | TaskKind::MotionDeblur => read(y),
        TaskKind::PhaseRetrieval => {
            if (hy, wy) != (2 * h, 2 * w) {
                return Err(format!("phase-retrieval measurement: expected [batch, channels, {}, {}], found {:?}", 2 * h, 2 * w, y.dims()));
            }
            let v = read(y)?;
            let mut out = Vec::with_capacity(n * cy * h * w);
            for image in v.chunks_exact(cy * hy * wy) {
                let mut img = Vec::with_capacity(cy * h * w);
                for plane in image.chunks_exact(hy * wy) {
                    for i in 0..h {
                        for j in 0..w {
                            let mut s = 0.0;
                            for (di, dj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                                let (p, q) = ((2 * i + di + hy / 2) % hy, (2 * j + dj + wy / 2) % wy);
                                s += (1.0 + plane[p * wy + q] as f64).ln();
                            }
                            img.push(s / 4.0);
                        }
                    }
                }
                let (lo, hi) = img.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                out.extend(img.iter().map(|v| (2.0 * (v - lo) / (hi - lo).max(1e-12) - 1.0) as f32));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AvgPool, FourierMagnitude, Mask, Task};
    use super::*;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    /// Super-resolution: pixel `(i, j)` of the preview is pixel `(i / k, j / k)` of `y`, per image
    /// and channel (two images, two channels, `k = 2`).
    #[test]
    fn super_resolution_repeats_each_measured_pixel() {
        let dev = device();
        let (h, w, k) = (4, 6, 2);
        let op = AvgPool::new(k, [h, w]).unwrap();
        let yv: Vec<f32> = (0..2 * 2 * (h / k) * (w / k)).map(|i| i as f32 * 0.1 - 0.5).collect();
        let y = Tensor::<4>::from_data(TensorData::new(yv.clone(), [2, 2, h / k, w / k]), &dev);
        let out = measurement_preview(TaskKind::SuperResolution, &op, y, [2, h, w]).unwrap();
        assert_eq!(out.len(), 2 * 2 * h * w);
        for p in 0..4 {
            for i in 0..h {
                for j in 0..w {
                    assert_eq!(out[p * h * w + i * w + j], yv[p * (h / k) * (w / k) + (i / k) * (w / k) + j / k], "plane {p} ({i}, {j})");
                }
            }
        }
    }

    /// Inpainting: the kept pixels as measured, the missing ones at 0 (`A^T y` of a mask).
    #[test]
    fn inpainting_shows_the_kept_pixels() {
        let dev = device();
        let mask: Vec<f32> = (0..16).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
        let op = Mask::from_pixels(&mask, [4, 4], &dev);
        let x: Vec<f32> = (0..16).map(|i| i as f32 / 16.0).collect();
        let y = op.forward(Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 1, 4, 4]), &dev));
        let out = measurement_preview(TaskKind::Inpaint, &op, y, [1, 4, 4]).unwrap();
        for i in 0..16 {
            assert!((out[i] - x[i] * mask[i]).abs() < 1e-6, "pixel {i}: {} vs {}", out[i], x[i] * mask[i]);
        }
    }

    /// Phase retrieval: the preview spans exactly `[-1, 1]`, and the DC term (frequency (0, 0),
    /// the largest magnitude of a non-negative image) lands at the centre block, as `fftshift`
    /// draws it; a spectrum of the wrong size is refused.
    #[test]
    fn phase_retrieval_is_a_centred_log_spectrum() {
        let dev = device();
        let (h, w) = (6, 6);
        let op = FourierMagnitude::new([h, w]);
        let x = crate::noise::NoiseSource::new(2).normal([1, 1, h, w], &dev).clamp(-1.0, 1.0);
        let out = measurement_preview(TaskKind::PhaseRetrieval, &op, op.forward(x), [1, h, w]).unwrap();
        let (lo, hi) = out.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!((lo + 1.0).abs() < 1e-6 && (hi - 1.0).abs() < 1e-6, "range {lo}..{hi}");
        assert_eq!(out[(h / 2) * w + w / 2], hi, "the DC block is the brightest");
        let e = measurement_preview(TaskKind::PhaseRetrieval, &op, Tensor::<4>::zeros([1, 1, h, w], &dev), [1, h, w]).unwrap_err();
        assert!(e.contains("12, 12"), "{e}");
    }

    /// Every task of a 28x28 image gives one 28x28 preview per channel.
    #[test]
    fn every_task_previews_at_the_image_size() {
        let dev = device();
        let x = Tensor::<4>::zeros([2, 1, 28, 28], &dev);
        for kind in TaskKind::ALL.into_iter().filter(|k| *k != TaskKind::Colorize) {
            let op = Task::new(kind).build([1, 28, 28], &dev).unwrap();
            let out = measurement_preview(kind, op.as_ref(), op.forward(x.clone()), [1, 28, 28]).unwrap();
            assert_eq!(out.len(), 2 * 28 * 28, "{kind}");
        }
    }
}
