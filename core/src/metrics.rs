//! Sample-quality metrics on host data (row-major `[n, dim]` `f64`).
//!
//! - Energy distance (Szekely & Rizzo 2013): `D^2 = 2 E|X - Y| - E|X - X'| - E|Y - Y'|`,
//!   zero iff the distributions agree; computed with U-statistics for the within-sample terms.
//! - MMD^2 with a Gaussian kernel (Gretton et al. 2012, unbiased estimator, eq. 3).
//! - Sample mean and covariance.
//! - The Frechet (2-Wasserstein) distance between Gaussians fitted to two feature sets,
//!   `||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2})` (Dowson & Landau
//!   1982; FID, Heusel et al. 2017, eq. 6), in `f64` through a symmetric eigendecomposition
//!   ([`sym_eigen`], cyclic Jacobi rotations, Golub & Van Loan 2013, sec. 8.5).
//! - MMD^2 with the median-heuristic bandwidth (Gretton et al. 2012, sec. 8).
//! - The classifier's view of generated images: the entropy of the predicted-class histogram
//!   (diversity, in bits) and the mean max-softmax confidence.
//! - PSNR and SSIM of reconstructions against a ground truth (`image`: [`psnr`], [`ssim`]).
//! - Per-sample failures of generated images, noise blobs and speckle (`failure`:
//!   [`FailureRule`], by the mean absolute difference of neighbouring pixels).
//! - The [`Spread`] of repeated measurements (mean, sample standard deviation, range).

mod failure;
mod image;

pub use failure::{FailureCount, FailureRule, mean_neighbour_difference};
pub use image::{SIGNED_RANGE, SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW, mse, psnr, ssim};
use serde::Serialize;

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()
}

fn rows(x: &[f64], dim: usize) -> impl Iterator<Item = &[f64]> {
    x.chunks_exact(dim)
}

fn mean_within(x: &[f64], dim: usize, k: impl Fn(&[f64], &[f64]) -> f64) -> f64 {
    let r: Vec<&[f64]> = rows(x, dim).collect();
    let n = r.len();
    let mut s = 0.0;
    for i in 0..n {
        for j in (i + 1)..n {
            s += k(r[i], r[j]);
        }
    }
    2.0 * s / (n * (n - 1)) as f64
}

fn mean_between(x: &[f64], y: &[f64], dim: usize, k: impl Fn(&[f64], &[f64]) -> f64) -> f64 {
    let (mut s, mut c) = (0.0, 0usize);
    for a in rows(x, dim) {
        for b in rows(y, dim) {
            s += k(a, b);
            c += 1;
        }
    }
    s / c as f64
}

/// Energy distance `D^2` between samples `x` and `y` of dimension `dim`.
pub fn energy_distance(x: &[f64], y: &[f64], dim: usize) -> f64 {
    2.0 * mean_between(x, y, dim, dist) - mean_within(x, dim, dist) - mean_within(y, dim, dist)
}

/// Unbiased `MMD^2` with the kernel `exp(-|a - b|^2 / (2 bandwidth^2))`.
pub fn mmd2(x: &[f64], y: &[f64], dim: usize, bandwidth: f64) -> f64 {
    let k = |a: &[f64], b: &[f64]| (-dist(a, b).powi(2) / (2.0 * bandwidth * bandwidth)).exp();
    mean_within(x, dim, k) + mean_within(y, dim, k) - 2.0 * mean_between(x, y, dim, k)
}

/// Sample mean.
pub fn mean(x: &[f64], dim: usize) -> Vec<f64> {
    let n = x.len() / dim;
    let mut m = vec![0.0; dim];
    for r in rows(x, dim) {
        for (mi, v) in m.iter_mut().zip(r) {
            *mi += v / n as f64;
        }
    }
    m
}

/// Unbiased sample covariance, row-major `dim x dim`.
pub fn covariance(x: &[f64], dim: usize) -> Vec<f64> {
    let n = x.len() / dim;
    let m = mean(x, dim);
    let mut c = vec![0.0; dim * dim];
    for r in rows(x, dim) {
        for i in 0..dim {
            for j in 0..dim {
                c[i * dim + j] += (r[i] - m[i]) * (r[j] - m[j]) / (n - 1) as f64;
            }
        }
    }
    c
}

