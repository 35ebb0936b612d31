//! `native-cli solve`: solve an inverse problem with a trained image model (the core's U-Net or
//! an imported diffusers `UNet2DModel`, `import-diffusers`) and write the measurement, the
//! baseline, the result and the ground truth side by side as a PNG of the model's channels.
//!
//! The operators, noises, methods, baselines and metrics are `scorediff::inverse` and
//! `scorediff::metrics`; this module reads and writes files and drives the runs.
//!
//! - `--input IMG.png` is the clean image to measure (and the ground truth the PSNR and SSIM
//!   are computed against); with `--measured` it is the measurement itself (a damaged image for
//!   `inpaint`, the low-resolution image for `super-resolution`, a blurred one for the blurs, a
//!   grey one for `colorize`), and there is no ground truth. `--test-index K` takes test image
//!   `K` of the model's data set instead.
//! - Methods: `projection` (score-SDE projection, `scorediff::inverse::Projection`, with
//!   RePaint's resampling under `--resample U`), `dps`
//!   (diffusion posterior sampling on ancestral or DDIM steps), `sdedit` (SDEdit from the
//!   task's baseline reconstruction noised to `--t0`).

use crate::image_io::{channels_name, read_png, read_png_shaped, write_row};
use crate::model_source::ModelSource;
use crate::{SamplerOpts, config_error, progress_bar, sampler_defaults, to_vec};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::data::{ImageDataset, Split};
use scorediff::inverse::{
    BaselineKind, Downsample, GrayWeights, MaskSpec, MeasurementNoise, Method, MethodKind, Problem, Task, TaskKind, baseline, measurement_preview, score,
};
use scorediff::model::{ImageNet, ScoreFn};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{SamplerConfig, SamplerKind};
use scorediff::sde::Sde;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

/// The parameters of the tasks (defaults from `scorediff::inverse::Task::new`).
#[derive(Args, Clone)]
pub struct TaskOpts {
    /// Super-resolution factor (must divide the image side).
    #[arg(long, value_name = "K", default_value_t = Task::new(TaskKind::SuperResolution).factor)]
    factor: usize,
    /// Super-resolution downsampling: bicubic (MATLAB imresize) or pool (average pooling).
    #[arg(long, value_name = "KIND", default_value = "bicubic", value_parser = Downsample::from_str)]
    downsample: Downsample,
    /// Side of the blur kernels (odd).
    #[arg(long, value_name = "K", default_value_t = Task::new(TaskKind::Deblur).blur_size)]
    blur_size: usize,
    /// Standard deviation of the Gaussian blur, in pixels.
    #[arg(long, value_name = "S", default_value_t = Task::new(TaskKind::Deblur).blur_sigma)]
    blur_sigma: f64,
    /// Motion blur: how much the trajectory turns (0: a straight line).
    #[arg(long, value_name = "I", default_value_t = Task::new(TaskKind::MotionDeblur).motion_intensity)]
    motion_intensity: f64,
    /// Motion blur: seed of the random kernel.
    #[arg(long, value_name = "S", default_value_t = Task::new(TaskKind::MotionDeblur).motion_seed)]
    motion_seed: u64,
    /// Colorization's grey levels: mean or luma (BT.601).
    #[arg(long, value_name = "W", default_value = "mean", value_parser = GrayWeights::from_str)]
    gray: GrayWeights,
}

impl TaskOpts {
    /// The task `kind` with these parameters and `mask` (inpainting).
    pub fn task(&self, kind: TaskKind, mask: Option<MaskSpec>) -> Task {
        let mut task = Task::new(kind);
        task.factor = self.factor;
        task.downsample = self.downsample;
        task.blur_size = self.blur_size;
        task.blur_sigma = self.blur_sigma;
        task.motion_intensity = self.motion_intensity;
        task.motion_seed = self.motion_seed;
        task.gray = self.gray;
        if let Some(mask) = mask {
            task.mask = mask;
        }
        task
    }
}

/// The sampler and the methods' parameters.
#[derive(Args, Clone)]
pub struct MethodOpts {
    /// Steps of the reverse sampler.
    #[arg(long, value_name = "N", default_value_t = sampler_defaults().steps())]
    pub(crate) steps: usize,
    /// The reverse sampler: ancestral or ddim for dps; any sampler of `sample` for projection and sdedit.
    #[arg(long, value_name = "NAME", default_value = "ancestral", value_parser = SamplerKind::from_str)]
    pub(crate) sampler: SamplerKind,
    /// DPS step size: the paper's zeta' in zeta_i = zeta' / ||y - A(x0_hat)|| (the reference
    /// code's `scale` is 2 zeta); not tuned for MNIST.
    #[arg(long, value_name = "Z", default_value_t = scorediff::inverse::dps::DEFAULT_ZETA)]
    zeta: f64,
    /// SDEdit: the time the baseline reconstruction is noised to, in (0, 1].
    #[arg(long, value_name = "T", default_value_t = 0.5)]
    t0: f64,
    /// Projection: take each level's step U times, noising the projected state back in between
    /// (RePaint's resampling, jump length 1; U network evaluations per level; 1: plain replacement).
    #[arg(long, value_name = "U", default_value_t = 1)]
    pub(crate) resample: usize,
    #[command(flatten)]
    opts: SamplerOpts,
}

