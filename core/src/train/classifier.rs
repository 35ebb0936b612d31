//! Supervised training of the [`Classifier`] that `eval` uses as its feature space.
//!
//! Minimises the cross-entropy `-1/B sum_i log p(y_i | x_i)` with Adam (Kingma & Ba 2015; the
//! shared [`OptimConfig`]: warm-up, clipping, weight decay 0 by default) on batches drawn
//! uniformly with replacement from a seeded [`NoiseSource`], so a seed fixes the data order.
//!
//! A noise-conditional classifier (config with a time embedding) is trained on perturbed data
//! `x_t = m(t) x_0 + s(t) z`, `t ~ U(t_min, T)`, with the SDE's marginal (Song et al. 2021,
//! appendix I.4), which is what classifier guidance needs.

use super::trainer::optimizer;
use super::{OptimConfig, StepReport, TrainError};
use crate::data::{DatasetKind, ImageDataset};
use crate::nn::{Classifier, ClassifierConfig, NetworkConfig, load_burnpack_bytes};
use crate::noise::NoiseSource;
use crate::sde::{Sde, SdeConfig};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File of a classifier directory holding its [`ClassifierCard`].
pub const CARD_FILE: &str = "classifier.json";
/// File of a classifier directory holding its Burnpack weights.
pub const WEIGHTS_FILE: &str = "classifier.bpk";

/// `classifier.json`: what a shipped classifier is, how it was trained and how well it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierCard {
    /// The data set it classifies.
    pub dataset: DatasetKind,
    /// The network.
    pub config: ClassifierConfig,
    /// How it was trained.
    pub training: ClassifierTraining,
    /// Accuracy on the data set's full test split (for a noise-conditional classifier: on
    /// test images perturbed to the SDE's `t_min`).
    pub test_accuracy: f64,
    /// The command that trained it.
    pub command: String,
    /// The SDE whose perturbed data a noise-conditional classifier was trained on (`None`: a
    /// plain classifier of clean images). Guidance needs the score model's own SDE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sde: Option<SdeConfig>,
    /// `[t, accuracy]` on perturbed test images at a few times (noise-conditional only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accuracy_by_time: Vec<[f64; 2]>,
    /// SHA-256 of `classifier.bpk` ([`crate::export::sha256_hex`]), checked on load and keying
    /// the page's cached copy, as a model card's; `None` in cards written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
}

impl ClassifierCard {
    /// The card as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("card serialises")
    }

    /// Builds the card's network on `device` and loads `weights` (the bytes of the file
    /// `name`) into it, after checking their SHA-256 against the card's when it has one.
    pub fn load_net(&self, weights: Vec<u8>, name: &str, device: &Device) -> Result<Classifier, String> {
        self.config.validate().map_err(|e| format!("{CARD_FILE}: {e}"))?;
        if let Some(expected) = &self.weights_sha256 {
            crate::export::check_sha256(CARD_FILE, expected, &weights, name).map_err(|e| e.to_string())?;
        }
        load_burnpack_bytes(&self.config, weights, name, device).map_err(|e| e.to_string())
    }
}

/// Reads a classifier directory (`classifier.json` + `classifier.bpk`) onto `device`; errors
/// name the file.
pub fn load_classifier_dir(dir: &Path, device: &Device) -> Result<(ClassifierCard, Classifier), String> {
    let card_path = dir.join(CARD_FILE);
    let text = std::fs::read_to_string(&card_path).map_err(|e| format!("cannot read {}: {e}", card_path.display()))?;
    let card: ClassifierCard = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", card_path.display()))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let weights = crate::io::read_file(&weights_path).map_err(|e| e.to_string())?;
    let net = card.load_net(weights, &weights_path.display().to_string(), device)?;
    Ok((card, net))
}

/// How a classifier was trained; saved in `classifier.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierTraining {
    /// Images per step.
    pub batch_size: usize,
    /// Optimisation steps.
    pub steps: usize,
    /// Seed of the weights and the data order.
    pub seed: u64,
    /// Adam settings.
    pub optim: OptimConfig,
}

impl Default for ClassifierTraining {
    /// Batch 128, 1000 steps, Adam at 1e-3 with 50 warm-up steps, no clipping or EMA use.
    fn default() -> Self {
        Self { batch_size: 128, steps: 1000, seed: 0, optim: OptimConfig { lr: 1e-3, warmup: 50, grad_clip: None, ..OptimConfig::default() } }
    }
}

impl ClassifierTraining {
    /// Checks ranges, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("batch_size: expected at least 1, found 0".into());
        }
        self.optim.validate().map_err(|e| format!("optim.{e}"))
    }
}

