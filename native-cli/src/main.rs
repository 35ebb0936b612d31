//! `native-cli`: sample from and evaluate score-based models from the command line.
//!
//! A thin adapter over `scorediff`: it parses arguments, reads and writes files, shows
//! progress and reports errors; every formula (SDEs, samplers, scores, likelihoods) comes from
//! the core crate.
//!
//! - `native-cli sample --model mixture.json --sampler ddim --steps 50 --n 1000 --out x.npy`
//! - `native-cli likelihood --model mixture.json --data x.npy`
//! - `native-cli train --dataset two-moons --steps 2000 --out runs/moons` (`--resume` continues)
//! - `native-cli sample --model runs/mnist --sampler ddim --steps 50 --n 64 --out grid.png`
//! - `native-cli likelihood --model runs/mnist --data mnist-test --n 64` (`--method vlb`: the
//!   variational bound of a discrete DDPM)
//! - `native-cli export --model runs/mnist --out www/models/mnist --f16`
//!
//! `--model` is a Gaussian-mixture file (`scorediff::mixture`), a training run directory or an
//! export directory: see [`ModelSource`].
//!
//! Every bad input ends with one line `error: ...` on stderr (the whole `anyhow` context
//! chain) and a non-zero exit status: 2 for command-line usage, 1 for everything else.

use anyhow::{Result, anyhow};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use model_source::ModelSource;
use scorediff::burn::tensor::Tensor;
use scorediff::sampler::{Clip, Predictor, SamplerConfig, SamplerKind, Spacing, Variance};
use std::process::ExitCode;
use std::str::FromStr;

mod bench;
mod eval;
mod eval_samplers;
mod export_model;
mod image_io;
mod likelihood;
mod model_source;
mod plot;
mod png;
mod sample;
mod solve;
mod solve_eval;
mod train;
mod train_classifier;

#[derive(Parser)]
#[command(name = "native-cli", version, about = "Sample from and evaluate score-based generative models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Draw samples by running a reverse-time sampler from the prior, and write them as .npy.
    Sample(sample::SampleArgs),
    /// Mean negative log-likelihood of data under the probability-flow ODE.
    Likelihood(likelihood::LikelihoodArgs),
    /// Every sampler against a mixture's exact target at several step counts (Markdown table).
    EvalSamplers(eval_samplers::EvalArgs),
    /// Scatter plots of 2-D samples (.npy) as one SVG, over a mixture's target.
    Plot(plot::PlotArgs),
    /// Train a score network (U-Net on MNIST / Fashion-MNIST, MLP on 2-D toys) into a run directory.
    Train(train::TrainArgs),
    /// Write a trained model as the directory the web page loads (model.json + weights.bpk).
    Export(export_model::ExportArgs),
    /// Train the small CNN classifier that `eval` measures images with (writes DIR/classifier.{json,bpk}).
    TrainClassifier(train_classifier::TrainClassifierArgs),
    /// Sample quality: energy distance and MMD for 2-D models; Frechet distance, confidence and class entropy for images.
    Eval(eval::EvalArgs),
    /// Solve an inverse problem (inpaint, super-resolution, deblur, motion-deblur, colorize, phase-retrieval) with an image model.
    Solve(solve::SolveArgs),
    /// PSNR/SSIM of every inverse-problem task and method on the first N test images, next to the baselines.
    SolveEval(solve_eval::SolveEvalArgs),
    /// U-Net training-step and per-NFE sampling time at several batch sizes, and peak memory.
    Bench(bench::BenchArgs),
}

/// The core's default sampler options, shown as the command-line defaults.
fn sampler_defaults() -> SamplerConfig {
    SamplerConfig::default()
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
    /// Variance of the ancestral steps (ancestral, pc with --predictor ancestral): small, large
    /// or learned (a model trained with a learned variance) [default: the model's variance].
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
    /// Clipping of the predicted x0: auto (to the data range of an image model, none for a
    /// mixture or 2-D model), off, static, or dynamic (Imagen's thresholding).
    #[arg(long, value_name = "C", value_parser = Clip::from_str, default_value_t = sampler_defaults().clip)]
    clip: Clip,
    /// Dynamic thresholding's percentile (--clip dynamic).
    #[arg(long, value_name = "P", default_value_t = sampler_defaults().clip_percentile)]
    clip_percentile: f64,
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
            clip: self.clip,
            clip_percentile: self.clip_percentile,
            data_range: None,
        };
        config.validate().map_err(|e| anyhow!(e))?;
        Ok(config)
    }

    /// [`config`](Self::config) for a model whose data lie in `data_range` (the model card's):
    /// `--clip auto` clips to it.
    fn config_in(&self, kind: SamplerKind, steps: usize, data_range: Option<[f64; 2]>) -> Result<SamplerConfig> {
        let mut config = self.config(kind, steps)?;
        config.data_range = data_range;
        config.validate().map_err(|e| anyhow!(e))?;
        Ok(config)
    }

    /// [`config_in`](Self::config_in) for the model at `path` whose own variance is `own`:
    /// `--variance` defaults to it (`learned` for a model trained with a learned variance), and
    /// `learned` needs such a model.
    fn config_for(&self, kind: SamplerKind, steps: usize, own: Variance, data_range: Option<[f64; 2]>, path: &std::path::Path) -> Result<SamplerConfig> {
        let mut config = self.config_in(kind, steps, data_range)?;
        if self.variance.is_none() {
            config.variance = own;
        } else if config.variance == Variance::Learned && own != Variance::Learned {
            return Err(anyhow!("--variance learned: model {} has no learned variance (its variance is {own}); use small or large", path.display()));
        }
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
        Command::Sample(args) => sample::sample(args),
        Command::Likelihood(args) => likelihood::likelihood(args),
        Command::EvalSamplers(args) => eval_samplers::eval_samplers(args),
        Command::Plot(args) => plot::plot(args),
        Command::Train(args) => train::train(args),
        Command::Export(args) => export_model::export(args),
        Command::TrainClassifier(args) => train_classifier::train_classifier_cmd(args),
        Command::Eval(args) => eval::eval(args),
        Command::Bench(args) => bench::bench(args),
        Command::Solve(args) => solve::solve(args),
        Command::SolveEval(args) => solve_eval::solve_eval(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_line(&err));
            ExitCode::FAILURE
        }
    }
}
