//! Closed-form identities between samplers, step by step on the same states and noise draws.
//!
//! - DDIM with `eta = 1` is DDPM's ancestral step with the posterior ("fixed small") variance
//!   (Song, Meng & Ermon 2021, section 4.1 and eq. 16): with `a = m_t / m_s` and the forward
//!   transition's variance `v = s_t^2 - a^2 s_s^2`, the posterior variance is
//!   `beta~ = v s_s^2 / s_t^2`, so DDIM's noise coefficient `sqrt(s_s^2 - beta~) = a s_s^2 / s_t`
//!   and `m_s x0 + sqrt(s_s^2 - beta~) (x_t - m_t x0) / s_t` is the posterior mean
//!   `a s_s^2 / s_t^2 x_t + m_s v / s_t^2 x0` (Ho et al. 2020, eq. 7); both then add
//!   `sqrt(beta~) z` with one normal draw `z`.
//! - DPM-Solver++'s first-order step (Lu et al. 2022, eq. 8 with `k = 1`) is DDIM with
//!   `eta = 0`: with `e^{-h} = (m_t / s_t) / (m_s / s_s)`,
//!   `(s_s / s_t) x_t - m_s (e^{-h} - 1) x0 = m_s x0 + s_s (x_t - m_t x0) / s_t`.
//!
//! The model is the exact score of a 2-D Gaussian mixture, so `x0_hat` is a non-linear function
//! of the state; every SDE of the statistical tests is covered, on a grid from `T` down to 0.

use scorediff::burn::tensor::{Device, Tensor};
use scorediff::model::ScoreFn;
use scorediff::noise::NoiseSource;
use scorediff::sampler::{Ancestral, Ddim, DpmSolver2M, Step, Transition, Variance};
use scorediff::sde::Sde;
use scorediff_tests::{file, mixture_2d, sdes};

const STEPS: usize = 12;
const BATCH: usize = 64;

fn values(x: Tensor<2>) -> Vec<f32> {
    x.into_data().try_to_vec::<f32>().unwrap()
}

/// The largest difference between `a` and `b` relative to `1 + |b|`.
fn max_rel_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    values(a).iter().zip(values(b)).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0, f32::max)
}

/// `STEPS + 1` times from `T` down to 0, denser near 0 (quadratic), as a sampler's grid.
fn grid(sde: &dyn Sde) -> Vec<f64> {
    let (hi, lo) = (sde.t_max(), sde.t_min());
    let mut ts: Vec<f64> = (0..STEPS).map(|i| lo + (hi - lo) * (1.0 - i as f64 / STEPS as f64).powi(2)).collect();
    ts.push(0.0);
    ts
}

/// Runs `a` and `b` from the same prior draw, each with its own noise source of the same seed,
/// and returns, per step, the largest relative difference of the two states and of their means;
/// `b`'s state is reset to `a`'s after each step, so that each step is compared from the same
/// point. With `fresh_b`, `b` is rebuilt before each step (a multistep solver's first step).
fn compare_steps<A: Transition<2>, B: Transition<2>>(sde_name: &str, mut a: A, mut b: B, fresh_b: Option<fn() -> B>) -> Vec<(f32, f32)> {
    let dev = Device::flex();
    let config = sdes().into_iter().find(|(n, _)| *n == sde_name).unwrap().1;
    let model = file(&mixture_2d(), config.clone()).model(&dev).unwrap();
    let sde = config.build().unwrap();
    let f = ScoreFn::new(&model, sde.as_ref());
    let ts = grid(sde.as_ref());
    let (_, prior_std) = sde.marginal(ts[0]);
    let mut x = NoiseSource::new(1).normal([BATCH, 2], &dev).mul_scalar(prior_std);
    let (mut na, mut nb) = (NoiseSource::new(7), NoiseSource::new(7));
    let mut out = Vec::new();
    for w in ts.windows(2) {
        if let Some(fresh) = fresh_b {
            b = fresh();
        }
        let Step { x: xa, x_mean: ma } = a.transition(x.clone(), w[0], w[1], &f, &mut na);
        let Step { x: xb, x_mean: mb } = b.transition(x, w[0], w[1], &f, &mut nb);
        out.push((max_rel_diff(xa.clone(), xb), max_rel_diff(ma, mb)));
        x = xa;
    }
    out
}

/// The largest state difference of [`compare_steps`].
fn worst(diffs: &[(f32, f32)]) -> f32 {
    diffs.iter().map(|d| d.0).fold(0.0, f32::max)
}

#[test]
fn ddim_with_eta_one_is_ancestral_sampling_with_the_posterior_variance() {
    let small = Ancestral { variance: Variance::Small };
    for (name, _) in sdes() {
        for (k, (dx, dmean)) in compare_steps(name, Ddim { eta: 1.0 }, small, None).into_iter().enumerate() {
            assert!(dx < 2e-5 && dmean < 2e-5, "{name}, step {k}: DDIM(eta = 1) vs ancestral (small): states differ by {dx}, means by {dmean}");
        }
        // The check can fail: another eta, or the other fixed variance, is another step.
        let off = worst(&compare_steps(name, Ddim { eta: 0.5 }, small, None));
        assert!(off > 1e-3, "{name}: DDIM(eta = 0.5) matched ancestral (small) to {off}");
        let large = worst(&compare_steps(name, Ddim { eta: 1.0 }, Ancestral { variance: Variance::Large }, None));
        assert!(large > 1e-3, "{name}: ancestral (large) matched DDIM(eta = 1) to {large}");
    }
}

#[test]
fn dpm_solver_first_order_step_is_ddim_with_eta_zero() {
    for (name, _) in sdes() {
        // A fresh solver has no previous prediction: its step is the first-order one.
        let first = compare_steps(name, Ddim { eta: 0.0 }, DpmSolver2M::default(), Some(DpmSolver2M::default));
        for (k, (dx, dmean)) in first.into_iter().enumerate() {
            assert!(dx < 2e-5 && dmean < 2e-5, "{name}, step {k}: DPM-Solver++ first order vs DDIM(eta = 0): states differ by {dx}, means by {dmean}");
        }
        // One solver that keeps its history takes second-order steps after the first: not DDIM's.
        let second = worst(&compare_steps(name, Ddim { eta: 0.0 }, DpmSolver2M::default(), None));
        assert!(second > 1e-3, "{name}: DPM-Solver++(2M) with its history matched DDIM(eta = 0) to {second}");
    }
}