impl MethodOpts {
    /// The validated sampler configuration for `model` (its own variance unless `--variance`
    /// names one, its data range for `--clip auto`).
    pub fn config(&self, model: &LoadedImageModel) -> Result<SamplerConfig> {
        self.opts.config_for(self.sampler, self.steps, model.source.variance(), model.source.data_range())
    }

    /// The method `kind` with its options (`--resample` for projection, `--zeta` for dps,
    /// `--t0` for sdedit).
    pub fn method(&self, kind: MethodKind) -> Method {
        match kind {
            MethodKind::Projection => Method::Projection { resample: self.resample },
            MethodKind::Dps => Method::Dps { zeta: self.zeta },
            MethodKind::Sdedit => Method::Sdedit { t0: self.t0 },
        }
    }
}

/// The options `solve` and `solve-eval` share: the tasks' parameters, the sampler and the
/// methods' parameters, the backend.
#[derive(Args, Clone)]
pub struct SolveOpts {
    #[command(flatten)]
    pub(crate) task: TaskOpts,
    #[command(flatten)]
    pub(crate) method: MethodOpts,
    /// Compute backend: flex (CPU); wgpu, vulkan, cuda when built with that cargo feature.
    #[arg(long, value_name = "NAME", default_value = "flex")]
    pub(crate) backend: String,
}

/// A trained image score model opened from `--model` (the core's U-Net or an imported diffusers
/// `UNet2DModel`, run alike by every method), with its SDE and image shape.
pub struct LoadedImageModel {
    /// What `--model` pointed at.
    pub source: ModelSource,
    /// The forward SDE.
    pub sde: Box<dyn Sde>,
    /// The network, in inference mode (dropout off: DPS differentiates through it).
    pub net: ImageNet,
    /// `[channels, height, width]`, the card's.
    pub shape: [usize; 3],
}

impl LoadedImageModel {
    /// Opens an image model (run or export directory) on `device`.
    pub fn open(path: &Path, device: &Device) -> Result<Self> {
        let source = ModelSource::open(path)?;
        let net = ImageNet::new(source.net(device)?)
            .map_err(|_| anyhow!("--model {}: expected an image model (a U-Net or an imported diffusers-unet2d), found a model of points", path.display()))?;
        let shape: [usize; 3] = source.dim_shape().try_into().map_err(|_| anyhow!("--model {}: expected images [channels, height, width]", path.display()))?;
        let sde = source.sde()?;
        Ok(Self { source, sde, net, shape })
    }

    /// Test images `indices` of the model's data set.
    pub fn test_images(&self, which: TestImages, data_dir: Option<&Path>) -> Result<Vec<f32>> {
        let kind = self
            .source
            .card()
            .and_then(|c| c.image_dataset())
            .ok_or_else(|| anyhow!("--model {}: expected a model trained on an image data set", self.source.path().display()))?;
        let data = ImageDataset::load(kind, Split::Test, data_dir)?;
        let indices: Vec<usize> = match which {
            TestImages::First(n) if n > data.n => bail!("--n {n}: expected at most {}, the {kind} test images", data.n),
            TestImages::First(n) => (0..n).collect(),
            TestImages::Index(k) if k >= data.n => bail!("--test-index {k}: expected an index below {}, the {kind} test images", data.n),
            TestImages::Index(k) => vec![k],
        };
        Ok(data.batch(&indices))
    }
}

/// Which test images: the first `n` (`--n`) or one (`--test-index`).
#[derive(Debug, Clone, Copy)]
pub enum TestImages {
    /// The first `n`.
    First(usize),
    /// Image `k`.
    Index(usize),
}

/// A batch of measurements solved by `method` (the core's [`Method::solve`]): the
/// reconstruction and the network evaluations.
#[allow(clippy::too_many_arguments)]
pub fn reconstruct(
    model: &LoadedImageModel,
    task: &Task,
    method: Method,
    y: Tensor<4>,
    noise_model: MeasurementNoise,
    config: &SamplerConfig,
    noise: &mut NoiseSource,
    device: &Device,
    on_step: impl FnMut(usize, usize),
) -> Result<(Tensor<4>, usize)> {
    let f = ScoreFn::new(&model.net, model.sde.as_ref());
    let op = task.build(model.shape, device).map_err(|e| anyhow!(e))?;
    let out = method.solve(&f, config, Problem { task, op, y, noise: noise_model, image: model.shape }, noise, device, on_step).map_err(config_error)?;
    Ok((out, f.nfe()))
}

