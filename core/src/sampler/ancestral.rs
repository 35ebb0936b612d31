//! DDPM ancestral sampling, for any SDE, with fixed or learned reverse variances.
//!
//! Ho et al. 2020, Alg. 2 and eq. (6)-(7): sample `x_s ~ q(x_s | x_t, x_0 = x0_hat(x_t))`, the
//! Gaussian posterior of the forward process. Written from the marginals at `s < t` only:
//! with `a = m_t / m_s` and `v = s_t^2 - a^2 s_s^2` (the forward transition), the posterior is
//! `N((a s_s^2 / s_t^2) x_t + (m_s v / s_t^2) x0_hat, (v s_s^2 / s_t^2) I)`.
//! For VP this is DDPM's `mu~_t` and `beta~_t` ("fixed small"); "fixed large" uses the
//! forward variance `v = beta_t` instead (Ho et al., section 3.2). For VE it is the ancestral
//! predictor of Song et al. 2021, eq. (47): `x + (s_t^2 - s_s^2) score`.
//!
//! # Learned variances
//! Nichol & Dhariwal 2021, eq. (15): `Sigma = exp(f log beta_t + (1 - f) log beta~_t)` per
//! element, where the network outputs `v` besides its mean prediction. We follow the reference
//! code (`gaussian_diffusion.py`, `LEARNED_RANGE`), which feeds `v in [-1, 1]` through
//! `f = (v + 1) / 2`, rather than the paper's text, which interpolates with `v` directly: a
//! network's unconstrained output near 0 then sits mid-range. `beta` and `beta~` are those of the
//! step actually taken (from the marginals at `t` and `s`), so on a respaced grid they are the
//! respaced `beta'` and `beta~'` of section 4 (see [`crate::sde::respace`]). The sampler draws
//! with the standard deviation in product form, `sqrt(beta~)^(1 - f) sqrt(beta)^f`
//! ([`Posteriors::learned_std`]), which at `v = -1` and `v = 1` is bitwise the fixed one; the
//! bound uses the log form ([`Posteriors::model_log_variance`]).
//!
//! At the last step (`s = 0`) `beta~ = 0`; its logarithm is clipped, as the reference code's
//! `posterior_log_variance_clipped`, to the `beta~` of one step of the same length above it
//! (from `t + (t - s)` to `t`; on DDPM's full grid exactly their `posterior_variance[1]`). The
//! last step's noise never reaches the sample, which is the step's mean `x_mean`.

use super::{Step, Transition};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use crate::param::Coef;
use crate::sde::Sde;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The reverse-process variance: DDPM's two fixed choices or Nichol & Dhariwal's learned range.
///
/// Serialised as `small`, `large`, `learned`; `fixed-small`, `fixed-large` and `learned-range`
/// are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Variance {
    /// The posterior variance `beta~_t` (optimal for deterministic `x_0`).
    #[default]
    #[serde(alias = "fixed-small")]
    Small,
    /// The forward variance `beta_t` (optimal for `x_0 ~ N(0, I)`).
    #[serde(alias = "fixed-large")]
    Large,
    /// Learned per element between the two (Nichol & Dhariwal eq. 15); needs a model whose
    /// [`ScoreModel::forward_with_variance`](crate::model::ScoreModel::forward_with_variance)
    /// returns `v`.
    #[serde(alias = "learned-range")]
    Learned,
}

impl FromStr for Variance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "small" | "fixed-small" => Ok(Self::Small),
            "large" | "fixed-large" => Ok(Self::Large),
            "learned" | "learned-range" => Ok(Self::Learned),
            _ => Err(format!("unknown variance `{s}`: expected small, large or learned")),
        }
    }
}

impl std::fmt::Display for Variance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Small => "small",
            Self::Large => "large",
            Self::Learned => "learned",
        })
    }
}

/// The forward process's posterior `q(x_s | x_t, x_0) = N(coef_x x_t + coef_x0 x_0, var_small I)`
/// for `s < t`, and the variances the reverse step may use (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    /// `a s_s^2 / s_t^2`.
    pub coef_x: f64,
    /// `m_s v / s_t^2`.
    pub coef_x0: f64,
    /// `beta~ = v s_s^2 / s_t^2`, the posterior variance ("fixed small").
    pub var_small: f64,
    /// `beta = v`, the forward transition's variance from `s` to `t` ("fixed large").
    pub var_large: f64,
    /// `log beta~`, at `s = 0` clipped to one step above (see the [module docs](self)).
    pub log_var_small_clipped: f64,
}

