//! Every sampler reproduces known targets from their exact scores.
//!
//! Targets: a 2-D mixture of three Gaussians with weights 0.2/0.3/0.5 under VP, VE, sub-VP and
//! the discrete cosine DDPM schedule; a 1-D and a 16-D Gaussian under VP. Each run draws
//! `N` samples with a fixed seed and must pass three checks whose thresholds come from the
//! sampling error of `N` samples, not from the sampler:
//!
//! - **mean**: every coordinate within 4.5 standard errors `sqrt(C_ii / N)`;
//! - **covariance**: every entry within 4.5 standard errors of the sample covariance (the
//!   sd of `(x_i - mu_i)(x_j - mu_j)` over `sqrt(N)`, estimated on a large reference sample);
//!   at 4.5 sigma a perfect sampler fails one of the 136 entries of the 16-D case with
//!   probability below 1e-3;
//! - **energy distance** to `N` fresh target samples below `2.5 x` the 99th percentile of its
//!   null distribution (the energy distance between two independent target samples of size
//!   `N`, 100 replicates). `N D^2` under the null is a centred weighted sum of chi-square(1)
//!   terms; for a single term the 99.99% quantile is 2.5 times the 99% one and more terms only
//!   thin the tail, so a perfect sampler fails with probability below about 1e-4.
//!
//! Step counts are large enough that each sampler's discretization bias is far below these
//! thresholds; the quality-per-step curve is in BENCHMARKS.md. `a_score_off_by_two_fails`
//! shows the checks do fail on a wrong score.

use scorediff::burn::tensor::{Device, Tensor};
use scorediff::eval::{compare, energy_null, sample_mixture, sample_model, target};
use scorediff::loss::edm::time_of_sigma;
use scorediff::mixture::{GaussianMixture, MixtureFile, MixtureScore};
use scorediff::model::ScoreModel;
use scorediff::noise::NoiseSource;
use scorediff::param::{Coef, Marginal, Parameterization};
use scorediff::precond::{EdmCoefs, Preconditioned};
use scorediff::sampler::{Predictor, SamplerConfig, SamplerKind, SamplerSpec, Spacing, Variance};
use scorediff::sde::{Sde, SdeConfig};
use scorediff_tests::*;

const Z_MAX: f64 = 4.5;

/// The sampler configurations under test, with step counts where discretization error is
/// negligible at N = 2000.
fn cases() -> Vec<(String, SamplerConfig)> {
    use SamplerKind::*;
    let mut v = vec![];
    let mut add = |label: &str, kind, steps, tweak: &dyn Fn(&mut SamplerSpec)| {
        let mut spec = SamplerSpec { steps: Some(steps), ..SamplerSpec::new(kind) };
        tweak(&mut spec);
        v.push((label.to_string(), spec.build().expect("a valid sampler config")));
    };
    add("ancestral (small)", Ancestral, 500, &|_| {});
    add("ancestral (large)", Ancestral, 1000, &|c| c.variance = Some(Variance::Large));
    add("ddim eta=0", Ddim, 200, &|_| {});
    add("ddim eta=1 quadratic", Ddim, 500, &|c| {
        c.eta = Some(1.0);
        c.spacing = Some(Spacing::Quadratic);
    });
    add("ald", Ald, 500, &|c| {
        c.corrector_steps = Some(5);
        c.step_lr = Some(0.3);
        c.spacing = Some(Spacing::Quadratic);
    });
    add("euler-maruyama", EulerMaruyama, 1000, &|_| {});
    add("reverse-diffusion", ReverseDiffusion, 1000, &|_| {});
    add("pc (reverse-diffusion + langevin)", Pc, 500, &|_| {});
    add("pc (ancestral + langevin, denoise)", Pc, 500, &|c| {
        c.predictor = Some(Predictor::Ancestral);
        c.denoise = Some(true);
    });
    add("ode-euler", OdeEuler, 500, &|_| {});
    add("ode-heun", OdeHeun, 100, &|_| {});
    add("ode-rk45", OdeRk45, 1, &|_| {});
    add("dpm-solver2m", DpmSolver2m, 100, &|_| {});
    v
}

