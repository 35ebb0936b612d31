//! Parity with diffusers: the core's samplers replay diffusers' schedulers step for step.
//!
//! `bench/parity.py` (diffusers 0.30.3, the peer's environment of `bench/setup.sh`) drives
//! diffusers' schedulers with the exact eps of the 2-D mixture `mixture_2d` under the DDPM
//! linear schedule (1000 levels, betas `1e-4 .. 0.02`) at 5, 10 and 25 steps, from standard
//! normal `x_T`, and writes `tests/data/diffusers-parity.json`: each case's scheduler config,
//! timesteps, sigmas, the noise level of every model call, `x_T` and the outputs. This test
//! replays it without Python:
//!
//! - **the schedule and the grids**: the core's discrete DDPM schedule has diffusers'
//!   `alphas_cumprod` (level `k` of diffusers, counted from 0, is the core's time
//!   `(k + 1) / 1000`), and every grid the replay walks has, at each of its times, the noise
//!   level diffusers called its model at (relative error below 1e-5: diffusers computes its
//!   schedule in `float32`);
//! - **deterministic samplers**: the core's output from the same `x_T` within 1e-4 of the
//!   data's scale (its standard deviation) of diffusers' output, point by point;
//! - **stochastic samplers**: the energy distance between the core's and diffusers' outputs
//!   (each from the same `x_T`, with their own noise) below the 99th percentile of its null,
//!   the distance between two halves of the pooled outputs split at random (a permutation test:
//!   under the null the two samples are exchangeable).
//!
//! Where the core's definition differs from diffusers' on purpose, the case says so:
//!
//! - **the last step** lands on the data (`t = 0`, `sigma = 0`) in the core; diffusers' DDIM does
//!   too with `set_alpha_to_one = true` (its default) and its multistep solvers with
//!   `final_sigmas_type = "zero"` (their default), so their grids are the core's with `t = 0`
//!   appended. diffusers' DPM-Solver++ takes that last step at first order
//!   (`lower_order_final`; with `final_sigmas_type = "zero"` at every step count), as the core's
//!   does (a step to `s = 0` returns `x0_hat`).
//! - **Euler (`EulerDiscreteScheduler`)** is DDIM with `eta = 0` written in `sigma`
//!   (`x / m = x0_hat + sigma eps`; an Euler step in `sigma` is exactly DDIM's step), so it is
//!   replayed by the core's `ddim` on the times of its sigmas; its sigmas sit between DDPM's
//!   levels (diffusers interpolates sigma linearly in the timestep), and the core puts a time at
//!   each of them by its own `log alpha_bar` interpolation ([`time_of_sigma`]), so the model sees
//!   the same noise level.
//! - **Karras sigmas** are replayed on the times of diffusers' sigmas (the same noise levels);
//!   [`karras_grid_is_diffusers`] checks that the core's own Karras schedule
//!   ([`SigmaSchedule`], `rho = 7` over the schedule's range) gives those sigmas, and
//!   [`timestep_spacings_are_diffusers`] that `diffusers_timesteps` gives DDIM's timesteps.
//! - **DPM-Solver++(3M) below 15 steps** takes the second-to-last step at second order in both
//!   (diffusers' `lower_order_final`; the core's `DpmSolverPp::with_steps`).
//!
//! Cases of samplers the core does not have yet are listed in [`PENDING`] with the sampler they
//! wait for; every case of the fixture must be replayed or pending.

