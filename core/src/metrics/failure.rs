//! Per-sample failures of generated images: noise blobs and speckle, judged one image at a time.
//!
//! A Frechet distance or a mean classifier confidence summarises a whole batch, so half a batch
//! of noise can hide behind the other half; and a classifier is confident on noise: on 2000
//! DPM-Solver++(2M) samples (10 steps) of the under-trained shipped MNIST model, the shipped
//! MNIST classifier's mean max-softmax is 0.881 on the 889 that this rule fails (noise blobs;
//! it calls 553 of them an "8") and 0.822 on the 1111 that pass. What tells a noise blob or a
//! speckled background from a digit or a garment is its pixel-scale roughness: real images are
//! smooth strokes and regions with anti-aliased edges, speckle changes from pixel to pixel.
//!
//! The statistic is the mean absolute difference of 4-neighbouring pixels (an anisotropic total
//! variation, Rudin, Osher & Fatemi 1992, divided by the number of neighbour pairs), of the
//! image clamped to the data range `[-1, 1]` as it is displayed:
//!
//! `tv(x) = (sum_{i,j} |x_{i+1,j} - x_{i,j}| + sum_{i,j} |x_{i,j+1} - x_{i,j}|) / (h (w - 1) + (h - 1) w)`
//!
//! averaged over channels; it lies in `[0, 2]`: 0 for a constant image, 2/3 for uniform noise on
//! `[-1, 1]`, 1 for independent pixels at -1 and +1 with even odds. A sample **fails** when
//! `tv(x)` exceeds its data set's threshold ([`FailureRule::for_dataset`]).
//!
//! The threshold is set on the 60 000 training images, as the smallest multiple of 0.05 that
//! fewer than 0.05% of them exceed, and checked on the 10 000 test images (measured 2026-12-01):
//!
//! | data set | training images: 99th / 99.9th percentile, max | threshold | training images above | test images above |
//! |---|---|---:|---:|---:|
//! | MNIST | 0.193 / 0.213, 0.241 | 0.25 | 0 of 60 000 | 0 of 10 000 |
//! | Fashion-MNIST | 0.301 / 0.403, 0.568 | 0.45 | 18 (0.03%) | 3 (0.03%) |
//!
//! Fashion-MNIST needs the higher threshold because some garments are finely patterned.
//!
//! On samples of the shipped models (`www/models/mnist` and `www/models/fashion-mnist`, 2300
//! training steps each; n = 2000, seed 77, `native-cli eval --samples`):
//!
//! | model, sampler | failures | Frechet distance (floor) |
//! |---|---:|---:|
//! | MNIST, DPM-Solver++(2M), 10 steps | 889 (44.5%) | 217.0 (6.1) |
//! | MNIST, ancestral, 100 steps | 0 | 32.8 (6.1) |
//! | Fashion-MNIST, DPM-Solver++(2M), 10 steps | 437 (21.9%) | 138.2 (2.0) |
//!
//! Looked at (grids of 64 drawn at random from each side of the threshold), the MNIST samples
//! that fail are noise blobs and digits drowned in speckle; of those that pass, about 4 in 64
//! show a light speckle (4.8% of the samples lie between 0.20 and 0.25, mostly such digits,
//! where the roughest 0.5% of real digits lie too), and 3.5% are nearly empty (under 1% of the
//! pixels above 0; every real digit has at least 1.9%), which this rule does not look for. On
//! Fashion-MNIST the rule is a lower bound: about 15 in 64 of the passing samples are speckled
//! too, at a roughness (0.25 to 0.40) that finely patterned real garments also reach. Counting
//! isolated pixels besides (a pixel more than 1 brighter or darker than each of its 4
//! neighbours; above 4 in 0.08% of the training images) would fail 24.4% instead of 21.9% of
//! those samples at three times the false-positive rate (0.10%), so the rule keeps the one
//! statistic.
//!
//! A rule on the range of the raw samples (pixels far outside `[-1, 1]` before clamping) would
//! also catch most noise blobs, but it cannot fire on real data (so its false-positive rate
//! tells nothing) and a sampler that clips its predicted `x0` removes the evidence.

