//! The resumable training loop (see the module docs of [`crate::train`]).

use super::checkpoint;
use super::ema::{decay_at, ema_update};
use super::{LossConfig, OptimConfig};
use crate::io::write_atomic;
use crate::loss::LossSecondMoment;
use crate::model::{Conditional, ScoreModel};
use crate::nn::{NetworkConfig, NnError, load_burnpack, save_burnpack};
use crate::noise::{NoiseSource, NoiseState};
use crate::sde::{Sde, SdeConfig};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod parallel;

/// File names inside a checkpoint directory.
pub const MODEL_FILE: &str = "model.bpk";
/// EMA weights.
pub const EMA_FILE: &str = "ema.bpk";
/// Optimizer state.
pub const OPTIM_FILE: &str = "optim.bpk";
/// The loop's own state ([`TrainState`]).
pub const STATE_FILE: &str = "state.json";

/// What can stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss was NaN or infinite; the model was not updated.
    #[error("the loss became {value} at step {step}; training stopped and the last good checkpoint was kept (try a lower lr or grad_clip)")]
    NonFinite {
        /// The step that produced it (0-based).
        step: usize,
        /// The loss value.
        value: f64,
    },
    /// Reading or writing a checkpoint file failed.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Labelled training of a network that takes no labels.
    #[error("labelled training needs a class-conditional network, found num_classes = null")]
    NotConditional,
    /// Plain I/O failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn ckpt_error(path: &Path, message: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint { path: path.to_path_buf(), message: message.to_string() }
}

/// The loop's position, saved with every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps completed.
    pub step: usize,
    /// Exponential moving average of the loss (for display).
    pub ema_loss: Option<f64>,
    /// Position of the data stream.
    pub data_noise: NoiseState,
    /// Position of the loss's stream (times and noise).
    pub loss_noise: NoiseState,
    /// The importance sampler's loss history (a hybrid loss with `importance_sampling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_history: Option<LossSecondMoment>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepReport {
    /// Steps completed after this one.
    pub step: usize,
    /// This step's loss.
    pub loss: f64,
    /// Running average of the loss (decay 0.99).
    pub ema_loss: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// A model being trained: the autodiff model, its EMA, the optimizer and the noise streams.
///
/// `M` is any module that is a [`ScoreModel`] of rank `D` (the U-Net on `[batch, c, h, w]`, the
/// MLP on `[batch, dim]`).
pub struct Trainer<M, const D: usize> {
    /// The model on the autodiff device.
    pub model: M,
    /// The EMA of its weights on the plain device.
    pub ema: M,
    optim: ModuleOptimizer,
    sde: Arc<dyn Sde>,
    sde_config: SdeConfig,
    loss: LossConfig,
    opt: OptimConfig,
    state: TrainState,
    data_noise: NoiseSource,
    loss_noise: NoiseSource,
    seed: u64,
    inject_non_finite_at: Option<usize>,
}

pub(crate) fn optimizer(opt: &OptimConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(opt.weight_decay as f32)
        .with_epsilon(1e-8)
        .with_grad_clipping(opt.grad_clip.map(|c| GradientClippingConfig::Norm(c as f32)))
        .init()
}

impl<M: Module + ScoreModel<D>, const D: usize> Trainer<M, D> {
    /// A fresh run from `model` (initialised on an autodiff device), seeded by `seed`. A network
    /// that reads the SDE's marginal must have been given it ([`NetworkConfig::with_sde`] with
    /// [`Trainer::sde_of`]).
    pub fn new(model: M, sde_config: SdeConfig, loss: LossConfig, opt: OptimConfig, seed: u64) -> Result<Self, String> {
        let sde = Self::sde_of(&sde_config)?;
        loss.validate()?;
        opt.validate()?;
        let data_noise = NoiseSource::new(seed);
        let loss_noise = NoiseSource::new(seed ^ 0x5eed_1055);
        let loss_history = loss.new_history(&sde_config);
        let state = TrainState { step: 0, ema_loss: None, data_noise: data_noise.state(), loss_noise: loss_noise.state(), loss_history };
        Ok(Self {
            ema: model.valid(),
            model,
            optim: optimizer(&opt),
            sde,
            sde_config,
            loss,
            opt,
            state,
            data_noise,
            loss_noise,
            seed,
            inject_non_finite_at: None,
        })
    }

