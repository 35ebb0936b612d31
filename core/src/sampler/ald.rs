//! Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1; NCSN).
//!
//! For levels `i = 0 .. n-1` (times `t_0 = T > ... > t_{n-1} = t_min`), run `M` unadjusted
//! Langevin steps targeting `p_{t_i}` with step size `alpha_i = epsilon s_i^2 / s_L^2`, where
//! `s_i` is the marginal std at level `i` and `s_L` the smallest. `step_lr` is the relative step
//! `epsilon / s_L^2` (NCSN: `2e-5 / 0.01^2 = 0.2`), so `alpha_i = step_lr s_i^2`, which works
//! for any SDE. An optional Tweedie step at `t_min` follows (NCSNv2's final denoising).

use super::{Sampler, Step, langevin_update};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use crate::sde::Sde;
use burn::tensor::Tensor;

/// Annealed Langevin dynamics; one [`Sampler::step`] runs all Langevin steps of one level.
#[derive(Debug, Clone)]
pub struct AnnealedLangevin {
    levels: Vec<(f64, f64)>, // (t_i, alpha_i)
    k: usize,
    steps_per_level: usize,
}

impl AnnealedLangevin {
    /// Levels from a [`time_grid`](super::time_grid) (its final `t = 0` is dropped).
    pub fn new(sde: &dyn Sde, times: Vec<f64>, steps_per_level: usize, step_lr: f64) -> Self {
        // `t = 0` is no level even where its std is positive (VE's `sigma_min`): `n` steps are `n`
        // levels, and given times `[t, 0]` are one level at `t` (plain Langevin dynamics).
        let levels = times.into_iter().filter(|&t| t > 0.0 && sde.marginal(t).1 > 0.0).map(|t| (t, step_lr * sde.marginal(t).1.powi(2))).collect();
        Self { levels, k: 0, steps_per_level: steps_per_level.max(1) }
    }
}

impl<const D: usize> Sampler<D> for AnnealedLangevin {
    fn step(&mut self, x: Tensor<D>, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let (t, alpha) = self.levels[self.k];
        self.k += 1;
        let mut step = Step::deterministic(x);
        for _ in 0..self.steps_per_level {
            let score = f.score(step.x.clone(), t);
            let z = noise.normal(step.x.dims(), &step.x.device());
            step = langevin_update(step.x, score, alpha, z);
        }
        step
    }
    fn is_done(&self) -> bool {
        self.k >= self.levels.len()
    }
    fn progress(&self) -> (usize, usize) {
        (self.k, self.levels.len())
    }
    fn time(&self) -> f64 {
        self.levels[self.k.min(self.levels.len() - 1)].0
    }
}