/// Runs the checks; returns a description of every failure.
fn check(file: &MixtureFile, label: &str, config: &SamplerConfig, n: usize, energy_max: f64, noise: &mut NoiseSource) -> Vec<String> {
    let dev = Device::flex();
    let s = sample_mixture(file, config, n, 7, &dev).expect("valid mixture");
    judge(&s.data, &target(file).unwrap(), label, energy_max, noise)
}

fn judge(x: &[f64], tgt: &GaussianMixture, label: &str, energy_max: f64, noise: &mut NoiseSource) -> Vec<String> {
    let r = compare(x, tgt, noise);
    let mut fails = vec![];
    if !(r.mean_z < Z_MAX) {
        fails.push(format!("{label}: mean off by {:.1} standard errors", r.mean_z));
    }
    if !(r.cov_z < Z_MAX) {
        fails.push(format!("{label}: covariance off by {:.1} standard errors", r.cov_z));
    }
    if !(r.energy < energy_max) {
        fails.push(format!("{label}: energy distance {:.5} >= {:.5}", r.energy, energy_max));
    }
    fails
}

fn energy_threshold(tgt: &GaussianMixture, n: usize, noise: &mut NoiseSource) -> f64 {
    let null = energy_null(tgt, n, 100, noise);
    2.5 * null[98]
}

fn run_all(mixture: &GaussianMixture, sde: SdeConfig, n: usize, skip: &[&str]) {
    let file = file(mixture, sde);
    let mut noise = NoiseSource::new(2024);
    let energy_max = energy_threshold(&target(&file).unwrap(), n, &mut noise);
    let mut fails = vec![];
    for (label, config) in cases() {
        if skip.contains(&label.as_str()) {
            continue;
        }
        fails.extend(check(&file, &label, &config, n, energy_max, &mut noise));
    }
    assert!(fails.is_empty(), "{:?}: {}", file.sde, fails.join("\n"));
}

#[test]
fn every_sampler_reproduces_a_2d_mixture_under_vp() {
    run_all(&mixture_2d(), sdes()[0].1.clone(), 2000, &[]);
}

#[test]
fn every_sampler_reproduces_a_2d_mixture_under_ve() {
    run_all(&mixture_2d(), sdes()[1].1.clone(), 2000, &[]);
}

/// Annealed Langevin is NCSN's sampler for VE; on sub-VP its step rule `alpha ~ s(t)^2` stalls
/// while `m(t)` is still below 1 (sub-VP's std is ~ the square of VP's near `t = 0`), which
/// shrinks the samples: measured in BENCHMARKS.md, and excluded here.
#[test]
fn every_sampler_reproduces_a_2d_mixture_under_subvp() {
    run_all(&mixture_2d(), sdes()[2].1.clone(), 2000, &["ald"]);
}

#[test]
fn every_sampler_reproduces_a_2d_mixture_under_the_cosine_ddpm_schedule() {
    run_all(&mixture_2d(), sdes()[3].1.clone(), 2000, &[]);
}

#[test]
fn every_sampler_reproduces_a_1d_gaussian() {
    run_all(&gaussian_1d(), sdes()[0].1.clone(), 2000, &[]);
}

#[test]
fn every_sampler_reproduces_a_16d_gaussian() {
    run_all(&gaussian_16d(), sdes()[0].1.clone(), 1000, &[]);
}

/// EDM's raw network `F` built from an exact mixture score: called with the preconditioned
/// input `z = (c_in / m) x_t` and the noise label `c = ln(sigma) / 4`, it recovers
/// `sigma = e^{4c}`, the time `t` with `s / m = sigma`, `x_t = m z / c_in`, and returns
/// `F = (D* - c_skip x^) / c_out` for Tweedie's `D* = E[x0 | x_t]`. Through EDM's
/// preconditioning it must give `D*` back.
struct EdmRaw {
    inner: MixtureScore,
    sde: Box<dyn Sde>,
    sigma_data: f64,
}

