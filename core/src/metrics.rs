//! Sample-quality metrics on host data (row-major `[n, dim]` `f64`).
//!
//! - Energy distance (Szekely & Rizzo 2013): `D^2 = 2 E|X - Y| - E|X - X'| - E|Y - Y'|`,
//!   zero iff the distributions agree; computed with U-statistics for the within-sample terms.
//! - MMD^2 with a Gaussian kernel (Gretton et al. 2012, unbiased estimator, eq. 3).
//! - Sample mean and covariance.

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

#[cfg(test)]
mod tests {
    use super::*;

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