/// `solve`'s arguments.
#[derive(Args)]
pub struct SolveArgs {
    /// The image model: a training run directory or an export directory (model.json).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// The inverse problem: inpaint, super-resolution, deblur, motion-deblur, colorize or phase-retrieval.
    #[arg(long, value_name = "TASK", value_parser = TaskKind::from_str)]
    task: TaskKind,
    /// How to solve it: projection, dps or sdedit.
    #[arg(long, value_name = "METHOD", value_parser = MethodKind::from_str)]
    method: MethodKind,
    /// The image to measure, a PNG of the model's size and channels (also the ground truth);
    /// with --measured, the measurement itself.
    #[arg(long, value_name = "IMG.png", required_unless_present = "test_index", conflicts_with = "test_index")]
    input: Option<PathBuf>,
    /// --input is already the measurement (no ground truth): the damaged image (inpaint), the
    /// low-resolution image (super-resolution), the blurred image, or a grey image (colorize).
    #[arg(long, requires = "input")]
    measured: bool,
    /// Measure test image K of the model's data set instead of --input.
    #[arg(long, value_name = "K")]
    test_index: Option<usize>,
    /// Where MNIST / Fashion-MNIST idx files are (for --test-index).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Inpainting's mask: a PNG of the image's size (white = observed, black = missing), box
    /// (the centred half-side square missing), box:TOP,LEFT,HEIGHT,WIDTH or random:FRACTION_MISSING[:SEED].
    #[arg(long, value_name = "MASK")]
    mask: Option<String>,
    /// Measurement noise: none, gaussian:SIGMA (in the [-1, 1] data scale) or poisson:RATE
    /// (photons of a white pixel).
    #[arg(long, value_name = "NOISE", default_value = "gaussian:0.05", value_parser = MeasurementNoise::from_str)]
    noise: MeasurementNoise,
    /// Output PNG: measurement | baseline | result | ground truth (when known), written atomically.
    #[arg(long, value_name = "OUT.png")]
    out: PathBuf,
    /// Seed of the measurement noise and of the sampler.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    opts: SolveOpts,
    /// Print a JSON summary instead of the summary line.
    #[arg(long)]
    json: bool,
}

/// `--mask` as a mask spec or a PNG of `[h, w]`.
pub fn parse_mask(value: &str, [h, w]: [usize; 2]) -> Result<MaskSpec> {
    if let Ok(spec) = value.parse::<MaskSpec>() {
        return Ok(spec);
    }
    let path = Path::new(value);
    if !path.exists() {
        bail!("--mask {value}: expected box, box:TOP,LEFT,HEIGHT,WIDTH, random:FRACTION_MISSING[:SEED] or an existing PNG file");
    }
    let img = read_png(path).context("--mask")?;
    if (img.height, img.width) != (h, w) {
        bail!("--mask {}: expected a {h}x{w} PNG (the image's size; white = observed), found {}x{}", path.display(), img.height, img.width);
    }
    if img.channels != 1 {
        bail!("--mask {}: expected a grey-level PNG (white = observed), found an RGB image", path.display());
    }
    // Grey level >= 128 (value >= 1/2 in [0, 1]) is observed.
    Ok(MaskSpec::Pixels(img.values.iter().map(|v| (v + 1.0) / 2.0).collect()))
}

#[derive(Serialize)]
struct SolveSummary {
    model: String,
    task: TaskKind,
    operator: String,
    method: MethodKind,
    noise: String,
    sampler: String,
    steps: usize,
    nfe: usize,
    seconds: f64,
    seed: u64,
    truth: Option<String>,
    psnr: Option<f64>,
    ssim: Option<f64>,
    recovered: Option<bool>,
    baseline: Option<BaselineKind>,
    baseline_psnr: Option<f64>,
    baseline_ssim: Option<f64>,
    columns: Vec<String>,
    out: String,
}

