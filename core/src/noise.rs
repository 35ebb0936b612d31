//! Seeded noise sources.
//!
//! Every sampler, loss and estimator draws its randomness from a [`NoiseSource`] passed in by
//! the caller (score_sde's seed "flowing nowhere", their issue #18, is the slip this avoids).
//! Numbers are drawn on the host by ChaCha8, which is specified bit for bit, and uploaded to the
//! tensor's device: the same seed gives the same noise on every backend and platform (wasm too),
//! so samples differ across backends only by floating-point arithmetic.
//!
//! A source is either one stream ([`NoiseSource::new`]: training, estimators, tests) or one
//! stream per sample ([`NoiseSource::for_samples`]: sampling). ChaCha8 keys a seed and numbers
//! 2^64 independent streams under it; a single source reads stream 0, sample `i` of a run reads
//! stream `i + 1`, and a per-sample source's scalar draws read the last stream. A per-sample
//! source fills row `r` of a `[rows, ...]` tensor from its sample's stream, so sample `i` gets
//! the same noise whatever the batch it is drawn in, and every sampler is invariant to how a
//! run is split into batches (the command line's `--batch`, the page's parallel workers)
//! without knowing it.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

/// The stream of a per-sample source's scalar draws and of tensors that are not one row per
/// sample.
const SHARED_STREAM: u64 = u64::MAX;

/// A seeded stream of Gaussian, Rademacher and uniform numbers, or one such stream per sample.
#[derive(Debug, Clone)]
pub struct NoiseSource {
    /// The single stream, or a per-sample source's shared one.
    rng: ChaCha8Rng,
    /// A per-sample source's streams.
    rows: Option<Rows>,
}

/// The streams of samples `first..first + streams.len()`.
#[derive(Debug, Clone)]
struct Rows {
    first: u64,
    streams: Vec<ChaCha8Rng>,
}

/// The stream `stream` under `key`, at its start.
fn stream(key: [u8; 32], stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream);
    rng
}

fn normal_from(rng: &mut ChaCha8Rng, n: usize, out: &mut Vec<f32>) {
    out.extend((0..n).map(|_| -> f32 { StandardNormal.sample(&mut *rng) }));
}

fn rademacher_from(rng: &mut ChaCha8Rng, n: usize, out: &mut Vec<f32>) {
    out.extend((0..n).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }));
}

impl NoiseSource {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed), rows: None }
    }

    /// The per-sample source of samples `first..first + count` of this source's seed (counted
    /// from this source's own first sample if it is per-sample already): row `r` of a tensor of
    /// `count` rows comes from sample `first + r`'s stream, which depends on the seed and the
    /// sample's index alone, not on this source's position nor on `count`.
    ///
    /// `NoiseSource::new(seed).for_samples(0, 8)` and `for_samples(0, 3)`, `for_samples(3, 5)`
    /// of the same seed give samples 0 to 7 the same noise.
    pub fn for_samples(&self, first: usize, count: usize) -> Self {
        let key = self.rng.get_seed();
        let first = self.rows.as_ref().map_or(0, |r| r.first) + first as u64;
        let streams = (0..count as u64).map(|r| stream(key, first + r + 1)).collect();
        Self { rng: stream(key, SHARED_STREAM), rows: Some(Rows { first, streams }) }
    }

    /// The samples a per-sample source draws for (`first`, `count`); `None` for a single stream.
    pub fn samples(&self) -> Option<(usize, usize)> {
        self.rows.as_ref().map(|r| (r.first as usize, r.streams.len()))
    }

    /// `shape.iter().product()` numbers by `draw`: one row per sample from each sample's stream
    /// when this source is per-sample and `shape[0]` is its count, else from the one stream.
    fn fill<const D: usize>(&mut self, shape: [usize; D], draw: fn(&mut ChaCha8Rng, usize, &mut Vec<f32>)) -> Vec<f32> {
        let n: usize = shape.iter().product();
        let mut out = Vec::with_capacity(n);
        match &mut self.rows {
            Some(rows) if D > 0 && shape[0] == rows.streams.len() => {
                let per_row = shape[1..].iter().product();
                for rng in &mut rows.streams {
                    draw(rng, per_row, &mut out);
                }
            }
            _ => draw(&mut self.rng, n, &mut out),
        }
        out
    }

    /// `n` standard normal `f32`s (from the shared stream of a per-sample source).
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n);
        normal_from(&mut self.rng, n, &mut out);
        out
    }

    /// A tensor of i.i.d. `N(0, 1)` entries (`[batch, ...]`: one row per sample when
    /// per-sample).
    pub fn normal<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(self.fill(shape, normal_from), shape), device)
    }

    /// A tensor of i.i.d. Rademacher (`+-1` with probability 1/2) entries (`[batch, ...]`: one
    /// row per sample when per-sample).
    pub fn rademacher<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(self.fill(shape, rademacher_from), shape), device)
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

    /// The stream's position (every stream's, for a per-sample source), to resume it exactly
    /// (training checkpoints).
    pub fn state(&self) -> NoiseState {
        let rows = self.rows.as_ref().map(|r| RowsState { first: r.first, word_pos: r.streams.iter().map(ChaCha8Rng::get_word_pos).collect() });
        NoiseState { seed: self.rng.get_seed(), word_pos: self.rng.get_word_pos(), rows }
    }

    /// A source at the position `state` was taken at.
    pub fn from_state(state: &NoiseState) -> Self {
        let at = |s: u64, word_pos: u128| {
            let mut rng = stream(state.seed, s);
            rng.set_word_pos(word_pos);
            rng
        };
        match &state.rows {
            None => Self { rng: at(0, state.word_pos), rows: None },
            Some(r) => Self {
                rng: at(SHARED_STREAM, state.word_pos),
                rows: Some(Rows { first: r.first, streams: r.word_pos.iter().zip(r.first + 1..).map(|(&w, s)| at(s, w)).collect() }),
            },
        }
    }
}

