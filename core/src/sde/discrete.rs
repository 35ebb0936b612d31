//! Discrete DDPM noise schedules as grids on continuous time.
//!
//! Ho et al. 2020 (linear betas `1e-4 .. 0.02` over 1000 steps, section 4), Nichol &
//! Dhariwal 2021, eq. (17): `alpha_bar(t) = f(t) / f(0)`, `f(t) = cos^2((t + s)/(1 + s) pi/2)`,
//! `s = 0.008`, betas clipped at 0.999, and Rombach et al. 2022's latent-diffusion schedule
//! (diffusers' `scaled_linear`): `sqrt(beta)` linear from `sqrt(0.00085)` to `sqrt(0.012)`.
//! Any of them may be rescaled to a zero terminal SNR (Lin et al. 2024, "Common Diffusion Noise
//! Schedules and Sample Steps are Flawed", Algorithm 1), with `alpha_bar_N` kept above 0 (at
//! diffusers' `2^-24`, or half of `alpha_bar_{N-1}` where that is smaller), so that
//! `sigma = std / mean` and the log-SNR stay finite and monotone for the samplers that step in
//! them.
//!
//! Level `i` of `N` sits at time `t_i = i / N`. Between levels `log alpha_bar` is interpolated
//! linearly, i.e. `beta(t)` is piecewise constant: this makes the schedule an ordinary VP SDE
//! (`f(t) = -1/2 beta(t)`, `g(t) = sqrt(beta(t))`, `beta(t) = -d log alpha_bar / dt`) whose
//! marginals at the grid points are exactly DDPM's `N(sqrt(alpha_bar_i) x_0, (1 - alpha_bar_i) I)`,
//! so every sampler of this crate runs on it unchanged.

use super::{Sde, SdeError};
use serde::{Deserialize, Serialize};

pub(crate) fn default_levels() -> usize {
    1000
}

/// The beta schedule of a discrete DDPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// Ho et al.: betas linear from `1e-4` to `0.02` (scaled by `1000 / N`).
    Linear,
    /// Nichol & Dhariwal's cosine schedule with `s = 0.008`.
    Cosine,
    /// Latent diffusion's (Rombach et al. 2022; diffusers' `scaled_linear`): `sqrt(beta)`
    /// linear from `sqrt(8.5e-4)` to `sqrt(0.012)` (the betas scaled by `1000 / N`, as
    /// [`Linear`](Self::Linear)'s).
    ScaledLinear,
}

impl ScheduleKind {
    /// `(beta_1, beta_N)` of the linear schedules at `N = 1000` levels (`None` for the cosine).
    pub fn beta_range(self) -> Option<(f64, f64)> {
        match self {
            Self::Linear => Some((1e-4, 0.02)),
            Self::ScaledLinear => Some((8.5e-4, 0.012)),
            Self::Cosine => None,
        }
    }
}

/// A discrete DDPM schedule of `N` levels viewed as a VP SDE on `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscreteVpSde {
    /// The schedule the betas came from.
    pub schedule: ScheduleKind,
    /// `beta_1 .. beta_N`.
    pub betas: Vec<f64>,
    /// `log alpha_bar_0 = 0, log alpha_bar_1, .., log alpha_bar_N`.
    log_alphas_bar: Vec<f64>,
    /// Whether the betas were rescaled to a zero terminal SNR.
    pub zero_terminal_snr: bool,
}

/// The largest `alpha_bar_N` of a schedule rescaled to a zero terminal SNR: diffusers' `2^-24`
/// (its `rescale_betas_zero_snr` Euler and DPM-Solver schedulers set `alphas_cumprod[-1] =
/// 2**-24`), an SNR of `6e-8`.
pub const ZERO_SNR_ALPHA_BAR: f64 = 1.0 / 16_777_216.0;

