//! `native-cli`: sample from and evaluate score-based models from the command line.
//!
//! A thin adapter over `scorediff`: it parses arguments, reads and writes files, shows
//! progress and reports errors; every formula (SDEs, samplers, scores, likelihoods) comes from
//! the core crate.
//!
//! - `native-cli sample --model mixture.json --sampler ddim --steps 50 --n 1000 --out x.npy`
//! - `native-cli likelihood --model mixture.json --data x.npy`
//! - `native-cli train --dataset two-moons --steps 2000 --out runs/moons` (`--resume` continues)
//!
//! `--model` is, for now, an analytic Gaussian-mixture file (see `scorediff::mixture`); see
//! [`ModelSource`] for where trained run directories will plug in.
//!
//! Every bad input ends with one line `error: ...` on stderr (the whole `anyhow` context
//! chain) and a non-zero exit status: 2 for command-line usage, 1 for everything else.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::io::{read_npy, write_npy_f32};
use scorediff::likelihood::{ode_likelihood, Divergence, LikelihoodConfig};
use scorediff::mixture::MixtureFile;
use scorediff::model::{ScoreFn, ScoreModel};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{self, Predictor, SamplerConfig, SamplerKind, Spacing, Variance};
use scorediff::sde::Sde;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

mod eval_samplers;
mod plot;
mod train;

#[derive(Parser)]
#[command(name = "native-cli", version, about = "Sample from and evaluate score-based generative models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Draw samples by running a reverse-time sampler from the prior, and write them as .npy.
    Sample(SampleArgs),
    /// Mean negative log-likelihood of data under the probability-flow ODE.
    Likelihood(LikelihoodArgs),
    /// Every sampler against a mixture's exact target at several step counts (Markdown table).
    EvalSamplers(eval_samplers::EvalArgs),
    /// Scatter plots of 2-D samples (.npy) as one SVG, over a mixture's target.
    Plot(plot::PlotArgs),
    /// Train a score network (U-Net on MNIST / Fashion-MNIST, MLP on 2-D toys) into a run directory.
    Train(train::TrainArgs),
}

/// The core's default sampler options, shown as the command-line defaults.
fn sampler_defaults() -> SamplerConfig {
    SamplerConfig::default()
}

#[derive(Args)]
#[command(after_help = sampler_help())]
struct SampleArgs {
    /// The model: a Gaussian-mixture .json file ({"sde": {...}, "weights", "means", "stds"}).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Which sampler (listed below).
    #[arg(long, value_name = "NAME", value_parser = SamplerKind::from_str)]
    sampler: SamplerKind,
    /// Grid steps (noise levels for ald; ignored by ode-rk45).
    #[arg(long, value_name = "N", default_value_t = sampler_defaults().steps)]
    steps: usize,
    /// Number of samples.
    #[arg(long, value_name = "COUNT")]
    n: usize,
    /// Seed of the noise; the same seed and --batch give the same samples.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Output .npy file (float32, shape [COUNT, dim]), written atomically.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Samples per batch [default: all at once]; batches draw from one noise stream in turn.
    #[arg(long, value_name = "B")]
    batch: Option<usize>,
    #[command(flatten)]
    opts: SamplerOpts,
    /// Print a JSON summary to stdout instead of the summary line.
    #[arg(long)]
    json: bool,
}

