//! `native-cli eval-samplers`: every sampler against an analytic mixture's exact target, at
//! several step counts. Prints the quality-per-step table recorded in BENCHMARKS.md.
//!
//! All numbers come from `scorediff::eval`: energy distance to fresh target samples of the same
//! size, and the largest mean and covariance errors in standard errors. The table also prints
//! the null distribution of the energy distance (two independent target samples), the level a
//! perfect sampler reaches at this sample size.

use crate::{ModelSource, SamplerOpts, config_error};
use anyhow::{Result, bail};
use clap::Args;
use scorediff::burn::tensor::Device;
use scorediff::eval::{compare, energy_null, sample_mixture, target};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{SamplerKind, SamplerSpec, Variance};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

#[derive(Args)]
pub struct EvalArgs {
    /// The model: a Gaussian-mixture .json file.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Step counts to evaluate, comma-separated.
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_value = "10,20,50,100,1000")]
    steps: Vec<usize>,
    /// Samplers to evaluate, comma-separated [default: all].
    #[arg(long, value_name = "NAME,..", value_delimiter = ',', value_parser = SamplerKind::from_str)]
    samplers: Vec<SamplerKind>,
    /// Tolerances (rtol = atol) for ode-rk45, which chooses its own steps.
    #[arg(long, value_name = "TOL,..", value_delimiter = ',', default_value = "1e-2,1e-3,1e-4,1e-5")]
    tolerances: Vec<f64>,
    /// Samples per run.
    #[arg(long, value_name = "COUNT", default_value_t = 2000)]
    n: usize,
    /// Seed of the samplers' noise.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    opts: SamplerOpts,
    /// Print one JSON object per run instead of a Markdown table.
    #[arg(long)]
    json: bool,
}

pub fn eval_samplers(args: &EvalArgs) -> Result<()> {
    let source = ModelSource::open(&args.model)?;
    let ModelSource::Mixture { file, .. } = &source else {
        bail!("model {}: eval-samplers needs a Gaussian-mixture .json (its exact target), found a trained network", args.model.display());
    };
    if args.n < 2 {
        bail!("--n: expected at least 2 samples, found {}", args.n);
    }
    let device = Device::flex();
    let tgt = target(file)?;
    let mut noise = NoiseSource::new(args.seed ^ 0x9e37_79b9);
    let null = energy_null(&tgt, args.n, 100, &mut noise);
    let kinds: Vec<SamplerKind> = if args.samplers.is_empty() { SamplerKind::all().collect() } else { args.samplers.clone() };
    // A mixture's exact score has no learned variance.
    let own = Variance::Small;
    if !args.json {
        println!("Target: {} (SDE {:?}), {} samples per run, seed {}.", args.model.display(), file.sde, args.n, args.seed);
        println!("Energy distance of a perfect sampler at this size (100 null replicates): median {:.5}, 99th percentile {:.5}.\n", null[49], null[98]);
        println!("| sampler | steps | NFE | energy distance | max mean error (SE) | max cov error (SE) | seconds |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
    }
    for kind in kinds {
        let runs: Vec<(String, scorediff::sampler::SamplerConfig)> = if kind == SamplerKind::OdeRk45 {
            args.tolerances
                .iter()
                .map(|&tol| {
                    let spec = SamplerSpec { rtol: Some(tol), atol: Some(tol), ..args.opts.spec(kind, 1) };
                    Ok((format!("tol {tol:e}"), spec.build_for(own, None).map_err(config_error)?))
                })
                .collect::<Result<_>>()?
        } else {
            args.steps.iter().map(|&s| Ok((s.to_string(), args.opts.config_for(kind, s, own, None)?))).collect::<Result<_>>()?
        };
        for (label, config) in runs {
            let start = Instant::now();
            let s = sample_mixture(file, &config, args.n, args.seed, &device)?;
            let seconds = start.elapsed().as_secs_f64();
            let r = compare(&s.data, &tgt, &mut noise);
            if args.json {
                let row = serde_json::json!({
                    "sampler": kind.name(), "steps": label, "nfe": s.nfe, "energy": r.energy,
                    "mean_z": r.mean_z, "cov_z": r.cov_z, "seconds": seconds, "n": args.n,
                });
                println!("{row}");
            } else {
                println!("| {} | {label} | {} | {:.5} | {:.1} | {:.1} | {seconds:.2} |", kind.name(), s.nfe, r.energy, r.mean_z, r.cov_z);
            }
        }
    }
    Ok(())
}
