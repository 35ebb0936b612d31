//! Training end to end on Flex: the MLP learns a 2-D toy well enough that sampling its EMA
//! weights reproduces the data.
//!
//! Threshold: the energy distance of the samples to fresh data must be below a quarter of that
//! of the best Gaussian fit (the data's own mean and covariance), a model with the right first
//! two moments but none of the eight modes; and below 5 times the 99th percentile of the
//! energy distance between two independent data samples of this size (the null, which a
//! perfect model would reach). A model that learned nothing, or a sign error in the loss or
//! the sampler, lands near or above the Gaussian fit.

use scorediff::burn::tensor::Device;
use scorediff::data::Toy;
use scorediff::eval::sample_model;
use scorediff::metrics::energy_distance;
use scorediff::nn::{MlpConfig, NetworkConfig};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{SamplerConfig, SamplerKind};
use scorediff::sde::SdeConfig;
use scorediff::train::{LossConfig, OptimConfig, Trainer};
use scorediff_tests::gaussian_fit;

const N: usize = 1000;

#[test]
fn an_mlp_trained_on_8gaussians_samples_its_modes() {
    let toy = Toy::EightGaussians;
    let dev = Device::flex().autodiff();
    dev.seed(0);
    let model = MlpConfig::new().build(&dev).unwrap();
    let opt = OptimConfig { lr: 2e-3, warmup: 100, ema_decay: 0.99, ..OptimConfig::default() };
    let sde = SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 };
    let mut trainer = Trainer::new(model, sde.clone(), LossConfig::default(), opt, 0).unwrap();
    for _ in 0..1500 {
        trainer.train_step(|noise| toy.sample_tensor(256, noise, &dev)).unwrap();
    }
    let plain = Device::flex();
    let sde = sde.build().unwrap();
    let samples = sample_model(&trainer.ema, sde.as_ref(), &SamplerConfig::new(SamplerKind::Ddim, 100), [N, 2], 1, &plain);

    let mut noise = NoiseSource::new(42);
    let data = toy.sample(N, &mut noise);
    let ours = energy_distance(&samples.data, &data, 2);
    let fit = energy_distance(&gaussian_fit(&toy.sample(N, &mut noise), N, &mut noise), &data, 2);
    let mut null: Vec<f64> = (0..100).map(|_| energy_distance(&toy.sample(N, &mut noise), &toy.sample(N, &mut noise), 2)).collect();
    null.sort_by(f64::total_cmp);
    println!("energy distance: ours {ours:.5}, gaussian fit {fit:.5}, null q99 {:.5}", null[98]);
    assert!(ours < 0.25 * fit, "ours {ours} vs gaussian fit {fit}");
    assert!(ours < 5.0 * null[98], "ours {ours} vs null q99 {}", null[98]);
}