use crate::data::mnist::DatasetKind;

/// `tv(x)` of one image of shape `[channels, height, width]` (row-major), clamped to `[-1, 1]`
/// (see the module docs); 0 for an image with fewer than two pixels.
///
/// # Panics
/// If `image` does not hold `channels * height * width` values.
pub fn mean_neighbour_difference(image: &[f32], [c, h, w]: [usize; 3]) -> f64 {
    assert_eq!(image.len(), c * h * w, "expected a {c}x{h}x{w} image, found {} values", image.len());
    let pairs = h * w.saturating_sub(1) + h.saturating_sub(1) * w;
    if pairs == 0 || c == 0 {
        return 0.0;
    }
    let px = |v: f32| v.clamp(-1.0, 1.0) as f64;
    let mut total = 0.0;
    for plane in image.chunks_exact(h * w) {
        for i in 0..h {
            for j in 0..w {
                let v = px(plane[i * w + j]);
                if j + 1 < w {
                    total += (px(plane[i * w + j + 1]) - v).abs();
                }
                if i + 1 < h {
                    total += (px(plane[(i + 1) * w + j]) - v).abs();
                }
            }
        }
    }
    total / (pairs * c) as f64
}

/// When a generated image counts as a failure: its [`mean_neighbour_difference`] is above
/// `max_roughness`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRule {
    /// The largest `tv(x)` of an image that passes.
    pub max_roughness: f64,
}

/// How many of a set of images fail a [`FailureRule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    /// Images that fail.
    pub failures: usize,
    /// Images judged.
    pub n: usize,
}

impl FailureCount {
    /// `failures / n` (0 for no images).
    pub fn share(&self) -> f64 {
        if self.n == 0 { 0.0 } else { self.failures as f64 / self.n as f64 }
    }
}

impl FailureRule {
    /// MNIST's threshold (module docs: above every one of the 70 000 real digits).
    pub const MNIST: Self = Self { max_roughness: 0.25 };
    /// Fashion-MNIST's threshold (module docs: 0.03% of real training and test images above).
    pub const FASHION_MNIST: Self = Self { max_roughness: 0.45 };