/// Eigendecomposition of the symmetric `dim x dim` matrix `a` (row-major) by cyclic Jacobi
/// rotations: returns `(eigenvalues, eigenvectors)` with eigenvector `k` in column `k` of the
/// row-major `dim x dim` matrix, so `a = V diag(lambda) V^T`. Only the symmetric part of `a` is
/// used. Sweeps until the off-diagonal mass is below `1e-15` of the total (at most 100 sweeps;
/// Jacobi converges quadratically, typically in under 10).
pub fn sym_eigen(a: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), dim * dim, "expected a {dim}x{dim} matrix, found {} values", a.len());
    let n = dim;
    let mut m: Vec<f64> = (0..n * n).map(|k| 0.5 * (a[k] + a[(k % n) * n + k / n])).collect();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = m.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| m[i * n + j].powi(2)).sum();
        if off <= 1e-30 * total.max(f64::MIN_POSITIVE) || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in (p + 1)..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes m[p][q]: tan(2 theta) = 2 a_pq / (a_qq - a_pp),
                // t = tan(theta) the root of t^2 + 2 tau t - 1 = 0 of smaller magnitude.
                let tau = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                for k in 0..n {
                    // Columns p and q of M J.
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    // Rows p and q of J^T (M J).
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

/// `V diag(f(lambda)) V^T` for the symmetric `a = V diag(lambda) V^T`.
fn sym_apply(a: &[f64], dim: usize, f: impl Fn(f64) -> f64) -> Vec<f64> {
    let (lambda, v) = sym_eigen(a, dim);
    let fl: Vec<f64> = lambda.into_iter().map(f).collect();
    let mut out = vec![0.0; dim * dim];
    for i in 0..dim {
        for j in 0..dim {
            out[i * dim + j] = (0..dim).map(|k| v[i * dim + k] * fl[k] * v[j * dim + k]).sum();
        }
    }
    out
}

/// The square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// rounding are clamped to 0).
pub fn sqrtm_psd(a: &[f64], dim: usize) -> Vec<f64> {
    sym_apply(a, dim, |l| l.max(0.0).sqrt())
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    c
}

/// The Frechet distance between `N(mu1, cov1)` and `N(mu2, cov2)` (covariances row-major
/// `dim x dim`, symmetric PSD): `||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1^{1/2} S2 S1^{1/2})^{1/2})`.
/// The last trace is the sum of the square roots of the eigenvalues of the symmetric PSD
/// `S1^{1/2} S2 S1^{1/2}`.
pub fn frechet_gaussians(mu1: &[f64], cov1: &[f64], mu2: &[f64], cov2: &[f64], dim: usize) -> f64 {
    let mean_term: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let tr = |c: &[f64]| (0..dim).map(|i| c[i * dim + i]).sum::<f64>();
    let r1 = sqrtm_psd(cov1, dim);
    let m = matmul(&matmul(&r1, cov2, dim), &r1, dim);
    let (lambda, _) = sym_eigen(&m, dim);
    let cross: f64 = lambda.iter().map(|l| l.max(0.0).sqrt()).sum();
    mean_term + tr(cov1) + tr(cov2) - 2.0 * cross
}

/// The Frechet distance between Gaussians fitted (sample mean, unbiased covariance) to the
/// feature sets `x` and `y`, row-major `[n, dim]` each.
pub fn frechet_distance(x: &[f64], y: &[f64], dim: usize) -> f64 {
    frechet_gaussians(&mean(x, dim), &covariance(x, dim), &mean(y, dim), &covariance(y, dim), dim)
}

/// The median of the pairwise distances within the pooled sample `x ∪ y` (Gretton et al.
/// 2012's median heuristic for the Gaussian kernel's bandwidth), over at most the first 1000
/// points of each.
pub fn median_bandwidth(x: &[f64], y: &[f64], dim: usize) -> f64 {
    let pooled: Vec<&[f64]> = rows(x, dim).take(1000).chain(rows(y, dim).take(1000)).collect();
    let mut d: Vec<f64> = Vec::with_capacity(pooled.len() * pooled.len() / 2);
    for i in 0..pooled.len() {
        for j in (i + 1)..pooled.len() {
            d.push(dist(pooled[i], pooled[j]));
        }
    }
    if d.is_empty() {
        return 1.0;
    }
    let mid = d.len() / 2;
    let (_, m, _) = d.select_nth_unstable_by(mid, f64::total_cmp);
    if *m > 0.0 { *m } else { 1.0 }
}

/// Unbiased `MMD^2` with the Gaussian kernel at the [`median_bandwidth`]; returns
/// `(mmd2, bandwidth)`.
pub fn mmd2_median(x: &[f64], y: &[f64], dim: usize) -> (f64, f64) {
    let h = median_bandwidth(x, y, dim);
    (mmd2(x, y, dim, h), h)
}

/// Entropy in bits of the histogram `counts`, `-sum_k p_k log2 p_k` with `p_k = counts_k / n`
/// (0 for an empty histogram): `log2 K` when all `K` classes are equally frequent, 0 when one
/// class takes everything.
pub fn histogram_entropy_bits(counts: &[usize]) -> f64 {
    let n: usize = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n as f64).map(|p| -p * p.log2()).sum()
}

