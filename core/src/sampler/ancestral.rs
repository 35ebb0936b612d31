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

use super::{PredictionStep, Step, Transition};
use crate::model::{Prediction, ScoreFn};
use crate::noise::NoiseSource;
use crate::param::Variance;
use crate::sde::{Posterior, Posteriors, Sde};
use burn::tensor::Tensor;

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
        self.step_with_variance(x, &pred, v, t, s, f.sde(), noise)
    }
}

impl<const D: usize> PredictionStep<D> for Ancestral {
    /// # Panics
    /// With [`Variance::Learned`] and no variance output `v`.
    fn step_from(&self, x: Tensor<D>, pred: &Prediction<D>, v: Option<Tensor<D>>, t: f64, s: f64, sde: &dyn Sde, noise: &mut NoiseSource) -> Step<D> {
        self.step_with_variance(x, pred, v, t, s, sde, noise)
    }
    fn needs_variance(&self) -> bool {
        self.variance == Variance::Learned
    }
}

impl Ancestral {
    /// The step from `x` at `t` to `s` given the model's prediction there and, for
    /// [`Variance::Learned`], its variance output `v` (`[batch, ...]`, in `[-1, 1]`).
    #[allow(clippy::too_many_arguments)]
    pub fn step_with_variance<const D: usize>(
        &self,
        x: Tensor<D>,
        pred: &Prediction<D>,
        v: Option<Tensor<D>>,
        t: f64,
        s: f64,
        sde: &dyn Sde,
        noise: &mut NoiseSource,
    ) -> Step<D> {
        let p = Posterior::new(sde, t, s);
        let x_mean = x.mul_scalar(p.coef_x) + pred.x0().mul_scalar(p.coef_x0);
        let z = noise.normal(x_mean.dims(), &x_mean.device());
        let scaled = match self.variance {
            Variance::Learned => {
                let v = v.expect("variance = learned needs the model's variance output v (a U-Net with out_channels = 2 in_channels)");
                z * Posteriors::from(p).learned_std(v)
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
        let cfg = SdeConfig::ddpm(ScheduleKind::Linear, 1000);
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
