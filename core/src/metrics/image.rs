//! Image fidelity: PSNR and SSIM against a ground truth.
//!
//! - PSNR `= 10 log10(R^2 / MSE)` with the data range `R` (2 for images in `[-1, 1]`).
//! - SSIM (Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to
//!   structural similarity", IEEE TIP 2004, eq. 13 and sec. III-C): for every `11 x 11` window
//!   weighted by a Gaussian of standard deviation 1.5 (normalised to sum 1),
//!   `((2 mu_x mu_y + C1)(2 sigma_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))`
//!   with `C1 = (K1 R)^2`, `C2 = (K2 R)^2`, `K1 = 0.01`, `K2 = 0.03`, the weighted moments of
//!   each window; the mean over the windows that fit inside the image (the reference code's
//!   `filter2(..., 'valid')`), averaged over channels.
//!
//! Images are row-major `[channels, height, width]` `f32` values.

/// The data range of images in `[-1, 1]`.
pub const SIGNED_RANGE: f64 = 2.0;
/// SSIM's window side.
pub const SSIM_WINDOW: usize = 11;
/// SSIM's Gaussian window standard deviation.
pub const SSIM_SIGMA: f64 = 1.5;
/// SSIM's `K1`.
pub const SSIM_K1: f64 = 0.01;
/// SSIM's `K2`.
pub const SSIM_K2: f64 = 0.03;

/// Mean squared error.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "expected two images of the same size");
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>() / a.len().max(1) as f64
}

/// Peak signal-to-noise ratio in dB for data range `range` (infinite for identical images).
pub fn psnr(a: &[f32], b: &[f32], range: f64) -> f64 {
    10.0 * (range * range / mse(a, b)).log10()
}

