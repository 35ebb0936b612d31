//! Data-parallel training over several devices with burn's distributed autodiff.
//!
//! Synchronous data parallelism as in PyTorch's DDP (Li et al. 2020, "PyTorch Distributed:
//! Experiences on Accelerating Data Parallel Training", section 3): every device holds a replica of
//! the model with the same weights and optimizer state; a batch of `B` examples is split into `n`
//! shards of `B / n` rows, replica `k` evaluates the loss `L_k` on shard `k`, and its backward pass
//! all-reduces each parameter's gradient with the mean, so that every replica receives
//!
//! ```text
//! g = (1/n) sum_k grad L_k = grad (1/B) sum_i l_i
//! ```
//!
//! (each `L_k` is the mean of the per-example losses `l_i` of its shard, and the shards have equal
//! size): the gradient of the full-batch loss that [`Trainer::train_step`] takes on one device.
//! All replicas then take the same Adam step from the same state and stay identical, so a
//! checkpoint saves replica 0 ([`ParallelTrainer::leader`]) and is resumed like any other.
//!
//! The reduction is burn's own (0.22): a [`DistributedContext`] starts burn's gradient-sync server
//! for the devices, every float parameter of every replica is marked with
//! `Tensor::set_distributed(param_id)`, and burn-autodiff's `backward` registers those parameters
//! with the server and all-reduces each gradient (`ReduceOperation::Mean`) as soon as the replicas
//! have produced it, then waits for the collective before returning; the optimizer keeps the mark
//! on the updated parameters. Replicas run on one thread each (replica 0 on the caller's), as
//! burn's own distributed tests do, since each replica's backward blocks until all have reached it.
//! In burn 0.22.1 only CUDA devices implement the all-reduce (NCCL): the Flex backend has one
//! device and no collective operations, and cubecl's wgpu/Vulkan runtimes have no transport
//! between devices.
//!
//! # Randomness
//! Replica 0 draws the whole batch from the data stream (and, for labelled batches, which labels
//! to drop for classifier-free guidance), exactly as on one device, and the batch is split by rows
//! with its labels. The loss's draws (`t` and the noise) cannot be the single-device ones, since
//! each replica draws for its own shard: each step, replica 0 first draws one 64-bit seed per
//! other replica from the loss stream, then draws its own shard's `t` and noise from the loss
//! stream itself, while replica `k >= 1` draws them from a fresh stream seeded by the `k`-th seed.
//! The saved loss stream therefore determines every replica's draws, and a resumed run continues
//! them exactly; with one device nothing is drawn for other replicas and the step is
//! [`Trainer::train_step`] (or [`Trainer::train_step_labelled`]). The backend's generator
//! (dropout) is reseeded per step by each replica with its own seed (replica 0's is the run's
//! seed); since burn's generator is process-wide, the replicas' forward passes take turns under a
//! lock, so the masks do not depend on thread timing. The hybrid loss's importance sampler
//! (Nichol & Dhariwal 2021, section 3.3) keeps a history of the loss at each level, which the
//! reference code all-gathers across ranks; it is not shared between replicas here, so a run
//! with it trains on one device ([`ParallelError::ImportanceSampling`]).

use super::{StepReport, TrainError, Trainer};
use crate::model::{Conditional, ScoreModel};
use crate::noise::NoiseSource;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation};
use burn::tensor::{Device, Tensor};
use std::ops::Range;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Why a set of devices cannot train data-parallel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParallelError {
    /// The list is empty.
    #[error("expected at least one device, found none")]
    NoDevices,
    /// A device without autodiff.
    #[error("device {index} is not an autodiff device (pass `device.autodiff()`)")]
    NotAutodiff {
        /// Its position in the list (0-based).
        index: usize,
    },
    /// The batch does not split into equal shards.
    #[error("batch_size {batch_size} does not split evenly over {devices} devices: expected a positive multiple of {devices}")]
    UnevenBatch {
        /// Examples per step.
        batch_size: usize,
        /// Number of devices.
        devices: usize,
    },
    /// The same device listed twice.
    #[error("devices {first} and {second} are the same device; data parallelism needs distinct devices")]
    Repeated {
        /// Position of its first occurrence (0-based).
        first: usize,
        /// Position of the repeat.
        second: usize,
    },
    /// The loss samples its levels by a history of its own values (the hybrid loss's importance
    /// sampling), which the replicas would each keep from their own shards.
    #[error(
        "loss.importance_sampling: the level sampler's history of the loss is not yet shared between devices (each replica would keep its own and a resumed run would not continue them); train on one device or set importance_sampling to false"
    )]
    ImportanceSampling,
    /// The trainer to spread is not on the first device.
    #[error("the trainer's model is not on the first device {expected}")]
    LeaderElsewhere {
        /// The first device, in words.
        expected: String,
    },
}