/// Sampler options shared by `sample` and `eval-samplers`.
#[derive(Args, Clone)]
struct SamplerOpts {
    /// DDIM's eta: 0 is deterministic, 1 is ancestral.
    #[arg(long, value_name = "E", default_value_t = sampler_defaults().eta)]
    eta: f64,
    /// Signal-to-noise ratio of the Langevin corrector (pc).
    #[arg(long, value_name = "R", default_value_t = sampler_defaults().snr)]
    snr: f64,
    /// Corrector steps per level (pc), Langevin steps per level (ald).
    #[arg(long, value_name = "M", default_value_t = sampler_defaults().corrector_steps)]
    corrector_steps: usize,
    /// Predictor of pc: reverse-diffusion, ancestral, euler-maruyama or none.
    #[arg(long, value_name = "P", value_parser = Predictor::from_str)]
    predictor: Option<Predictor>,
    /// Variance of the ancestral steps (ancestral, pc with --predictor ancestral): small or large.
    #[arg(long, value_name = "V", value_parser = Variance::from_str)]
    variance: Option<Variance>,
    /// Spacing of the time grid: uniform, quadratic or log-snr [default: log-snr for dpm-solver2m, else uniform].
    #[arg(long, value_name = "S", value_parser = Spacing::from_str)]
    spacing: Option<Spacing>,
    /// ald's step size relative to the smallest noise level.
    #[arg(long, value_name = "X", default_value_t = sampler_defaults().step_lr)]
    step_lr: f64,
    /// Relative tolerance of ode-rk45.
    #[arg(long, value_name = "R", default_value_t = sampler_defaults().rtol)]
    rtol: f64,
    /// Absolute tolerance of ode-rk45.
    #[arg(long, value_name = "A", default_value_t = sampler_defaults().atol)]
    atol: f64,
    /// Finish with Tweedie's denoiser at the smallest time instead of the last step.
    #[arg(long)]
    denoise: bool,
}

impl SamplerOpts {
    /// The validated sampler configuration (defaults from the core where not given).
    fn config(&self, kind: SamplerKind, steps: usize) -> Result<SamplerConfig> {
        let defaults = SamplerConfig::new(kind, steps);
        let config = SamplerConfig {
            kind,
            steps,
            spacing: self.spacing.unwrap_or(defaults.spacing),
            eta: self.eta,
            variance: self.variance.unwrap_or(defaults.variance),
            predictor: self.predictor.unwrap_or(defaults.predictor),
            snr: self.snr,
            corrector_steps: self.corrector_steps,
            step_lr: self.step_lr,
            rtol: self.rtol,
            atol: self.atol,
            denoise: self.denoise,
        };
        config.validate().map_err(|e| anyhow!(e))?;
        Ok(config)
    }
}

/// The `after_help` of `sample`: every sampler with its one-line description, from the core.
fn sampler_help() -> String {
    let width = SamplerKind::ALL.iter().map(|(_, name, _)| name.len()).max().unwrap_or(0);
    let mut text = String::from("Samplers:\n");
    for (_, name, about) in SamplerKind::ALL {
        text.push_str(&format!("  {name:<width$}  {about}\n"));
    }
    text
}

impl SampleArgs {
    /// The validated sampler configuration.
    fn config(&self) -> Result<SamplerConfig> {
        self.opts.config(self.sampler, self.steps)
    }
}

#[derive(Args)]
struct LikelihoodArgs {
    /// The model: a Gaussian-mixture .json file ({"sde": {...}, "weights", "means", "stds"}).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Data points: a .npy of shape [n, dim] (float32 or float64).
    #[arg(long, value_name = "PATH")]
    data: PathBuf,
    /// Divergence of the drift: exact, hutchinson-rademacher or hutchinson-gaussian
    /// [default: exact when dim <= 16, else hutchinson-rademacher].
    #[arg(long, value_name = "METHOD", value_parser = Divergence::from_str)]
    divergence: Option<Divergence>,
    /// Relative tolerance of the RK45 solver.
    #[arg(long, value_name = "R", default_value_t = LikelihoodConfig::default().rtol)]
    rtol: f64,
    /// Absolute tolerance of the RK45 solver.
    #[arg(long, value_name = "A", default_value_t = LikelihoodConfig::default().atol)]
    atol: f64,
    /// Seed of the Hutchinson probes.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Print a JSON summary to stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// What `--model` points at.
///
/// Only analytic Gaussian mixtures for now. Trained networks will add a variant for a run
/// directory (`config.json` + weights); commands only use [`dim`](Self::dim),
/// [`sde`](Self::sde) and [`score_model`](Self::score_model).
enum ModelSource {
    /// A `mixture.json` file.
    Mixture { path: PathBuf, file: MixtureFile },
}

impl ModelSource {
    /// Reads and validates the model at `path`.
    fn open(path: &Path) -> Result<Self> {
        let context = || format!("reading model {}", path.display());
        if path.is_dir() {
            return Err(anyhow!("expected a mixture .json file, found a directory (trained run directories are not supported yet)"))
                .with_context(context);
        }
        let text = std::fs::read_to_string(path).with_context(context)?;
        let file = MixtureFile::from_json(&text).with_context(context)?;
        Ok(Self::Mixture { path: path.to_path_buf(), file })
    }

