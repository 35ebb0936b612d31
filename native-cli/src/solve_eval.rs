//! `native-cli solve-eval`: every task and method on the first N test images of the model's
//! data set, with the tasks' baselines, as a table of mean PSNR and SSIM (and, for phase
//! retrieval, the fraction recovered up to the trivial ambiguities). The numbers of
//! `BENCHMARKS.md`'s inverse-problem table come from this command.
//!
//! The measurement noise of task `i` is drawn from seed `S + 1000 i` and each method's sampler
//! noise from `S + 1000 i + 100 (j + 1)` for method `j`, so adding a method does not change the
//! others' numbers.

use crate::solve::{LoadedImageModel, SolveOpts, TestImages, parse_mask, reconstruct};
use crate::{config_error, progress_bar, to_vec};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use scorediff::burn::tensor::{Tensor, TensorData};
use scorediff::inverse::{MeasurementNoise, MethodKind, Scores, Task, TaskKind, baseline};
use scorediff::noise::NoiseSource;
use serde::Serialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

/// `solve-eval`'s arguments.
#[derive(Args)]
pub struct SolveEvalArgs {
    /// The image model: a training run directory or an export directory (model.json).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Number of test images (the first N of the model's data set's test split).
    #[arg(long, value_name = "N", default_value_t = 100)]
    n: usize,
    /// Tasks, comma-separated [default: every task the model's channels allow].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = TaskKind::from_str)]
    tasks: Vec<TaskKind>,
    /// Methods, comma-separated: projection, dps, sdedit (projection is skipped where it does not apply).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "projection,dps", value_parser = MethodKind::from_str)]
    methods: Vec<MethodKind>,
    /// Inpainting's mask (see `solve --help`).
    #[arg(long, value_name = "MASK")]
    mask: Option<String>,
    /// Measurement noise: none, gaussian:SIGMA or poisson:RATE.
    #[arg(long, value_name = "NOISE", default_value = "gaussian:0.05", value_parser = MeasurementNoise::from_str)]
    noise: MeasurementNoise,
    /// Images per batch.
    #[arg(long, value_name = "B", default_value_t = 25)]
    batch: usize,
    /// Base seed of the measurement and sampler noise.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Where MNIST / Fashion-MNIST idx files are.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    opts: SolveOpts,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// One row of the table.
#[derive(Serialize)]
struct Row {
    task: TaskKind,
    operator: String,
    /// `projection` (`projection, resample U`), `dps`, `sdedit` or `baseline: <name>`.
    method: String,
    n: usize,
    psnr: Option<f64>,
    psnr_std: Option<f64>,
    ssim: Option<f64>,
    ssim_std: Option<f64>,
    /// Phase retrieval: the fraction recovered up to shift and 180-degree rotation.
    recovered: Option<f64>,
    /// Network evaluations per image.
    nfe: Option<usize>,
    seconds: f64,
    /// Why the method was not run.
    skipped: Option<String>,
}

#[derive(Serialize)]
struct Report {
    model: String,
    n: usize,
    noise: String,
    sampler: String,
    steps: usize,
    seed: u64,
    rows: Vec<Row>,
}

/// Mean and (population) standard deviation.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt())
}

impl Row {
    fn new(task: &Task, operator: &str, method: String) -> Self {
        Self {
            task: task.kind,
            operator: operator.to_string(),
            method,
            n: 0,
            psnr: None,
            psnr_std: None,
            ssim: None,
            ssim_std: None,
            recovered: None,
            nfe: None,
            seconds: 0.0,
            skipped: None,
        }
    }

    fn with_scores(mut self, scores: &[Scores]) -> Self {
        let (p, ps) = mean_std(&scores.iter().map(|s| s.psnr).collect::<Vec<_>>());
        let (s, ss) = mean_std(&scores.iter().map(|s| s.ssim).collect::<Vec<_>>());
        self.n = scores.len();
        (self.psnr, self.psnr_std, self.ssim, self.ssim_std) = (Some(p), Some(ps), Some(s), Some(ss));
        let rec: Vec<bool> = scores.iter().filter_map(|s| s.recovered).collect();
        if !rec.is_empty() {
            self.recovered = Some(rec.iter().filter(|&&r| r).count() as f64 / rec.len() as f64);
        }
        self
    }

    fn skipped(mut self, why: String) -> Self {
        self.skipped = Some(why);
        self
    }
}