impl ScoreModel<2> for EdmRaw {
    fn parameterization(&self) -> Parameterization {
        Parameterization::X0
    }
    fn forward(&self, z: Tensor<2>, labels: &[f64]) -> Tensor<2> {
        let sigmas: Vec<f64> = labels.iter().map(|c| (4.0 * c).exp()).collect();
        // Samplers give the whole batch one label: invert it once.
        let mut ts: Vec<f64> = Vec::with_capacity(sigmas.len());
        for (i, &s) in sigmas.iter().enumerate() {
            ts.push(if i > 0 && s == sigmas[i - 1] { ts[i - 1] } else { time_of_sigma(self.sde.as_ref(), s) });
        }
        let coefs: Vec<EdmCoefs> = sigmas.iter().map(|&s| EdmCoefs::at(s, self.sigma_data)).collect();
        let per = |f: &dyn Fn(usize) -> f64| Coef::PerSample((0..ts.len()).map(f).collect());
        let x_hat = per(&|i| 1.0 / coefs[i].input).apply(z);
        let x_t = per(&|i| self.sde.marginal(ts[i]).0).apply(x_hat.clone());
        let marg = Marginal::per_sample(self.sde.as_ref(), &ts);
        let d = marg.to_x0(Parameterization::Score, x_t.clone(), self.inner.forward(x_t, &ts));
        per(&|i| 1.0 / coefs[i].out).apply(d - per(&|i| coefs[i].skip).apply(x_hat))
    }
}

fn edm_raw(file: &MixtureFile, sigma_data: f64) -> EdmRaw {
    EdmRaw { inner: file.model(&Device::flex()).unwrap(), sde: file.sde.build().unwrap(), sigma_data }
}

/// The preconditioned mixture is Tweedie's denoiser of the mixture, on VP and on a discrete
/// schedule, at `sigma_data` 0.5 and 1.
#[test]
fn edm_preconditioning_of_an_exact_score_gives_tweedies_denoiser() {
    let dev = Device::flex();
    for sde in [sdes()[0].1.clone(), sdes()[3].1.clone()] {
        let file = file(&mixture_2d(), sde);
        let sde = file.sde.build().unwrap();
        let exact = file.model(&dev).unwrap();
        let x = NoiseSource::new(3).normal([64, 2], &dev).mul_scalar(1.5);
        for sigma_data in [0.5, 1.0] {
            let raw = edm_raw(&file, sigma_data);
            let d = Preconditioned { raw: &raw, sde: sde.as_ref(), sigma_data };
            for t in [0.01, 0.2, 0.5, 0.9] {
                let t = sde.snap(t);
                let ts = vec![t; 64];
                let want = Marginal::at(sde.as_ref(), t).to_x0(Parameterization::Score, x.clone(), exact.forward(x.clone(), &ts));
                let got = d.forward(x.clone(), &ts);
                let err = (got - want.clone()).abs().max().into_scalar::<f32>();
                let scale = want.abs().max().into_scalar::<f32>();
                assert!(err < 1e-4 * scale.max(1.0), "{:?} sigma_data {sigma_data} t {t}: max error {err}", file.sde);
            }
        }
    }
}