/// A classifier being trained on an autodiff device.
pub struct ClassifierTrainer {
    /// The model on the autodiff device.
    pub model: Classifier,
    optim: ModuleOptimizer,
    opt: OptimConfig,
    sde: Option<Box<dyn Sde>>,
    device: Device,
    data_noise: NoiseSource,
    step: usize,
    ema_loss: Option<f64>,
}

impl ClassifierTrainer {
    /// A fresh run from `model`; `sde` perturbs the inputs of a noise-conditional classifier and
    /// must be given exactly when its config has a time embedding. `device` is the autodiff
    /// device `model` lives on.
    pub fn new(model: Classifier, opt: OptimConfig, sde: Option<Box<dyn Sde>>, seed: u64, device: &Device) -> Result<Self, String> {
        opt.validate()?;
        match (model.config().time_embedding.is_some(), sde.is_some()) {
            (true, false) => return Err("a noise-conditional classifier needs an SDE to perturb its inputs".into()),
            (false, true) => return Err("a plain classifier (no time_embedding) cannot be trained on perturbed inputs".into()),
            _ => {}
        }
        Ok(Self { model, optim: optimizer(&opt), opt, sde, device: device.clone(), data_noise: NoiseSource::new(seed), step: 0, ema_loss: None })
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        self.step
    }

    /// One Adam step on a batch of `batch_size` images drawn from `data`.
    pub fn train_step(&mut self, data: &ImageDataset, batch_size: usize) -> Result<StepReport, TrainError> {
        let device = self.device.clone();
        let indices = data.random_indices(batch_size, &mut self.data_noise);
        let labels: Vec<usize> = indices.iter().map(|&i| data.labels[i] as usize).collect();
        let mut x = data.batch_tensor(&indices, &device); // [b, c, h, w]
        let t = self.sde.as_ref().map(|sde| {
            let (lo, hi) = (sde.t_min(), sde.t_max());
            let t: Vec<f64> = (0..batch_size).map(|_| lo + (hi - lo) * self.data_noise.uniform()).collect();
            let (m, s): (Vec<f32>, Vec<f32>) = t.iter().map(|&ti| sde.marginal(ti)).map(|(m, s)| (m as f32, s as f32)).unzip();
            let col = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [batch_size, 1, 1, 1]), &device);
            let z = self.data_noise.normal(x.dims(), &device);
            x = x.clone() * col(m) + z * col(s);
            t
        });
        let loss = self.model.cross_entropy(x, t.as_deref(), &labels);
        let value = loss.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            return Err(TrainError::NonFinite { step: self.step, value });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let lr = self.opt.lr_at(self.step);
        self.model = self.optim.step(lr, self.model.clone(), grads);
        self.step += 1;
        let ema_loss = self.ema_loss.map_or(value, |e| 0.99 * e + 0.01 * value);
        self.ema_loss = Some(ema_loss);
        Ok(StepReport { step: self.step, loss: value, ema_loss, lr })
    }
}

/// Fraction of `data`'s images whose arg-max class under `model` (a plain classifier on a plain
/// device) is their label, evaluated `batch` at a time.
pub fn accuracy(model: &Classifier, data: &ImageDataset, batch: usize, device: &Device) -> f64 {
    let stats = model.stats(&data.batch(&(0..data.n).collect::<Vec<_>>()), batch, device);
    let correct = stats.predicted.iter().zip(&data.labels).filter(|(p, l)| **p == **l as usize).count();
    correct as f64 / data.n.max(1) as f64
}

/// Fraction of `data`'s images, perturbed to time `t` of `sde` (`x_t = m x_0 + s z`, `z` from
/// `seed`), that a noise-conditional `model` (on a plain device) classifies right.
pub fn accuracy_at(model: &Classifier, data: &ImageDataset, sde: &dyn Sde, t: f64, seed: u64, batch: usize, device: &Device) -> f64 {
    let mut noise = NoiseSource::new(seed);
    let (m, s) = sde.marginal(t);
    let indices: Vec<usize> = (0..data.n).collect();
    let mut correct = 0;
    for chunk in indices.chunks(batch.max(1)) {
        let x0 = data.batch_tensor(chunk, device);
        let x = x0.clone().mul_scalar(m) + noise.normal(x0.dims(), device).mul_scalar(s);
        let logits = model.forward(x, Some(&vec![t; chunk.len()]));
        let predicted = logits.argmax(1).into_data().convert::<i64>();
        let predicted = predicted.as_slice::<i64>().expect("i64 classes");
        correct += chunk.iter().zip(predicted).filter(|(i, p)| data.labels[**i] as i64 == **p).count();
    }
    correct as f64 / data.n.max(1) as f64
}