    /// The SDE of `sde_config`, shared with the networks that read it.
    pub fn sde_of(sde_config: &SdeConfig) -> Result<Arc<dyn Sde>, String> {
        crate::limits::sde(sde_config).map_err(|e| format!("sde.{e}"))?;
        sde_config.build().map(Arc::from).map_err(|e| e.to_string())
    }

    /// A fault for tests of the training loop's recovery: the loss of the step that starts
    /// after `step` completed steps is taken as NaN (so [`TrainError::NonFinite`] stops it, as
    /// a real divergence would). `native-cli train --inject-nan-at STEP` sets it.
    #[doc(hidden)]
    pub fn inject_non_finite_at(&mut self, step: Option<usize>) {
        self.inject_non_finite_at = step;
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        self.state.step
    }

    /// The loop state as of now.
    pub fn state(&self) -> TrainState {
        TrainState { data_noise: self.data_noise.state(), loss_noise: self.loss_noise.state(), ..self.state.clone() }
    }

    /// The forward SDE.
    pub fn sde(&self) -> &dyn Sde {
        self.sde.as_ref()
    }

    /// One optimisation step on the batch `batch` draws from the data stream.
    ///
    /// A non-finite loss returns [`TrainError::NonFinite`] before any weight changes.
    pub fn train_step(&mut self, batch: impl FnOnce(&mut NoiseSource) -> Tensor<D>) -> Result<StepReport, TrainError> {
        let x0 = batch(&mut self.data_noise);
        let loss = self.batch_loss(x0);
        self.optimise(loss)
    }

    /// The loss on the batch `x0`, its times and noise drawn from the loss stream.
    fn batch_loss(&mut self, x0: Tensor<D>) -> Tensor<1> {
        self.seed_backend(&x0);
        let history = self.state.loss_history.as_mut();
        self.loss.loss_with_history(&self.model, self.sde.as_ref(), &self.sde_config, x0, &mut self.loss_noise, history)
    }

    /// The backend's own generator (dropout) is reseeded per step, so a resumed run draws the
    /// same masks as an uninterrupted one.
    fn seed_backend(&self, x0: &Tensor<D>) {
        x0.device().seed(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.state.step as u64);
    }

    /// Backpropagates `loss` and takes the optimizer and EMA step.
    fn optimise(&mut self, loss: Tensor<1>) -> Result<StepReport, TrainError> {
        let value = loss.clone().into_scalar::<f32>() as f64;
        self.optimise_reporting(loss, value)
    }