impl Posterior {
    /// The posterior from `t` to `s < t` under `sde`.
    pub fn new(sde: &dyn Sde, t: f64, s: f64) -> Self {
        let (ms, ss) = sde.marginal(s);
        let (_, st) = sde.marginal(t);
        let (a, std_ts) = sde.transition(s, t);
        let v = std_ts * std_ts;
        let var_small = v * ss * ss / (st * st);
        let log_var_small_clipped = if var_small > 0.0 {
            var_small.ln()
        } else if t < sde.t_max() {
            let up = (2.0 * t - s).min(sde.t_max());
            Self::new(sde, up, t).log_var_small_clipped
        } else {
            // A single step from T to 0: nothing above; the range collapses to beta.
            v.ln()
        };
        Self { coef_x: a * ss * ss / (st * st), coef_x0: ms * v / (st * st), var_small, var_large: v, log_var_small_clipped }
    }

    /// The standard deviation of a fixed-variance step (`Small`: `sqrt(beta~)`, `Large`:
    /// `sqrt(beta)`).
    ///
    /// # Panics
    /// For [`Variance::Learned`], whose variance depends on the model's output (use
    /// [`Posteriors::model_log_variance`]).
    pub fn fixed_std(&self, variance: Variance) -> f64 {
        match variance {
            Variance::Small => self.var_small.sqrt(),
            Variance::Large => self.var_large.sqrt(),
            Variance::Learned => {
                panic!("a learned variance depends on the model output, not on the posterior alone")
            }
        }
    }
}

/// The posteriors of a batch, one shared by all samples or one per sample, applied to tensors
/// by broadcasting (as [`Coef`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Posteriors {
    posteriors: Vec<Posterior>,
    shared: bool,
}

impl Posteriors {
    /// One posterior from `t` to `s` for the whole batch.
    pub fn shared(sde: &dyn Sde, t: f64, s: f64) -> Self {
        Self { posteriors: vec![Posterior::new(sde, t, s)], shared: true }
    }

    /// Sample `i` goes from `ts[i]` to `ss[i]`.
    pub fn per_sample(sde: &dyn Sde, ts: &[f64], ss: &[f64]) -> Self {
        Self { posteriors: ts.iter().zip(ss).map(|(&t, &s)| Posterior::new(sde, t, s)).collect(), shared: false }
    }

    fn coef(&self, f: impl Fn(&Posterior) -> f64) -> Coef {
        if self.shared { Coef::Shared(f(&self.posteriors[0])) } else { Coef::PerSample(self.posteriors.iter().map(f).collect()) }
    }

    /// The posterior mean `coef_x x_t + coef_x0 x_0`.
    ///
    /// # Shapes
    /// - `x_t`, `x0`, output: `[batch, ...]`
    pub fn mean<const D: usize>(&self, x_t: Tensor<D>, x0: Tensor<D>) -> Tensor<D> {
        self.coef(|p| p.coef_x).apply(x_t) + self.coef(|p| p.coef_x0).apply(x0)
    }

    /// `log beta~` per element (clipped at `s = 0`): the true posterior's log-variance.
    pub fn log_var_small<const D: usize>(&self, like: &Tensor<D>) -> Tensor<D> {
        self.coef(|p| p.log_var_small_clipped).apply(like.ones_like())
    }

    /// The reverse step's log-variance per element.
    ///
    /// - `Small`: `log beta~` (clipped at `s = 0`);
    /// - `Large`: `log beta`, except at `s = 0` where, as in the reference code, the clipped
    ///   `log beta~` (a better decoder; it only matters for the bound's last term);
    /// - `Learned`: `f log beta + (1 - f) log beta~` with `f = (v + 1) / 2` (eq. 15).
    ///
    /// # Shapes
    /// - `v`, `like`, output: `[batch, ...]`
    ///
    /// # Panics
    /// For `Learned` without `v`.
    pub fn model_log_variance<const D: usize>(&self, variance: Variance, v: Option<Tensor<D>>, like: &Tensor<D>) -> Tensor<D> {
        match variance {
            Variance::Small => self.log_var_small(like),
            Variance::Large => {
                let c = self.coef(|p| if p.var_small > 0.0 { p.var_large.ln() } else { p.log_var_small_clipped });
                c.apply(like.ones_like())
            }
            Variance::Learned => {
                let v = v.expect("variance = learned needs the model's variance output v (a U-Net with out_channels = 2 in_channels)");
                let frac = v.add_scalar(1.0).mul_scalar(0.5);
                let range = self.coef(|p| p.var_large.ln() - p.log_var_small_clipped);
                self.log_var_small(like) + range.apply(frac)
            }
        }
    }

