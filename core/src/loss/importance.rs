//! Importance sampling of the DDPM level by the loss's second moment.
//!
//! Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models", section 3.3:
//! `L_vlb = E_{t ~ p_t}[L_t / p_t]` with `p_t ∝ sqrt(E[L_t^2])`, `E[L_t^2]` estimated from the
//! last 10 losses seen at each level; until every level has 10, `t` is drawn uniformly. As in
//! the reference code's `LossSecondMomentResampler` (`resample.py`), the probabilities are mixed
//! with `0.001` of the uniform distribution (no level is starved), and a sample drawn at level
//! `t` is weighted `1 / (N p_t)`, so the weighted objective has the uniform one's expectation.

use crate::noise::NoiseSource;
use serde::{Deserialize, Serialize};

/// Losses kept per level.
pub const HISTORY: usize = 10;
/// Weight of the uniform distribution mixed into the learned one.
pub const UNIFORM_PROB: f64 = 0.001;

/// The last [`HISTORY`] losses of each level `1..=N` (saved with a training run's state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossSecondMoment {
    /// `history[i - 1]`: the latest losses at level `i`, oldest first.
    history: Vec<Vec<f64>>,
}

impl LossSecondMoment {
    /// An empty history over `levels` levels.
    pub fn new(levels: usize) -> Self {
        Self { history: vec![Vec::with_capacity(HISTORY); levels] }
    }

    /// Number of levels `N`.
    pub fn levels(&self) -> usize {
        self.history.len()
    }

    /// Whether every level has [`HISTORY`] losses (before that, sampling is uniform).
    pub fn warmed_up(&self) -> bool {
        self.history.iter().all(|h| h.len() == HISTORY)
    }

    /// `p_t` for the levels `1..=N`: uniform before warm-up, else
    /// `(1 - UNIFORM_PROB) sqrt(mean L_t^2) / sum + UNIFORM_PROB / N`.
    pub fn probabilities(&self) -> Vec<f64> {
        let n = self.levels() as f64;
        if !self.warmed_up() {
            return vec![1.0 / n; self.levels()];
        }
        let rms: Vec<f64> = self.history.iter().map(|h| (h.iter().map(|l| l * l).sum::<f64>() / h.len() as f64).sqrt()).collect();
        let total: f64 = rms.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return vec![1.0 / n; self.levels()];
        }
        rms.iter().map(|r| (1.0 - UNIFORM_PROB) * r / total + UNIFORM_PROB / n).collect()
    }

    /// Draws `batch` levels from [`probabilities`](Self::probabilities), with their weights
    /// `1 / (N p_t)` (all 1 before warm-up, when the draw is [`uniform_levels`]'s).
    pub fn sample(&self, batch: usize, noise: &mut NoiseSource) -> (Vec<usize>, Vec<f64>) {
        if !self.warmed_up() {
            return (uniform_levels(batch, self.levels(), noise), vec![1.0; batch]);
        }
        let p = self.probabilities();
        let n = self.levels();
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for q in &p {
            acc += q;
            cdf.push(acc);
        }
        let levels: Vec<usize> = (0..batch)
            .map(|_| {
                let u = noise.uniform() * acc;
                cdf.partition_point(|&c| c <= u).min(n - 1) + 1
            })
            .collect();
        let weights = levels.iter().map(|&i| 1.0 / (n as f64 * p[i - 1])).collect();
        (levels, weights)
    }

    /// Records the loss of each sample at its level (keeping the latest [`HISTORY`]).
    ///
    /// # Panics
    /// If a level is outside `1..=N` or the lengths differ.
    pub fn update(&mut self, levels: &[usize], losses: &[f64]) {
        assert_eq!(levels.len(), losses.len(), "one loss per level");
        for (&i, &l) in levels.iter().zip(losses) {
            let h = &mut self.history[i - 1];
            if h.len() == HISTORY {
                h.remove(0);
            }
            h.push(l);
        }
    }
}

/// `batch` levels drawn uniformly from `1..=levels`.
pub fn uniform_levels(batch: usize, levels: usize, noise: &mut NoiseSource) -> Vec<usize> {
    (0..batch).map(|_| 1 + noise.index(levels)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_until_every_level_has_its_history() {
        let mut h = LossSecondMoment::new(3);
        let mut noise = NoiseSource::new(0);
        for _ in 0..HISTORY {
            h.update(&[1, 2], &[1.0, 2.0]);
        }
        assert!(!h.warmed_up());
        assert_eq!(h.probabilities(), vec![1.0 / 3.0; 3]);
        let (levels, w) = h.sample(5, &mut noise);
        assert!(levels.iter().all(|&i| (1..=3).contains(&i)) && w == vec![1.0; 5]);
        for _ in 0..HISTORY - 1 {
            h.update(&[3], &[4.0]);
        }
        assert!(!h.warmed_up());
        h.update(&[3], &[4.0]);
        assert!(h.warmed_up());
    }

    /// After warm-up: `p ∝ rms` mixed with the uniform, the latest 10 losses only, draws at
    /// those frequencies and weights `1 / (N p)`.
    #[test]
    fn second_moment_probabilities_frequencies_and_weights() {
        let mut h = LossSecondMoment::new(3);
        for _ in 0..HISTORY {
            h.update(&[1, 2, 3], &[100.0, 1.0, 3.0]);
        }
        // An 11th value pushes the oldest out: level 1 now holds nine 100s and one 0.
        h.update(&[1], &[0.0]);
        let rms = [(9.0 * 1e4 / 10.0f64).sqrt(), 1.0, 3.0];
        let total: f64 = rms.iter().sum();
        let expect: Vec<f64> = rms.iter().map(|r| 0.999 * r / total + 0.001 / 3.0).collect();
        let p = h.probabilities();
        for (a, e) in p.iter().zip(&expect) {
            assert!((a - e).abs() < 1e-15, "{p:?} vs {expect:?}");
        }
        let mut noise = NoiseSource::new(1);
        let n = 40_000;
        let (levels, w) = h.sample(n, &mut noise);
        for k in 1..=3 {
            let freq = levels.iter().filter(|&&i| i == k).count() as f64 / n as f64;
            let se = (expect[k - 1] * (1.0 - expect[k - 1]) / n as f64).sqrt();
            assert!((freq - expect[k - 1]).abs() < 5.0 * se, "level {k}: {freq} vs {}", expect[k - 1]);
        }
        for (&i, &wi) in levels.iter().zip(&w) {
            assert!((wi - 1.0 / (3.0 * expect[i - 1])).abs() < 1e-12);
        }
        // E[w] under p is 1 (the weighted objective keeps the uniform one's mean).
        let mean_w = w.iter().sum::<f64>() / n as f64;
        let var_w: f64 = expect.iter().map(|q| q * (1.0 / (3.0 * q)).powi(2)).sum::<f64>() - 1.0;
        assert!((mean_w - 1.0).abs() < 5.0 * (var_w / n as f64).sqrt(), "{mean_w}");
        let back: LossSecondMoment = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }
}