/// Every sampler reproduces the 2-D mixture through an EDM-preconditioned model (VP SDE).
#[test]
fn every_sampler_reproduces_a_2d_mixture_through_edm_preconditioning() {
    let dev = Device::flex();
    let file = file(&mixture_2d(), sdes()[0].1.clone());
    let sde = file.sde.build().unwrap();
    let tgt = target(&file).unwrap();
    let mut noise = NoiseSource::new(2025);
    let energy_max = energy_threshold(&tgt, 2000, &mut noise);
    let raw = edm_raw(&file, 0.5);
    let model = Preconditioned { raw: &raw, sde: sde.as_ref(), sigma_data: 0.5 };
    let mut fails = vec![];
    for (label, config) in cases() {
        let s = sample_model(&model, sde.as_ref(), &config, [2000, 2], 7, &dev);
        fails.extend(judge(&s.data, &tgt, &label, energy_max, &mut noise));
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// The exact score scaled by `k`: a model that is wrong by a factor.
struct Scaled {
    inner: scorediff::mixture::MixtureScore,
    k: f64,
}

impl ScoreModel<2> for Scaled {
    fn parameterization(&self) -> Parameterization {
        Parameterization::Score
    }
    fn forward(&self, x: Tensor<2>, t: &[f64]) -> Tensor<2> {
        self.inner.forward(x, t).mul_scalar(self.k)
    }
}

/// The checks can fail: with the score doubled (or its sign flipped), every sampler's output
/// fails at least one check.
#[test]
fn a_score_off_by_two_fails() {
    let dev = Device::flex();
    let file = file(&mixture_2d(), sdes()[0].1.clone());
    let tgt = target(&file).unwrap();
    let mut noise = NoiseSource::new(5);
    let energy_max = energy_threshold(&tgt, 1000, &mut noise);
    let sde = file.sde.build().unwrap();
    for k in [2.0, -1.0] {
        let model = Scaled { inner: file.model(&dev).unwrap(), k };
        for (label, config) in cases() {
            let s = sample_model(&model, sde.as_ref(), &config, [1000, 2], 7, &dev);
            let fails = judge(&s.data, &tgt, &label, energy_max, &mut noise);
            assert!(!fails.is_empty(), "{label} passed with the score scaled by {k}");
        }
    }
}

#[test]
fn same_seed_same_samples() {
    let dev = Device::flex();
    let file = file(&mixture_2d(), sdes()[0].1.clone());
    for (label, config) in cases() {
        let a = sample_mixture(&file, &config, 64, 11, &dev).unwrap();
        let b = sample_mixture(&file, &config, 64, 11, &dev).unwrap();
        let c = sample_mixture(&file, &config, 64, 12, &dev).unwrap();
        assert_eq!(a.data, b.data, "{label}");
        assert_eq!(a.nfe, b.nfe, "{label}");
        assert_ne!(a.data, c.data, "{label}: another seed gave the same samples");
    }
}

/// A sampler's options are its own: one given to a sampler that has no such option is refused
/// with the option and the sampler named, and each kind has its own defaults.
#[test]
fn an_option_of_another_sampler_is_refused() {
    let parse = |json: &str| serde_json::from_str::<SamplerConfig>(json).map_err(|e| e.to_string());
    for (json, field) in [
        (r#"{"kind": "ancestral", "steps": 10, "eta": 0.5}"#, "eta"),
        (r#"{"kind": "ddim", "variance": "large"}"#, "variance"),
        (r#"{"kind": "ode-euler", "rtol": 0.001}"#, "rtol"),
        (r#"{"kind": "dpm-solver2m", "predictor": "ancestral"}"#, "predictor"),
    ] {
        let err = parse(json).expect_err(json);
        let kind = serde_json::from_str::<serde_json::Value>(json).unwrap()["kind"].as_str().unwrap().to_string();
        assert!(err.contains(field) && err.contains(&kind), "{json}: {err}");
    }
    assert!(parse(r#"{"kind": "ddim", "steps": 10, "eta": 0.5}"#).is_ok());
    assert!(parse(r#"{"kind": "pc", "predictor": "ancestral", "variance": "large", "snr": 0.1, "corrector_steps": 2}"#).is_ok());
    assert!(parse(r#"{"kind": "ddim", "colour": 1}"#).is_err(), "an unknown option");
}