    /// [`optimise`](Self::optimise) with the loss value that is checked and reported given: the
    /// mean over the replicas in data-parallel training ([`parallel`]).
    fn optimise_reporting(&mut self, loss: Tensor<1>, value: f64) -> Result<StepReport, TrainError> {
        let value = if self.inject_non_finite_at == Some(self.state.step) { f64::NAN } else { value };
        if !value.is_finite() {
            return Err(TrainError::NonFinite { step: self.state.step, value });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let lr = self.opt.lr_at(self.state.step);
        self.model = self.optim.step(lr, self.model.clone(), grads);
        let decay = decay_at(self.opt.ema_decay, self.state.step, self.opt.ema_warmup);
        self.ema = ema_update(self.ema.clone(), &self.model, decay);
        self.state.step += 1;
        let ema_loss = self.state.ema_loss.map_or(value, |e| 0.99 * e + 0.01 * value);
        self.state.ema_loss = Some(ema_loss);
        Ok(StepReport { step: self.state.step, loss: value, ema_loss, lr })
    }
    /// Writes a checkpoint of the run into `run_dir` atomically (see [`checkpoint`]).
    pub fn save(&self, run_dir: &Path) -> Result<PathBuf, TrainError> {
        checkpoint::write_atomically(run_dir, |dir| {
            let nn = |e: NnError| ckpt_error(dir, e);
            save_burnpack(&self.model.valid(), dir.join(MODEL_FILE)).map_err(nn)?;
            save_burnpack(&self.ema, dir.join(EMA_FILE)).map_err(nn)?;
            let path = dir.join(OPTIM_FILE);
            self.optim.save(&path).map_err(|e| ckpt_error(&path, format!("{e:?}")))?;
            let json = serde_json::to_string_pretty(&self.state()).expect("state serialises");
            write_atomic(&dir.join(STATE_FILE), json.as_bytes())?;
            Ok(())
        })
    }

    /// Continues the run saved in `run_dir` (its latest complete checkpoint). `self` must be
    /// built from the same configuration, and `network` is the config of its model; weights
    /// of another architecture are an error. `device` is the autodiff device to train on.
    pub fn resume<C: NetworkConfig<Net = M>>(mut self, network: &C, run_dir: &Path, device: &Device) -> Result<Self, TrainError> {
        let dir = checkpoint::latest(run_dir).ok_or_else(|| ckpt_error(run_dir, "no checkpoint to resume from"))?;
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ckpt_error(&path, e))?;
        let state: TrainState = serde_json::from_str(&text).map_err(|e| ckpt_error(&path, e))?;
        let (want, found) = (self.state.loss_history.as_ref().map(|h| h.levels()), state.loss_history.as_ref().map(|h| h.levels()));
        if want != found {
            return Err(ckpt_error(&path, format!("loss_history: expected the history of {want:?} levels of this run's loss, found {found:?}")));
        }
        let load = |file: &str| load_burnpack(network, dir.join(file), device).map(|net| network.with_sde(net, &self.sde)).map_err(|e| ckpt_error(&dir, e));
        self.model = load(MODEL_FILE)?;
        self.ema = load(EMA_FILE)?.valid();
        let path = dir.join(OPTIM_FILE);
        self.optim = self.optim.load(&path).map_err(|e| ckpt_error(&path, format!("{e:?}")))?;
        self.data_noise = NoiseSource::from_state(&state.data_noise);
        self.loss_noise = NoiseSource::from_state(&state.loss_noise);
        self.state = state;
        Ok(self)
    }
}

impl<M: Module + ScoreModel<D> + Conditional<D>, const D: usize> Trainer<M, D> {
    /// One optimisation step on a labelled batch: each label is replaced by the null label with
    /// probability `label_dropout` (`p_uncond` of Ho & Salimans 2022, Alg. 1), drawn from the
    /// data stream so a resumed run drops the same labels.
    ///
    /// Labels must be below [`Conditional::num_classes`] (checked by the network).
    pub fn train_step_labelled(
        &mut self,
        batch: impl FnOnce(&mut NoiseSource) -> (Tensor<D>, Vec<usize>),
        label_dropout: f64,
    ) -> Result<StepReport, TrainError> {
        let (x0, labels) = self.draw_labelled(batch, label_dropout)?;
        let loss = self.labelled_loss(x0, labels);
        self.optimise(loss)
    }

    /// The labelled batch `batch` draws from the data stream, each label then replaced by the
    /// null label with probability `label_dropout` (also drawn from the data stream).
    fn draw_labelled(
        &mut self,
        batch: impl FnOnce(&mut NoiseSource) -> (Tensor<D>, Vec<usize>),
        label_dropout: f64,
    ) -> Result<(Tensor<D>, Vec<usize>), TrainError> {
        let Some(null) = self.model.num_classes() else {
            return Err(TrainError::NotConditional);
        };
        let (x0, mut labels) = batch(&mut self.data_noise);
        for label in &mut labels {
            if self.data_noise.uniform() < label_dropout {
                *label = null;
            }
        }
        Ok((x0, labels))
    }

