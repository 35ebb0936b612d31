//! Respaced DDPM schedules: sampling with a subsequence of the training levels.
//!
//! Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models", section 4: for
//! a subsequence `S = (S_1 < ... < S_K)` of the training levels `1..=N`, the sampling chain has
//! `alpha_bar'_k = alpha_bar_{S_k}` and the betas
//! `beta'_k = 1 - alpha_bar_{S_k} / alpha_bar_{S_{k-1}}` (`alpha_bar_{S_0} = 1`), with the
//! posterior variances `beta~'_k = (1 - alpha_bar_{S_{k-1}}) / (1 - alpha_bar_{S_k}) beta'_k`.
//! [`space_timesteps`] picks `S` as the reference code does (`respace.py`), evenly strided
//! within each of a few equal sections of the grid.
//!
//! # Network time
//! No second SDE is built. Level `i` of a [`DiscreteVpSde`] sits at time `t_i = i / N`, and a
//! sampler on the grid `t_{S_K} > ... > t_{S_1} > 0` ([`Respaced::times`]) takes the SDE's
//! exact transitions between kept times: [`Sde::transition`](super::Sde::transition) from
//! `t_{S_{k-1}}` to `t_{S_k}` has variance `1 - alpha_bar_{S_k} / alpha_bar_{S_{k-1}} = beta'_k`,
//! so the ancestral sampler's `beta` and `beta~` (and the learned range between them) are the
//! respaced ones without further work. The network is evaluated at the kept levels' original
//! times `t_{S_k}` (its time embedding sees `1000 t`, i.e. the level `S_k` when `N = 1000`): what
//! the reference code's `_WrappedModel` does by mapping `k` back to `S_k`.

use super::{DiscreteVpSde, SdeError};

/// The reference code's `space_timesteps(N, section_counts)`, as 1-based levels.
///
/// The grid `0..N` (0-based, as in the reference) is cut into `section_counts.len()` sections
/// of sizes `N / len` (the first `N % len` one larger); section `j` keeps
/// `section_counts[j]` steps at `start + round(c)` for `c = 0, s, 2s, ...` accumulated by
/// repeated addition with stride `s = (size - 1) / (count - 1)`, rounded half to even (Python's
/// `round`). Returns the kept levels `1..=N`, increasing.
///
/// ```
/// use scorediff::sde::space_timesteps;
/// // 0-based 0, 4.5 -> 4, 9: levels 1, 5, 10.
/// assert_eq!(space_timesteps(10, &[3]).unwrap(), vec![1, 5, 10]);
/// ```
pub fn space_timesteps(levels: usize, section_counts: &[usize]) -> Result<Vec<usize>, SdeError> {
    let err = |message: String| SdeError { field: "section_counts", message };
    if section_counts.is_empty() {
        return Err(err("expected at least one section, found none".into()));
    }
    let sections = section_counts.len();
    if sections > levels {
        return Err(err(format!("expected at most {levels} sections (one per level), found {sections}")));
    }
    let (size_per, extra) = (levels / sections, levels % sections);
    let mut start = 0usize;
    let mut kept = Vec::new();
    for (j, &count) in section_counts.iter().enumerate() {
        let size = size_per + usize::from(j < extra);
        if count == 0 || count > size {
            return Err(err(format!("section {j}: expected 1..={size} steps (its size), found {count}")));
        }
        let stride = if count <= 1 { 1.0 } else { (size - 1) as f64 / (count - 1) as f64 };
        let mut c = 0.0f64;
        for _ in 0..count {
            kept.push(start + c.round_ties_even() as usize + 1);
            c += stride;
        }
        start += size;
    }
    kept.sort_unstable();
    kept.dedup();
    Ok(kept)
}

/// A subsequence of a discrete schedule's levels with its recomputed betas (see the
/// [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct Respaced {
    /// The kept levels `S_1 < ... < S_K`, in `1..=N`.
    pub levels: Vec<usize>,
    /// `beta'_k = 1 - alpha_bar_{S_k} / alpha_bar_{S_{k-1}}`, `k = 1..=K`.
    pub betas: Vec<f64>,
    /// The training schedule's number of levels `N`.
    pub original_levels: usize,
}

impl Respaced {
    /// The schedule on the kept `levels` (strictly increasing, within `1..=N`).
    pub fn new(sde: &DiscreteVpSde, levels: Vec<usize>) -> Result<Self, SdeError> {
        let n = sde.levels();
        let err = |message: String| SdeError { field: "levels", message };
        if levels.is_empty() {
            return Err(err("expected at least one kept level, found none".into()));
        }
        if let Some(&i) = levels.iter().find(|&&i| i == 0 || i > n) {
            return Err(err(format!("expected levels in 1..={n}, found {i}")));
        }
        if let Some(w) = levels.windows(2).find(|w| w[0] >= w[1]) {
            return Err(err(format!("expected strictly increasing levels, found {} before {}", w[0], w[1])));
        }
        let mut prev = 0usize;
        let betas = levels
            .iter()
            .map(|&i| {
                // 1 - exp(log ab_i - log ab_prev), without cancellation for small steps.
                let b = -(sde.log_alpha_bar_at_level(i) - sde.log_alpha_bar_at_level(prev)).exp_m1();
                prev = i;
                b
            })
            .collect();
        Ok(Self { levels, betas, original_levels: n })
    }

    /// `count` levels evenly spaced over the whole grid: `space_timesteps(N, [count])`.
    pub fn even(sde: &DiscreteVpSde, count: usize) -> Result<Self, SdeError> {
        Self::new(sde, space_timesteps(sde.levels(), &[count])?)
    }