/// The normalised `11 x 11` Gaussian window, row-major.
fn window() -> Vec<f64> {
    let c = (SSIM_WINDOW as f64 - 1.0) / 2.0;
    let w: Vec<f64> = (0..SSIM_WINDOW * SSIM_WINDOW)
        .map(|k| {
            let (i, j) = ((k / SSIM_WINDOW) as f64 - c, (k % SSIM_WINDOW) as f64 - c);
            (-(i * i + j * j) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp()
        })
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Mean SSIM of two `[c, h, w]` images with data range `range` (see the module docs).
///
/// # Panics
/// If the sizes differ or a side is below the 11-pixel window.
pub fn ssim(a: &[f32], b: &[f32], [c, h, w]: [usize; 3], range: f64) -> f64 {
    assert_eq!((a.len(), b.len()), (c * h * w, c * h * w), "expected two {c}x{h}x{w} images");
    assert!(h >= SSIM_WINDOW && w >= SSIM_WINDOW, "SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, found {h}x{w}");
    let win = window();
    let (c1, c2) = ((SSIM_K1 * range).powi(2), (SSIM_K2 * range).powi(2));
    let (oh, ow) = (h - SSIM_WINDOW + 1, w - SSIM_WINDOW + 1);
    let mut total = 0.0;
    for ch in 0..c {
        let (pa, pb) = (&a[ch * h * w..(ch + 1) * h * w], &b[ch * h * w..(ch + 1) * h * w]);
        for i in 0..oh {
            for j in 0..ow {
                let (mut mx, mut my, mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for u in 0..SSIM_WINDOW {
                    for v in 0..SSIM_WINDOW {
                        let wt = win[u * SSIM_WINDOW + v];
                        let (x, y) = (pa[(i + u) * w + j + v] as f64, pb[(i + u) * w + j + v] as f64);
                        mx += wt * x;
                        my += wt * y;
                        xx += wt * x * x;
                        yy += wt * y * y;
                        xy += wt * x * y;
                    }
                }
                let (vx, vy, cxy) = (xx - mx * mx, yy - my * my, xy - mx * my);
                total += ((2.0 * mx * my + c1) * (2.0 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
            }
        }
    }
    total / (c * oh * ow) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;

    #[test]
    fn psnr_of_a_known_mse() {
        let a: Vec<f32> = NoiseSource::new(1).normal_vec(100).into_iter().map(|v| v.clamp(-0.8, 0.8)).collect();
        let b: Vec<f32> = a.iter().map(|v| v + 0.1).collect();
        // MSE = 0.01: PSNR = 10 log10(4 / 0.01) = 26.0206 dB.
        assert!((psnr(&a, &b, SIGNED_RANGE) - 10.0 * 400f64.log10()).abs() < 1e-4);
        assert!(psnr(&a, &a, SIGNED_RANGE).is_infinite());
    }

    /// On one 11x11 window, with `mu` and `sigma^2` the Gaussian-weighted moments of `a`:
    /// constant images `p`, `q` give `(2 p q + C1) / (p^2 + q^2 + C1)`; `b = a + d` gives
    /// `sigma_xy = sigma^2` and `(2 mu (mu + d) + C1) / (mu^2 + (mu + d)^2 + C1)`; `b = 2 mu - a`
    /// gives `sigma_xy = -sigma^2` and `(C2 - 2 sigma^2) / (C2 + 2 sigma^2)`.
    #[test]
    fn ssim_of_hand_computed_cases() {
        let (c1, c2) = ((0.01f64 * 2.0).powi(2), (0.03f64 * 2.0).powi(2));
        let n = 121;
        let (p, q) = (0.5f32, -0.25f32);
        let s = ssim(&vec![p; n], &vec![q; n], [1, 11, 11], 2.0);
        let (p, q) = (p as f64, q as f64);
        assert!((s - (2.0 * p * q + c1) / (p * p + q * q + c1)).abs() < 1e-12, "{s}");

        let a: Vec<f32> = NoiseSource::new(2).normal_vec(n).into_iter().map(|v| (0.3 * v).clamp(-1.0, 1.0)).collect();
        // The window's weights written out: exp(-(i^2 + j^2) / 4.5), i, j in -5..=5, normalised.
        let g: Vec<f64> = (0..n).map(|k| (-((k / 11) as f64 - 5.0).powi(2) / 4.5 - ((k % 11) as f64 - 5.0).powi(2) / 4.5).exp()).collect();
        let gs: f64 = g.iter().sum();
        let mu: f64 = a.iter().zip(&g).map(|(x, w)| *x as f64 * w / gs).sum();
        let var: f64 = a.iter().zip(&g).map(|(x, w)| (*x as f64 - mu).powi(2) * w / gs).sum();
        let d = 0.2;
        let shifted: Vec<f32> = a.iter().map(|x| x + d as f32).collect();
        let e = (2.0 * mu * (mu + d) + c1) / (mu * mu + (mu + d).powi(2) + c1);
        assert!((ssim(&a, &shifted, [1, 11, 11], 2.0) - e).abs() < 1e-5);
        let reflected: Vec<f32> = a.iter().map(|x| (2.0 * mu - *x as f64) as f32).collect();
        let e = (c2 - 2.0 * var) / (c2 + 2.0 * var);
        assert!((ssim(&a, &reflected, [1, 11, 11], 2.0) - e).abs() < 1e-5, "{} vs {e}", ssim(&a, &reflected, [1, 11, 11], 2.0));
    }

    #[test]
    fn ssim_of_an_image_with_itself_is_one_and_noise_lowers_it() {
        let mut noise = NoiseSource::new(3);
        let a: Vec<f32> = noise.normal_vec(2 * 28 * 28).into_iter().map(|v| v.clamp(-1.0, 1.0)).collect();
        assert!((ssim(&a, &a, [2, 28, 28], 2.0) - 1.0).abs() < 1e-12);
        let b: Vec<f32> = a.iter().zip(noise.normal_vec(a.len())).map(|(x, z)| x + 0.3 * z).collect();
        let s = ssim(&a, &b, [2, 28, 28], 2.0);
        assert!(s < 0.9 && s > 0.0, "{s}");
    }
}