/// Trains a fresh classifier of `config` on `data` as `training` says, calling `progress` after
/// every step. A config with a time embedding is noise-conditional and needs `sde`, whose
/// perturbed data it is trained on (see [`ClassifierTrainer`]); a plain one needs `None`.
pub fn train_classifier(
    config: &ClassifierConfig,
    training: &ClassifierTraining,
    data: &ImageDataset,
    sde: Option<Box<dyn Sde>>,
    device: &Device,
    mut progress: impl FnMut(&StepReport),
) -> Result<Classifier, String> {
    training.validate()?;
    let autodiff = device.clone().autodiff();
    autodiff.seed(training.seed);
    let model = config.build(&autodiff).map_err(|e| e.to_string())?;
    let mut trainer = ClassifierTrainer::new(model, training.optim, sde, training.seed, &autodiff)?;
    while trainer.step() < training.steps {
        let report = trainer.train_step(data, training.batch_size).map_err(|e| e.to_string())?;
        progress(&report);
    }
    Ok(trainer.model.valid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;

    fn subset(split: Split) -> ImageDataset {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/mnist-subset");
        ImageDataset::load_dir(&dir, split).unwrap()
    }

    #[test]
    fn training_on_the_mnist_subset_lowers_the_loss_and_beats_chance() {
        let dev = Device::flex();
        let (train, test) = (subset(Split::Train), subset(Split::Test));
        let cfg = ClassifierConfig::new().with_channels1(8).with_channels2(16).with_hidden(32);
        let mut training = ClassifierTraining { batch_size: 32, steps: 100, ..ClassifierTraining::default() };
        training.optim.warmup = 10;
        let mut losses = Vec::new();
        let net = train_classifier(&cfg, &training, &train, None, &dev, |r| losses.push(r.loss)).unwrap();
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        // At initialisation the loss is about ln 10 = 2.30; 100 steps on 1000 digits must cut it.
        assert!(mean(&losses[90..]) < 0.6 * mean(&losses[..5]), "{losses:?}");
        // Chance is 10%; even this tiny net after 100 steps is far above it on held-out digits.
        let acc = accuracy(&net, &test, 64, &dev);
        assert!(acc > 0.5, "test accuracy {acc}");
    }

    /// Chance is 10%; on the subset's 50 test digits a binomial at p = 0.1 has standard error
    /// 0.042, so 0.3 is more than 4 standard errors above chance. At `T` the DDPM schedule keeps
    /// `m(T) = 0.006` of the image: the classifier can only guess there.
    #[test]
    fn noisy_training_beats_chance_at_small_t_and_not_at_t_max() {
        let dev = Device::flex();
        let (train, test) = (subset(Split::Train), subset(Split::Test));
        let cfg = ClassifierConfig::new()
            .with_channels1(8)
            .with_channels2(16)
            .with_hidden(32)
            .with_time_embedding(Some(crate::nn::TimeEmbedding::Sinusoidal { scale: 1000.0 }));
        let sde_config = SdeConfig::ddpm(crate::sde::ScheduleKind::Linear, 1000);
        let mut training = ClassifierTraining { batch_size: 32, steps: 200, ..ClassifierTraining::default() };
        training.optim.warmup = 10;
        let net = train_classifier(&cfg, &training, &train, Some(sde_config.build().unwrap()), &dev, |_| {}).unwrap();
        let sde = sde_config.build().unwrap();
        let early = accuracy_at(&net, &test, sde.as_ref(), sde.t_min(), 0, 25, &dev);
        let late = accuracy_at(&net, &test, sde.as_ref(), 1.0, 0, 25, &dev);
        println!("accuracy at t_min {early}, at T {late}");
        assert!(early > 0.3 && late < 0.3, "accuracy at t_min {early}, at T {late}");
        assert!(train_classifier(&cfg, &training, &train, None, &dev, |_| {}).is_err());
    }

    #[test]
    fn a_noise_conditional_classifier_trains_on_perturbed_inputs() {
        let dev = Device::flex().autodiff();
        let cfg = ClassifierConfig::new()
            .with_channels1(4)
            .with_channels2(8)
            .with_hidden(16)
            .with_time_embedding(Some(crate::nn::TimeEmbedding::Fourier { scale: 16.0 }));
        let sde = crate::sde::SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 }.build().unwrap();
        assert!(ClassifierTrainer::new(cfg.init(&dev), OptimConfig::default(), None, 0, &dev).is_err());
        let mut t = ClassifierTrainer::new(cfg.init(&dev), OptimConfig::default(), Some(sde), 0, &dev).unwrap();
        let r = t.train_step(&subset(Split::Test), 8).unwrap();
        assert!(r.loss.is_finite() && t.step() == 1);
    }
}
