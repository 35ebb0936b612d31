//! Two-dimensional toy distributions.
//!
//! The standard benchmarks of continuous normalizing flows and score models, as defined by
//! `inf_train_gen` in FFJORD's `lib/toy_data.py` (Grathwohl, Chen, Bettencourt, Sutskever &
//! Duvenaud, ICLR 2019, github.com/rtqichen/ffjord), which wraps scikit-learn's
//! `make_swiss_roll` and `make_moons` for two of them. Each definition below quotes its source;
//! the only changes are that every sampler returns exactly `n` points (FFJORD's pinwheel
//! returns `5 * (n / 5)`) and that randomness comes from a [`NoiseSource`] instead of NumPy, so
//! the distributions match FFJORD's but not its individual numbers. All lie within a few units
//! of the origin.

use crate::noise::NoiseSource;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// A 2-D toy distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = Toy::unknown)]
pub enum Toy {
    /// scikit-learn's `make_swiss_roll(noise=1.0)` projected on its `(x, z)` plane and divided
    /// by 5: `t ~ U[1.5 pi, 4.5 pi]`, `(t cos t, t sin t) + N(0, I)`, over 5.
    SwissRoll,
    /// scikit-learn's `make_moons(noise=0.1)`, then `2 x + (-1, -0.2)`: `n/2` points on the
    /// upper half circle `(cos a, sin a)` and `n - n/2` on the lower `(1 - cos a, 0.5 - sin a)`,
    /// `a` evenly spaced on `[0, pi]`, plus `N(0, 0.1^2 I)` before the affine map.
    TwoMoons,
    /// Eight Gaussians with standard deviation 0.5 centred at the eighth roots of unity times 4,
    /// chosen uniformly, all divided by 1.414.
    #[serde(rename = "8gaussians")]
    #[strum(serialize = "8gaussians")]
    EightGaussians,
    /// `x1 ~ U[-2, 2)`, `x2 ~ U[0, 1) - 2 B + (floor(x1) mod 2)` with `B ~ Bernoulli(1/2)`, times 2:
    /// uniform on the eight "black" 2 x 2 squares of a checkerboard on `[-4, 4)^2`, those whose
    /// cell indices `floor(x1 / 2) + floor(x2 / 2)` are even.
    Checkerboard,
    /// Four concentric circles of radii 3, 2.25, 1.5, 0.75, `n/4` points evenly spaced in angle
    /// on each of the outer three and the rest on the inner one, shuffled, plus `N(0, 0.08^2 I)`.
    Rings,
    /// Five spiral arms: `(r, s) ~ N((1, 0), diag(0.3^2, 0.1^2))` rotated by
    /// `-(2 pi k / 5 + 0.25 exp(r))` for class `k` (equal counts), times 2, shuffled.
    Pinwheel,
}

