//! Seeded noise sources.
//!
//! Every sampler, loss and estimator draws its randomness from a [`NoiseSource`] passed in by
//! the caller (score_sde's seed "flowing nowhere", their issue #18, is the slip this avoids).
//! Numbers are drawn on the host by ChaCha8, which is specified bit for bit, and uploaded to the
//! tensor's device: the same seed gives the same noise on every backend and platform (wasm too),
//! so samples differ across backends only by floating-point arithmetic.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

/// A seeded stream of Gaussian, Rademacher and uniform numbers.
#[derive(Debug, Clone)]
pub struct NoiseSource {
    rng: ChaCha8Rng,
}

impl NoiseSource {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// `n` standard normal `f32`s.
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| StandardNormal.sample(&mut self.rng)).collect()
    }

    /// A tensor of i.i.d. `N(0, 1)` entries.
    pub fn normal<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        let n = shape.iter().product();
        Tensor::from_data(TensorData::new(self.normal_vec(n), shape), device)
    }

    /// A tensor of i.i.d. Rademacher (`+-1` with probability 1/2) entries.
    pub fn rademacher<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| if self.rng.random::<bool>() { 1.0 } else { -1.0 }).collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    /// One uniform number in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// One standard normal number.
    pub fn normal_f64(&mut self) -> f64 {
        StandardNormal.sample(&mut self.rng)
    }

    /// One Poisson count of mean `lambda` (0 when `lambda <= 0`), as an `f64`.
    pub fn poisson(&mut self, lambda: f64) -> f64 {
        if lambda <= 0.0 {
            return 0.0;
        }
        Poisson::new(lambda).map(|p| p.sample(&mut self.rng)).unwrap_or(0.0)
    }

    /// A uniform index in `0..n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    /// A uniform 64-bit number: the seed of a stream forked from this one.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.random()
    }

    /// The stream's position, to resume it exactly (training checkpoints).
    pub fn state(&self) -> NoiseState {
        NoiseState { seed: self.rng.get_seed(), word_pos: self.rng.get_word_pos() }
    }

    /// A stream at the position `state` was taken at.
    pub fn from_state(state: &NoiseState) -> Self {
        let mut rng = ChaCha8Rng::from_seed(state.seed);
        rng.set_word_pos(state.word_pos);
        Self { rng }
    }
}

/// The position of a [`NoiseSource`]: its ChaCha8 key and the number of 32-bit words drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoiseState {
    /// The 256-bit key derived from the seed.
    pub seed: [u8; 32],
    /// Words consumed so far.
    pub word_pos: u128,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_moments() {
        let (mut a, mut b) = (NoiseSource::new(7), NoiseSource::new(7));
        let (va, vb) = (a.normal_vec(20_000), b.normal_vec(20_000));
        assert_eq!(va, vb);
        let n = va.len() as f64;
        let mean = va.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = va.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        // 5 standard errors: 1/sqrt(n) for the mean, sqrt(2/n) for the variance.
        assert!(mean.abs() < 5.0 / n.sqrt());
        assert!((var - 1.0).abs() < 5.0 * (2.0 / n).sqrt());
        assert_ne!(NoiseSource::new(8).normal_vec(4), va[..4].to_vec());
    }

    #[test]
    fn a_saved_state_resumes_the_stream_exactly() {
        let mut a = NoiseSource::new(3);
        a.normal_vec(17);
        a.uniform();
        let _ = a.index(5);
        let state = a.state();
        let json = serde_json::to_string(&state).unwrap();
        let mut b = NoiseSource::from_state(&serde_json::from_str(&json).unwrap());
        assert_eq!(a.normal_vec(100), b.normal_vec(100));
        assert_eq!(a.uniform(), b.uniform());
    }
}