/// Checks that `devices` can train a batch of `batch_size` data-parallel: autodiff devices, all
/// distinct, and a batch that splits into equal shards. (Whether their backend can all-reduce is
/// burn's to say; in burn 0.22.1 only CUDA can.)
pub fn check_devices(devices: &[Device], batch_size: usize) -> Result<(), ParallelError> {
    let n = devices.len();
    if n == 0 {
        return Err(ParallelError::NoDevices);
    }
    if let Some(index) = devices.iter().position(|d| !d.is_autodiff()) {
        return Err(ParallelError::NotAutodiff { index });
    }
    if batch_size == 0 || batch_size % n != 0 {
        return Err(ParallelError::UnevenBatch { batch_size, devices: n });
    }
    for second in 1..n {
        if let Some(first) = devices[..second].iter().position(|d| *d == devices[second]) {
            return Err(ParallelError::Repeated { first, second });
        }
    }
    Ok(())
}

/// The loss a replica evaluates on its shard, given its trainer.
type ShardLoss<M, const D: usize> = Box<dyn FnOnce(&mut Trainer<M, D>) -> Tensor<1> + Send>;

/// What replica `k >= 1` is asked to do, in this order each step.
enum Command<M, const D: usize> {
    /// Evaluate the loss on its shard and send back its value.
    Loss(ShardLoss<M, D>),
    /// Backpropagate that loss (burn all-reduces the gradients) and step, reporting `value`.
    Optimise(f64),
    /// Drop that loss without stepping: the mean loss was not finite.
    Abort,
}

/// What replica `k >= 1` answers.
enum Reply {
    /// The value of its shard's loss.
    Loss(f64),
    /// The outcome of its optimizer step.
    Stepped(Result<StepReport, TrainError>),
}

/// Replica `k >= 1`: its thread and the channels to it.
struct Replica<M, const D: usize> {
    commands: Sender<Command<M, D>>,
    replies: Receiver<Reply>,
    thread: JoinHandle<()>,
}

impl<M, const D: usize> Replica<M, D> {
    fn send(&self, command: Command<M, D>) {
        self.commands.send(command).unwrap_or_else(|_| self.died());
    }

    fn reply(&self) -> Reply {
        self.replies.recv().unwrap_or_else(|_| self.died())
    }

    fn died(&self) -> ! {
        panic!("the thread of data-parallel {:?} stopped (its panic message is above)", self.thread.thread().name().unwrap_or("replica"))
    }
}

/// Marks every float parameter as distributed, so burn's backward all-reduces its gradient.
struct MarkDistributed;

impl ModuleMapper for MarkDistributed {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let id = param.id;
        param.map(|tensor| tensor.set_distributed(id))
    }
}

/// A [`Trainer`] replicated over several devices, stepping them together (see the module docs).
///
/// With one device it is that trainer, unchanged. With several, burn's gradient-sync server for
/// their backend is process-wide and counts the end of every backward pass on that backend as a
/// replica's: while this lives, no other training (another `ParallelTrainer` or a plain
/// [`Trainer`]) may run on that backend in the process.
pub struct ParallelTrainer<M, const D: usize> {
    leader: Trainer<M, D>,
    replicas: Vec<Replica<M, D>>,
    devices: Vec<Device>,
    batch_size: usize,
    /// Taken by each replica around its forward pass (see "Randomness" in the module docs).
    forward_lock: Arc<Mutex<()>>,
    /// burn's gradient-sync server; dropped (closed) after the replica threads have stopped.
    _context: Option<DistributedContext>,
}