/// The position of a [`NoiseSource`]: its ChaCha8 key and the number of 32-bit words drawn.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoiseState {
    /// The 256-bit key derived from the seed.
    pub seed: [u8; 32],
    /// Words consumed so far (of the shared stream, for a per-sample source).
    pub word_pos: u128,
    /// A per-sample source's streams; absent for a single stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowsState>,
}

/// The positions of a per-sample source's streams.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowsState {
    /// The index of the first sample.
    pub first: u64,
    /// Words consumed so far by each sample's stream.
    pub word_pos: Vec<u128>,
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
    #[test]
    fn a_single_stream_is_the_one_it_was() {
        // Training's resumable streams: the same numbers as before per-sample sources existed
        // (the first of ChaCha8's stream 0 under `seed_from_u64(7)`).
        let mut a = NoiseSource::new(7);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let want: Vec<f32> = (0..10).map(|_| StandardNormal.sample(&mut rng)).collect();
        assert_eq!(a.normal([2, 5], &burn::tensor::Device::flex()).into_data().try_to_vec::<f32>().unwrap(), want);
        assert_eq!(a.samples(), None);
    }

    #[test]
    fn a_sample_gets_its_noise_whatever_the_split() {
        let dev = burn::tensor::Device::flex();
        let rows = |src: &mut NoiseSource, b: usize| src.normal([b, 3], &dev).into_data().try_to_vec::<f32>().unwrap();
        let root = NoiseSource::new(5);
        let mut whole = root.for_samples(0, 8);
        let (a, b) = (rows(&mut whole, 8), rows(&mut whole, 8));
        let (mut left, mut right) = (root.for_samples(0, 3), root.for_samples(3, 5));
        let (a_left, a_right) = (rows(&mut left, 3), rows(&mut right, 5));
        assert_eq!([a_left, a_right].concat(), a);
        // The second draw too, and a slice of a slice counts from the slice's first sample.
        let mut nested = root.for_samples(2, 6).for_samples(1, 5);
        assert_eq!(nested.samples(), Some((3, 5)));
        let _ = rows(&mut nested, 5);
        assert_eq!([rows(&mut left, 3), rows(&mut nested, 5)].concat(), b);
        assert_ne!(a, b);
        // Rows differ from each other and from the single stream; the position of the source
        // a slice is taken from does not matter.
        assert_ne!(a[..3], a[3..6]);
        let mut moved = NoiseSource::new(5);
        assert_ne!(rows(&mut moved, 8), a);
        assert_eq!(rows(&mut moved.for_samples(0, 8), 8), a);
        // Scalars and tensors that are not one row per sample come from the shared stream.
        let mut p = root.for_samples(0, 8);
        let u = p.uniform();
        assert_eq!(rows(&mut p, 8), a);
        assert_eq!(root.for_samples(3, 5).uniform(), u);
    }

    #[test]
    fn a_per_sample_state_resumes_every_stream() {
        let dev = burn::tensor::Device::flex();
        let mut a = NoiseSource::new(3).for_samples(4, 3);
        let _ = a.normal([3, 7], &dev);
        let _ = a.normal_vec(5);
        let json = serde_json::to_string(&a.state()).unwrap();
        let mut b = NoiseSource::from_state(&serde_json::from_str(&json).unwrap());
        assert_eq!(b.samples(), Some((4, 3)));
        let draw = |s: &mut NoiseSource| s.rademacher([3, 9], &dev).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(draw(&mut a), draw(&mut b));
        assert_eq!(a.uniform(), b.uniform());
        // A single stream's state reads as before (no `rows` field).
        assert!(!serde_json::to_string(&NoiseSource::new(1).state()).unwrap().contains("rows"));
    }
}