    /// `alpha_bar'_k = prod_{j <= k} (1 - beta'_j)`, `k = 0..=K` (`alpha_bar'_0 = 1`), from the
    /// respaced betas alone.
    pub fn alphas_bar(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.betas.len() + 1);
        out.push(1.0);
        let mut acc = 1.0;
        for b in &self.betas {
            acc *= 1.0 - b;
            out.push(acc);
        }
        out
    }

    /// The sampling grid `t_{S_K} > ... > t_{S_1} > 0` (`t_i = i / N`) for a
    /// [`GridSampler`](crate::sampler::GridSampler): the network sees the kept levels' original times.
    pub fn times(&self) -> Vec<f64> {
        let n = self.original_levels as f64;
        self.levels.iter().rev().map(|&i| i as f64 / n).chain(std::iter::once(0.0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Posterior;
    use crate::sde::{ScheduleKind, Sde};

    #[test]
    fn space_timesteps_is_the_reference_rule() {
        // 0-based: stride 999 / 9 = 111 -> 0, 111, ..., 999.
        let ten = space_timesteps(1000, &[10]).unwrap();
        assert_eq!(ten, (0..10).map(|k| 111 * k + 1).collect::<Vec<_>>());
        // Python's round(4.5) = 4 (half to even).
        assert_eq!(space_timesteps(10, &[3]).unwrap(), vec![1, 5, 10]);
        // Two sections of 5: [0, 4] and [5] (0-based).
        assert_eq!(space_timesteps(10, &[2, 1]).unwrap(), vec![1, 5, 6]);
        // Uneven sections: 11 = 6 + 5; [0, 5] and [6, 8, 10].
        assert_eq!(space_timesteps(11, &[2, 3]).unwrap(), vec![1, 6, 7, 9, 11]);
        assert_eq!(space_timesteps(1000, &[1000]).unwrap(), (1..=1000).collect::<Vec<_>>());
        for count in [25, 50, 100] {
            let s = space_timesteps(1000, &[count]).unwrap();
            assert_eq!((s.len(), s[0], s[count - 1]), (count, 1, 1000));
        }
        assert!(space_timesteps(10, &[11]).unwrap_err().message.contains("section 0"));
        assert!(space_timesteps(10, &[3, 0]).is_err());
        assert!(space_timesteps(10, &[]).is_err());
    }

    /// Section 4: the respaced betas reproduce the original `alpha_bar` on the kept levels.
    #[test]
    fn respaced_alphas_bar_equal_the_original_on_kept_levels() {
        for kind in [ScheduleKind::Linear, ScheduleKind::Cosine] {
            let sde = DiscreteVpSde::new(kind, 1000).unwrap();
            for count in [25, 50, 100, 1000] {
                let r = Respaced::even(&sde, count).unwrap();
                let ab = r.alphas_bar();
                for (k, &i) in r.levels.iter().enumerate() {
                    let expect = sde.alpha_bar(i);
                    assert!((ab[k + 1] - expect).abs() <= 1e-12 * expect.max(1e-300) + 1e-15, "{kind:?} K={count} level {i}: {} vs {expect}", ab[k + 1]);
                }
                if count == 1000 {
                    for (b, e) in r.betas.iter().zip(&sde.betas) {
                        assert!((b - e).abs() < 1e-12, "{b} vs {e}");
                    }
                }
            }
        }
        let sde = DiscreteVpSde::new(ScheduleKind::Linear, 100).unwrap();
        assert!(Respaced::new(&sde, vec![5, 5]).is_err());
        assert!(Respaced::new(&sde, vec![0, 5]).is_err());
        assert!(Respaced::new(&sde, vec![101]).is_err());
        assert!(Respaced::new(&sde, vec![]).is_err());
    }

    /// The ancestral sampler's posterior between kept times (from the SDE's marginals) is the
    /// respaced chain's: `beta'`, `beta~'` and the mean coefficients of Ho et al. eq. (7) with
    /// the respaced `alpha_bar'`.
    #[test]
    fn the_samplers_posterior_between_kept_times_is_the_respaced_one() {
        let sde = DiscreteVpSde::new(ScheduleKind::Cosine, 1000).unwrap();
        let r = Respaced::even(&sde, 25).unwrap();
        let ab = r.alphas_bar();
        let times = r.times();
        assert_eq!(times.len(), 26);
        assert_eq!((times[0], times[24], times[25]), (1.0, 0.001, 0.0));
        for (k, &i) in r.levels.iter().enumerate() {
            let t = i as f64 / 1000.0;
            assert_eq!(sde.snap(t), t, "kept times lie on the grid");
            let s = if k == 0 { 0.0 } else { r.levels[k - 1] as f64 / 1000.0 };
            let p = Posterior::new(&sde, t, s);
            let (b, abk, abp) = (r.betas[k], ab[k + 1], ab[k]);
            let close = |a: f64, e: f64| (a - e).abs() <= 1e-9 * e.abs() + 1e-12;
            assert!(close(p.var_large, b), "level {i}: beta {} vs {b}", p.var_large);
            assert!(close(p.var_small, (1.0 - abp) / (1.0 - abk) * b), "level {i}");
            assert!(close(p.coef_x0, abp.sqrt() * b / (1.0 - abk)), "level {i}");
            assert!(close(p.coef_x, (1.0 - b).sqrt() * (1.0 - abp) / (1.0 - abk)), "level {i}");
        }
    }
}