impl<M: Module + ScoreModel<D> + 'static, const D: usize> ParallelTrainer<M, D> {
    /// Spreads `leader`, a fresh or resumed trainer whose model is on `devices[0]`, over
    /// `devices` (checked by [`check_devices`]) for batches of `batch_size` examples. A loss with
    /// an importance-sampling history trains on one device only ([`ParallelError::ImportanceSampling`]).
    ///
    /// Burn panics on the first step if the devices' backend has no all-reduce (burn 0.22.1:
    /// every backend but CUDA); the CLI turns those away by name first.
    pub fn new(leader: Trainer<M, D>, devices: Vec<Device>, batch_size: usize) -> Result<Self, ParallelError> {
        let all_reduce = devices.len() > 1;
        if all_reduce && leader.state.loss_history.is_some() {
            return Err(ParallelError::ImportanceSampling);
        }
        check_devices(&devices, batch_size)?;
        Self::spawn(leader, devices, batch_size, all_reduce)
    }

    /// [`new`](Self::new) without the checks; `all_reduce: false` leaves the gradients local to
    /// each replica (tests of the step protocol on a backend without collectives).
    fn spawn(mut leader: Trainer<M, D>, devices: Vec<Device>, batch_size: usize, all_reduce: bool) -> Result<Self, ParallelError> {
        if !leader.model.devices().first().is_some_and(|d| *d == devices[0]) {
            return Err(ParallelError::LeaderElsewhere { expected: format!("{:?}", devices[0]) });
        }
        let context = all_reduce.then(|| DistributedContext::init(devices.clone(), DistributedConfig { all_reduce_op: ReduceOperation::Mean }));
        let mark = |model: M| if all_reduce { model.map(&mut MarkDistributed) } else { model };
        let forward_lock = Arc::new(Mutex::new(()));
        let mut replicas = Vec::with_capacity(devices.len() - 1);
        for (k, device) in devices.iter().enumerate().skip(1) {
            let model = mark(leader.model.clone().fork(device));
            let seed = leader.seed ^ (k as u64).wrapping_mul(0xd1b5_4a32_d192_ed03);
            let mut trainer = Trainer::new(model, leader.sde_config.clone(), leader.loss, leader.opt, seed).expect("the leader's configuration was validated");
            // The optimizer state moves to each parameter's device on its next step.
            trainer.optim = leader.optim.clone();
            trainer.state = leader.state();
            let (commands, inbox) = channel();
            let (outbox, replies) = channel();
            let lock = forward_lock.clone();
            let thread = std::thread::Builder::new()
                .name(format!("replica {k}"))
                .spawn(move || serve(trainer, &lock, inbox, outbox))
                .expect("spawning a replica thread");
            replicas.push(Replica { commands, replies, thread });
        }
        leader.model = mark(leader.model);
        Ok(Self { leader, replicas, devices, batch_size, forward_lock, _context: context })
    }

    /// Replica 0: its model, EMA, optimizer and loop state stand for all (they are identical).
    pub fn leader(&self) -> &Trainer<M, D> {
        &self.leader
    }

    /// The devices, replica `k` on `devices()[k]`.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// One optimisation step on the batch `batch` draws from the data stream (on the first
    /// device, `batch_size` rows), split into one shard per device.
    ///
    /// A non-finite mean loss returns [`TrainError::NonFinite`] before any replica's weights change.
    ///
    /// # Panics
    /// If the batch does not have `batch_size` rows.
    pub fn train_step(&mut self, batch: impl FnOnce(&mut NoiseSource) -> Tensor<D>) -> Result<StepReport, TrainError> {
        if self.replicas.is_empty() {
            return self.leader.train_step(batch);
        }
        let x0 = batch(&mut self.leader.data_noise);
        self.step_shards(x0, |_, x0| Box::new(move |t: &mut Trainer<M, D>| t.batch_loss(x0)))
    }

    /// Splits `x0` by rows into one shard per device and steps every replica on its shard, with
    /// the loss `shard_loss(rows, shard)` (the rows of `x0` it holds).
    fn step_shards(&mut self, x0: Tensor<D>, shard_loss: impl Fn(Range<usize>, Tensor<D>) -> ShardLoss<M, D>) -> Result<StepReport, TrainError> {
        assert_eq!(x0.dims()[0], self.batch_size, "the batch has {} rows, expected batch_size = {}", x0.dims()[0], self.batch_size);
        let rows = self.batch_size / self.devices.len();
        let seeds: Vec<u64> = (1..self.devices.len()).map(|_| self.leader.loss_noise.next_u64()).collect();
        for ((k, replica), seed) in self.replicas.iter().enumerate().map(|(i, r)| (i + 1, r)).zip(seeds) {
            let loss = shard_loss(k * rows..(k + 1) * rows, x0.clone().narrow(0, k * rows, rows).to_device(&self.devices[k]));
            replica.send(Command::Loss(Box::new(move |t: &mut Trainer<M, D>| {
                t.loss_noise = NoiseSource::new(seed);
                loss(t)
            })));
        }
        let own = shard_loss(0..rows, x0.narrow(0, 0, rows));
        self.step_replicas(own)
    }

    /// Evaluates replica 0's loss `own` while the other replicas evaluate theirs, agrees on the
    /// mean, and steps every replica (or none).
    fn step_replicas(&mut self, own: ShardLoss<M, D>) -> Result<StepReport, TrainError> {
        let loss = forward(&mut self.leader, &self.forward_lock, own);
        let mut sum = value(&loss);
        for replica in &self.replicas {
            match replica.reply() {
                Reply::Loss(v) => sum += v,
                Reply::Stepped(_) => unreachable!("a replica steps only when told to"),
            }
        }
        let mean = sum / self.devices.len() as f64;
        if !mean.is_finite() {
            self.replicas.iter().for_each(|r| r.send(Command::Abort));
            return Err(TrainError::NonFinite { step: self.leader.step(), value: mean });
        }
        self.replicas.iter().for_each(|r| r.send(Command::Optimise(mean)));
        // Every replica's backward waits for the others' in burn's all-reduce: they run together.
        let report = self.leader.optimise_reporting(loss, mean);
        for replica in &self.replicas {
            match replica.reply() {
                Reply::Stepped(stepped) => {
                    stepped?;
                }
                Reply::Loss(_) => unreachable!("one loss per step"),
            }
        }
        report
    }
}