impl Toy {
    /// Every toy distribution.
    pub const ALL: [Toy; 6] = [Toy::SwissRoll, Toy::TwoMoons, Toy::EightGaussians, Toy::Checkerboard, Toy::Rings, Toy::Pinwheel];

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        self.into()
    }

    fn unknown(s: &str) -> String {
        crate::names::unknown("toy distribution", s, <Self as strum::VariantNames>::VARIANTS)
    }

    /// `n` samples, row-major `[n, 2]`.
    pub fn sample(self, n: usize, noise: &mut NoiseSource) -> Vec<f64> {
        let mut out = Vec::with_capacity(2 * n);
        match self {
            Self::SwissRoll => {
                for _ in 0..n {
                    let t = 1.5 * PI * (1.0 + 2.0 * noise.uniform());
                    out.push((t * t.cos() + noise.normal_f64()) / 5.0);
                    out.push((t * t.sin() + noise.normal_f64()) / 5.0);
                }
            }
            Self::TwoMoons => {
                let n_out = n / 2;
                let n_in = n - n_out;
                for a in linspace(0.0, PI, n_out, true) {
                    out.extend([a.cos(), a.sin()]);
                }
                for a in linspace(0.0, PI, n_in, true) {
                    out.extend([1.0 - a.cos(), 1.0 - a.sin() - 0.5]);
                }
                shuffle_rows(&mut out, noise);
                for (i, v) in out.iter_mut().enumerate() {
                    *v = 2.0 * (*v + 0.1 * noise.normal_f64()) + if i % 2 == 0 { -1.0 } else { -0.2 };
                }
            }
            Self::EightGaussians => {
                for _ in 0..n {
                    let (px, py) = (0.5 * noise.normal_f64(), 0.5 * noise.normal_f64());
                    let [cx, cy] = EIGHT_GAUSSIAN_CENTRES[noise.index(8)];
                    out.push((px + 4.0 * cx) / 1.414);
                    out.push((py + 4.0 * cy) / 1.414);
                }
            }
            Self::Checkerboard => {
                for _ in 0..n {
                    let x1 = noise.uniform() * 4.0 - 2.0;
                    let x2 = noise.uniform() - 2.0 * noise.index(2) as f64 + x1.floor().rem_euclid(2.0);
                    out.extend([2.0 * x1, 2.0 * x2]);
                }
            }
            Self::Rings => {
                let q = n / 4;
                for (radius, count) in [(1.0, q), (0.75, q), (0.5, q), (0.25, n - 3 * q)] {
                    for a in linspace(0.0, 2.0 * PI, count, false) {
                        out.extend([3.0 * radius * a.cos(), 3.0 * radius * a.sin()]);
                    }
                }
                shuffle_rows(&mut out, noise);
                for v in out.iter_mut() {
                    *v += 0.08 * noise.normal_f64();
                }
            }
            Self::Pinwheel => {
                for i in 0..n {
                    let r = 1.0 + 0.3 * noise.normal_f64();
                    let s = 0.1 * noise.normal_f64();
                    let angle = 2.0 * PI * (i % 5) as f64 / 5.0 + 0.25 * r.exp();
                    let (sin, cos) = angle.sin_cos();
                    // FFJORD's einsum("ti,tij->tj", features, [[cos, -sin], [sin, cos]]).
                    out.extend([2.0 * (r * cos + s * sin), 2.0 * (-r * sin + s * cos)]);
                }
                shuffle_rows(&mut out, noise);
            }
        }
        out
    }

    /// [`sample`](Self::sample) as an `f32` tensor on `device`.
    ///
    /// # Shapes
    /// Returns `[n, 2]`.
    pub fn sample_tensor(self, n: usize, noise: &mut NoiseSource, device: &Device) -> Tensor<2> {
        let v: Vec<f32> = self.sample(n, noise).into_iter().map(|x| x as f32).collect();
        Tensor::from_data(TensorData::new(v, [n, 2]), device)
    }
}

/// Unit-circle centres of [`Toy::EightGaussians`], in FFJORD's order.
const EIGHT_GAUSSIAN_CENTRES: [[f64; 2]; 8] = {
    let h = std::f64::consts::FRAC_1_SQRT_2;
    [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [h, h], [h, -h], [-h, h], [-h, -h]]
};

/// NumPy's `linspace(a, b, m, endpoint)`.
fn linspace(a: f64, b: f64, m: usize, endpoint: bool) -> impl Iterator<Item = f64> {
    let div = if endpoint { m.saturating_sub(1).max(1) } else { m.max(1) } as f64;
    (0..m).map(move |i| a + (b - a) * i as f64 / div)
}

