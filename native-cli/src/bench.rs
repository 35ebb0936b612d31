//! `native-cli bench`: speed of the U-Net on this machine.
//!
//! The network is the core's U-Net at 28x28x1 (the mnist preset's, or the architecture of the
//! run or export `--model` names, with fresh weights), or an imported diffusers `UNet2DModel`
//! (`native-cli import-diffusers`): its own weights through `scorediff::model::ImageNet`, at the
//! card's `[c, h, w]`, for the nfe, ddim and gemm workloads (train needs the core's U-Net), with
//! no FLOP count (GFLOP/s n/a).
//!
//! Workloads (`--workload`, comma-separated), each per batch size of `--batches`:
//! - `train`: one `scorediff::train::Trainer::train_step` (DDPM `L_simple` forward, backward,
//!   gradient clipping, AdamW update and EMA) on `[b, 1, 28, 28]` images;
//! - `nfe`: one function evaluation (a forward pass of the network through
//!   `scorediff::model::ScoreFn`, what every sampler step costs), read back to the host so lazy
//!   backends finish;
//! - `ddim`: a whole DDIM sample (eta = 0, `--ddim-steps` evaluations) of `b` images from given
//!   prior noise, read back at the end;
//! - `gemm`: one `n x n` by `n x n` `f32` matrix product (`--gemm-size`), the backend's practical
//!   peak on this machine.
//!
//! `--input` gives the images and the prior noise as a float32 `.npy` (so a peer implementation
//! can time the same inputs); otherwise they are standard normal from seed 0. Each measurement
//! runs `--warmup` times untimed, then `--repeats` times; the median is reported with every
//! time, and the achieved GFLOP/s from [`scorediff::nn::flops`] (a training step counts as 3
//! forward passes). Peak memory is the process's resident high-water mark (`VmHWM` of
//! `/proc/self/status`): run one workload per process to attribute it.

use crate::model_source::ModelSource;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::model::{ImageNet, ScoreFn, ScoreModel};
use scorediff::nn::diffusers::DiffusersNetConfig;
use scorediff::nn::{NetworkConfig, UNetConfig, flops};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{Run, SamplerConfig, SamplerKind, Sampling};
use scorediff::sde::{Sde, SdeConfig};
use scorediff::train::{Dataset, Network, RunConfig, Trainer};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// What `bench` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// A training step: forward, backward, clipping, AdamW, EMA.
    Train,
    /// One network evaluation (a sampler step's cost).
    Nfe,
    /// A whole DDIM sample (--ddim-steps evaluations).
    Ddim,
    /// A square f32 matrix product (--gemm-size): the backend's practical peak.
    Gemm,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Benchmark the U-Net of this run or export directory, or an imported diffusers model
    /// (nfe, ddim) [default: the mnist preset's U-Net].
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Compute backend: flex (CPU).
    #[arg(long, value_name = "NAME", default_value = "flex")]
    backend: String,
    /// What to time, comma-separated: train, nfe, ddim, gemm.
    #[arg(long, value_name = "W,..", value_delimiter = ',', default_value = "train,nfe")]
    workload: Vec<Workload>,
    /// Batch sizes, comma-separated (train, nfe, ddim).
    #[arg(long, value_name = "B,..", value_delimiter = ',', default_value = "1,16,64")]
    batches: Vec<usize>,
    /// Untimed runs before each measurement.
    #[arg(long, value_name = "K", default_value_t = 1)]
    warmup: usize,
    /// Timed runs per measurement; the median is reported.
    #[arg(long, value_name = "R", default_value_t = 5)]
    repeats: usize,
    /// Evaluations of the ddim workload.
    #[arg(long, value_name = "N", default_value_t = 100)]
    ddim_steps: usize,
    /// Matrix side of the gemm workload.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    gemm_size: usize,
    /// Images and prior noise: a float32 .npy of shape [N, c*h*w] (784 for the core's U-Net)
    /// with N >= the largest batch [default: standard normal, seed 0].
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Measurement {
    workload: Workload,
    /// Batch size (the matrix side for gemm).
    batch: usize,
    /// Every timed run, seconds.
    times_s: Vec<f64>,
    /// Their median.
    median_s: f64,
    /// FLOPs of one run (`None` where [`scorediff::nn::flops`] has no count: an imported
    /// diffusers network).
    flops: Option<u64>,
    /// `flops / median_s / 1e9`, where the FLOPs are known.
    gflops_per_s: Option<f64>,
}