impl<M, const D: usize> Drop for ParallelTrainer<M, D> {
    fn drop(&mut self) {
        for Replica { commands, replies, thread } in self.replicas.drain(..) {
            drop((commands, replies));
            // A replica that panicked has printed why; the leader has nothing to add.
            let _ = thread.join();
        }
    }
}

impl<M: Module + ScoreModel<D> + Conditional<D> + 'static, const D: usize> ParallelTrainer<M, D> {
    /// [`Trainer::train_step_labelled`] data-parallel: replica 0 draws the batch and drops labels
    /// as on one device, and each replica's shard carries its rows' labels.
    pub fn train_step_labelled(
        &mut self,
        batch: impl FnOnce(&mut NoiseSource) -> (Tensor<D>, Vec<usize>),
        label_dropout: f64,
    ) -> Result<StepReport, TrainError> {
        if self.replicas.is_empty() {
            return self.leader.train_step_labelled(batch, label_dropout);
        }
        let (x0, labels) = self.leader.draw_labelled(batch, label_dropout)?;
        self.step_shards(x0, |rows, x0| {
            let labels = labels[rows].to_vec();
            Box::new(move |t: &mut Trainer<M, D>| t.labelled_loss(x0, labels))
        })
    }
}

/// Evaluates `loss` on `trainer` under `lock`, the work queued on the device dispatched before
/// the lock is released (its random draws included).
fn forward<M, const D: usize>(trainer: &mut Trainer<M, D>, lock: &Mutex<()>, loss: ShardLoss<M, D>) -> Tensor<1> {
    let _turn = lock.lock().unwrap_or_else(PoisonError::into_inner);
    let loss = loss(trainer);
    // A device that cannot dispatch is poisoned: the read of the loss reports it.
    let _ = loss.device().flush();
    loss
}

fn value(loss: &Tensor<1>) -> f64 {
    loss.clone().into_scalar::<f32>() as f64
}

