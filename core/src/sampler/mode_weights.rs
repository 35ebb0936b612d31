//! Langevin dynamics and the weights of separated modes (Song & Ermon 2019, section 3.2.2,
//! Fig. 3).
//!
//! For `p = w_1 N(mu_1, I) + w_2 N(mu_2, I)` with modes far apart, the score in each mode's
//! region does not depend on the weights (`grad log p ~ -(x - mu_k)` there), so Langevin
//! dynamics (eq. 4) at one small noise level sends each particle to the mode of the basin it
//! starts in and almost never crosses between them: the fractions are the initial distribution's
//! split of the basins (about a half each from a prior centred between the modes), whatever the
//! weights. Annealed Langevin dynamics (Alg. 1) starts where the noise `sigma_1` is large enough
//! that the perturbed modes overlap, mixes there, and freezes the split as the levels fall: each
//! component keeps its weight in every `p_sigma`, so the fractions are the weights.
//!
//! [`contrast`] gives the two runs as sampler configs (`ald` with one level, and `ald` on the
//! SDE's grid), chosen so that the contrast is reliable and cheap at [`PARTICLES`] particles;
//! `tests/tests/mode_weights.rs` checks them against the exact score of the page's mixture
//! (`www/models/mixtures/pitfalls.json`), and the page runs these same configs.

use super::{SamplerKind, SamplerSpec};
use crate::sde::Sde;

/// Particles per run: the binomial standard error of a fraction near `w = 0.2` is
/// `sqrt(0.16 / 1000) = 0.013`, so plain Langevin's split near 0.5 lies about 24 standard errors
/// from the weight, and annealed Langevin's is judged to within `4 x 0.013 = 0.05`.
pub const PARTICLES: usize = 1000;

/// Plain Langevin: steps at the one level.
pub const PLAIN_STEPS: usize = 200;

/// Plain Langevin's step size relative to the level's noise variance, `alpha = step_lr
/// sigma^2`: at `sigma_min = 0.1` this is `alpha = 0.1`, a tenth of a unit component's variance,
/// so 200 steps contract the distance to the nearest mode by `(1 - alpha / 2)^200 = e^-10`
/// (a particle from the prior's tail at 60 ends within 0.003 of the mode's own spread).
pub const PLAIN_STEP_LR: f64 = 10.0;

/// Annealed Langevin: noise levels (uniform in `t`: geometric in `sigma` for VE, a ratio of
/// `200^(1/39) = 1.15` between levels from 20 to 0.1).
///
/// Chosen from a sweep on the page's mixture (1000 particles, seeds 0-3, the minor component's
/// `z` = (fraction - 0.2) / se): too few steps where the modes separate (`sigma` about 3 to 7)
/// leave particles in the minor mode's basin, a bias towards the equal split. 10 levels x 20
/// steps at `step_lr` 0.2 gave z = +4.7 +3.7 +5.9 +4.9 (fails); 20 x 20 at 0.2 gave
/// +4.2 +3.7 +3.7 +2.4; 20 x 100 at 0.2 gave +1.4 +0.9 +2.1 +1.5; 40 x 50 at 0.5 (these) gave
/// +0.7 +0.2 +0.6 +1.3; 40 x 200 at 0.2 gave +0.6 +1.3 -0.3 -0.1 at twice the cost. 2000 score
/// evaluations in all, against plain Langevin's 200.
pub const ANNEALED_LEVELS: usize = 40;

/// Annealed Langevin: steps per level.
pub const ANNEALED_STEPS_PER_LEVEL: usize = 50;

/// Annealed Langevin's `step_lr` (NCSN's `epsilon / sigma_L^2` with `alpha_i = step_lr
/// sigma_i^2`): 0.5 moves a particle by about `0.7 sigma_i` per step while the level's
/// variance is `1 + sigma_i^2`, so a level of 50 steps relaxes where the modes still overlap
/// (unadjusted Langevin's stationary variance is then `1 / (1 - alpha / 4v)`, at most 14% too
/// wide: the split of the modes, not their width, is what is judged).
pub const ANNEALED_STEP_LR: f64 = 0.5;

/// The two runs of the contrast for `sde`: `[plain, annealed]`.
///
/// Plain: [`PLAIN_STEPS`] Langevin steps at the SDE's smallest time `t_min` (the given times
/// `[t_min, 0]` are one level, see [`super::AnnealedLangevin`]), with the exact score of the
/// slightly noised mixture there. Annealed: [`ANNEALED_LEVELS`] levels from `T` down to `t_min`,
/// [`ANNEALED_STEPS_PER_LEVEL`] steps each. Both start from the SDE's prior.
pub fn contrast(sde: &dyn Sde) -> [SamplerSpec; 2] {
    let plain = SamplerSpec {
        times: Some(vec![sde.t_min(), 0.0]),
        corrector_steps: Some(PLAIN_STEPS),
        step_lr: Some(PLAIN_STEP_LR),
        ..SamplerSpec::new(SamplerKind::Ald)
    };
    let annealed = SamplerSpec {
        steps: Some(ANNEALED_LEVELS),
        corrector_steps: Some(ANNEALED_STEPS_PER_LEVEL),
        step_lr: Some(ANNEALED_STEP_LR),
        ..SamplerSpec::new(SamplerKind::Ald)
    };
    [plain, annealed]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::VeSde;

    /// Plain Langevin is one level of `PLAIN_STEPS` steps at `t_min`; annealed is
    /// `ANNEALED_LEVELS` levels.
    #[test]
    fn the_runs_have_their_levels() {
        let sde = VeSde::new(0.1, 20.0).unwrap();
        let [plain, annealed] = contrast(&sde);
        let plain = plain.build().unwrap().build::<2>(&sde);
        assert_eq!(plain.progress(), (0, 1));
        let annealed = annealed.build().unwrap().build::<2>(&sde);
        assert_eq!(annealed.progress(), (0, ANNEALED_LEVELS));
    }
}