    /// [`batch_loss`](Self::batch_loss) of the model given the labels.
    fn labelled_loss(&mut self, x0: Tensor<D>, labels: Vec<usize>) -> Tensor<1> {
        self.seed_backend(&x0);
        let model = self.model.with_labels(labels);
        let history = self.state.loss_history.as_mut();
        self.loss.loss_with_history(model.as_ref(), self.sde.as_ref(), &self.sde_config, x0, &mut self.loss_noise, history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::Parameterization;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::TensorData;

    /// `eps_hat = W [x, t] + b`: the smallest time-conditional model.
    #[derive(Module, Debug)]
    struct Tiny {
        lin: Linear,
    }

    struct TinyConfig;

    impl NetworkConfig for TinyConfig {
        type Net = Tiny;
        fn build(&self, device: &Device) -> Result<Tiny, NnError> {
            Ok(Tiny { lin: LinearConfig::new(3, 2).init(device) })
        }
    }

    impl ScoreModel<2> for Tiny {
        fn parameterization(&self) -> Parameterization {
            Parameterization::Eps
        }
        fn forward(&self, x: Tensor<2>, t: &[f64]) -> Tensor<2> {
            let tt = Tensor::<2>::from_data(TensorData::new(t.iter().map(|&v| v as f32).collect(), [t.len(), 1]), &x.device());
            self.lin.forward(Tensor::cat(vec![x, tt], 1))
        }
    }

    fn trainer(seed: u64) -> (Trainer<Tiny, 2>, Device) {
        let dev = Device::flex().autodiff();
        trainer_from(TinyConfig.build(&dev).unwrap(), seed, dev)
    }

    fn trainer_from(model: Tiny, seed: u64, dev: Device) -> (Trainer<Tiny, 2>, Device) {
        let opt = OptimConfig { lr: 1e-2, warmup: 5, ..OptimConfig::default() };
        let t = Trainer::new(model, SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 }, LossConfig::default(), opt, seed).unwrap();
        (t, dev)
    }

    /// Data: N((1, -2), 0.5^2 I) drawn from the data stream.
    fn batch(dev: &Device) -> impl Fn(&mut NoiseSource) -> Tensor<2> + '_ {
        move |noise| {
            let v: Vec<f32> = noise.normal_vec(64).iter().enumerate().map(|(i, z)| if i % 2 == 0 { 1.0 + 0.5 * z } else { -2.0 + 0.5 * z }).collect();
            Tensor::from_data(TensorData::new(v, [32, 2]), dev)
        }
    }

    use crate::test_util::temp_dir as temp;

    #[test]
    fn the_loss_falls() {
        let (mut t, dev) = trainer(1);
        let losses: Vec<f64> = (0..300).map(|_| t.train_step(batch(&dev)).unwrap().loss).collect();
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        // A linear eps-model can fit the Gaussian's score well: the late loss is far below the
        // initial one (at random init the loss is about 1/2 E||eps_hat - eps||^2 >= 1).
        assert!(mean(&losses[250..]) < 0.7 * mean(&losses[..20]), "{} vs {}", mean(&losses[250..]), mean(&losses[..20]));
        assert_eq!(t.step(), 300);
    }

    #[test]
    fn resume_continues_the_same_loss_curve() {
        let run = temp("resume");
        let dev = Device::flex().autodiff();
        let init = TinyConfig.build(&dev).unwrap();
        let (mut straight, _) = trainer_from(init.clone(), 5, dev.clone());
        let full: Vec<f64> = (0..40).map(|_| straight.train_step(batch(&dev)).unwrap().loss).collect();

        let (mut first, _) = trainer_from(init, 5, dev.clone());
        for _ in 0..20 {
            first.train_step(batch(&dev)).unwrap();
        }
        first.save(&run).unwrap();
        let saved_w = first.model.lin.weight.val().into_data();
        let saved_state = first.state();
        // Keep training past the checkpoint, as a killed run would have, then throw it away.
        first.train_step(batch(&dev)).unwrap();
        drop(first);

        let (fresh, _) = trainer_from(TinyConfig.build(&dev).unwrap(), 5, dev.clone());
        let mut resumed = fresh.resume(&TinyConfig, &run, &dev).unwrap();
        assert_eq!(resumed.step(), 20);
        assert_eq!(resumed.model.lin.weight.val().into_data(), saved_w);
        assert_eq!(resumed.state().data_noise, saved_state.data_noise);
        assert_eq!(resumed.state().loss_noise, saved_state.loss_noise);
        let rest: Vec<f64> = (0..20).map(|_| resumed.train_step(batch(&dev)).unwrap().loss).collect();
        for (a, b) in full[20..].iter().zip(&rest) {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{:?}\nvs {rest:?}", &full[20..]);
        }
        std::fs::remove_dir_all(&run).unwrap();
    }

