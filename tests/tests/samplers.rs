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
use scorediff::sampler::{Predictor, SamplerConfig, SamplerKind, SamplerSpec, SigmaKind, Spacing, UniPcVariant, Variance};
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
    add("heun-edm (karras)", HeunEdm, 100, &|_| {});
    add("heun-edm churn=20", HeunEdm, 200, &|c| c.s_churn = Some(20.0));
    add("euler-ancestral (karras)", EulerAncestral, 500, &|_| {});
    add("euler-ancestral eta=0.5 log-snr", EulerAncestral, 500, &|c| {
        c.eta = Some(0.5);
        c.spacing = Some(Spacing::LogSnr);
    });
    add("dpm-solver3m", DpmSolver3m, 100, &|_| {});
    add("dpm-solver3m karras", DpmSolver3m, 100, &|c| c.sigmas = Some(SigmaKind::Karras));
    add("dpm-solver2m-sde", DpmSolver2mSde, 200, &|_| {});
    add("dpm-solver3m-sde", DpmSolver3mSde, 200, &|_| {});
    add("unipc bh2 order 2", Unipc, 100, &|_| {});
    add("unipc bh1 order 3 karras", Unipc, 100, &|c| {
        c.order = Some(3);
        c.solver_type = Some(UniPcVariant::Bh1);
        c.sigmas = Some(SigmaKind::Karras);
    });
    add("ddim eta=0 exponential", Ddim, 200, &|c| c.sigmas = Some(SigmaKind::Exponential));
    add("dpm-solver2m polyexponential rho=2", DpmSolver2m, 100, &|c| {
        c.sigmas = Some(SigmaKind::Polyexponential);
        c.rho = Some(2.0);
    });
    add("ddim eta=0 trailing", Ddim, 200, &|c| c.spacing = Some(Spacing::Trailing));
    add("ancestral leading", Ancestral, 500, &|c| c.spacing = Some(Spacing::Leading));
    add("dpm-solver2m linspace", DpmSolver2m, 100, &|c| c.spacing = Some(Spacing::Linspace));
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

/// Lin et al. 2024's zero-terminal-SNR rescaling of Ho et al.'s linear schedule: the prior is
/// then exact (`x_1` is noise up to `sqrt(alpha_bar_N) = 4.6e-5` of the data), and every sampler
/// still reproduces the mixture from the exact score, sigma- and log-SNR grids included
/// (`sigma_max = 22 000`).
#[test]
fn every_sampler_reproduces_a_2d_mixture_under_a_zero_terminal_snr_schedule() {
    let sde = SdeConfig::Ddpm { schedule: scorediff::sde::ScheduleKind::Linear, levels: 1000, zero_terminal_snr: true };
    run_all(&mixture_2d(), sde, 2000, &[]);
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

/// The deterministic samplers converge at their order: for a 1-D Gaussian `N(mu, v)` the
/// probability-flow ODE maps `x_T` to `m mu + sqrt(m^2 v + s^2) (x_T - m_T mu) / sqrt(m_T^2 v + s_T^2)`
/// at every time, so the state at `t_min` (before the last step, whose jump to `t = 0` is
/// Tweedie's and not the ODE's) has a closed form. Halving the step (20 to 40 steps) must cut
/// the largest error by at least `2^q` for each method's measured rate `q` less a margin: DDIM
/// 1, the second-order methods 2, UniPC-p about `p + 1` (its corrector; 4 measured at `p = 3`
/// on VP), and DPM-Solver++(3M) 2.4 to 2.5 (its first two steps are of first and second order,
/// which caps it at 2 as the step shrinks), or reach the `f32` floor (5e-5 of the scale, where
/// UniPC-3 on VE is at 20 steps). A wrong higher-order coefficient leaves a lower order.
#[test]
fn deterministic_samplers_converge_at_their_order() {
    use scorediff::model::ScoreFn;
    use scorediff::sampler::Sampler;
    let dev = Device::flex();
    let (mu, std) = (0.7, 0.5);
    let cases: [(&str, SamplerKind, f64, &dyn Fn(&mut SamplerSpec)); 9] = [
        ("ddim", SamplerKind::Ddim, 0.9, &|c| c.spacing = Some(Spacing::LogSnr)),
        ("dpm-solver2m", SamplerKind::DpmSolver2m, 1.8, &|_| {}),
        ("dpm-solver3m", SamplerKind::DpmSolver3m, 2.2, &|_| {}),
        ("heun-edm (log-snr)", SamplerKind::HeunEdm, 1.9, &|c| {
            c.sigmas = None;
            c.spacing = Some(Spacing::LogSnr);
        }),
        ("heun-edm (karras)", SamplerKind::HeunEdm, 1.9, &|_| {}),
        ("unipc bh2 p=1", SamplerKind::Unipc, 1.8, &|c| c.order = Some(1)),
        ("unipc bh2 p=2", SamplerKind::Unipc, 2.7, &|_| {}),
        ("unipc bh1 p=2", SamplerKind::Unipc, 2.7, &|c| c.solver_type = Some(UniPcVariant::Bh1)),
        ("unipc bh2 p=3", SamplerKind::Unipc, 3.5, &|c| c.order = Some(3)),
    ];
    const STEPS: usize = 20;
    let mut fails = vec![];
    for (name, sde_config) in [("vp", sdes()[0].1.clone()), ("ve", sdes()[1].1.clone())] {
        let f = file(&gaussian_1d(), sde_config);
        let sde = f.sde.build().unwrap();
        let exact = f.model(&dev).unwrap();
        let x_t: Vec<f32> = (0..33).map(|i| ((i as f64 - 16.0) / 8.0 * sde.prior_std()) as f32).collect();
        let (m_t, s_t) = sde.marginal(sde.t_max());
        let (m, s) = sde.marginal(sde.t_min());
        let want: Vec<f64> =
            x_t.iter().map(|&x| m * mu + (m * m * std * std + s * s).sqrt() * (x as f64 - m_t * mu) / (m_t * m_t * std * std + s_t * s_t).sqrt()).collect();
        let scale = want.iter().fold(0.0f64, |a, w| a.max(w.abs()));
        for (label, kind, order, tweak) in &cases {
            let error = |steps: usize| {
                let mut spec = SamplerSpec { steps: Some(steps), ..SamplerSpec::new(*kind) };
                tweak(&mut spec);
                let config = spec.build().unwrap();
                let mut sampler: Box<dyn Sampler<2>> = config.build(sde.as_ref());
                let score = ScoreFn::new(&exact, sde.as_ref());
                let mut noise = NoiseSource::new(0);
                let mut x = Tensor::<2>::from_data(scorediff::burn::tensor::TensorData::new(x_t.clone(), [x_t.len(), 1]), &dev);
                while sampler.progress().0 + 1 < sampler.progress().1 {
                    x = sampler.step(x, &score, &mut noise).x;
                }
                assert!((sampler.time() - sde.t_min()).abs() < 1e-12, "{label}: stopped at {}", sampler.time());
                let got = x.into_data().try_to_vec::<f32>().unwrap();
                got.iter().zip(&want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max) / scale
            };
            let (coarse, fine) = (error(STEPS), error(2 * STEPS));
            let rate = (coarse / fine).log2();
            println!("{name} {label}: error {coarse:.3e} at {STEPS} steps, {fine:.3e} at {}: order {rate:.2}", 2 * STEPS);
            if !(rate > *order || fine < 5e-5) {
                fails.push(format!("{name} {label}: observed order {rate:.2} (errors {coarse:.2e}, {fine:.2e}), expected above {order}"));
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