/// The loop of replica `k >= 1`'s thread: until the leader hangs up.
fn serve<M: Module + ScoreModel<D>, const D: usize>(mut trainer: Trainer<M, D>, lock: &Mutex<()>, commands: Receiver<Command<M, D>>, replies: Sender<Reply>) {
    let mut pending = None;
    while let Ok(command) = commands.recv() {
        let reply = match command {
            Command::Loss(loss) => {
                let loss = forward(&mut trainer, lock, loss);
                let v = value(&loss);
                pending = Some(loss);
                Reply::Loss(v)
            }
            Command::Optimise(mean) => Reply::Stepped(trainer.optimise_reporting(pending.take().expect("a loss before each step"), mean)),
            Command::Abort => {
                pending = None;
                continue;
            }
        };
        if replies.send(reply).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Toy;
    use crate::nn::mlp::Mlp;
    use crate::nn::{MlpConfig, NetworkConfig};
    use crate::sde::SdeConfig;
    use crate::test_util::{temp_dir, to_vec};
    use crate::train::ema::Collect;
    use crate::train::{LossConfig, OptimConfig};
    use burn::tensor::TensorData;

    const BATCH: usize = 16;

    fn fresh(dev: &Device) -> Mlp {
        MlpConfig::new().with_hidden(16).with_layers(1).build(dev).unwrap()
    }

    fn trainer(model: Mlp) -> Trainer<Mlp, 2> {
        let opt = OptimConfig { lr: 1e-2, warmup: 0, ..OptimConfig::default() };
        Trainer::new(model, SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 }, LossConfig::default(), opt, 7).unwrap()
    }

    fn batch(dev: &Device) -> impl Fn(&mut NoiseSource) -> Tensor<2> + '_ {
        move |noise| Toy::EightGaussians.sample_tensor(BATCH, noise, dev)
    }

    fn weights<N: Module>(model: &N) -> Vec<f32> {
        let mut collect = Collect(Vec::new());
        model.valid().visit(&mut collect);
        collect.0.into_iter().flat_map(|(_, w)| to_vec(w)).collect()
    }

    /// Two replicas on the one Flex device with their gradients left local (Flex cannot
    /// all-reduce): the step protocol without burn's reduction.
    fn unsynced(model: Mlp, dev: &Device) -> ParallelTrainer<Mlp, 2> {
        ParallelTrainer::spawn(trainer(model), vec![dev.clone(), dev.clone()], BATCH, false).unwrap()
    }

    #[test]
    fn check_devices_names_the_problem() {
        let dev = Device::flex().autodiff();
        assert_eq!(check_devices(&[], 8), Err(ParallelError::NoDevices));
        assert_eq!(check_devices(&[dev.clone(), Device::flex()], 8), Err(ParallelError::NotAutodiff { index: 1 }));
        let two = [dev.clone(), dev.clone()];
        assert_eq!(check_devices(&two, 9), Err(ParallelError::UnevenBatch { batch_size: 9, devices: 2 }));
        assert_eq!(check_devices(&two, 0), Err(ParallelError::UnevenBatch { batch_size: 0, devices: 2 }));
        // Flex is one device whatever the handle (FlexDevice is a unit struct): twice is a repeat.
        assert_eq!(check_devices(&two, 8), Err(ParallelError::Repeated { first: 0, second: 1 }));
        assert!(ParallelError::Repeated { first: 0, second: 1 }.to_string().contains("distinct devices"));
        assert_eq!(check_devices(&[dev], 7), Ok(()));
    }

    #[test]
    fn importance_sampling_trains_on_one_device_only() {
        let dev = Device::flex().autodiff();
        let hybrid = || {
            let loss = LossConfig::Hybrid { lambda: 1e-3, importance_sampling: true, target: crate::param::Parameterization::Eps, min_snr_gamma: None };
            Trainer::new(fresh(&dev), SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 }, loss, OptimConfig::default(), 7).unwrap()
        };
        assert_eq!(ParallelTrainer::new(hybrid(), vec![dev.clone(), dev.clone()], BATCH).err(), Some(ParallelError::ImportanceSampling));
        assert!(ParallelTrainer::new(hybrid(), vec![dev.clone()], BATCH).is_ok());
    }

    #[test]
    fn one_device_is_the_plain_trainer() {
        let dev = Device::flex().autodiff();
        let init = fresh(&dev);
        let mut plain = trainer(init.clone());
        let mut one = ParallelTrainer::new(trainer(init), vec![dev.clone()], BATCH).unwrap();
        for _ in 0..5 {
            assert_eq!(one.train_step(batch(&dev)).unwrap(), plain.train_step(batch(&dev)).unwrap());
        }
        assert_eq!(weights(&one.leader().model), weights(&plain.model));
        assert_eq!(one.leader().state(), plain.state());
    }

    /// The documented draws, replayed without threads: replica 0 on the first half of the batch
    /// with the loss stream after one seed was drawn from it, replica 1 on the second half with a
    /// stream from that seed; both report the mean of the two losses.
    #[test]
    fn replicas_draw_the_documented_streams_and_report_the_mean() {
        let dev = Device::flex().autodiff();
        let init = fresh(&dev);
        let mut parallel = unsynced(init.clone(), &dev);
        let (mut r0, mut r1) = (trainer(init.clone()), trainer(init));
        for _ in 0..4 {
            let x0 = batch(&dev)(&mut r0.data_noise);
            r1.loss_noise = NoiseSource::new(r0.loss_noise.next_u64());
            let l0 = r0.batch_loss(x0.clone().narrow(0, 0, BATCH / 2));
            let l1 = r1.batch_loss(x0.narrow(0, BATCH / 2, BATCH / 2));
            let mean = (value(&l0) + value(&l1)) / 2.0;
            let expected = r0.optimise_reporting(l0, mean).unwrap();
            r1.optimise_reporting(l1, mean).unwrap();
            assert_eq!(parallel.train_step(batch(&dev)).unwrap(), expected);
        }
        assert_eq!(weights(&parallel.leader().model), weights(&r0.model));
        assert_eq!(parallel.leader().state(), r0.state());
    }

    /// The same for labelled batches: replica 0 drops the labels as on one device, and each
    /// shard carries its own rows' labels.
    #[test]
    fn labelled_shards_carry_their_rows_labels() {
        use super::super::tests::{TinyCond, cond_trainer, labelled};
        let dev = Device::flex().autodiff();
        let base = cond_trainer(&dev);
        let copy = |t: &Trainer<TinyCond, 2>| Trainer::new(t.model.clone(), t.sde_config.clone(), t.loss, t.opt, t.seed).unwrap();
        let (mut r0, mut r1) = (copy(&base), copy(&base));
        let mut parallel = ParallelTrainer::spawn(base, vec![dev.clone(), dev.clone()], 32, false).unwrap();
        for _ in 0..4 {
            let (x0, labels) = r0.draw_labelled(labelled(&dev), 0.5).unwrap();
            r1.loss_noise = NoiseSource::new(r0.loss_noise.next_u64());
            let l0 = r0.labelled_loss(x0.clone().narrow(0, 0, 16), labels[..16].to_vec());
            let l1 = r1.labelled_loss(x0.narrow(0, 16, 16), labels[16..].to_vec());
            let mean = (value(&l0) + value(&l1)) / 2.0;
            let expected = r0.optimise_reporting(l0, mean).unwrap();
            r1.optimise_reporting(l1, mean).unwrap();
            assert_eq!(parallel.train_step_labelled(labelled(&dev), 0.5).unwrap(), expected);
        }
        assert_eq!(weights(&parallel.leader().model), weights(&r0.model));
        assert_eq!(parallel.leader().state(), r0.state());
    }

    #[test]
    fn a_non_finite_shard_stops_every_replica_and_the_next_step_goes_on() {
        let dev = Device::flex().autodiff();
        let init = fresh(&dev);
        let mut parallel = unsynced(init.clone(), &dev);
        parallel.train_step(batch(&dev)).unwrap();
        let before = weights(&parallel.leader().model);
        // Only replica 1's half is NaN.
        let half_nan = |noise: &mut NoiseSource| {
            let x = batch(&dev)(noise);
            let nan = Tensor::<2>::from_data(TensorData::new(vec![f32::NAN; BATCH], [BATCH / 2, 2]), &dev);
            Tensor::cat(vec![x.narrow(0, 0, BATCH / 2), nan], 0)
        };
        match parallel.train_step(half_nan) {
            Err(TrainError::NonFinite { step: 1, value }) => assert!(value.is_nan()),
            other => panic!("expected NonFinite, got {other:?}"),
        }
        assert_eq!(weights(&parallel.leader().model), before);
        assert_eq!(parallel.leader().step(), 1);
        // Replica 1 dropped its loss: the replicas are still in step.
        assert_eq!(parallel.train_step(batch(&dev)).unwrap().step, 2);
    }

    /// Replica 0's trajectory depends only on its own shard and the saved streams, so even with
    /// local gradients a run resumed from its checkpoint continues it exactly.
    #[test]
    fn a_resumed_run_draws_the_same_shards_and_noise() {
        let dev = Device::flex().autodiff();
        let run = temp_dir("parallel-resume");
        let init = fresh(&dev);
        let mut straight = unsynced(init.clone(), &dev);
        let full: Vec<Vec<f32>> = (0..6)
            .map(|_| {
                straight.train_step(batch(&dev)).unwrap();
                weights(&straight.leader().model)
            })
            .collect();
        let mut first = unsynced(init, &dev);
        for _ in 0..3 {
            first.train_step(batch(&dev)).unwrap();
        }
        first.leader().save(&run).unwrap();
        drop(first);
        let net = MlpConfig::new().with_hidden(16).with_layers(1);
        let resumed = trainer(fresh(&dev)).resume(&net, &run, &dev).unwrap();
        let mut resumed = ParallelTrainer::spawn(resumed, vec![dev.clone(), dev.clone()], BATCH, false).unwrap();
        for expected in &full[3..] {
            resumed.train_step(batch(&dev)).unwrap();
            assert_eq!(&weights(&resumed.leader().model), expected);
        }
        std::fs::remove_dir_all(&run).unwrap();
    }

    /// The claim of the module: two CUDA devices, each stepping on half the batch with burn's
    /// all-reduce, take the step of one device on the whole batch whose loss is the mean of the
    /// two halves' losses (same draws), i.e. the full-batch mean loss.
    ///
    /// Tolerance: the two runs differ only in how float32 rounds `(g_0 + g_1) / 2` (NCCL's mean
    /// versus autodiff summing the two halves' contributions per parameter), a few units of
    /// `u = 2^-24` relative per gradient entry. Adam turns a relative change `r` of the gradient
    /// into at most `r` of its step, and a step is at most `lr (1 - beta1) / sqrt(1 - beta2)
    /// = 3.2 lr` (Kingma & Ba 2015, section 2.1); over `K = 20` steps with `lr = 1e-2` and
    /// `r = 16 u` the weights differ by at most `20 * 3.2e-2 * 16 * 6e-8 = 6e-7` plus the second-
    /// order effect of those differences on later gradients. `1e-5` leaves a factor 15 for it;
    /// a run without the all-reduce (replica 0 stepping on its half alone) is off by `~lr` per
    /// step.
    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs two CUDA devices: cargo test -p scorediff-core --features cuda -- --ignored two_cuda"]
    fn two_cuda_devices_take_the_full_batch_step() {
        let devices: Vec<Device> = (0..2).map(|k| Device::cuda(k).autodiff()).collect();
        let dev = &devices[0];
        let init = fresh(dev);
        // The single-device run goes first: while burn's sync server runs, every backward pass
        // on the backend counts as a replica's.
        let mut one = trainer(init.clone());
        for _ in 0..20 {
            let x0 = batch(dev)(&mut one.data_noise);
            let seed = one.loss_noise.next_u64();
            let l0 = one.batch_loss(x0.clone().narrow(0, 0, BATCH / 2));
            let stream = std::mem::replace(&mut one.loss_noise, NoiseSource::new(seed));
            let l1 = one.batch_loss(x0.narrow(0, BATCH / 2, BATCH / 2));
            one.loss_noise = stream;
            one.optimise((l0 + l1).div_scalar(2.0)).unwrap();
        }
        let expected = weights(&one.model);
        let mut two = ParallelTrainer::new(trainer(init), devices.clone(), BATCH).unwrap();
        for _ in 0..20 {
            two.train_step(batch(dev)).unwrap();
        }
        for (a, b) in weights(&two.leader().model).iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
    }
}
