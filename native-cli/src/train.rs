//! `native-cli train`: train a score network and write a resumable run directory.
//!
//! `RUN_DIR/config.json` is the run's [`RunConfig`]; `RUN_DIR/checkpoint/` holds the weights,
//! the EMA weights, the optimizer state and the loop state, replaced atomically every
//! `checkpoint_every` steps (see `scorediff::train::checkpoint`); `RUN_DIR/log.jsonl` has a line
//! per logged step; `RUN_DIR/ema.safetensors` exports the final EMA weights. All the training
//! logic is `scorediff::train::Trainer` (`ParallelTrainer` over several `--devices`); this file
//! parses options, picks the devices, feeds batches and reports progress.

use crate::progress_bar;
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use scorediff::burn::tensor::Device;
use scorediff::data::{ImageDataset, Split};
use scorediff::io::write_atomic;
use scorediff::model::ScoreModel;
use scorediff::nn::{NetworkConfig, save_safetensors};
use scorediff::noise::NoiseSource;
use scorediff::train::checkpoint;
use scorediff::train::{Dataset, Network, ParallelError, ParallelTrainer, RunConfig, StepReport, TrainError, Trainer, check_devices};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

#[derive(Args)]
pub struct TrainArgs {
    /// A run config (.json, the format of RUN_DIR/config.json); or use --dataset for a preset.
    #[arg(long, value_name = "FILE", conflicts_with = "dataset")]
    config: Option<PathBuf>,
    // Train the preset for this dataset; the names come from `Dataset::names`.
    #[arg(long, value_name = "NAME", value_parser = Dataset::from_str, help = format!("Train the preset for this dataset: {}", Dataset::names().join(", ")))]
    dataset: Option<Dataset>,
    /// The run directory (created; must not hold a run unless --resume).
    #[arg(long, value_name = "RUN_DIR")]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint (--steps may raise the total).
    #[arg(long)]
    resume: bool,
    /// Total optimisation steps.
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Examples per step.
    #[arg(long, value_name = "B")]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long, value_name = "LR")]
    lr: Option<f64>,
    /// Seed of the weights, the data order and the noise.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Steps between checkpoints.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Debugging (hidden): the loss of the step that starts after STEP completed steps is taken
    /// as NaN, so training stops as on a divergence (scripts/fault-trials.sh checks that the
    /// last good checkpoint is kept). One device only.
    #[arg(long, value_name = "STEP", hide = true)]
    inject_nan_at: Option<usize>,
    /// Steps between lines of log.jsonl.
    #[arg(long, value_name = "N", default_value_t = 10)]
    log_every: usize,
    /// Train a class-conditional U-Net (labels in, 10% replaced by the null label) for
    /// classifier-free guidance: sets network.num_classes to the data set's 10 classes.
    #[arg(long)]
    class_conditional: bool,
    /// Where MNIST / Fashion-MNIST idx files are (DIR or DIR/<dataset>), and only there: a DIR
    /// without them is an error. Without it: the usual places (see scripts/fetch-data.sh).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Compute backend: flex (CPU); wgpu, vulkan, cuda when built with that cargo feature.
    #[arg(long, value_name = "NAME", default_value = "flex")]
    backend: String,
    /// Train data-parallel over these devices (e.g. cuda:0,cuda:1), the batch split evenly among
    /// them and the gradients all-reduced by burn; in burn 0.22 only CUDA devices can all-reduce.
    /// One device is the same as --backend.
    #[arg(long, value_name = "LIST", value_delimiter = ',', conflicts_with = "backend")]
    devices: Vec<String>,
}

/// The device named by `--backend`, among those compiled in: `flex`; `wgpu`, `vulkan` (default
/// adapter); `cuda` or `cuda:K` (GPU index K).
pub fn backend_device(name: &str) -> Result<Device> {
    device_named("--backend", name)
}

/// [`backend_device`] for the option `flag`, which the errors name.
fn device_named(flag: &str, name: &str) -> Result<Device> {
    let (kind, index) = match name.split_once(':') {
        Some((kind, index)) => {
            let index: usize = index.parse().map_err(|_| anyhow::anyhow!("{flag} {name}: expected a device index after `:`, found `{index}`"))?;
            (kind, Some(index))
        }
        None => (name, None),
    };
    let missing = |feature: &str| {
        anyhow::anyhow!("{flag} {name}: this binary was built without it; rebuild with `cargo build --release -p native-cli --features {feature}`")
    };
    match kind {
        "flex" if index.is_none() => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" if index.is_none() => Ok(Device::wgpu(scorediff::burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "vulkan")]
        "vulkan" if index.is_none() => Ok(Device::vulkan(scorediff::burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index.unwrap_or(0))),
        "flex" | "wgpu" | "vulkan" if index.is_some() => bail!("{flag} {name}: only cuda takes a device index (cuda:K)"),
        // Reached only for the backends not compiled in.
        #[allow(unreachable_patterns)]
        "wgpu" | "vulkan" | "cuda" => Err(missing(kind)),
        _ => bail!("{flag}: unknown backend `{name}`: expected flex, wgpu, vulkan, cuda or cuda:K"),
    }
}