/// Counts of each class `0..classes` among `predicted` (classes out of range are ignored).
pub fn class_histogram(predicted: &[usize], classes: usize) -> Vec<usize> {
    let mut h = vec![0; classes];
    for &p in predicted {
        if let Some(c) = h.get_mut(p) {
            *c += 1;
        }
    }
    h
}

/// Mean of the largest softmax probability per row of `logits` (`[n, classes]`, row-major):
/// the classifier's mean confidence, `1/classes` for uniform logits.
pub fn mean_max_softmax(logits: &[f64], classes: usize) -> f64 {
    let rows: Vec<f64> = logits
        .chunks_exact(classes)
        .map(|r| {
            let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            // max softmax = exp(m - m) / sum exp(l - m)
            1.0 / r.iter().map(|l| (l - m).exp()).sum::<f64>()
        })
        .collect();
    rows.iter().sum::<f64>() / rows.len().max(1) as f64
}

/// Mean, sample standard deviation (`n - 1` in the denominator; 0 for fewer than two values),
/// minimum and maximum of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Number of values.
    pub count: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation.
    pub sd: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (all fields `NaN` but `count` when there are none).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n < 2 { 0.0 } else { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() };
        let (min, max) = values.iter().fold((f64::NAN, f64::NAN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        Self { count: n, mean, sd: if n == 0 { f64::NAN } else { sd }, min, max }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;

    #[test]
    fn spread_by_hand() {
        // 1, 2, 6: mean 3, squared deviations 4 + 1 + 9 = 14, sd sqrt(14 / 2).
        let s = Spread::of(&[2.0, 6.0, 1.0]);
        assert_eq!((s.count, s.mean, s.min, s.max), (3, 3.0, 1.0, 6.0));
        assert!((s.sd - 7f64.sqrt()).abs() < 1e-12);
        assert_eq!(Spread::of(&[4.0]), Spread { count: 1, mean: 4.0, sd: 0.0, min: 4.0, max: 4.0 });
        assert!(Spread::of(&[]).mean.is_nan() && Spread::of(&[]).sd.is_nan());
    }

    fn gaussian_sample(mu: &[f64], root: &[f64], n: usize, seed: u64) -> Vec<f64> {
        // x = mu + R z, z ~ N(0, I): covariance R R^T.
        let d = mu.len();
        let mut noise = NoiseSource::new(seed);
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let z: Vec<f64> = (0..d).map(|_| noise.normal_f64()).collect();
            for i in 0..d {
                out.push(mu[i] + (0..d).map(|k| root[i * d + k] * z[k]).sum::<f64>());
            }
        }
        out
    }

    #[test]
    fn jacobi_diagonalises_a_known_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (mut l, v) = sym_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        l.sort_by(f64::total_cmp);
        assert!((l[0] - 1.0).abs() < 1e-12 && (l[1] - 3.0).abs() < 1e-12, "{l:?}");
        assert!((v[0].abs() - 0.5f64.sqrt()).abs() < 1e-12);
        // A random 6x6 symmetric matrix: V diag(lambda) V^T reproduces it and V is orthogonal.
        let n = 6;
        let mut noise = NoiseSource::new(7);
        let b: Vec<f64> = (0..n * n).map(|_| noise.normal_f64()).collect();
        let a: Vec<f64> = (0..n * n).map(|k| b[k] + b[(k % n) * n + k / n]).collect();
        let (l, v) = sym_eigen(&a, n);
        for i in 0..n {
            for j in 0..n {
                let rec: f64 = (0..n).map(|k| v[i * n + k] * l[k] * v[j * n + k]).sum();
                let vtv: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
                assert!((rec - a[i * n + j]).abs() < 1e-10, "A[{i}][{j}]");
                assert!((vtv - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        // The square root squares back.
        let s = [4.0, 1.0, 1.0, 3.0];
        let r = sqrtm_psd(&s, 2);
        let rr = matmul(&r, &r, 2);
        assert!(rr.iter().zip(&s).all(|(a, b)| (a - b).abs() < 1e-12), "{rr:?}");
    }

    #[test]
    fn frechet_closed_forms() {
        // Identical Gaussians: 0.
        let c = [2.0, 0.5, 0.0, 0.5, 1.0, 0.3, 0.0, 0.3, 1.5];
        let mu = [1.0, -1.0, 0.5];
        assert!(frechet_gaussians(&mu, &c, &mu, &c, 3).abs() < 1e-12);
        // Diagonal covariances: sum (sqrt s1 - sqrt s2)^2 plus the mean term.
        let (s1, s2) = ([1.0, 4.0, 9.0], [4.0, 1.0, 0.25]);
        let diag = |s: &[f64; 3]| (0..9).map(|k| if k % 4 == 0 { s[k / 4] } else { 0.0 }).collect::<Vec<_>>();
        let (m1, m2) = ([0.0, 1.0, 2.0], [1.0, 1.0, 0.0]);
        let expected = 5.0 + s1.iter().zip(&s2).map(|(a, b): (&f64, &f64)| (a.sqrt() - b.sqrt()).powi(2)).sum::<f64>();
        assert!((frechet_gaussians(&m1, &diag(&s1), &m2, &diag(&s2), 3) - expected).abs() < 1e-12);
        // Rotated: S2 = R S1 R^T with R a rotation by theta in 2-D. With S1 = diag(a, b) the
        // cross term is Tr((S1^{1/2} R S1 R^T S1^{1/2})^{1/2}) = sqrt(Tr(M) + 2 sqrt(det M)) for
        // the 2x2 PSD M (sqrt of a 2x2 PSD matrix: (M + sqrt(det M) I) / sqrt(Tr M + 2 sqrt(det M))),
        // with det M = (ab)^2 and Tr M = Tr(S1 R S1 R^T) = (a^2 + b^2) cos^2 + 2ab sin^2 (0 at theta = 0).
        let (a, b, th) = (4.0f64, 1.0f64, 0.7f64);
        let (co, si) = (th.cos(), th.sin());
        let r = [co, -si, si, co];
        let s1 = [a, 0.0, 0.0, b];
        let rt = [co, si, -si, co];
        let s2 = matmul(&matmul(&r, &s1, 2), &rt, 2);
        let tr_m = (a * a + b * b) * co * co + 2.0 * a * b * si * si;
        let cross = (tr_m + 2.0 * a * b).sqrt();
        let expected = 2.0 * (a + b) - 2.0 * cross;
        let got = frechet_gaussians(&[0.0, 0.0], &s1, &[0.0, 0.0], &s2, 2);
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!(got > 0.1);
        // Order does not matter (the distance is symmetric).
        assert!((frechet_gaussians(&[0.0, 0.0], &s2, &[0.0, 0.0], &s1, 2) - expected).abs() < 1e-12);
    }

    #[test]
    fn frechet_of_samples_approaches_the_gaussians() {
        // Two 3-D samples of N(0, L L^T) and N(mu, I): the fitted distance converges to the
        // closed form at rate ~ 1/n.
        let l = [1.0, 0.0, 0.0, 0.5, 1.0, 0.0, -0.3, 0.2, 0.7];
        let id = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let (x, y) = (gaussian_sample(&[0.0; 3], &l, 20_000, 1), gaussian_sample(&[0.5, 0.0, -0.5], &id, 20_000, 2));
        let cov = matmul(&l, &[1.0, 0.5, -0.3, 0.0, 1.0, 0.2, 0.0, 0.0, 0.7], 3);
        let exact = frechet_gaussians(&[0.0; 3], &cov, &[0.5, 0.0, -0.5], &id, 3);
        let est = frechet_distance(&x, &y, 3);
        assert!((est - exact).abs() < 0.05, "{est} vs {exact}");
        // Two samples of one distribution: small, and positive (bias of order dim / n).
        let y2 = gaussian_sample(&[0.0; 3], &l, 20_000, 3);
        let same = frechet_distance(&x, &y2, 3);
        assert!((0.0..0.01).contains(&same), "{same}");
    }

    #[test]
    fn mmd_median_and_class_statistics() {
        // Median heuristic on {0, 1, 3} vs {}: pairwise distances 1, 2, 3 -> median 2.
        assert_eq!(median_bandwidth(&[0.0, 1.0, 3.0], &[], 1), 2.0);
        let x = gaussian_sample(&[0.0, 0.0], &[1.0, 0.0, 0.0, 1.0], 400, 4);
        let y = gaussian_sample(&[0.0, 0.0], &[1.0, 0.0, 0.0, 1.0], 400, 5);
        let z = gaussian_sample(&[1.0, 0.0], &[1.0, 0.0, 0.0, 1.0], 400, 6);
        let (same, h) = mmd2_median(&x, &y, 2);
        let (shifted, _) = mmd2_median(&x, &z, 2);
        // Unbiased: near 0 under the null (can be negative), clearly positive for a shift.
        assert!(same.abs() < 0.01 && shifted > 0.05, "{same} {shifted} (h {h})");
        assert_eq!(histogram_entropy_bits(&[5, 5, 5, 5]), 2.0);
        assert_eq!(histogram_entropy_bits(&[0, 7, 0]), 0.0);
        assert!((histogram_entropy_bits(&[1, 3]) - (0.25 * 2.0 + 0.75 * (4.0f64 / 3.0).log2())).abs() < 1e-12);
        assert_eq!(class_histogram(&[0, 2, 2, 9], 3), vec![1, 0, 2]);
        assert!((mean_max_softmax(&[0.0; 20], 10) - 0.1).abs() < 1e-12);
        // Logits (ln 3, 0): max softmax 3/4; (0, 0): 1/2.
        assert!((mean_max_softmax(&[3f64.ln(), 0.0, 0.0, 0.0], 2) - 0.625).abs() < 1e-12);
    }

    #[test]
    fn energy_distance_of_point_masses() {
        // X = {0, 0}, Y = {1, 1} in 1-D: 2 E|X-Y| = 2, within terms 0.
        assert!((energy_distance(&[0.0, 0.0], &[1.0, 1.0], 1) - 2.0).abs() < 1e-12);
        // Identical samples: 2 E|X-Y| includes the zero diagonal, within terms exclude it.
        let x = [0.0, 1.0, 3.0];
        let between = (0.0 + 1.0 + 3.0 + 1.0 + 0.0 + 2.0 + 3.0 + 2.0 + 0.0) / 9.0;
        let within = (1.0 + 3.0 + 2.0) / 3.0;
        assert!((energy_distance(&x, &x, 1) - (2.0 * between - 2.0 * within)).abs() < 1e-12);
    }

    #[test]
    fn covariance_by_hand() {
        let x = [1.0, 2.0, 3.0, 6.0, 5.0, 4.0];
        assert_eq!(mean(&x, 2), vec![3.0, 4.0]);
        // Deviations (-2,-2), (0,2), (2,0): cov = [[8, 4], [4, 8]] / 2.
        assert_eq!(covariance(&x, 2), vec![4.0, 2.0, 2.0, 4.0]);
        // Unbiased MMD^2 of a sample with itself, bandwidth 1: squared distances 20, 20, 8, so
        // the within-term is w = (2 e^-10 + e^-4) / 3 and the between-term (3 + 6 w) / 9.
        let w = (2.0 * (-10.0f64).exp() + (-4.0f64).exp()) / 3.0;
        assert!((mmd2(&x, &x, 2, 1.0) - (2.0 * w - 2.0 * (3.0 + 6.0 * w) / 9.0)).abs() < 1e-12);
    }
}