use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::loss::edm::time_of_sigma;
use scorediff::metrics::energy_distance;
use scorediff::mixture::{GaussianMixture, MixtureScore};
use scorediff::model::ScoreFn;
use scorediff::noise::NoiseSource;
use scorediff::sampler::schedule::diffusers_timesteps;
use scorediff::sampler::{Run, SamplerKind, SamplerSpec, Sampling, SigmaKind, SigmaSchedule, TimestepSpacing};
use scorediff::sde::{ScheduleKind, Sde, SdeConfig};
use scorediff_tests::mixture_2d;
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/diffusers-parity.json");
const SDE: SdeConfig = SdeConfig::ddpm(ScheduleKind::Linear, 1000);
/// Deterministic outputs agree within this fraction of the data's standard deviation.
const DET_TOL: f64 = 1e-4;
/// The same for diffusers' sigma-space schedulers (`EulerDiscreteScheduler`,
/// `HeunDiscreteScheduler`): they step `x / m` in `float32`, which starts at `sigma_max = 157`
/// times the data's scale, where one rounding (`6e-8` relative) is already `1e-5` of it; Heun
/// at 10 Karras steps (19 evaluations) lands at `1.1e-4` (measured), Euler and plain Heun at
/// `2e-5` to `6e-5`.
const DET_TOL_SIGMA_SPACE: f64 = 2e-4;
/// Permutations of the null of the energy distance.
const PERMUTATIONS: usize = 200;

/// Fixture cases of samplers the core does not have yet, with what they wait for (none since
/// the samplers of issue 19 landed; a new fixture case must be replayed or listed here).
const PENDING: [(&str, &str); 0] = [];

fn fixture() -> Value {
    let text = std::fs::read_to_string(FIXTURE).unwrap_or_else(|e| panic!("{FIXTURE}: {e} (written by bench/parity.py)"));
    serde_json::from_str(&text).expect("the fixture parses")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

fn sde() -> Box<dyn Sde> {
    SDE.build().unwrap()
}

/// The data's standard deviation (per coordinate, averaged): the scale of the tolerance.
fn data_scale(m: &GaussianMixture) -> f64 {
    let d = m.dim();
    let cov = m.covariance();
    ((0..d).map(|i| cov[i * d + i]).sum::<f64>() / d as f64).sqrt()
}

/// The core's time of each of a case's model calls and then `t = 0`: the grid it replays on.
fn core_times(case: &Value, sde: &dyn Sde) -> Vec<f64> {
    let mut times: Vec<f64> = if case.get("sigmas").is_some() && case["scheduler"].as_str().unwrap().contains("Discrete") {
        // Heun repeats each level but the first (its second evaluation): the distinct levels.
        let mut sigmas = floats(&case["sigmas"]);
        sigmas.pop();
        sigmas.dedup();
        sigmas.iter().map(|&s| time_of_sigma(sde, s)).collect()
    } else {
        floats(&case["timesteps"]).iter().map(|&k| (k + 1.0) / 1000.0).collect()
    };
    times.push(0.0);
    times
}

/// The core's `kind` (with `eta`) on the given times from `x_t` (`[n, 2]`, row-major).
fn replay(kind: SamplerKind, eta: Option<f64>, times: &[f64], x_t: &[f64], seed: u64) -> Vec<f64> {
    let dev = Device::flex();
    let sde = sde();
    let model = MixtureScore::new(mixture_2d(), SDE.build().unwrap(), &dev).unwrap();
    let f = ScoreFn::new(&model, sde.as_ref());
    let config = SamplerSpec { times: Some(times.to_vec()), eta, ..SamplerSpec::new(kind) }.build().unwrap_or_else(|e| panic!("{kind}: {e}"));
    let n = x_t.len() / 2;
    let x = Tensor::<2>::from_data(TensorData::new(x_t.iter().map(|&v| v as f32).collect::<Vec<_>>(), [n, 2]), &dev);
    let mut run = Sampling::from_state_at(&config, sde.as_ref(), x, times[0]);
    let mut noise = NoiseSource::new(seed).for_samples(0, n);
    while run.next(&f, &mut noise) {}
    run.output().into_data().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
}

/// The core's sampler for a fixture case (`None`: pending).
fn core_sampler(name: &str) -> Option<(SamplerKind, Option<f64>)> {
    match name {
        "ddim" | "euler" | "euler-karras" => Some((SamplerKind::Ddim, Some(0.0))),
        "ddim-eta1" => Some((SamplerKind::Ddim, Some(1.0))),
        "dpmpp-2m" => Some((SamplerKind::DpmSolver2m, None)),
        "dpmpp-3m" => Some((SamplerKind::DpmSolver3m, None)),
        "dpmpp-2m-sde" => Some((SamplerKind::DpmSolver2mSde, Some(1.0))),
        // diffusers' defaults: bh2, order 2.
        "unipc" => Some((SamplerKind::Unipc, None)),
        "euler-ancestral" => Some((SamplerKind::EulerAncestral, Some(1.0))),
        // EDM's Algorithm 2 with S_churn = 0 (heun-edm's default) is diffusers' Heun.
        "heun" | "heun-karras" => Some((SamplerKind::HeunEdm, None)),
        _ => None,
    }
}

/// The 99th percentile of the energy distance between two random halves of `x ++ y`.
fn permutation_null_q99(x: &[f64], y: &[f64], dim: usize, noise: &mut NoiseSource) -> f64 {
    let pooled: Vec<&[f64]> = x.chunks(dim).chain(y.chunks(dim)).collect();
    let n = x.len() / dim;
    let mut null: Vec<f64> = (0..PERMUTATIONS)
        .map(|_| {
            let mut idx: Vec<usize> = (0..pooled.len()).collect();
            for i in (1..idx.len()).rev() {
                idx.swap(i, noise.index(i + 1));
            }
            let half = |r: &[usize]| r.iter().flat_map(|&i| pooled[i].iter().copied()).collect::<Vec<f64>>();
            energy_distance(&half(&idx[..n]), &half(&idx[n..]), dim)
        })
        .collect();
    null.sort_by(f64::total_cmp);
    null[(0.99 * PERMUTATIONS as f64) as usize - 1]
}

#[test]
fn the_fixture_is_of_our_mixture_and_schedule() {
    let fx = fixture();
    let m = &fx["mixture"];
    let ours = mixture_2d();
    assert_eq!(floats(&m["weights"]), ours.weights);
    assert_eq!(floats(&m["stds"]), ours.stds);
    assert_eq!(m["means"].as_array().unwrap().iter().map(floats).collect::<Vec<_>>(), ours.means);
    let sde = sde();
    let ab = floats(&fx["alphas_cumprod"]);
    assert_eq!(ab.len(), 1000);
    for (k, &a) in ab.iter().enumerate() {
        let (m, _) = sde.marginal((k + 1) as f64 / 1000.0);
        assert!((m * m / a - 1.0).abs() < 1e-5, "alphas_cumprod[{k}]: diffusers {a}, core {}", m * m);
    }
    // Every case is replayed or pending, and nothing is pending that the fixture lacks.
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        assert!(core_sampler(name).is_some() || PENDING.iter().any(|p| p.0 == name), "{name}: neither replayed nor pending");
    }
}