    /// The standard deviation of a learned-variance step per element, eq. (15) written as
    /// `sqrt(beta~)^(1 - f) sqrt(beta)^f` (`beta~` clipped at `s = 0`): at `v = -1` and `v = 1`
    /// it is bitwise the fixed small and large standard deviations (powers 0 and 1 are exact).
    ///
    /// # Shapes
    /// - `v`, output: `[batch, ...]`
    pub fn learned_std<const D: usize>(&self, v: Tensor<D>) -> Tensor<D> {
        let frac = v.add_scalar(1.0).mul_scalar(0.5);
        let ones = frac.ones_like();
        let small = self.coef(|p| if p.var_small > 0.0 { p.var_small.sqrt() } else { (0.5 * p.log_var_small_clipped).exp() }).apply(ones.clone());
        let large = self.coef(|p| p.var_large.sqrt()).apply(ones);
        small.powf(frac.clone().neg().add_scalar(1.0)) * large.powf(frac)
    }
}

/// The ancestral transition.
///
/// # Panics
/// With [`Variance::Learned`], when the model returns no variance output.
#[derive(Debug, Clone, Copy)]
pub struct Ancestral {
    /// Fixed small, fixed large or learned variance.
    pub variance: Variance,
}

impl<const D: usize> Transition<D> for Ancestral {
    fn transition(&mut self, x: Tensor<D>, t: f64, s: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let (pred, v) = match self.variance {
            Variance::Learned => f.eval_with_variance(x.clone(), t),
            _ => (f.eval(x.clone(), t), None),
        };
        let p = Posterior::new(f.sde(), t, s);
        let x_mean = x.mul_scalar(p.coef_x) + pred.x0().mul_scalar(p.coef_x0);
        let z = noise.normal(x_mean.dims(), &x_mean.device());
        let scaled = match self.variance {
            Variance::Learned => {
                let v = v.expect("variance = learned needs the model's variance output v (a U-Net with out_channels = 2 in_channels)");
                z * Posteriors { posteriors: vec![p], shared: true }.learned_std(v)
            }
            fixed => z.mul_scalar(p.fixed_std(fixed)),
        };
        Step { x: x_mean.clone() + scaled, x_mean }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::{DiscreteVpSde, ScheduleKind, Sde, VeSde, VpSde};

    /// Ho et al. eq. (7): `mu~ = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t`,
    /// `beta~ = (1 - ab_{t-1}) / (1 - ab_t) beta_t`, from the betas alone.
    #[test]
    fn matches_ddpm_posterior_on_the_discrete_grid() {
        let sde = DiscreteVpSde::new(ScheduleKind::Linear, 1000).unwrap();
        for i in [2usize, 10, 500, 1000] {
            let b = sde.betas[i - 1];
            let (ab, ab_prev) = (sde.alpha_bar(i), sde.alpha_bar(i - 1));
            let p = Posterior::new(&sde, i as f64 / 1000.0, (i - 1) as f64 / 1000.0);
            assert!((p.coef_x0 - ab_prev.sqrt() * b / (1.0 - ab)).abs() < 1e-12, "i={i}");
            assert!((p.coef_x - (1.0 - b).sqrt() * (1.0 - ab_prev) / (1.0 - ab)).abs() < 1e-12);
            assert!((p.var_small - (1.0 - ab_prev) / (1.0 - ab) * b).abs() < 1e-12);
            assert!((p.var_large - b).abs() < 1e-12);
            assert!((p.log_var_small_clipped - p.var_small.ln()).abs() < 1e-9);
        }
    }

    /// The continuous VP SDE's DDPM discretization (`beta_i = beta(t_i) / N`) and its exact
    /// posterior agree to first order in `1/N`.
    #[test]
    fn continuous_vp_posterior_matches_its_ddpm_discretization() {
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let n = 1000.0;
        for t in [0.1, 0.5, 0.9] {
            let (_, g) = sde.discretize(t, 1.0 / n);
            let b = g * g;
            let (m_prev, s_prev) = sde.marginal(t - 1.0 / n);
            let (_, st) = sde.marginal(t);
            let p = Posterior::new(&sde, t, t - 1.0 / n);
            let (cx, cx0, std) = (p.coef_x, p.coef_x0, p.fixed_std(Variance::Small));
            let rel = |a: f64, e: f64| (a - e).abs() / e.abs();
            // beta(t)/N and the exact 1 - alpha_bar_t / alpha_bar_{t-1/N} = 1 - exp(-int beta)
            // differ by the midpoint shift and the exponential: relative error at most
            // (beta' / (2 beta) + beta) / N <= (99.5 / 2.09 + 20) / N here.
            let tol = (99.5 / 2.09 + 20.0) / n;
            assert!(rel(cx0, m_prev * b / (st * st)) < tol, "t={t} {cx0} {}", m_prev * b / (st * st));
            assert!(rel(cx, (1.0 - b).sqrt() * s_prev * s_prev / (st * st)) < tol);
            assert!(rel(std * std, s_prev * s_prev / (st * st) * b) < tol);
        }
    }

    /// Nichol & Dhariwal eq. (15) at the ends of the range: a model whose variance output is
    /// forced to `v = -1` samples exactly as fixed small, `v = 1` as fixed large, with the same
    /// noise, on the full grid, the sampler's respaced grid and the reference code's respacing.
    #[test]
    fn learned_variance_at_the_ends_is_fixed_small_and_large() {
        use crate::mixture::{GaussianMixture, MixtureScore};
        use crate::model::ScoreFn;
        use crate::sampler::{GridSampler, Sampler, Spacing, Step, prior_sample, time_grid};
        use crate::sde::{Respaced, SdeConfig};
        use crate::test_util::*;
        let dev = device();
        let cfg = SdeConfig::Ddpm { schedule: ScheduleKind::Linear, levels: 1000 };
        let sde = DiscreteVpSde::new(ScheduleKind::Linear, 1000).unwrap();
        let mix = GaussianMixture::new(vec![0.4, 0.6], vec![vec![-0.5, 0.2], vec![0.6, -0.3]], vec![0.1, 0.2]).unwrap();
        let exact = MixtureScore::new(mix, cfg.build().unwrap(), &dev).unwrap();
        let run = |times: &[f64], variance: Variance, v: f32| {
            let model = WithV(&exact, v);
            let f = ScoreFn::new(&model, &sde);
            let mut noise = NoiseSource::new(42);
            let mut step = Step::deterministic(prior_sample(&sde, [64, 2], &mut noise, &dev));
            let mut sampler = GridSampler::new(times.to_vec(), Ancestral { variance });
            while !Sampler::<2>::is_done(&sampler) {
                step = Sampler::<2>::step(&mut sampler, step.x, &f, &mut noise);
            }
            to_vec(step.x_mean)
        };
        let grids = [time_grid(&sde, 1000, Spacing::Uniform), time_grid(&sde, 25, Spacing::Uniform), Respaced::even(&sde, 50).unwrap().times()];
        for times in &grids {
            for (fixed, v) in [(Variance::Small, -1.0), (Variance::Large, 1.0)] {
                let (a, b) = (run(times, fixed, 0.0), run(times, Variance::Learned, v));
                let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
                assert!(worst == 0.0, "{} steps, {fixed:?}: max difference {worst}", times.len() - 1);
            }
            // Mid-range differs from both (the test can fail).
            let (a, b) = (run(times, Variance::Small, 0.0), run(times, Variance::Learned, 0.0));
            assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3));
        }
    }

    #[test]
    fn ve_posterior_is_the_ancestral_predictor() {
        let sde = VeSde::new(0.01, 50.0).unwrap();
        let (t, s) = (0.6, 0.5);
        let p = Posterior::new(&sde, t, s);
        let (cx, cx0, std) = (p.coef_x, p.coef_x0, p.fixed_std(Variance::Small));
        let (st, ss) = (sde.sigma(t), sde.sigma(s));
        // x_mean = x + (st^2 - ss^2) score with score = (x0 - x)/st^2.
        let d = st * st - ss * ss;
        assert!((cx - (1.0 - d / (st * st))).abs() < 1e-12);
        assert!((cx0 - d / (st * st)).abs() < 1e-12);
        assert!((std * std - ss * ss * d / (st * st)).abs() < 1e-12);
    }
}