    /// `[eps_hat, v] = W [x, t] + b`: the smallest model with a learned variance.
    #[derive(Module, Debug)]
    struct TinyV {
        lin: Linear,
    }

    impl ScoreModel<2> for TinyV {
        fn parameterization(&self) -> Parameterization {
            Parameterization::Eps
        }
        fn forward(&self, x: Tensor<2>, t: &[f64]) -> Tensor<2> {
            self.forward_with_variance(x, t).0
        }
        fn forward_with_variance(&self, x: Tensor<2>, t: &[f64]) -> (Tensor<2>, Option<Tensor<2>>) {
            let tt = Tensor::<2>::from_data(TensorData::new(t.iter().map(|&v| v as f32).collect(), [t.len(), 1]), &x.device());
            let out = self.lin.forward(Tensor::cat(vec![x, tt], 1));
            (out.clone().narrow(1, 0, 2), Some(out.narrow(1, 2, 2)))
        }
    }

    struct TinyVConfig;

    impl NetworkConfig for TinyVConfig {
        type Net = TinyV;
        fn build(&self, device: &Device) -> Result<TinyV, NnError> {
            Ok(TinyV { lin: LinearConfig::new(3, 4).init(device) })
        }
    }

    /// The hybrid loss with importance sampling: the loss history is kept in the state, saved
    /// with the checkpoint, and a resumed run draws the same levels (the same loss curve).
    #[test]
    fn hybrid_importance_sampling_resumes_with_its_history() {
        let run = temp("hybrid");
        let dev = Device::flex().autodiff();
        let init = TinyVConfig.build(&dev).unwrap();
        let opt = OptimConfig { lr: 1e-3, warmup: 0, ..OptimConfig::default() };
        let sde = SdeConfig::ddpm(crate::sde::ScheduleKind::Cosine, 4);
        let loss = LossConfig::Hybrid { lambda: 0.001, importance_sampling: true, target: crate::param::Parameterization::Eps, min_snr_gamma: None };
        let make = |m: TinyV| Trainer::new(m, sde.clone(), loss, opt, 9).unwrap();
        let mut straight = make(init.clone());
        let full: Vec<f64> = (0..12).map(|_| straight.train_step(batch(&dev)).unwrap().loss).collect();
        assert!(straight.state().loss_history.is_some_and(|h| h.warmed_up()), "12 x 32 draws over 4 levels fill every history");
        let mut first = make(init);
        for _ in 0..6 {
            first.train_step(batch(&dev)).unwrap();
        }
        first.save(&run).unwrap();
        drop(first);
        let mut resumed = make(TinyVConfig.build(&dev).unwrap()).resume(&TinyVConfig, &run, &dev).unwrap();
        let rest: Vec<f64> = (0..6).map(|_| resumed.train_step(batch(&dev)).unwrap().loss).collect();
        for (a, b) in full[6..].iter().zip(&rest) {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{:?}\nvs {rest:?}", &full[6..]);
        }
        // A checkpoint of a run without the history is refused by one that samples by it.
        let no_history = LossConfig::Hybrid { lambda: 0.001, importance_sampling: false, target: crate::param::Parameterization::Eps, min_snr_gamma: None };
        let plain = Trainer::new(TinyVConfig.build(&dev).unwrap(), sde.clone(), no_history, opt, 9).unwrap();
        let err = plain.resume(&TinyVConfig, &run, &dev).err().unwrap().to_string();
        assert!(err.contains("loss_history"), "{err}");
        std::fs::remove_dir_all(&run).unwrap();
    }