#[test]
fn every_grid_has_diffusers_noise_levels() {
    let fx = fixture();
    let sde = sde();
    for case in fx["cases"].as_array().unwrap() {
        let name = format!("{} at {} steps", case["name"].as_str().unwrap(), case["steps"]);
        let times = core_times(case, sde.as_ref());
        let calls = floats(&case["alpha_bars"]);
        // Heun calls its model twice per level but at the level's own sigma each time: the
        // grid is the distinct levels.
        let mut levels = calls.clone();
        levels.dedup();
        let levels = if case["scheduler"] == "HeunDiscreteScheduler" { levels } else { calls };
        assert_eq!(times.len() - 1, levels.len(), "{name}: grid length");
        for (&t, &ab) in times.iter().zip(&levels) {
            let (m, _) = sde.marginal(t);
            assert!((m * m / ab - 1.0).abs() < 1e-5, "{name}: at t = {t} the core's alpha_bar is {}, diffusers' {ab}", m * m);
        }
        assert_eq!(*times.last().unwrap(), 0.0);
    }
}

#[test]
fn deterministic_samplers_match_diffusers() {
    let fx = fixture();
    let sde = sde();
    let tol = DET_TOL * data_scale(&mixture_2d());
    let mut replayed = 0;
    for case in fx["cases"].as_array().unwrap().iter().filter(|c| c["stochastic"] == false) {
        let name = case["name"].as_str().unwrap();
        let Some((kind, eta)) = core_sampler(name) else { continue };
        let got = replay(kind, eta, &core_times(case, sde.as_ref()), &floats(&case["x_t"]), 0);
        let want = floats(&case["out"]);
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        eprintln!("{name} at {} steps: largest difference {d:.2e}", case["steps"]);
        let tol = if case["scheduler"].as_str().unwrap().contains("Discrete") { tol / DET_TOL * DET_TOL_SIGMA_SPACE } else { tol };
        assert!(d <= tol, "{name} at {} steps: the core's {kind} differs from diffusers' {} by up to {d} (tolerance {tol})", case["steps"], case["scheduler"]);
        replayed += 1;
    }
    assert_eq!(replayed, 24, "ddim, euler, euler-karras, heun, heun-karras, dpmpp-2m, dpmpp-3m and unipc at 5, 10 and 25 steps");
}