/// Fisher–Yates shuffle of the rows of a row-major `[n, 2]` array.
fn shuffle_rows(v: &mut [f64], noise: &mut NoiseSource) {
    let n = v.len() / 2;
    for i in (1..n).rev() {
        let j = noise.index(i + 1);
        v.swap(2 * i, 2 * j);
        v.swap(2 * i + 1, 2 * j + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(v: &[f64]) -> Vec<[f64; 2]> {
        v.chunks_exact(2).map(|c| [c[0], c[1]]).collect()
    }

    fn mean(p: &[[f64; 2]]) -> [f64; 2] {
        let n = p.len() as f64;
        [p.iter().map(|q| q[0]).sum::<f64>() / n, p.iter().map(|q| q[1]).sum::<f64>() / n]
    }

    fn std(p: &[[f64; 2]]) -> [f64; 2] {
        let m = mean(p);
        let n = p.len() as f64;
        [0, 1].map(|j| (p.iter().map(|q| (q[j] - m[j]).powi(2)).sum::<f64>() / n).sqrt())
    }

    /// Distance from `p` to the nearest of the polyline's vertices (dense enough that the
    /// vertex spacing is negligible).
    fn dist_to(curve: &[[f64; 2]], p: [f64; 2]) -> f64 {
        curve.iter().map(|c| (c[0] - p[0]).hypot(c[1] - p[1])).fold(f64::INFINITY, f64::min)
    }

    /// A frequency `count / n` is within 5 binomial standard errors of `p`.
    fn assert_frequency(count: usize, n: usize, p: f64, what: &str) {
        let f = count as f64 / n as f64;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!((f - p).abs() < 5.0 * se, "{what}: frequency {f} vs {p} (5 se = {})", 5.0 * se);
    }

    #[test]
    fn names_parse_display_and_serialize_alike() {
        crate::names::serde_agrees(&Toy::ALL);
        assert_eq!(Toy::ALL.map(Toy::name), ["swiss-roll", "two-moons", "8gaussians", "checkerboard", "rings", "pinwheel"]);
        assert_eq!(Toy::EightGaussians.to_string(), "8gaussians");
        let e = "moons".parse::<Toy>().unwrap_err();
        assert!(e.contains("two-moons") && e.contains("pinwheel"), "{e}");
    }

    #[test]
    fn same_seed_same_samples_exact_counts_and_finite() {
        for t in Toy::ALL {
            for n in [0, 1, 2, 3, 7, 100] {
                let a = t.sample(n, &mut NoiseSource::new(5));
                assert_eq!(a.len(), 2 * n, "{t} n={n}");
                assert!(a.iter().all(|v| v.is_finite() && v.abs() < 10.0), "{t}");
                assert_eq!(a, t.sample(n, &mut NoiseSource::new(5)), "{t}");
            }
            assert_ne!(t.sample(100, &mut NoiseSource::new(5)), t.sample(100, &mut NoiseSource::new(6)), "{t}");
        }
        let x = Toy::Rings.sample_tensor(10, &mut NoiseSource::new(1), &crate::test_util::device());
        assert_eq!(x.dims(), [10, 2]);
    }

    #[test]
    fn eight_gaussians_points_are_near_a_centre_with_equal_frequencies() {
        let n = 20_000;
        let p = points(&Toy::EightGaussians.sample(n, &mut NoiseSource::new(1)));
        let sigma = 0.5 / 1.414;
        let centres: Vec<[f64; 2]> = EIGHT_GAUSSIAN_CENTRES.iter().map(|c| [4.0 * c[0] / 1.414, 4.0 * c[1] / 1.414]).collect();
        let mut counts = [0usize; 8];
        for q in &p {
            let (k, d) = centres.iter().enumerate().map(|(k, c)| (k, (q[0] - c[0]).hypot(q[1] - c[1]))).min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
            // d / sigma is Rayleigh: P(d > 6 sigma) = exp(-18) ~ 1.5e-8 per point.
            assert!(d < 6.0 * sigma, "point {q:?} is {d} from the nearest centre");
            counts[k] += 1;
        }
        // Neighbouring centres are 2.16 apart, 3 sigma each way: nearest-centre labels are
        // right but for ~1e-3 of points, symmetrically, so frequencies stay ~1/8.
        for (k, &c) in counts.iter().enumerate() {
            assert_frequency(c, n, 1.0 / 8.0, &format!("centre {k}"));
        }
    }

    #[test]
    fn checkerboard_points_lie_in_the_black_squares_evenly() {
        let n = 16_000;
        let p = points(&Toy::Checkerboard.sample(n, &mut NoiseSource::new(2)));
        let mut counts = std::collections::HashMap::new();
        for q in &p {
            assert!(q.iter().all(|v| (-4.0..4.0).contains(v)), "{q:?} outside [-4, 4)^2");
            let (i, j) = ((q[0] / 2.0).floor() as i64, (q[1] / 2.0).floor() as i64);
            assert_eq!((i + j).rem_euclid(2), 0, "{q:?} in a white square");
            *counts.entry((i, j)).or_insert(0usize) += 1;
        }
        assert_eq!(counts.len(), 8);
        for (cell, &c) in &counts {
            assert_frequency(c, n, 1.0 / 8.0, &format!("cell {cell:?}"));
        }
    }

    #[test]
    fn rings_radii_fall_in_four_bands_with_quarter_counts() {
        let n = 8_000;
        let p = points(&Toy::Rings.sample(n, &mut NoiseSource::new(3)));
        let radii = [3.0, 2.25, 1.5, 0.75];
        let mut counts = [0usize; 4];
        for q in &p {
            let r = q[0].hypot(q[1]);
            let (k, d) = radii.iter().enumerate().map(|(k, c)| (k, (r - c).abs())).min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
            // Bands are 0.75 apart; radial noise ~ N(0, 0.08^2): 0.375 is 4.7 sd (p ~ 3e-6).
            assert!(d < 0.375, "radius {r}");
            counts[k] += 1;
        }
        assert_eq!(counts, [n / 4; 4]);
        // Evenly spaced angles cancel: the mean is the noise's, sd 0.08 / sqrt(n).
        let m = mean(&p);
        assert!(m.iter().all(|v| v.abs() < 5.0 * 0.08 / (n as f64).sqrt()), "{m:?}");
    }

    #[test]
    fn two_moons_mean_and_distance_to_the_arcs() {
        let n = 10_000;
        let p = points(&Toy::TwoMoons.sample(n, &mut NoiseSource::new(4)));
        // Before the noise, the n/2 + n/2 points have mean exactly (0.5, 0.25) (the two arcs'
        // sin terms cancel), so after 2 x + (-1, -0.2) the mean is (0, 0.3) up to the noise,
        // N(0, 0.2^2) per coordinate after scaling: sd 0.2 / sqrt(n).
        let m = mean(&p);
        let tol = 5.0 * 0.2 / (n as f64).sqrt();
        assert!(m[0].abs() < tol && (m[1] - 0.3).abs() < tol, "{m:?} vs (0, 0.3) +- {tol}");
        let arcs: Vec<[f64; 2]> = (0..=4000)
            .map(|i| PI * i as f64 / 4000.0)
            .flat_map(|a| [[2.0 * a.cos() - 1.0, 2.0 * a.sin() - 0.2], [2.0 * (1.0 - a.cos()) - 1.0, 2.0 * (0.5 - a.sin()) - 0.2]])
            .collect();
        // Distance to the arc <= |noise| ~ Rayleigh(0.2): P(> 1.0) = exp(-12.5) ~ 4e-6.
        for q in &p {
            assert!(dist_to(&arcs, *q) < 1.0, "{q:?}");
        }
    }

    #[test]
    fn swiss_roll_mean_matches_the_closed_form_and_points_hug_the_spiral() {
        let n = 4_000;
        let p = points(&Toy::SwissRoll.sample(n, &mut NoiseSource::new(5)));
        // t ~ U[a, b], a = 1.5 pi, b = 4.5 pi: E[t cos t] = [t sin t + cos t]_a^b / (b - a) =
        // (b + a) / (3 pi) = 2 and E[t sin t] = [sin t - t cos t]_a^b / (3 pi) = 2 / (3 pi).
        let expected = [2.0 / 5.0, 2.0 / (3.0 * PI) / 5.0];
        let (m, s) = (mean(&p), std(&p));
        for j in 0..2 {
            assert!((m[j] - expected[j]).abs() < 5.0 * s[j] / (n as f64).sqrt(), "coordinate {j}: {} vs {}", m[j], expected[j]);
        }
        let spiral: Vec<[f64; 2]> = (0..=20_000).map(|i| 1.5 * PI + 3.0 * PI * i as f64 / 20_000.0).map(|t| [t * t.cos() / 5.0, t * t.sin() / 5.0]).collect();
        // Unscaled noise is N(0, I): distance to the spiral <= Rayleigh(1) / 5, P(> 5 / 5) ~ 4e-6.
        for q in &p {
            assert!(dist_to(&spiral, *q) < 1.0, "{q:?}");
        }
    }

    #[test]
    fn pinwheel_arms_have_equal_mass_and_follow_the_spiral() {
        let n = 10_000;
        let p = points(&Toy::Pinwheel.sample(n, &mut NoiseSource::new(6)));
        // A point is f e^{-i theta} times 2 with f = (r, s), theta = 2 pi k / 5 + 0.25 e^r, so
        // arg(x) + 0.25 e^{|x| / 2} ~ -2 pi k / 5 + atan(s / r): the residual atan(s / r) has sd
        // ~ 0.1 for r ~ 1, against pi / 5 = 0.63 between arms.
        let arm = 2.0 * PI / 5.0;
        let mut counts = [0usize; 5];
        let mut close = 0;
        for q in &p {
            let phase = q[1].atan2(q[0]) + 0.25 * (q[0].hypot(q[1]) / 2.0).exp();
            let k = (-phase / arm).round();
            let residual = phase + k * arm;
            counts[k.rem_euclid(5.0) as usize] += 1;
            close += usize::from(residual.abs() < 0.3);
        }
        // |s / r| < 0.3 fails mostly when r is small: about 1% of points.
        assert!(close as f64 > 0.97 * n as f64, "{close} of {n} within 0.3 rad of an arm");
        for (k, &c) in counts.iter().enumerate() {
            assert!((c as f64 / n as f64 - 0.2).abs() < 0.02, "arm {k}: {c} of {n}");
        }
        // Every arm's radius |x| / 2 = |f| ~ r: mean 2 E|f| ~ 2.
        let mean_radius = p.iter().map(|q| q[0].hypot(q[1])).sum::<f64>() / n as f64;
        assert!((mean_radius - 2.0).abs() < 0.05, "mean radius {mean_radius}");
    }
}