impl DiscreteVpSde {
    /// Builds the schedule with `levels >= 2` levels.
    pub fn new(schedule: ScheduleKind, levels: usize) -> Result<Self, SdeError> {
        if levels < 2 {
            return Err(SdeError { field: "levels", message: format!("expected at least 2, found {levels}") });
        }
        let n = levels as f64;
        let betas: Vec<f64> = match schedule {
            ScheduleKind::Linear | ScheduleKind::ScaledLinear => {
                let scale = 1000.0 / n;
                let (b0, b1) = schedule.beta_range().expect("a linear schedule");
                let (b0, b1) = (scale * b0, scale * b1);
                if b1 >= 1.0 {
                    let top = b1 * n; // beta_N = top / N
                    let message = format!("the {schedule:?} schedule needs more than {top} levels (beta_N = {top} / N must be below 1), found {levels}");
                    return Err(SdeError { field: "levels", message });
                }
                let frac = |i: usize| i as f64 / (n - 1.0);
                match schedule {
                    ScheduleKind::Linear => (0..levels).map(|i| b0 + (b1 - b0) * frac(i)).collect(),
                    _ => (0..levels).map(|i| (b0.sqrt() + (b1.sqrt() - b0.sqrt()) * frac(i)).powi(2)).collect(),
                }
            }
            ScheduleKind::Cosine => {
                let s = 0.008;
                let f = |t: f64| ((t + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos().powi(2);
                (1..=levels).map(|i| (1.0 - f(i as f64 / n) / f((i - 1) as f64 / n)).min(0.999)).collect()
            }
        };
        Ok(Self::from_betas(schedule, betas))
    }

    fn from_betas(schedule: ScheduleKind, betas: Vec<f64>) -> Self {
        let mut log_alphas_bar = Vec::with_capacity(betas.len() + 1);
        log_alphas_bar.push(0.0);
        let mut acc = 0.0;
        for b in &betas {
            acc += (1.0 - b).ln();
            log_alphas_bar.push(acc);
        }
        Self { schedule, betas, log_alphas_bar, zero_terminal_snr: false }
    }

    /// The schedule rescaled to a zero terminal SNR (Lin et al. 2024, Algorithm 1): `sqrt(alpha_bar_i)`
    /// shifted so that its last value is 0 and scaled so that its first (`alpha_bar_1`) is
    /// kept, `sqrt(ab'_i) = (sqrt(ab_i) - sqrt(ab_N)) sqrt(ab_1) / (sqrt(ab_1) - sqrt(ab_N))`,
    /// then `alpha_bar_N` raised from 0 to the smaller of [`ZERO_SNR_ALPHA_BAR`] and
    /// `ab'_{N-1} / 2` (Ho et al.'s linear schedule rescaled has `ab'_{N-1} = 4.2e-9`, below
    /// diffusers' `2^-24`: the SNR must still fall at the last step); the betas follow as
    /// `1 - ab'_i / ab'_{i-1}`.
    pub fn with_zero_terminal_snr(self) -> Self {
        let n = self.levels();
        let root = |i: usize| (0.5 * self.log_alphas_bar[i]).exp();
        let (first, last) = (root(1), root(n));
        let mut bars: Vec<f64> = (1..=n).map(|i| ((root(i) - last) * first / (first - last)).powi(2)).collect();
        bars[n - 1] = if n > 1 { ZERO_SNR_ALPHA_BAR.min(0.5 * bars[n - 2]) } else { ZERO_SNR_ALPHA_BAR };
        let mut prev = 1.0;
        let betas = bars
            .iter()
            .map(|&ab| {
                let beta = 1.0 - ab / prev;
                prev = ab;
                beta
            })
            .collect();
        Self { zero_terminal_snr: true, ..Self::from_betas(self.schedule, betas) }
    }

    /// Number of levels `N`.
    pub fn levels(&self) -> usize {
        self.betas.len()
    }

    /// `alpha_bar_i`, `i in 0..=N` (`alpha_bar_0 = 1`).
    pub fn alpha_bar(&self, i: usize) -> f64 {
        self.log_alphas_bar[i].exp()
    }

    /// `log alpha_bar_i`, `i in 0..=N`, as accumulated from the betas.
    pub fn log_alpha_bar_at_level(&self, i: usize) -> f64 {
        self.log_alphas_bar[i]
    }

    /// The segment `((i-1)/N, i/N]` holding `t`, as `i in 1..=N`, and the fraction into it.
    fn segment(&self, t: f64) -> (usize, f64) {
        let n = self.levels();
        let u = (t * n as f64).clamp(0.0, n as f64);
        let i = (u.ceil() as usize).clamp(1, n);
        (i, u - (i - 1) as f64)
    }

    fn log_alpha_bar(&self, t: f64) -> f64 {
        let (i, frac) = self.segment(t);
        let (a, b) = (self.log_alphas_bar[i - 1], self.log_alphas_bar[i]);
        a + frac * (b - a)
    }

    /// `beta(t) = -d log alpha_bar / dt`, constant on each segment.
    pub fn beta(&self, t: f64) -> f64 {
        let (i, _) = self.segment(t);
        (self.log_alphas_bar[i - 1] - self.log_alphas_bar[i]) * self.levels() as f64
    }
}

impl Sde for DiscreteVpSde {
    fn t_min(&self) -> f64 {
        1.0 / self.levels() as f64
    }
    fn drift_coef(&self, t: f64) -> f64 {
        -0.5 * self.beta(t)
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.beta(t).sqrt()
    }
    fn marginal(&self, t: f64) -> (f64, f64) {
        let la = self.log_alpha_bar(t);
        ((0.5 * la).exp(), (-la.exp_m1()).sqrt())
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
    fn snap(&self, t: f64) -> f64 {
        let n = self.levels() as f64;
        (t * n).round() / n
    }
    /// DDPM's own step: `x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z` (exact on the grid).
    fn discretize(&self, t: f64, dt: f64) -> (f64, f64) {
        let a2 = (self.log_alpha_bar(t) - self.log_alpha_bar((t - dt).max(0.0))).exp();
        (a2.sqrt() - 1.0, (1.0 - a2).max(0.0).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::tests::*;

    #[test]
    fn zero_terminal_snr_rescaling_is_lin_et_al_algorithm_1() {
        let base = DiscreteVpSde::new(ScheduleKind::Linear, 1000).unwrap();
        let sde = base.clone().with_zero_terminal_snr();
        // By hand from Algorithm 1: the shifted and scaled sqrt(alpha_bar).
        let (a1, an) = (base.alpha_bar(1).sqrt(), base.alpha_bar(1000).sqrt());
        for i in [1, 2, 500, 999] {
            let want = ((base.alpha_bar(i).sqrt() - an) * a1 / (a1 - an)).powi(2);
            assert!((sde.alpha_bar(i) - want).abs() < 1e-12 * want.max(1e-6), "alpha_bar_{i}: {} vs {want}", sde.alpha_bar(i));
        }
        assert!((sde.alpha_bar(1) - base.alpha_bar(1)).abs() < 1e-15);
        // Ho et al.'s rescaled alpha_bar_999 is 4.2133e-9 (numpy, Algorithm 1 as written),
        // below 2^-24: the last level halves it.
        assert!((sde.alpha_bar(999) / 4.21326e-9 - 1.0).abs() < 1e-5, "{}", sde.alpha_bar(999));
        assert!((sde.alpha_bar(1000) / sde.alpha_bar(999) - 0.5).abs() < 1e-9);
        // The marginal at t = 1 is the prior up to sqrt(alpha_bar_N) = 4.5e-5 of the data.
        let (m, s) = sde.marginal(1.0);
        assert!(m < 5e-5 && (s - 1.0).abs() < 1e-8, "({m}, {s})");
        assert!(sde.betas.iter().all(|b| b.is_finite() && *b > 0.0 && *b < 1.0), "betas in (0, 1): SNR falls at every level");
        // Lin et al., Table 1: Stable Diffusion's schedule ends at sqrt(alpha_bar_N) = 0.068265
        // before the rescaling.
        let sd = DiscreteVpSde::new(ScheduleKind::ScaledLinear, 1000).unwrap();
        assert!((sd.alpha_bar(1000).sqrt() - 0.068265).abs() < 1e-6);
        // Its rescaled alpha_bar_999 = 1.9e-7 is above 2^-24, which the last level takes.
        let last = sd.with_zero_terminal_snr().alpha_bar(1000);
        assert!((last - ZERO_SNR_ALPHA_BAR).abs() < 1e-12 * ZERO_SNR_ALPHA_BAR, "{last}");
    }

    #[test]
    fn scaled_linear_is_latent_diffusions() {
        // diffusers: betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2.
        let sde = DiscreteVpSde::new(ScheduleKind::ScaledLinear, 1000).unwrap();
        let (r0, r1) = (0.00085f64.sqrt(), 0.012f64.sqrt());
        for i in [0, 1, 499, 998, 999] {
            let want = (r0 + (r1 - r0) * i as f64 / 999.0).powi(2);
            assert!((sde.betas[i] - want).abs() < 1e-15, "beta_{i}: {} vs {want}", sde.betas[i]);
        }
        // Stable Diffusion's sqrt(alpha_bar_T) = 0.068265 (Lin et al. 2024, section 3.1).
        let last = sde.alpha_bar(1000).sqrt();
        assert!((last - 0.068265).abs() < 1e-6, "{last}");
        assert_eq!(DiscreteVpSde::new(ScheduleKind::ScaledLinear, 12).unwrap_err().field, "levels");
    }

    #[test]
    fn linear_schedule_is_ho_et_al() {
        let sde = DiscreteVpSde::new(ScheduleKind::Linear, 1000).unwrap();
        assert!((sde.betas[0] - 1e-4).abs() < 1e-18);
        assert!((sde.betas[999] - 0.02).abs() < 1e-17);
        assert!((sde.betas[1] - (1e-4 + 0.0199 / 999.0)).abs() < 1e-17);
        // alpha_bar_2 = (1 - beta_1)(1 - beta_2) by hand.
        let ab2 = (1.0 - 1e-4) * (1.0 - (1e-4 + 0.0199 / 999.0));
        assert!((sde.alpha_bar(2) - ab2).abs() < 1e-15);
        let (m, s) = sde.marginal(2.0 / 1000.0);
        assert!((m * m - ab2).abs() < 1e-14 && (s * s - (1.0 - ab2)).abs() < 1e-14);
        // log alpha_bar_N = sum log(1 - beta_i) = -10.117713542413101, summed independently in
        // Python (`sum(math.log(1 - b) for b in linspace(1e-4, 0.02, 1000))`).
        assert!((sde.log_alphas_bar[1000] + 10.117713542413101).abs() < 1e-10);
    }

    #[test]
    fn cosine_schedule_by_hand() {
        let sde = DiscreteVpSde::new(ScheduleKind::Cosine, 1000).unwrap();
        let s = 0.008f64;
        let f = |t: f64| ((t + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos().powi(2);
        // Unclipped levels reproduce alpha_bar(t) = f(t)/f(0) exactly.
        for i in [1usize, 10, 500, 900] {
            let t = i as f64 / 1000.0;
            assert!((sde.alpha_bar(i) - f(t) / f(0.0)).abs() < 1e-12, "i={i}");
        }
        // The last betas hit the 0.999 clip (f(1) = 0 would give beta_N = 1).
        assert_eq!(sde.betas[999], 0.999);
        assert!(sde.betas.iter().all(|&b| b > 0.0 && b <= 0.999));
    }

    #[test]
    fn discretize_on_grid_is_the_ddpm_step() {
        let sde = DiscreteVpSde::new(ScheduleKind::Cosine, 100).unwrap();
        for i in [1usize, 37, 100] {
            let (f, g) = sde.discretize(i as f64 / 100.0, 0.01);
            let b = sde.betas[i - 1];
            assert!((f - ((1.0 - b).sqrt() - 1.0)).abs() < 1e-12);
            assert!((g * g - b).abs() < 1e-12);
        }
        assert_eq!(sde.snap(0.1234), 0.12);
        // Ho et al.'s betas scaled by 1000 / N reach 1 at N = 20: no such schedule.
        assert_eq!(DiscreteVpSde::new(ScheduleKind::Linear, 20).unwrap_err().field, "levels");
        assert!(DiscreteVpSde::new(ScheduleKind::Linear, 21).is_ok());
    }

    #[test]
    fn is_a_vp_sde_between_grid_points() {
        for kind in [ScheduleKind::Linear, ScheduleKind::Cosine] {
            let sde = DiscreteVpSde::new(kind, 1000).unwrap();
            check_marginal_odes(&sde, &[0.0505, 0.3335, 0.7775], 1e-5);
            check_marginal_by_simulation(&sde, 0.25, 4);
        }
    }
}