    #[test]
    fn a_non_finite_loss_stops_without_touching_the_weights() {
        let (mut t, dev) = trainer(2);
        t.train_step(batch(&dev)).unwrap();
        let before = t.model.lin.weight.val().into_data();
        let nan = |_: &mut NoiseSource| Tensor::<2>::from_data(TensorData::new(vec![f32::NAN; 4], [2, 2]), &dev);
        match t.train_step(nan) {
            Err(TrainError::NonFinite { step: 1, value }) => assert!(value.is_nan()),
            other => panic!("expected NonFinite, got {other:?}"),
        }
        assert_eq!(t.model.lin.weight.val().into_data(), before);
        assert_eq!(t.step(), 1);
    }

    #[test]
    fn resuming_from_a_missing_or_corrupt_checkpoint_names_the_file() {
        let run = temp("corrupt");
        let (t, dev) = trainer(3);
        let err = t.resume(&TinyConfig, &run, &dev).err().unwrap().to_string();
        assert!(err.contains("no checkpoint"), "{err}");
        let (t, _) = trainer(3);
        t.save(&run).unwrap();
        let model = run.join(checkpoint::CURRENT).join(MODEL_FILE);
        let bytes = std::fs::read(&model).unwrap();
        std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
        let (t, _) = trainer(3);
        let err = t.resume(&TinyConfig, &run, &dev).err().unwrap().to_string();
        assert!(err.contains("model.bpk"), "{err}");
        std::fs::remove_dir_all(&run).unwrap();
    }

    /// `eps_hat = W [x, t, onehot(label)] + b` over [`CLASSES`] classes and the null label; the
    /// labels of every call are recorded in [`SEEN`].
    #[derive(Module, Debug)]
    pub(super) struct TinyCond {
        lin: Linear,
    }

    const CLASSES: usize = 3;

    thread_local! {
        static SEEN: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    struct WithLabels<'a>(&'a TinyCond, Vec<usize>);

