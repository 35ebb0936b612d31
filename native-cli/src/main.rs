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
use scorediff::error::ConfigError;
use scorediff::sampler::{Clip, Predictor, SamplerConfig, SamplerKind, SamplerSpec, SigmaKind, Spacing, UniPcVariant, Variance};
use std::process::ExitCode;
use std::str::FromStr;

mod bench;
mod eval;
mod eval_samplers;
mod export_model;
mod image_io;
mod import_diffusers;
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
    /// Import a diffusers UNet2DModel checkpoint directory (config.json, safetensors, scheduler) as an export directory.
    ImportDiffusers(import_diffusers::ImportDiffusersArgs),
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

/// The core's default sampler config, whose steps are the command-line default.
fn sampler_defaults() -> SamplerConfig {
    SamplerConfig::default()
}

/// The command-line flag of a config field (`clip_percentile` is `--clip-percentile`).
fn flag(field: &str) -> String {
    match field {
        "kind" => "--sampler".into(),
        "data_range" => "the model card's data_range".into(),
        "measurement" => "the measurement".into(),
        f => format!("--{}", f.replace('_', "-")),
    }
}

/// A core configuration error, its field named by its flag.
fn config_error(e: ConfigError) -> anyhow::Error {
    anyhow!(e.message_with(flag))
}

/// The help of a sampler option: `about` and `kind`'s default for it (from the core).
fn option_help(about: &str, kind: SamplerKind, field: &str) -> String {
    let spec = SamplerSpec::from(SamplerConfig::new(kind, 1));
    let default = serde_json::to_value(&spec).ok().and_then(|v| v.get(field).map(|d| d.to_string().trim_matches('"').to_string())).unwrap_or_default();
    format!("{about} [{kind}'s default: {default}]")
}

/// Sampler options shared by `sample`, `eval`, `eval-samplers`, `solve` and `solve-eval`; each
/// belongs to the samplers that have it, and giving it to another sampler is an error.
#[derive(Args, Clone)]
struct SamplerOpts {
    #[arg(
        long,
        value_name = "E",
        help = option_help("DDIM's eta: 0 is deterministic, 1 is ancestral; the noise share of euler-ancestral, dpm-solver2m-sde and dpm-solver3m-sde", SamplerKind::Ddim, "eta")
    )]
    eta: Option<f64>,
    #[arg(long, value_name = "S", help = option_help("EDM's S_churn for heun-edm (0: deterministic)", SamplerKind::HeunEdm, "s_churn"))]
    s_churn: Option<f64>,
    #[arg(long, value_name = "S", help = option_help("EDM's S_tmin for heun-edm: the smallest noise level sigma = s/m churned", SamplerKind::HeunEdm, "s_tmin"))]
    s_tmin: Option<f64>,
    /// EDM's S_tmax for heun-edm: the largest noise level churned [heun-edm's default: infinite].
    #[arg(long, value_name = "S")]
    s_tmax: Option<f64>,
    #[arg(long, value_name = "S", help = option_help("Scale of the added noise (heun-edm, euler-ancestral, the SDE solvers)", SamplerKind::HeunEdm, "s_noise"))]
    s_noise: Option<f64>,
    #[arg(long, value_name = "P", help = option_help("UniPC's order, 1 to 3", SamplerKind::Unipc, "order"))]
    order: Option<usize>,
    #[arg(long, value_name = "B", value_parser = UniPcVariant::from_str, help = option_help("UniPC's B(h): bh1 or bh2", SamplerKind::Unipc, "solver_type"))]
    solver_type: Option<UniPcVariant>,
    #[arg(long, value_name = "R", help = option_help("Signal-to-noise ratio of the Langevin corrector (pc)", SamplerKind::Pc, "snr"))]
    snr: Option<f64>,
    #[arg(long, value_name = "M", help = option_help("Corrector steps per level (pc), Langevin steps per level (ald)", SamplerKind::Pc, "corrector_steps"))]
    corrector_steps: Option<usize>,
    #[arg(long, value_name = "P", value_parser = Predictor::from_str, help = option_help("Predictor of pc: reverse-diffusion, ancestral, euler-maruyama or none", SamplerKind::Pc, "predictor"))]
    predictor: Option<Predictor>,
    /// Variance of the ancestral steps (ancestral, pc): small, large or learned (a model
    /// trained with a learned variance) [default: the model's variance].
    #[arg(long, value_name = "V", value_parser = Variance::from_str)]
    variance: Option<Variance>,
    /// Spacing of the time grid: uniform, quadratic, log-snr, or diffusers' linspace, leading or
    /// trailing on the schedule's levels [default: karras sigmas for heun-edm and
    /// euler-ancestral, log-snr for the DPM-Solvers and unipc, else uniform].
    #[arg(long, value_name = "S", value_parser = Spacing::from_str)]
    spacing: Option<Spacing>,
    /// A noise-level schedule instead of a spacing: karras, exponential or polyexponential.
    #[arg(long, value_name = "K", value_parser = SigmaKind::from_str)]
    sigmas: Option<SigmaKind>,
    /// The schedule's rho [default: 7 for karras, 1 for polyexponential].
    #[arg(long, value_name = "R")]
    rho: Option<f64>,
    /// The schedule's smallest noise level sigma = s/m [default: the SDE's at t_min].
    #[arg(long, value_name = "S")]
    sigma_min: Option<f64>,
    /// The schedule's largest noise level [default: the SDE's at the start time].
    #[arg(long, value_name = "S")]
    sigma_max: Option<f64>,
    #[arg(long, value_name = "X", help = option_help("ald's step size relative to the smallest noise level", SamplerKind::Ald, "step_lr"))]
    step_lr: Option<f64>,
    #[arg(long, value_name = "R", help = option_help("Relative tolerance of ode-rk45", SamplerKind::OdeRk45, "rtol"))]
    rtol: Option<f64>,
    #[arg(long, value_name = "A", help = option_help("Absolute tolerance of ode-rk45", SamplerKind::OdeRk45, "atol"))]
    atol: Option<f64>,
    /// Finish with Tweedie's denoiser at the smallest time instead of the last step.
    #[arg(long)]
    denoise: bool,
    /// Clipping of the predicted x0: auto (to the data range of an image model, none for a
    /// mixture or 2-D model), off, static, or dynamic (Imagen's thresholding) [default: auto].
    #[arg(long, value_name = "C", value_parser = Clip::from_str)]
    clip: Option<Clip>,
    /// Dynamic thresholding's percentile (--clip dynamic) [default: 0.995].
    #[arg(long, value_name = "P")]
    clip_percentile: Option<f64>,
}