    fn path(&self) -> &Path {
        match self {
            Self::Mixture { path, .. } => path,
        }
    }

    /// Dimension of a data point.
    fn dim(&self) -> usize {
        match self {
            Self::Mixture { file, .. } => file.mixture.dim(),
        }
    }

    /// The forward SDE.
    fn sde(&self) -> Result<Box<dyn Sde>> {
        match self {
            Self::Mixture { file, .. } => file.sde.build().with_context(|| format!("reading model {}", self.path().display())),
        }
    }

    /// The score model on `device` (an autodiff device for likelihoods).
    fn score_model(&self, device: &Device) -> Result<Box<dyn ScoreModel<2>>> {
        match self {
            Self::Mixture { file, .. } => {
                let model = file.model(device).with_context(|| format!("reading model {}", self.path().display()))?;
                Ok(Box::new(model))
            }
        }
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(template: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Reads a tensor's values back to the host.
fn to_vec<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor.into_data().try_to_vec::<f32>().map_err(|e| anyhow!("reading back a tensor: {e:?}"))
}

#[derive(Serialize)]
struct SampleSummary {
    sampler: String,
    steps: usize,
    nfe: usize,
    n: usize,
    dim: usize,
    seconds: f64,
    out: String,
}

fn sample(args: &SampleArgs) -> Result<()> {
    let config = args.config()?;
    if args.n == 0 {
        bail!("--n: expected at least 1 sample, found 0");
    }
    let batch = args.batch.unwrap_or(args.n);
    if batch == 0 {
        bail!("--batch: expected at least 1, found 0");
    }
    let batch = batch.min(args.n);
    // Fail before sampling, not after, when the output cannot be written.
    let parent = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!("--out {}: directory {} does not exist", args.out.display(), parent.display());
    }
    let source = ModelSource::open(&args.model)?;
    let dim = source.dim();
    let device = Device::flex();
    let sde = source.sde()?;
    let model = source.score_model(&device)?;
    let f = ScoreFn::new(model.as_ref(), sde.as_ref());
    let mut noise = NoiseSource::new(args.seed);

    let batches = args.n.div_ceil(batch);
    let bar = progress_bar("{msg} [{bar:40}] {pos}/{len} steps ({elapsed}, eta {eta})");
    let start = Instant::now();
    let mut values = Vec::with_capacity(args.n * dim);
    let mut steps = 0;
    for b in 0..batches {
        let rows = batch.min(args.n - b * batch);
        if batches > 1 {
            bar.set_message(format!("{} batch {}/{batches}", config.kind, b + 1));
        } else {
            bar.set_message(config.kind.to_string());
        }
        let x = sampler::sample(&config, &f, [rows, dim], &mut noise, &device, |k, total, _| {
            bar.set_length((batches * total) as u64);
            bar.set_position((b * total + k) as u64);
            steps = k;
        });
        values.extend(to_vec(x)?);
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        bail!(
            "{} with {} steps produced {bad} non-finite values out of {}; nothing written to {} (try more --steps)",
            config.kind,
            config.steps,
            values.len(),
            args.out.display()
        );
    }
    write_npy_f32(&args.out, &values, [args.n, dim]).with_context(|| format!("writing {}", args.out.display()))?;

    let summary = SampleSummary {
        sampler: config.kind.to_string(),
        steps,
        nfe: f.nfe(),
        n: args.n,
        dim,
        seconds,
        out: args.out.display().to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let per_batch = if batches > 1 { format!(" over {batches} batches") } else { String::new() };
        println!(
            "{}: {} steps, {} NFE{per_batch}, {} samples of dim {} in {:.2} s -> {}",
            summary.sampler, summary.steps, summary.nfe, summary.n, summary.dim, summary.seconds, summary.out
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct LikelihoodSummary {
    nll_nats: f64,
    nll_nats_per_dim: f64,
    bits_per_dim: f64,
    nfe: usize,
    n: usize,
    dim: usize,
    divergence: String,
}

fn likelihood(args: &LikelihoodArgs) -> Result<()> {
    for (name, v) in [("--rtol", args.rtol), ("--atol", args.atol)] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{name}: expected a finite number > 0, found {v}");
        }
    }
    let source = ModelSource::open(&args.model)?;
    let dim = source.dim();
    let data = read_npy(&args.data).context("reading --data")?;
    let [n, cols] = data.shape;
    let name = args.data.display();
    if cols != dim {
        bail!("data {name}: expected {dim} columns (the dimension of model {}), found {cols}", args.model.display());
    }
    if n == 0 {
        bail!("data {name}: expected at least one row, found none");
    }
    let values: Vec<f32> = data.data.iter().map(|&v| v as f32).collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        bail!("data {name}: expected finite float32 values, found {} at row {}, column {}", data.data[i], i / dim, i % dim);
    }

    let divergence = args.divergence.unwrap_or(if dim <= 16 { Divergence::Exact } else { Divergence::HutchinsonRademacher });
    let config = LikelihoodConfig { divergence, rtol: args.rtol, atol: args.atol, ..LikelihoodConfig::default() };
    let device = Device::flex().autodiff();
    let sde = source.sde()?;
    let model = source.score_model(&device)?;
    let x = Tensor::<2>::from_data(TensorData::new(values, [n, dim]), &device);
    let mut noise = NoiseSource::new(args.seed);

    let spinner = progress_bar("{spinner} integrating the probability-flow ODE ({elapsed})");
    spinner.enable_steady_tick(Duration::from_millis(120));
    let l = ode_likelihood(model.as_ref(), sde.as_ref(), x, &config, &mut noise);
    spinner.finish_and_clear();

    let nll = l.mean_nll();
    let summary = LikelihoodSummary {
        nll_nats: nll,
        nll_nats_per_dim: nll / l.dim as f64,
        bits_per_dim: l.bits_per_dim(),
        nfe: l.nfe,
        n,
        dim: l.dim,
        divergence: divergence.to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "NLL {:.4} nats ({:.4} nats/dim, {:.4} bits/dim) over {} points of dim {}; {} NFE, {} divergence",
            summary.nll_nats, summary.nll_nats_per_dim, summary.bits_per_dim, summary.n, summary.dim, summary.nfe, summary.divergence
        );
    }
    Ok(())
}

/// Condenses a clap usage error to one line (its message and tips, without the usage block).
fn one_line_usage_error(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let mut parts = Vec::new();
    for paragraph in text.split("\n\n") {
        let paragraph = paragraph.trim();
        if paragraph.is_empty() || paragraph.starts_with("Usage:") || paragraph.starts_with("For more information") {
            continue;
        }
        let lines: Vec<&str> = paragraph.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        parts.push(lines.join(" "));
    }
    let line = parts.join("; ");
    if line.starts_with("error:") { line } else { format!("error: {line}") }
}

/// The error and its causes on one line, `outer: inner: ...`.
fn error_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace('\n', " ")
}

fn main() -> ExitCode {
    // A bug must still end with one readable line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error: {}{at}", message.replace('\n', " "));
    }));

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) if err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Bare `native-cli`: the help is the message.
            let _ = err.print();
            return ExitCode::from(2);
        }
        Err(err) => {
            eprintln!("{}", one_line_usage_error(&err));
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Sample(args) => sample(args),
        Command::Likelihood(args) => likelihood(args),
        Command::EvalSamplers(args) => eval_samplers::eval_samplers(args),
        Command::Plot(args) => plot::plot(args),
        Command::Train(args) => train::train(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_line(&err));
            ExitCode::FAILURE
        }
    }
}