    impl ScoreModel<2> for WithLabels<'_> {
        fn parameterization(&self) -> Parameterization {
            Parameterization::Eps
        }
        fn forward(&self, x: Tensor<2>, t: &[f64]) -> Tensor<2> {
            let dev = x.device();
            let b = t.len();
            let tt = Tensor::<2>::from_data(TensorData::new(t.iter().map(|&v| v as f32).collect(), [b, 1]), &dev);
            let onehot: Vec<f32> = self.1.iter().flat_map(|&l| (0..=CLASSES).map(move |c| if c == l { 1.0 } else { 0.0 })).collect();
            let oh = Tensor::<2>::from_data(TensorData::new(onehot, [b, CLASSES + 1]), &dev);
            self.0.lin.forward(Tensor::cat(vec![x, tt, oh], 1))
        }
    }

    impl ScoreModel<2> for TinyCond {
        fn parameterization(&self) -> Parameterization {
            Parameterization::Eps
        }
        fn forward(&self, x: Tensor<2>, t: &[f64]) -> Tensor<2> {
            WithLabels(self, vec![CLASSES; t.len()]).forward(x, t)
        }
    }

    impl Conditional<2> for TinyCond {
        fn num_classes(&self) -> Option<usize> {
            Some(CLASSES)
        }
        fn with_labels(&self, labels: Vec<usize>) -> Box<dyn ScoreModel<2> + '_> {
            SEEN.with(|s| s.borrow_mut().extend(&labels));
            Box::new(WithLabels(self, labels))
        }
    }

    /// Three tight clusters at `mu_c = 2 (cos, sin)(2 pi c / 3)`, sd 0.2, with their labels.
    pub(super) fn labelled(dev: &Device) -> impl Fn(&mut NoiseSource) -> (Tensor<2>, Vec<usize>) + '_ {
        move |noise| {
            let labels: Vec<usize> = (0..32).map(|_| noise.index(CLASSES)).collect();
            let z = noise.normal_vec(64);
            let v: Vec<f32> = labels
                .iter()
                .enumerate()
                .flat_map(|(i, &c)| {
                    let a = std::f64::consts::TAU * c as f64 / CLASSES as f64;
                    [(2.0 * a.cos()) as f32 + 0.2 * z[2 * i], (2.0 * a.sin()) as f32 + 0.2 * z[2 * i + 1]]
                })
                .collect();
            (Tensor::from_data(TensorData::new(v, [32, 2]), dev), labels)
        }
    }

    pub(super) fn cond_trainer(dev: &Device) -> Trainer<TinyCond, 2> {
        let model = TinyCond { lin: LinearConfig::new(3 + CLASSES + 1, 2).init(dev) };
        let opt = OptimConfig { lr: 1e-2, warmup: 5, ..OptimConfig::default() };
        Trainer::new(model, SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 }, LossConfig::default(), opt, 4).unwrap()
    }

    #[test]
    fn labelled_steps_drop_labels_at_the_given_rate() {
        let dev = Device::flex().autodiff();
        let mut t = cond_trainer(&dev);
        SEEN.with(|s| s.borrow_mut().clear());
        let p = 0.25;
        for _ in 0..100 {
            t.train_step_labelled(labelled(&dev), p).unwrap();
        }
        let seen = SEEN.with(|s| s.borrow().clone());
        assert_eq!(seen.len(), 3200);
        let dropped = seen.iter().filter(|&&l| l == CLASSES).count() as f64 / seen.len() as f64;
        // Binomial(3200, 1/4): standard error sqrt(p (1 - p) / n) = 0.0077; allow 4 of them.
        assert!((dropped - p).abs() < 4.0 * (p * (1.0 - p) / 3200.0f64).sqrt(), "dropped {dropped}");
        assert!(seen.iter().all(|&l| l <= CLASSES));
    }

    #[test]
    fn the_labels_reach_the_model() {
        // The clusters are tight, so a model that sees the label can predict the noise far
        // better than one that does not (an affine model cannot fit the three-cluster score):
        // with no dropout its late loss must be well below that of the same model trained
        // with every label dropped (p = 1 - 1e-12, the unconditional model).
        let dev = Device::flex().autodiff();
        let late = |p: f64| {
            let mut t = cond_trainer(&dev);
            let l: Vec<f64> = (0..400).map(|_| t.train_step_labelled(labelled(&dev), p).unwrap().loss).collect();
            l[300..].iter().sum::<f64>() / 100.0
        };
        let (cond, uncond) = (late(0.0), late(1.0 - 1e-12));
        assert!(cond < 0.8 * uncond, "conditional {cond} vs unconditional {uncond}");
    }

    /// `Tiny` takes no labels.
    impl Conditional<2> for Tiny {
        fn num_classes(&self) -> Option<usize> {
            None
        }
        fn with_labels(&self, _: Vec<usize>) -> Box<dyn ScoreModel<2> + '_> {
            unreachable!("the trainer checks num_classes first")
        }
    }

    #[test]
    fn labelled_training_of_an_unconditional_model_is_an_error() {
        let (mut t, dev) = trainer(6);
        let err = t.train_step_labelled(|n: &mut NoiseSource| (batch(&dev)(n), vec![0; 32]), 0.1).unwrap_err();
        assert!(matches!(err, TrainError::NotConditional), "{err}");
        assert_eq!(t.step(), 0);
    }

    /// `state.json` keeps every `f64` bit for bit (the EMA of the loss, the importance
    /// sampler's history), so a resumed run logs and samples what an uninterrupted one does.
    /// serde_json's default float parser is off by one ulp on some decimal strings; the
    /// workspace enables its `float_roundtrip` parser (scripts/fault-trials.sh found a resume
    /// whose `ema_loss` drifted by one ulp from step 280 on).
    #[test]
    fn the_state_round_trips_every_float_bit_for_bit() {
        let noise = NoiseSource::new(1);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut bad = Vec::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Losses of every magnitude a run logs: [1e-3, 1e3).
            let v = 10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0);
            let state = TrainState { step: 1, ema_loss: Some(v), data_noise: noise.state(), loss_noise: noise.state(), loss_history: None };
            let back: TrainState = serde_json::from_str(&serde_json::to_string_pretty(&state).unwrap()).unwrap();
            if back.ema_loss.map(f64::to_bits) != Some(v.to_bits()) {
                bad.push(v);
            }
        }
        assert!(bad.is_empty(), "{} of 20000 values changed through state.json, e.g. {:?}", bad.len(), &bad[..bad.len().min(3)]);
    }
}