pub fn solve_eval(args: &SolveEvalArgs) -> Result<()> {
    let device = crate::train::backend_device(&args.opts.backend)?;
    let model = LoadedImageModel::open(&args.model, &device).with_context(|| format!("--model {}", args.model.display()))?;
    let config = args.opts.method.config(&model)?;
    let [c, h, w] = model.shape;
    if args.n == 0 || args.batch == 0 {
        bail!("--n and --batch: expected at least 1");
    }
    let mask = args.mask.as_deref().map(|m| parse_mask(m, [h, w])).transpose()?;
    let tasks: Vec<TaskKind> =
        if args.tasks.is_empty() { TaskKind::ALL.into_iter().filter(|k| *k != TaskKind::Colorize || c == 3).collect() } else { args.tasks.clone() };
    // Every task's operator first, so that a task the model cannot do fails before any work.
    let problems = tasks
        .iter()
        .map(|&kind| {
            let task = args.opts.task.task(kind, (kind == TaskKind::Inpaint).then(|| mask.clone()).flatten());
            let op = task.build(model.shape, &device).map_err(|e| anyhow!("--tasks {kind}: {e}"))?;
            Ok((task, op))
        })
        .collect::<Result<Vec<_>>>()?;
    let truth = model.test_images(TestImages::First(args.n), args.data_dir.as_deref())?;
    let len = c * h * w;
    let chunks: Vec<&[f32]> = truth.chunks(args.batch * len).collect();
    let mut rows = Vec::new();
    for (ti, (task, op)) in problems.iter().enumerate() {
        let task_kind = task.kind;
        let operator = op.describe();
        // The measurements, one batch at a time.
        let mut noise = NoiseSource::new(args.seed.wrapping_add(1000 * ti as u64));
        let ys: Vec<Tensor<4>> = chunks
            .iter()
            .map(|x| {
                let b = x.len() / len;
                let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [b, c, h, w]), &device);
                args.noise.apply(op.forward(x), &mut noise)
            })
            .collect();
        let scores_of = |out: Vec<f32>, chunk: &[f32]| Scores::of_batch(task_kind, &out, chunk, model.shape);
        if let Some(bk) = task.baseline_kind() {
            let started = Instant::now();
            let mut scores = Vec::new();
            for (y, chunk) in ys.iter().zip(&chunks) {
                let b = baseline(bk, op.as_ref(), y.clone(), args.noise.sigma(), task.factor).map_err(|e| anyhow!(e))?;
                scores.extend(scores_of(to_vec(b)?, chunk));
            }
            let mut row = Row::new(task, &operator, format!("baseline: {}", bk.name())).with_scores(&scores);
            row.seconds = started.elapsed().as_secs_f64();
            rows.push(row);
        }
        for (mi, &kind) in args.methods.iter().enumerate() {
            let resample = args.opts.method.resample;
            let label = if kind == MethodKind::Projection && resample > 1 { format!("projection, resample {resample}") } else { kind.name().to_string() };
            let row = Row::new(task, &operator, label);
            let method = args.opts.method.method(kind);
            match method.check(task, op.as_ref(), &config) {
                // The method does not fit the task: a row that says why.
                Err(e) if e.field == "method" => {
                    rows.push(row.skipped(format!("needs {}", e.expected)));
                    continue;
                }
                Err(e) => return Err(config_error(e)),
                Ok(()) => {}
            }
            let mut noise = NoiseSource::new(args.seed.wrapping_add(1000 * ti as u64 + 100 * (mi as u64 + 1)));
            let bar = progress_bar("{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})");
            let started = Instant::now();
            let mut scores = Vec::new();
            let mut nfe = 0;
            for (bi, (y, chunk)) in ys.iter().zip(&chunks).enumerate() {
                bar.set_message(format!("{} by {kind} (batch {}/{})", task.kind, bi + 1, chunks.len()));
                let (out, n) = reconstruct(&model, task, method, y.clone(), args.noise, &config, &mut noise, &device, |k, n| {
                    bar.set_length(n as u64);
                    bar.set_position(k as u64);
                })?;
                nfe = n;
                scores.extend(scores_of(to_vec(out)?, chunk));
            }
            bar.finish_and_clear();
            let mut row = row.with_scores(&scores);
            row.nfe = Some(nfe);
            row.seconds = started.elapsed().as_secs_f64();
            rows.push(row);
        }
    }
    let report = Report {
        model: args.model.display().to_string(),
        n: args.n,
        noise: args.noise.to_string(),
        sampler: args.opts.method.sampler.to_string(),
        steps: args.opts.method.steps,
        seed: args.seed,
        rows,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{}: the first {} test images, noise {}, {} with {} steps; mean ± standard deviation",
        report.model, report.n, report.noise, report.sampler, report.steps
    );
    println!();
    println!("| task | operator | method | PSNR (dB) | SSIM | recovered | NFE | seconds |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &report.rows {
        let pm = |m: Option<f64>, s: Option<f64>, d: usize| match (m, s) {
            (Some(m), Some(s)) => format!("{m:.d$} ± {s:.d$}"),
            _ => r.skipped.clone().map(|w| format!("n/a ({w})")).unwrap_or_default(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            r.task,
            r.operator,
            r.method,
            pm(r.psnr, r.psnr_std, 2),
            if r.skipped.is_some() { String::new() } else { pm(r.ssim, r.ssim_std, 3) },
            r.recovered.map(|f| format!("{:.0}%", 100.0 * f)).unwrap_or_default(),
            r.nfe.map(|n| n.to_string()).unwrap_or_default(),
            r.seconds
        );
    }
    Ok(())
}