#[test]
fn stochastic_samplers_match_diffusers_in_distribution() {
    let fx = fixture();
    let sde = sde();
    let mut noise = NoiseSource::new(99);
    let mut replayed = 0;
    for case in fx["cases"].as_array().unwrap().iter().filter(|c| c["stochastic"] == true) {
        let name = case["name"].as_str().unwrap();
        let Some((kind, eta)) = core_sampler(name) else { continue };
        let got = replay(kind, eta, &core_times(case, sde.as_ref()), &floats(&case["x_t"]), 7);
        let want = floats(&case["out"]);
        let (d, q99) = (energy_distance(&got, &want, 2), permutation_null_q99(&got, &want, 2, &mut noise));
        eprintln!("{name} at {} steps: energy distance {d:.2e}, null's 99th percentile {q99:.2e}", case["steps"]);
        assert!(d < q99, "{name} at {} steps: energy distance {d} to diffusers' {} above the null's 99th percentile {q99}", case["steps"], case["scheduler"]);
        replayed += 1;
    }
    assert_eq!(replayed, 9, "ddim-eta1, dpmpp-2m-sde and euler-ancestral at 5, 10 and 25 steps");
}

#[test]
fn karras_grid_is_diffusers() {
    let fx = fixture();
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap().iter().filter(|c| c["config"]["use_karras_sigmas"] == true) {
        let name = format!("{} at {} steps", case["name"].as_str().unwrap(), case["steps"]);
        let mut want = floats(&case["sigmas"]);
        want.dedup(); // Heun repeats each level but the first.
        let n = want.len() - 1;
        // diffusers spans the training schedule's range: sigma of level 0 to sigma of level 999.
        let (lo, hi) = (want[n - 1], want[0]);
        let got = SigmaSchedule::new(SigmaKind::Karras).sigmas(n, lo, hi);
        assert_eq!(got.len(), want.len(), "{name}: grid length");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.max(1e-12) + 1e-12, "{name}: sigma {i}: core {g}, diffusers {w}");
        }
        checked += 1;
    }
    assert_eq!(checked, 6, "euler-karras and heun-karras at 5, 10 and 25 steps");
}

#[test]
fn timestep_spacings_are_diffusers() {
    let fx = fixture();
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        // DDIM's default spacing is leading, the multistep solvers' linspace.
        let spacing = match case["config"]["timestep_spacing"].as_str().unwrap_or("leading") {
            "leading" => TimestepSpacing::Leading,
            "linspace" => TimestepSpacing::Linspace,
            "trailing" => TimestepSpacing::Trailing,
            other => panic!("unknown timestep_spacing {other}"),
        };
        // Only DDIM's: diffusers' multistep schedulers take their own "linspace"
        // (`linspace(0, N - 1, n + 1)` rounded, its last point dropped; the replay walks their
        // timesteps as given times), and the sigma-based ones interpolate between levels.
        if case["scheduler"] != "DDIMScheduler" {
            continue;
        }
        let steps = case["steps"].as_u64().unwrap() as usize;
        let want: Vec<usize> = floats(&case["timesteps"]).iter().map(|&k| k as usize).collect();
        let got = diffusers_timesteps(1000, steps, spacing);
        assert_eq!(got, want, "{} at {steps} steps ({spacing:?})", case["name"].as_str().unwrap());
        checked += 1;
    }
    assert_eq!(checked, 6, "ddim and ddim-eta1 at 5, 10 and 25 steps");
}
