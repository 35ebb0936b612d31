//! Per-sample noise: sample `i` of a run with seed `s` is the same whatever the batch size, for
//! every sampler ([`SamplerKind::all`], so a new sampler is covered when it is added).
//!
//! [`draw_batches`] gives each sample its own noise stream ([`NoiseSource::for_samples`]), so
//! `native-cli sample --batch B` and the page's parallel workers (each a slice of the run) draw
//! the same images as one batch. The runs here draw 64 samples at batch 1, 7 (a ragged last
//! batch) and 64 on a 2-D mixture's exact score and on a small random U-Net, and compare them.
//!
//! Two samplers couple the samples of a batch by their definition, and are exempt: the
//! predictor–corrector's Langevin step size is set from the batch's mean norms of the noise
//! and the score (score_sde's `LangevinCorrector`), and the adaptive RK45 takes one step size
//! for the whole batch (score_sde's `solve_ivp` on the flattened batch). They are the samplers
//! that read back a value in the middle of a step ([`SamplerKind::reads_back`]); the test checks
//! that the exempt set is exactly those, so a new sampler is exempt only if it reads back too.
//!
//! Before per-sample noise (one stream drawn in turn by the batches) every stochastic sampler
//! failed this test: the batches' `x_T` are the stream's first numbers in turn, the same at any
//! batch size, but the first step's noise of a batch then comes after the next batch's `x_T`
//! only at another batch size. `one_stream_couples_the_batch` keeps that behaviour as the
//! control that must fail.

use scorediff::burn::tensor::Device;
use scorediff::eval::ByRef;
use scorediff::mixture::MixtureScore;
use scorediff::model::ScoreFn;
use scorediff::model::ScoreModel;
use scorediff::nn::UNetConfig;
use scorediff::noise::NoiseSource;
use scorediff::sampler::{ReadBackError, SamplerConfig, SamplerKind, SamplerSpec, draw_batches, sample};
use scorediff::sde::{ScheduleKind, Sde, SdeConfig};
use scorediff_tests::mixture_2d;

const N: usize = 64;
const BATCHES: [usize; 3] = [1, 7, 64];
const SEED: u64 = 3;

/// Samplers whose batch shares a step size by definition (see the module comment).
const EXEMPT: [SamplerKind; 2] = [SamplerKind::Pc, SamplerKind::OdeRk45];

/// Each sampler with its defaults at a few steps.
fn config(kind: SamplerKind) -> SamplerConfig {
    SamplerSpec { steps: Some(6), ..SamplerSpec::new(kind) }.build().unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// `N` samples of `config` at batch `batch`.
fn draw<M: ScoreModel<D>, const D: usize>(config: &SamplerConfig, sde: &dyn Sde, model: &M, shape: impl Fn(usize) -> [usize; D], batch: usize) -> Vec<f32> {
    let noise = NoiseSource::new(SEED);
    let by_ref = |_, _| Ok::<_, ReadBackError>(ByRef(model as &dyn ScoreModel<D>));
    draw_batches(config, sde, N, batch, shape, by_ref, &noise, &Device::flex(), |_| Ok(())).unwrap().values
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every sampler but the exempt ones gives the same samples at every batch size, within `tol`
/// (the model's arithmetic may round differently for another batch size).
fn check_every_sampler<M: ScoreModel<D>, const D: usize>(what: &str, sde: &dyn Sde, model: &M, shape: impl Fn(usize) -> [usize; D] + Copy, tol: f32) {
    let mut failures = vec![];
    for kind in SamplerKind::all().filter(|k| !EXEMPT.contains(k)) {
        let config = config(kind);
        let runs: Vec<Vec<f32>> = BATCHES.iter().map(|&b| draw(&config, sde, model, shape, b)).collect();
        for (b, run) in BATCHES.iter().zip(&runs).skip(1) {
            let d = max_abs_diff(&runs[0], run);
            if !(d <= tol) {
                failures.push(format!("{kind}: batch 1 and batch {b} differ by up to {d}"));
            }
        }
    }
    assert!(failures.is_empty(), "{what}: samples depend on the batch size:\n{}", failures.join("\n"));
}

#[test]
fn the_exempt_samplers_are_those_that_read_back() {
    let reading: Vec<SamplerKind> = SamplerKind::all().filter(|k| k.reads_back()).collect();
    assert_eq!(reading, EXEMPT, "the exempt samplers should be exactly those that read a batch-wide value back");
}

#[test]
fn every_sampler_is_batch_invariant_on_a_mixture() {
    let dev = Device::flex();
    for sde_config in [SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 }, SdeConfig::ddpm(ScheduleKind::Linear, 1000)] {
        let sde = sde_config.build().unwrap();
        let model = MixtureScore::new(mixture_2d(), sde_config.build().unwrap(), &dev).unwrap();
        check_every_sampler(&format!("{sde_config:?}"), sde.as_ref(), &model, |rows| [rows, 2], 1e-5);
    }
}

#[test]
fn every_sampler_is_batch_invariant_on_images() {
    let dev = Device::flex();
    dev.seed(1);
    let net = UNetConfig::new().with_base_channels(8).with_channel_mult(vec![1, 2]).with_num_res_blocks(1).with_groups(4).with_dropout(0.0).init(&dev);
    let sde = SdeConfig::ddpm(ScheduleKind::Linear, 1000).build().unwrap();
    check_every_sampler("random U-Net", sde.as_ref(), &net, |rows| [rows, 1, 8, 8], 1e-4);
}

/// The control: one stream drawn by the batches in turn (what `draw_batches` did before) gives
/// a stochastic sampler's samples that depend on the batch size.
#[test]
fn one_stream_couples_the_batch() {
    let dev = Device::flex();
    let sde_config = SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 };
    let sde = sde_config.build().unwrap();
    let model = MixtureScore::new(mixture_2d(), sde_config.build().unwrap(), &dev).unwrap();
    let f = ScoreFn::new(&model, sde.as_ref());
    for kind in [SamplerKind::Ancestral, SamplerKind::EulerMaruyama] {
        let config = config(kind);
        let one_stream = |batch: usize| {
            let mut noise = NoiseSource::new(SEED);
            let mut out = vec![];
            for first in (0..N).step_by(batch) {
                let rows = batch.min(N - first);
                let x = sample(&config, &f, [rows, 2], &mut noise, &dev, |_, _, _| {});
                out.extend(x.into_data().try_to_vec::<f32>().unwrap());
            }
            out
        };
        let d = max_abs_diff(&one_stream(1), &one_stream(7));
        assert!(d > 0.1, "{kind}: one noise stream should couple the batch, but batch 1 and 7 differ by only {d}");
        // The same loop with per-sample sources agrees.
        let per_sample = |batch: usize| {
            let mut out = vec![];
            for first in (0..N).step_by(batch) {
                let rows = batch.min(N - first);
                let mut noise = NoiseSource::new(SEED).for_samples(first, rows);
                out.extend(sample(&config, &f, [rows, 2], &mut noise, &dev, |_, _, _| {}).into_data().try_to_vec::<f32>().unwrap());
            }
            out
        };
        assert!(max_abs_diff(&per_sample(1), &per_sample(7)) <= 1e-5, "{kind}");
    }
}