#[derive(Serialize)]
struct BenchReport {
    network: String,
    parameters: usize,
    /// The core U-Net's architecture (what bench/peer.py mirrors); absent for an imported
    /// network.
    #[serde(skip_serializing_if = "Option::is_none")]
    unet: Option<UNetConfig>,
    /// An imported diffusers network's config (its card's); absent for the core's U-Net.
    #[serde(skip_serializing_if = "Option::is_none")]
    diffusers: Option<DiffusersNetConfig>,
    backend: String,
    /// Worker threads (RAYON_NUM_THREADS, else the available parallelism).
    threads: usize,
    /// `[channels, height, width]` of one image.
    image: [usize; 3],
    /// FLOPs of one forward pass on one image ([`scorediff::nn::flops::unet_forward`]; `None`
    /// for an imported network, whose count is not known).
    forward_flops_per_image: Option<u64>,
    warmup: usize,
    repeats: usize,
    ddim_steps: usize,
    measurements: Vec<Measurement>,
    /// Peak resident memory of the process (VmHWM), MiB; `None` where /proc is unavailable.
    peak_rss_mib: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { 0.5 * (v[m - 1] + v[m]) }
}

/// Every wall time of `repeats` calls of `f` after `warmup` untimed calls.
fn time(warmup: usize, repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let mut t = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    Ok(t)
}

/// `VmHWM` of `/proc/self/status` in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The inputs as `[rows, c * h * w]` values of `image = [c, h, w]`: the file's, or standard
/// normal from seed 0.
fn inputs(args: &BenchArgs, rows: usize, image: [usize; 3]) -> Result<Vec<f32>> {
    let pixels: usize = image.iter().product();
    let Some(path) = &args.input else {
        let x = NoiseSource::new(0).normal([rows, pixels], &Device::flex());
        return crate::to_vec(x);
    };
    let a = scorediff::io::read_npy(path).with_context(|| format!("--input {}", path.display()))?;
    if a.shape.len() != 2 || a.shape[1] != pixels || a.shape[0] < rows {
        let [c, h, w] = image;
        bail!("--input {}: expected shape [N >= {rows}, {pixels}] (the largest batch of {c}x{h}x{w} images), found {:?}", path.display(), a.shape);
    }
    Ok(a.data[..rows * pixels].iter().map(|&v| v as f32).collect())
}

/// The network `bench` times: the core's U-Net (the mnist preset's, or the architecture of a
/// run or export, with fresh weights: every workload) or an imported diffusers `UNet2DModel`
/// (its loaded weights through [`ImageNet`], the evaluation workloads only).
enum Subject {
    Core { unet: UNetConfig, sde: SdeConfig, name: String },
    Imported { net: ImageNet, sde: std::sync::Arc<dyn Sde>, shape: [usize; 3], name: String, config: DiffusersNetConfig },
}

