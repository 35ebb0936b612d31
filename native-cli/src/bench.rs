//! `native-cli bench`: speed of the U-Net on this machine.
//!
//! - Training step: one `scorediff::train::Trainer::train_step` (DDPM `L_simple` forward,
//!   backward, gradient clipping, AdamW update and EMA), on random `[b, 1, 28, 28]` batches.
//! - Sampling: one function evaluation (a forward pass of the network through
//!   `scorediff::model::ScoreFn`, what every sampler step costs; read back to the host so
//!   lazy backends finish).
//!
//! Each is run once to warm up, then `--repeats` times; the median is reported, per batch size.
//! Peak memory is the process's resident high-water mark (`VmHWM` of `/proc/self/status`).

use crate::model_source::ModelSource;
use anyhow::{Result, bail};
use clap::Args;
use scorediff::model::ScoreFn;
use scorediff::nn::{NetworkConfig, UNetConfig};
use scorediff::noise::NoiseSource;
use scorediff::train::{Dataset, Network, RunConfig, Trainer};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
    /// Benchmark the U-Net of this run or export directory [default: the mnist preset's U-Net].
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Compute backend: flex (CPU).
    #[arg(long, value_name = "NAME", default_value = "flex")]
    backend: String,
    /// Batch sizes, comma-separated.
    #[arg(long, value_name = "B,..", value_delimiter = ',', default_value = "1,16,64")]
    batches: Vec<usize>,
    /// Timed runs per measurement (after one warm-up run); the median is reported.
    #[arg(long, value_name = "R", default_value_t = 5)]
    repeats: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct BatchTiming {
    batch: usize,
    /// Median seconds per training step (forward, backward, AdamW, EMA).
    train_step_s: f64,
    /// Median seconds per function evaluation (one network forward pass).
    nfe_s: f64,
}

#[derive(Serialize)]
struct BenchReport {
    network: String,
    parameters: usize,
    backend: String,
    image: [usize; 3],
    repeats: usize,
    timings: Vec<BatchTiming>,
    /// Peak resident memory of the process (VmHWM), MiB; `None` where /proc is unavailable.
    peak_rss_mib: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { 0.5 * (v[m - 1] + v[m]) }
}

/// Median wall time of `repeats` calls of `f` after one warm-up call.
fn time(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    Ok(median(t))
}

/// `VmHWM` of `/proc/self/status` in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    if args.repeats == 0 {
        bail!("--repeats: expected at least 1, found 0");
    }
    if args.batches.is_empty() || args.batches.contains(&0) {
        bail!("--batches: expected batch sizes >= 1, found {:?}", args.batches);
    }
    let device = crate::train::backend_device(&args.backend)?;
    let preset = RunConfig::preset(Dataset::Image(scorediff::data::DatasetKind::Mnist));
    let (unet, sde_config, name): (UNetConfig, _, String) = match &args.model {
        None => match &preset.network {
            Network::Unet(u) => (u.clone(), preset.sde, "unet (mnist preset)".into()),
            Network::Mlp(_) => unreachable!("the image preset is a U-Net"),
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
            }
        }
    };
    let sde = sde_config.build()?;
    let autodiff = device.clone().autodiff();
    autodiff.seed(0);
    let model = unet.build(&autodiff)?;
    let parameters = model.num_params();
    let mut trainer = Trainer::new(model, sde_config, preset.loss, preset.optim, 0).map_err(|e| anyhow::anyhow!(e))?;
    let eval_net = unet.build(&device)?;
    let f = ScoreFn::new(&eval_net, sde.as_ref());
    let mut timings = Vec::new();
    for &b in &args.batches {
        let train_step_s = time(args.repeats, || {
            trainer.train_step(|noise: &mut NoiseSource| noise.normal([b, 1, 28, 28], &autodiff))?;
            Ok(())
        })?;
        let x = NoiseSource::new(1).normal([b, 1, 28, 28], &device);
        let nfe_s = time(args.repeats, || {
            crate::to_vec(f.eval(x.clone(), 0.5).eps())?;
            Ok(())
        })?;
        timings.push(BatchTiming { batch: b, train_step_s, nfe_s });
    }
    let report = BenchReport {
        network: name,
        parameters,
        backend: args.backend.clone(),
        image: [1, 28, 28],
        repeats: args.repeats,
        timings,
        peak_rss_mib: peak_rss_mib(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}, {} parameters, backend {}, median of {} runs:", report.network, report.parameters, report.backend, report.repeats);
        println!("  batch  train step (s)  per NFE (s)  per NFE per image (ms)");
        for t in &report.timings {
            println!("  {:>5}  {:>14.4}  {:>11.4}  {:>22.3}", t.batch, t.train_step_s, t.nfe_s, 1e3 * t.nfe_s / t.batch as f64);
        }
        match report.peak_rss_mib {
            Some(m) => println!("  peak resident memory {m:.0} MiB"),
            None => println!("  peak resident memory: unavailable (no /proc/self/status)"),
        }
    }
    Ok(())
}