impl SamplerOpts {
    /// The options given, for `kind` with `steps` steps.
    fn spec(&self, kind: SamplerKind, steps: usize) -> SamplerSpec {
        SamplerSpec {
            kind,
            steps: Some(steps),
            spacing: self.spacing,
            times: None,
            sigmas: self.sigmas,
            rho: self.rho,
            sigma_min: self.sigma_min,
            sigma_max: self.sigma_max,
            s_churn: self.s_churn,
            s_tmin: self.s_tmin,
            s_tmax: self.s_tmax,
            s_noise: self.s_noise,
            order: self.order,
            solver_type: self.solver_type,
            eta: self.eta,
            variance: self.variance,
            predictor: self.predictor,
            snr: self.snr,
            corrector_steps: self.corrector_steps,
            step_lr: self.step_lr,
            rtol: self.rtol,
            atol: self.atol,
            denoise: self.denoise.then_some(true),
            clip: self.clip,
            clip_percentile: self.clip_percentile,
            data_range: None,
        }
    }

    /// The validated sampler configuration (the sampler's defaults where not given).
    fn config(&self, kind: SamplerKind, steps: usize) -> Result<SamplerConfig> {
        self.spec(kind, steps).build().map_err(config_error)
    }

    /// [`config`](Self::config) for a model whose own variance is `own` (`--variance` defaults
    /// to it; `learned` needs such a model) and whose data lie in `data_range` (the model
    /// card's: `--clip auto` clips to it).
    fn config_for(&self, kind: SamplerKind, steps: usize, own: Variance, data_range: Option<[f64; 2]>) -> Result<SamplerConfig> {
        self.spec(kind, steps).build_for(own, data_range).map_err(config_error)
    }
}

/// The `after_help` of `sample`: every sampler with its one-line description, from the core.
fn sampler_help() -> String {
    let width = SamplerKind::all().map(|k| k.name().len()).max().unwrap_or(0);
    let mut text = String::from("Samplers:\n");
    for kind in SamplerKind::all() {
        text.push_str(&format!("  {:<width$}  {}\n", kind.name(), kind.about()));
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
        Command::ImportDiffusers(args) => import_diffusers::import_diffusers(args),
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