pub fn solve(args: &SolveArgs) -> Result<()> {
    let device = crate::train::backend_device(&args.opts.backend)?;
    let model = LoadedImageModel::open(&args.model, &device).with_context(|| format!("--model {}", args.model.display()))?;
    let [c, h, w] = model.shape;
    let mask = match &args.mask {
        Some(_) if args.task != TaskKind::Inpaint => bail!("--mask: only for --task inpaint, found --task {}", args.task),
        Some(m) => Some(parse_mask(m, [h, w])?),
        None => None,
    };
    let task = args.opts.task.task(args.task, mask);
    let op = task.build(model.shape, &device).map_err(|e| anyhow!("--task {}: {e}", args.task))?;
    if args.method != MethodKind::Projection && args.opts.method.resample != 1 {
        bail!("--resample {}: RePaint's resampling is for --method projection, found --method {}", args.opts.method.resample, args.method);
    }
    let config = args.opts.method.config(&model)?;
    let method = args.opts.method.method(args.method);
    method.check(&task, op.as_ref(), &config).map_err(config_error)?;
    let mut noise = NoiseSource::new(args.seed);
    // The ground truth (when known) and the measurement.
    let (truth, truth_name, y) = if args.measured {
        let path = args.input.as_ref().expect("clap: --measured requires --input");
        let [_, cy, hy, wy] = op.forward(Tensor::<4>::zeros([1, c, h, w], &device)).dims();
        if !op.image_valued() {
            bail!("--measured: a PNG cannot hold the measurement of {} ({})", args.task, op.describe());
        }
        let img = read_png_shaped(path, "--input", &format!("the measurement of {} for the model's {h}x{w} images", args.task), [cy, hy, wy])?;
        (None, None, Tensor::<4>::from_data(TensorData::new(img.values, [1, cy, hy, wy]), &device))
    } else {
        let (values, name) = match (&args.input, args.test_index) {
            (Some(path), _) => {
                let what = format!("the model's {} images", channels_name(c));
                let img = read_png_shaped(path, "--input", &what, model.shape)?;
                (img.values, path.display().to_string())
            }
            (None, Some(k)) => (model.test_images(TestImages::Index(k), args.data_dir.as_deref())?, format!("test image {k}")),
            (None, None) => bail!("expected --input IMG.png or --test-index K"),
        };
        let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [1, c, h, w]), &device);
        let y = args.noise.apply(op.forward(x), &mut noise);
        (Some(values), Some(name), y)
    };
    let base = match task.baseline_kind() {
        Some(kind) => Some((kind, to_vec(baseline(kind, op.as_ref(), y.clone(), args.noise.sigma(), task.factor).map_err(|e| anyhow!(e))?)?)),
        None => None,
    };
    let measurement = measurement_preview(task.kind, op.as_ref(), y.clone(), model.shape).map_err(|e| anyhow!(e))?;

    let bar = progress_bar("{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})");
    bar.set_message(format!("{} by {}", args.task, args.method.name()));
    let started = Instant::now();
    let (result, nfe) = reconstruct(&model, &task, method, y, args.noise, &config, &mut noise, &device, |k, n| {
        bar.set_length(n as u64);
        bar.set_position(k as u64);
    })?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let result = to_vec(result)?;

    let scores = truth.as_ref().map(|t| score(args.task, &result, t, model.shape));
    let base_scores = match (&base, &truth) {
        (Some((_, b)), Some(t)) => Some(score(args.task, b, t, model.shape)),
        _ => None,
    };
    let mut tiles = vec![measurement];
    let mut columns = vec!["measurement".to_string()];
    if let Some((kind, b)) = &base {
        tiles.push(b.clone());
        columns.push(kind.name().into());
    }
    tiles.push(result);
    columns.push(args.method.name().into());
    if let Some(t) = &truth {
        tiles.push(t.clone());
        columns.push("ground truth".into());
    }
    write_row(&args.out, &tiles, model.shape)?;

    let summary = SolveSummary {
        model: args.model.display().to_string(),
        task: args.task,
        operator: op.describe(),
        method: args.method,
        noise: args.noise.to_string(),
        sampler: args.opts.method.sampler.to_string(),
        steps: args.opts.method.steps,
        nfe,
        seconds,
        seed: args.seed,
        truth: truth_name,
        psnr: scores.map(|s| s.psnr),
        ssim: scores.map(|s| s.ssim),
        recovered: scores.and_then(|s| s.recovered),
        baseline: base.as_ref().map(|(k, _)| *k),
        baseline_psnr: base_scores.map(|s| s.psnr),
        baseline_ssim: base_scores.map(|s| s.ssim),
        columns,
        out: args.out.display().to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    let mut line = format!(
        "{} ({}) by {}, noise {}, {} {} steps, {} NFE, {:.1} s",
        summary.task,
        summary.operator,
        summary.method.name(),
        summary.noise,
        summary.sampler,
        summary.steps,
        nfe,
        seconds
    );
    if let Some(s) = scores {
        line.push_str(&format!(": PSNR {:.2} dB, SSIM {:.4}", s.psnr, s.ssim));
        if let Some(r) = s.recovered {
            line.push_str(if r { " (recovered up to shift and flip)" } else { " (not recovered)" });
        }
    }
    if let (Some((kind, _)), Some(b)) = (&base, base_scores) {
        line.push_str(&format!("; {}: PSNR {:.2} dB, SSIM {:.4}", kind.name(), b.psnr, b.ssim));
    }
    println!("{line} -> {} [{}]", summary.out, summary.columns.join(" | "));
    Ok(())
}
