//! End-to-end inverse problems on MNIST digits under an exact prior: a Gaussian mixture whose
//! components sit on 20 test digits of the subset (std 0.1), whose perturbed score is exact
//! (`scorediff::mixture`). The digits to recover are among the components, so the posterior
//! concentrates on the right one: the diffusion methods must beat the simple baselines on every
//! linear task and recover the digits from their Fourier magnitude up to the trivial
//! ambiguities. This checks the operators, DPS's gradient and step rule, the projection method
//! and the metrics together on real images, without a trained network.

use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::data::{ImageDataset, Split};
use scorediff::inverse::{MeasurementNoise, Projection, Task, TaskKind, baseline, dps};
use scorediff::metrics::{SIGNED_RANGE, psnr};
use scorediff::mixture::{GaussianMixture, MixtureScore};
use scorediff::model::{Flattened, ScoreFn};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{SamplerConfig, SamplerKind};
use scorediff::sde::{DiscreteVpSde, ScheduleKind};
use std::path::Path;

const SIDE: usize = 28;
const LEN: usize = SIDE * SIDE;

fn digits(n: usize) -> Vec<f32> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-subset");
    let data = ImageDataset::load_dir(&dir, Split::Test).unwrap();
    data.batch(&(0..n).collect::<Vec<_>>())
}

/// Mean PSNR of `out` against `truth`, image by image.
fn mean_psnr(out: &[f32], truth: &[f32]) -> f64 {
    let v: Vec<f64> = out.chunks(LEN).zip(truth.chunks(LEN)).map(|(a, b)| psnr(a, b, SIGNED_RANGE)).collect();
    v.iter().sum::<f64>() / v.len() as f64
}

fn to_vec(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn diffusion_methods_beat_the_baselines_under_an_exact_prior() {
    let dev = Device::flex();
    let all = digits(20);
    let means: Vec<Vec<f64>> = all.chunks(LEN).map(|d| d.iter().map(|&v| v as f64).collect()).collect();
    let mixture = GaussianMixture::new(vec![1.0 / 20.0; 20], means, vec![0.1; 20]).unwrap();
    let sde = DiscreteVpSde::new(ScheduleKind::Linear, 1000).unwrap();
    let score = MixtureScore::new(mixture, Box::new(sde.clone()), &dev).unwrap();
    let model = Flattened(&score);
    let f = ScoreFn::new(&model, &sde);
    let n = 4;
    let truth = all[..n * LEN].to_vec();
    let x = Tensor::<4>::from_data(TensorData::new(truth.clone(), [n, 1, SIDE, SIDE]), &dev);
    let noise_model = MeasurementNoise::Gaussian { sigma: 0.05 };
    let config = SamplerConfig::new(SamplerKind::Ancestral, 200);
    for kind in [TaskKind::Inpaint, TaskKind::SuperResolution, TaskKind::Deblur, TaskKind::MotionDeblur, TaskKind::PhaseRetrieval] {
        let task = Task::new(kind);
        let op = task.build([1, SIDE, SIDE], &dev).unwrap();
        let mut noise = NoiseSource::new(1);
        let y = noise_model.apply(op.forward(x.clone()), &mut noise);
        let mut run =
            dps(&config, &sde, task.build([1, SIDE, SIDE], &dev).unwrap(), y.clone(), noise_model, 1.0, [n, 1, SIDE, SIDE], &mut noise, &dev).unwrap();
        while run.next(&f, &mut noise) {}
        let out = to_vec(run.output());
        let dps_psnr = mean_psnr(&out, &truth);
        match task.baseline_kind() {
            Some(bk) => {
                let b = to_vec(baseline(bk, op.as_ref(), y.clone(), noise_model.sigma(), task.factor).unwrap());
                let base_psnr = mean_psnr(&b, &truth);
                println!("{kind}: dps {dps_psnr:.2} dB, {} {base_psnr:.2} dB", bk.name());
                assert!(dps_psnr > base_psnr, "{kind}: dps {dps_psnr} dB does not beat {} {base_psnr} dB", bk.name());
            }
            None => {
                let aligned: Vec<f32> =
                    out.chunks(LEN).zip(truth.chunks(LEN)).flat_map(|(r, t)| scorediff::inverse::align_phase(r, t, [1, SIDE, SIDE])).collect();
                let p = mean_psnr(&aligned, &truth);
                println!("{kind}: dps {p:.2} dB after alignment");
                assert!(p > scorediff::inverse::RECOVERED_PSNR_DB, "{kind}: {p} dB");
            }
        }
        if Task::supports_projection(op.as_ref()) {
            let lin = op.linear().unwrap();
            let mut run = Projection::with_operator(&config, &sde, lin, y.clone(), [n, 1, SIDE, SIDE], &mut noise, &dev).unwrap();
            while run.next(&f, &mut noise) {}
            let p = mean_psnr(&to_vec(run.output()), &truth);
            let b = to_vec(baseline(task.baseline_kind().unwrap(), op.as_ref(), y, noise_model.sigma(), task.factor).unwrap());
            println!("{kind}: projection {p:.2} dB");
            assert!(p > mean_psnr(&b, &truth), "{kind}: projection {p} dB");
        }
    }
}
