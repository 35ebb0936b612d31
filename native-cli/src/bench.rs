//! `native-cli bench`: speed of the U-Net on this machine.
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
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::model::ScoreFn;
use scorediff::nn::{NetworkConfig, UNetConfig, flops};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{Run, SamplerConfig, SamplerKind, Sampling};
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
    /// Benchmark the U-Net of this run or export directory [default: the mnist preset's U-Net].
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
    /// Images and prior noise: a float32 .npy of shape [N, 784] with N >= the largest batch
    /// [default: standard normal, seed 0].
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
    /// FLOPs of one run.
    flops: u64,
    /// `flops / median_s / 1e9`.
    gflops_per_s: f64,
}

#[derive(Serialize)]
struct BenchReport {
    network: String,
    parameters: usize,
    /// The architecture (what bench/peer.py mirrors).
    unet: UNetConfig,
    backend: String,
    /// Worker threads (RAYON_NUM_THREADS, else the available parallelism).
    threads: usize,
    image: [usize; 3],
    /// FLOPs of one forward pass on one image ([`scorediff::nn::flops::unet_forward`]).
    forward_flops_per_image: u64,
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

/// The inputs as `[rows, 784]` values: the file's, or standard normal from seed 0.
fn inputs(args: &BenchArgs, rows: usize) -> Result<Vec<f32>> {
    const PIXELS: usize = 28 * 28;
    let Some(path) = &args.input else {
        let x = NoiseSource::new(0).normal([rows, PIXELS], &Device::flex());
        return crate::to_vec(x);
    };
    let a = scorediff::io::read_npy(path).with_context(|| format!("--input {}", path.display()))?;
    if a.shape[1] != PIXELS || a.shape[0] < rows {
        bail!("--input {}: expected shape [N >= {rows}, {PIXELS}] (the largest batch of 28x28 images), found {:?}", path.display(), a.shape);
    }
    Ok(a.data[..rows * PIXELS].iter().map(|&v| v as f32).collect())
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
    let (unet, sde_config, name): (UNetConfig, _, String) = match &args.model {
        None => match &preset.network {
            Network::Unet(u) => (u.clone(), preset.sde, "unet (mnist preset)".into()),
            Network::Mlp(_) | Network::DiffusersUnet2d(_) => unreachable!("the image preset is a U-Net"),
        },
        Some(dir) => {
            let source = ModelSource::open(dir)?;
            // Loading the weights checks them, though the timings use a fresh network.
            source.net(&device)?;
            let Some(card) = source.card().cloned() else {
                bail!("--model {}: expected a training run directory or an export directory, found a Gaussian-mixture file", dir.display());
            };
            match card.network {
                Network::Unet(u) => (u, card.sde, format!("unet ({})", card.name)),
                Network::Mlp(_) => bail!("--model {}: bench measures the image U-Net, found an mlp", dir.display()),
                Network::DiffusersUnet2d(_) => bail!("--model {}: bench measures the core's U-Net, found an imported diffusers-unet2d", dir.display()),
            }
        }
    };
    if unet.in_channels != 1 {
        bail!("bench times 28x28 single-channel images, the network has in_channels = {}", unet.in_channels);
    }
    let sde: std::sync::Arc<dyn scorediff::sde::Sde> = sde_config.build()?.into();
    let forward = flops::unet_forward(&unet, 28, 28);
    let max_batch = *args.batches.iter().max().expect("checked non-empty");
    let pixels = inputs(args, max_batch)?;
    let batch_of = |b: usize, device: &Device| Tensor::<4>::from_data(TensorData::new(pixels[..b * 784].to_vec(), [b, 1, 28, 28]), device);
    let autodiff = device.clone().autodiff();
    autodiff.seed(0);
    let model = unet.with_sde(unet.build(&autodiff)?, &sde);
    let parameters = model.num_params();
    let mut trainer = Trainer::new(model, sde_config, preset.loss, preset.optim, 0).map_err(|e| anyhow::anyhow!(e))?;
    let eval_net = unet.with_sde(unet.build(&device)?, &sde);
    let f = ScoreFn::new(&eval_net, sde.as_ref());
    let ddim = SamplerConfig::new(SamplerKind::Ddim, args.ddim_steps);
    let mut measurements = Vec::new();
    let mut measure = |workload: Workload, batch: usize, flops: u64, times_s: Vec<f64>| {
        let median_s = median(times_s.clone());
        measurements.push(Measurement { workload, batch, times_s, median_s, flops, gflops_per_s: flops as f64 / median_s / 1e9 });
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
            measure(workload, n, 2 * (n as u64).pow(3), t);
            continue;
        }
        for &b in &args.batches {
            let images = b as u64 * forward;
            match workload {
                Workload::Train => {
                    let x0 = batch_of(b, &autodiff);
                    let t = time(args.warmup, args.repeats, || {
                        trainer.train_step(|_: &mut NoiseSource| x0.clone())?;
                        Ok(())
                    })?;
                    measure(workload, b, flops::TRAIN_STEP_FORWARDS * images, t);
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
                    measure(workload, b, args.ddim_steps as u64 * images, t);
                }
                Workload::Gemm => unreachable!("handled above"),
            }
        }
    }
    let report = BenchReport {
        network: name,
        parameters,
        unet: unet.clone(),
        backend: args.backend.clone(),
        threads: threads(),
        image: [1, 28, 28],
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
    println!(
        "{}, {} parameters, {:.1} MFLOP per image and evaluation, backend {} on {} threads, median of {} runs after {} warm-up:",
        report.network,
        report.parameters,
        forward as f64 / 1e6,
        report.backend,
        report.threads,
        report.repeats,
        report.warmup
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
        println!("  {name:>8}  {:>5}  {:>10.4}  {per:>14.3}  {:>7.2}", m.batch, m.median_s, m.gflops_per_s);
    }
    match report.peak_rss_mib {
        Some(m) => println!("  peak resident memory {m:.0} MiB"),
        None => println!("  peak resident memory: unavailable (no /proc/self/status)"),
    }
    Ok(())
}