impl Subject {
    fn open(args: &BenchArgs, device: &Device, preset: &RunConfig) -> Result<Self> {
        let Some(dir) = &args.model else {
            return match &preset.network {
                Network::Unet(u) => Ok(Self::Core { unet: u.clone(), sde: preset.sde.clone(), name: "unet (mnist preset)".into() }),
                Network::Mlp(_) | Network::DiffusersUnet2d(_) => unreachable!("the image preset is a U-Net"),
            };
        };
        let source = ModelSource::open(dir)?;
        // Loading the weights checks them (the core's U-Net is then timed with fresh ones).
        let loaded = source.net(device)?;
        let Some(card) = source.card().cloned() else {
            bail!("--model {}: expected a training run directory or an export directory, found a Gaussian-mixture file", dir.display());
        };
        match card.network {
            Network::Unet(u) => Ok(Self::Core { unet: u, sde: card.sde, name: format!("unet ({})", card.name) }),
            Network::Mlp(_) => bail!("--model {}: bench measures an image U-Net, found an mlp", dir.display()),
            Network::DiffusersUnet2d(config) => {
                if args.workload.contains(&Workload::Train) {
                    bail!(
                        "--model {}: the train workload needs the core's U-Net, found an imported diffusers-unet2d (nfe, ddim and gemm time it)",
                        dir.display()
                    );
                }
                let shape: [usize; 3] = card
                    .shape
                    .clone()
                    .try_into()
                    .map_err(|_| anyhow!("--model {}: expected images [channels, height, width], found shape {:?}", dir.display(), card.shape))?;
                let net = ImageNet::new(loaded).map_err(|_| anyhow!("--model {}: expected an image network", dir.display()))?;
                let sde = source.sde()?.into();
                Ok(Self::Imported { net, sde, shape, name: format!("diffusers-unet2d ({})", card.name), config })
            }
        }
    }
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    if args.repeats == 0 {
        bail!("--repeats: expected at least 1, found 0");
    }
    if args.batches.is_empty() || args.batches.contains(&0) {
        bail!("--batches: expected batch sizes >= 1, found {:?}", args.batches);
    }
    if args.workload.is_empty() {
        bail!("--workload: expected one or more of train, nfe, ddim, gemm, found none");
    }
    if args.ddim_steps == 0 || args.gemm_size == 0 {
        bail!("--ddim-steps and --gemm-size: expected at least 1, found {} and {}", args.ddim_steps, args.gemm_size);
    }
    let device = crate::train::backend_device(&args.backend)?;
    let preset = RunConfig::preset(Dataset::Image(scorediff::data::DatasetKind::Mnist));
    let subject = Subject::open(args, &device, &preset)?;
    // The network evaluated by nfe and ddim, its SDE, the trainer of the core's U-Net, and what
    // the report says of them.
    let (eval_net, sde, mut trainer, parameters, image, forward, name, unet, diffusers): (
        Box<dyn ScoreModel<4>>,
        std::sync::Arc<dyn Sde>,
        _,
        _,
        _,
        _,
        _,
        _,
        _,
    ) = match subject {
        Subject::Core { unet, sde: sde_config, name } => {
            if unet.in_channels != 1 {
                bail!("bench times the core's U-Net on 28x28 single-channel images, the network has in_channels = {}", unet.in_channels);
            }
            let sde: std::sync::Arc<dyn Sde> = sde_config.build()?.into();
            let autodiff = device.clone().autodiff();
            autodiff.seed(0);
            let model = unet.with_sde(unet.build(&autodiff)?, &sde);
            let parameters = model.num_params();
            let trainer = Trainer::new(model, sde_config, preset.loss.clone(), preset.optim.clone(), 0).map_err(|e| anyhow::anyhow!(e))?;
            let eval_net = unet.with_sde(unet.build(&device)?, &sde);
            let forward = flops::unet_forward(&unet, 28, 28);
            (Box::new(eval_net), sde, Some((trainer, autodiff)), parameters, [1, 28, 28], Some(forward), name, Some(unet), None)
        }
        Subject::Imported { net, sde, shape, name, config } => {
            let parameters = net.num_params();
            (Box::new(net), sde, None, parameters, shape, None, name, None, Some(config))
        }
    };
    let pixels_per_image: usize = image.iter().product();
    let max_batch = *args.batches.iter().max().expect("checked non-empty");
    let pixels = inputs(args, max_batch, image)?;
    let batch_of =
        |b: usize, device: &Device| Tensor::<4>::from_data(TensorData::new(pixels[..b * pixels_per_image].to_vec(), [b, image[0], image[1], image[2]]), device);
    let f = ScoreFn::new(eval_net.as_ref(), sde.as_ref());
    let ddim = SamplerConfig::new(SamplerKind::Ddim, args.ddim_steps);
    let mut measurements = Vec::new();
    let mut measure = |workload: Workload, batch: usize, flops: Option<u64>, times_s: Vec<f64>| {
        let median_s = median(times_s.clone());
        measurements.push(Measurement { workload, batch, times_s, median_s, flops, gflops_per_s: flops.map(|n| n as f64 / median_s / 1e9) });
    };
    for &workload in &args.workload {
        if workload == Workload::Gemm {
            let n = args.gemm_size;
            let mut noise = NoiseSource::new(1);
            let (a, b) = (noise.normal([n, n], &device), noise.normal([n, n], &device));
            let t = time(args.warmup, args.repeats, || {
                crate::to_vec(a.clone().matmul(b.clone()))?;
                Ok(())
            })?;
            measure(workload, n, Some(2 * (n as u64).pow(3)), t);
            continue;
        }
        for &b in &args.batches {
            let images = forward.map(|f| b as u64 * f);
            match workload {
                Workload::Train => {
                    let (trainer, autodiff) = trainer.as_mut().expect("Subject::open refuses train for an imported network");
                    let x0 = batch_of(b, autodiff);
                    let t = time(args.warmup, args.repeats, || {
                        trainer.train_step(|_: &mut NoiseSource| x0.clone())?;
                        Ok(())
                    })?;
                    measure(workload, b, images.map(|n| flops::TRAIN_STEP_FORWARDS * n), t);
                }
                Workload::Nfe => {
                    let x = batch_of(b, &device);
                    let t = time(args.warmup, args.repeats, || {
                        crate::to_vec(f.eval(x.clone(), 0.5).eps())?;
                        Ok(())
                    })?;
                    measure(workload, b, images, t);
                }
                Workload::Ddim => {
                    let x_t = batch_of(b, &device);
                    let mut noise = NoiseSource::new(2);
                    let t = time(args.warmup, args.repeats, || {
                        let mut run = Sampling::from_state(&ddim, sde.as_ref(), x_t.clone());
                        while run.next(&f, &mut noise) {}
                        crate::to_vec(run.output())?;
                        Ok(())
                    })?;
                    measure(workload, b, images.map(|n| args.ddim_steps as u64 * n), t);
                }
                Workload::Gemm => unreachable!("handled above"),
            }
        }
    }
    let report = BenchReport {
        network: name,
        parameters,
        unet,
        diffusers,
        backend: args.backend.clone(),
        threads: threads(),
        image,
        forward_flops_per_image: forward,
        warmup: args.warmup,
        repeats: args.repeats,
        ddim_steps: args.ddim_steps,
        measurements,
        peak_rss_mib: peak_rss_mib(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let [c, h, w] = report.image;
    let per_image = forward.map_or("FLOPs n/a".into(), |f| format!("{:.1} MFLOP per image and evaluation", f as f64 / 1e6));
    println!(
        "{}, {} parameters, {c}x{h}x{w} images, {per_image}, backend {} on {} threads, median of {} runs after {} warm-up:",
        report.network, report.parameters, report.backend, report.threads, report.repeats, report.warmup
    );
    println!("  workload  batch  median (s)  per image (ms)  GFLOP/s");
    for m in &report.measurements {
        let per = if m.workload == Workload::Gemm { f64::NAN } else { 1e3 * m.median_s / m.batch as f64 };
        let name = match m.workload {
            Workload::Train => "train",
            Workload::Nfe => "nfe",
            Workload::Ddim => "ddim",
            Workload::Gemm => "gemm",
        };
        let gflops = m.gflops_per_s.map_or("n/a".into(), |g| format!("{g:.2}"));
        println!("  {name:>8}  {:>5}  {:>10.4}  {per:>14.3}  {gflops:>7}", m.batch, m.median_s);
    }
    match report.peak_rss_mib {
        Some(m) => println!("  peak resident memory {m:.0} MiB"),
        None => println!("  peak resident memory: unavailable (no /proc/self/status)"),
    }
    Ok(())
}