    /// The rule measured for the data set `kind`.
    pub fn for_dataset(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::Mnist => Self::MNIST,
            DatasetKind::FashionMnist => Self::FASHION_MNIST,
        }
    }

    /// Whether one `[c, h, w]` image fails.
    pub fn fails(&self, image: &[f32], shape: [usize; 3]) -> bool {
        mean_neighbour_difference(image, shape) > self.max_roughness
    }

    /// The failures among `images`, row-major `[n, c, h, w]`.
    ///
    /// # Panics
    /// If `images` is not a whole number of `c * h * w` images.
    pub fn count(&self, images: &[f32], shape: [usize; 3]) -> FailureCount {
        let flags = self.per_sample(images, shape);
        FailureCount { failures: flags.iter().filter(|&&f| f).count(), n: flags.len() }
    }

    /// Whether each of `images` (row-major `[n, c, h, w]`) fails, in order.
    ///
    /// # Panics
    /// If `images` is not a whole number of `c * h * w` images.
    pub fn per_sample(&self, images: &[f32], shape: [usize; 3]) -> Vec<bool> {
        let len = shape.iter().product::<usize>().max(1);
        assert_eq!(images.len() % len, 0, "expected a whole number of {shape:?} images, found {} values", images.len());
        images.chunks_exact(len).map(|x| self.fails(x, shape)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;

    #[test]
    fn roughness_of_hand_computed_images() {
        // Constant: 0. A 2x2 checkerboard of -1 and +1: every one of the 4 pairs differs by 2.
        assert_eq!(mean_neighbour_difference(&[0.3; 9], [1, 3, 3]), 0.0);
        assert_eq!(mean_neighbour_difference(&[-1.0, 1.0, 1.0, -1.0], [1, 2, 2]), 2.0);
        // A 2x3 image with a vertical edge: rows [-1, -1, 1]; horizontal pairs 0, 2 per row,
        // vertical pairs 0: (2 + 2) / (2 * 2 + 1 * 3) = 4 / 7.
        assert!((mean_neighbour_difference(&[-1.0, -1.0, 1.0, -1.0, -1.0, 1.0], [1, 2, 3]) - 4.0 / 7.0).abs() < 1e-12);
        // Clamped first: values beyond the range count as the range's ends.
        assert_eq!(mean_neighbour_difference(&[-5.0, 7.0, 3.0, -2.0], [1, 2, 2]), 2.0);
        // Channels are averaged: a constant channel and a checkerboard give 1.
        assert_eq!(mean_neighbour_difference(&[0.0, 0.0, 0.0, 0.0, -1.0, 1.0, 1.0, -1.0], [2, 2, 2]), 1.0);
        // One pixel has no pairs.
        assert_eq!(mean_neighbour_difference(&[1.0], [1, 1, 1]), 0.0);
    }

    /// Independent uniform pixels on [-1, 1]: E|U - V| = 2/3; signs at even odds: E = 1.
    #[test]
    fn roughness_of_noise_is_its_expected_difference() {
        let mut noise = NoiseSource::new(4);
        let shape = [1, 28, 28];
        let uniform: Vec<f32> = (0..784 * 50).map(|_| (2.0 * noise.uniform() - 1.0) as f32).collect();
        let signs: Vec<f32> = (0..784 * 50).map(|_| if noise.uniform() < 0.5 { -1.0 } else { 1.0 }).collect();
        let mean = |x: &[f32]| x.chunks_exact(784).map(|im| mean_neighbour_difference(im, shape)).sum::<f64>() / 50.0;
        // 75 600 pairs each: standard errors about 0.002 and 0.004.
        assert!((mean(&uniform) - 2.0 / 3.0).abs() < 0.01, "{}", mean(&uniform));
        assert!((mean(&signs) - 1.0).abs() < 0.02, "{}", mean(&signs));
        // Both fail either rule; a smooth blob (a stroke-like disc with a soft edge) passes.
        for rule in [FailureRule::MNIST, FailureRule::FASHION_MNIST] {
            assert_eq!(rule.count(&uniform, shape), FailureCount { failures: 50, n: 50 });
            assert_eq!(rule.count(&signs, shape).failures, 50);
        }
        let disc: Vec<f32> = (0..784)
            .map(|k| {
                let (i, j) = ((k / 28) as f64 - 13.5, (k % 28) as f64 - 13.5);
                (8.0 - (i * i + j * j).sqrt()).clamp(-1.0, 1.0) as f32
            })
            .collect();
        assert!(!FailureRule::MNIST.fails(&disc, shape), "{}", mean_neighbour_difference(&disc, shape));
    }

    #[test]
    fn counts_and_shares() {
        let rule = FailureRule { max_roughness: 0.5 };
        // Three 1x2 images with differences 0, 0.5 (not above) and 2.
        let images = [0.0, 0.0, 0.0, 0.5, -1.0, 1.0];
        let c = rule.count(&images, [1, 1, 2]);
        assert_eq!(c, FailureCount { failures: 1, n: 3 });
        assert!((c.share() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(rule.count(&[], [1, 1, 2]).share(), 0.0);
        assert_eq!(FailureRule::for_dataset(DatasetKind::Mnist), FailureRule::MNIST);
        assert_eq!(FailureRule::for_dataset(DatasetKind::FashionMnist), FailureRule::FASHION_MNIST);
    }
}