/// The autodiff devices to train on: those of `--devices`, else the one of `--backend`. Several
/// devices must be CUDA ones, the only kind burn 0.22 all-reduces between (Flex has a single
/// device and no collectives; cubecl's wgpu and Vulkan have no transport between devices).
fn train_devices(args: &TrainArgs) -> Result<Vec<Device>> {
    if args.devices.is_empty() {
        return Ok(vec![backend_device(&args.backend)?.autodiff()]);
    }
    let devices = args.devices.iter().map(|name| device_named("--devices", name)).collect::<Result<Vec<_>>>()?;
    let list = args.devices.join(",");
    if devices.len() > 1
        && let Some(name) = args.devices.iter().find(|name| !name.starts_with("cuda"))
    {
        bail!("--devices {list}: `{name}` cannot train data-parallel: burn 0.22 all-reduces gradients only between CUDA devices (cuda:0,cuda:1,...)");
    }
    Ok(devices.into_iter().map(Device::autodiff).collect())
}

const CONFIG_FILE: &str = "config.json";
const LOG_FILE: &str = "log.jsonl";

/// The run's config: read back on --resume, else built from --config or --dataset and the flags.
fn run_config(args: &TrainArgs) -> Result<RunConfig> {
    let existing = args.out.join(CONFIG_FILE);
    if args.resume {
        for (flag, given) in [
            ("--config", args.config.is_some()),
            ("--dataset", args.dataset.is_some()),
            ("--batch-size", args.batch_size.is_some()),
            ("--lr", args.lr.is_some()),
            ("--seed", args.seed.is_some()),
            ("--class-conditional", args.class_conditional),
        ] {
            if given {
                bail!("{flag}: cannot change a run on --resume (only --steps and --checkpoint-every can)");
            }
        }
        let text = std::fs::read_to_string(&existing).with_context(|| format!("--resume: reading {}", existing.display()))?;
        let mut config = RunConfig::from_json(&text).map_err(|e| anyhow!(e)).with_context(|| format!("reading {}", existing.display()))?;
        config.steps = args.steps.unwrap_or(config.steps);
        config.checkpoint_every = args.checkpoint_every.unwrap_or(config.checkpoint_every);
        return Ok(config);
    }
    if existing.exists() || checkpoint::latest(&args.out).is_some() {
        bail!("--out {}: already holds a run; pass --resume to continue it or choose another directory", args.out.display());
    }
    let mut config = match (&args.config, args.dataset) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading --config {}", path.display()))?;
            RunConfig::from_json(&text).map_err(|e| anyhow!(e)).with_context(|| format!("reading --config {}", path.display()))?
        }
        (None, Some(dataset)) => RunConfig::preset(dataset),
        (None, None) => bail!("expected --config FILE or --dataset NAME (or --resume)"),
    };
    config.steps = args.steps.unwrap_or(config.steps);
    config.batch_size = args.batch_size.unwrap_or(config.batch_size);
    config.optim.lr = args.lr.unwrap_or(config.optim.lr);
    config.seed = args.seed.unwrap_or(config.seed);
    config.checkpoint_every = args.checkpoint_every.unwrap_or(config.checkpoint_every);
    if args.class_conditional {
        match &mut config.network {
            Network::Unet(u) => u.num_classes = Some(scorediff::data::mnist::CLASSES),
            Network::Mlp(_) => bail!("--class-conditional: the 2-D data set {} has no classes", config.dataset),
            Network::DiffusersUnet2d(_) => bail!("--class-conditional: an imported diffusers-unet2d is not trained"),
        }
    }
    config.validate().map_err(|e| anyhow!(e))?;
    Ok(config)
}

pub fn train(args: &TrainArgs) -> Result<()> {
    if args.log_every == 0 {
        bail!("--log-every: expected at least 1, found 0");
    }
    let devices = train_devices(args)?;
    let device = devices[0].clone();
    let config = run_config(args)?;
    if devices.len() > 1 {
        let list = args.devices.join(",");
        check_devices(&devices, config.batch_size).map_err(|e| anyhow!("--devices {list}: {e}"))?;
        if config.loss.new_history(&config.sde).is_some() {
            bail!("--devices {list}: {}", ParallelError::ImportanceSampling);
        }
    }
    // Load the data before touching the run directory: a missing data set leaves nothing behind.
    let images = match config.dataset {
        Dataset::Image(kind) => Some(ImageDataset::load(kind, Split::Train, args.data_dir.as_deref())?),
        Dataset::Toy(_) => None,
        Dataset::External => bail!("dataset: external (an imported checkpoint) is sampled, not trained"),
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating --out {}", args.out.display()))?;
    if !args.resume {
        write_atomic(&args.out.join(CONFIG_FILE), config.to_json().as_bytes()).with_context(|| format!("writing {}", args.out.join(CONFIG_FILE).display()))?;
    }
    device.seed(config.seed);
    match (&config.network, config.dataset) {
        (Network::Mlp(net), Dataset::Toy(toy)) => {
            let batch = config.batch_size;
            run(args, &config, net, &devices, |trainer| trainer.train_step(|noise: &mut NoiseSource| toy.sample_tensor(batch, noise, &device)))
        }
        (Network::Unet(net), Dataset::Image(_)) => {
            let data = images.expect("loaded above");
            let batch = config.batch_size;
            if config.class_conditional() {
                let labelled = |noise: &mut NoiseSource| {
                    let indices = data.random_indices(batch, noise);
                    let labels = indices.iter().map(|&i| data.labels[i] as usize).collect();
                    (data.batch_tensor(&indices, &device), labels)
                };
                run(args, &config, net, &devices, |trainer| trainer.train_step_labelled(labelled, config.label_dropout))
            } else {
                run(args, &config, net, &devices, |trainer| {
                    trainer.train_step(|noise: &mut NoiseSource| data.batch_tensor(&data.random_indices(batch, noise), &device))
                })
            }
        }
        _ => unreachable!("RunConfig::validate pairs networks with datasets"),
    }
}

/// Keeps the lines of `log.jsonl` up to `step` (a resumed run rewrites what came after).
fn truncate_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|line| serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s as usize <= step))
        .map(|line| format!("{line}\n"))
        .collect();
    write_atomic(path, kept.as_bytes()).with_context(|| format!("rewriting {}", path.display()))
}

/// Trains `net` from scratch or from the run's checkpoint, replicated over `devices` (batches
/// drawn on the first); `step` takes one optimisation step (drawing its batch, with labels for a
/// class-conditional net).
fn run<C, const D: usize>(
    args: &TrainArgs,
    config: &RunConfig,
    net: &C,
    devices: &[Device],
    mut step: impl FnMut(&mut ParallelTrainer<C::Net, D>) -> Result<StepReport, TrainError>,
) -> Result<()>
where
    C: NetworkConfig,
    C::Net: ScoreModel<D> + 'static,
{
    let device = &devices[0];
    let sde = Trainer::<C::Net, D>::sde_of(&config.sde).map_err(|e| anyhow!(e))?;
    let model = net.with_sde(net.build(device)?, &sde);
    let mut trainer = Trainer::new(model, config.sde.clone(), config.loss, config.optim, config.seed).map_err(|e| anyhow!(e))?;
    let log_path = args.out.join(LOG_FILE);
    if args.resume {
        trainer = trainer.resume(net, &args.out, device)?;
        truncate_log(&log_path, trainer.step())?;
    }
    trainer.inject_non_finite_at(args.inject_nan_at);
    let mut trainer = ParallelTrainer::new(trainer, devices.to_vec(), config.batch_size)?;
    let start_step = trainer.leader().step();
    let export = args.out.join("ema.safetensors");
    if start_step >= config.steps {
        // A run killed after its last checkpoint but before the export: the checkpoint's EMA
        // weights are the final ones, so the export is written from them.
        if !export.exists() {
            save_safetensors(&trainer.leader().ema, &export)?;
            println!("{}: already at step {start_step} of {}; wrote the missing {}", args.out.display(), config.steps, export.display());
            return Ok(());
        }
        println!("{}: already at step {start_step} of {}; nothing to do (raise --steps)", args.out.display(), config.steps);
        return Ok(());
    }
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).with_context(|| format!("opening {}", log_path.display()))?;
    let bar = progress_bar("{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})");
    bar.set_length(config.steps as u64);
    bar.set_position(start_step as u64);
    let started = Instant::now();
    let mut last = None;
    while trainer.leader().step() < config.steps {
        let report = step(&mut trainer)?;
        bar.set_position(report.step as u64);
        bar.set_message(format!("step {} loss {:.4} ema {:.4}", report.step, report.loss, report.ema_loss));
        if report.step % args.log_every == 0 || report.step == config.steps {
            let line = serde_json::json!({
                "step": report.step, "loss": report.loss, "ema_loss": report.ema_loss, "lr": report.lr,
                "seconds": started.elapsed().as_secs_f64(),
            });
            writeln!(log, "{line}").with_context(|| format!("writing {}", log_path.display()))?;
        }
        if report.step % config.checkpoint_every == 0 || report.step == config.steps {
            log.flush()?;
            trainer.leader().save(&args.out)?;
        }
        last = Some(report);
    }
    bar.finish_and_clear();
    save_safetensors(&trainer.leader().ema, &export)?;
    let seconds = started.elapsed().as_secs_f64();
    let steps = trainer.leader().step() - start_step;
    if let Some(r) = last {
        println!(
            "{}: step {} of {}, loss {:.4} (ema {:.4}), {steps} steps in {seconds:.1} s ({:.2} steps/s); checkpoint in {}",
            config.dataset,
            r.step,
            config.steps,
            r.loss,
            r.ema_loss,
            steps as f64 / seconds,
            args.out.join(checkpoint::CURRENT).display()
        );
    }
    Ok(())
}
