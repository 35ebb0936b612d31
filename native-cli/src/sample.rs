//! `native-cli sample`: run a reverse-time sampler of the core from the prior and write the
//! samples as `.npy` (any model) or a PNG grid (image models), optionally with a strip of
//! intermediate states (`--trajectory`) and classifier-free guidance (`--guidance`, Ho &
//! Salimans 2022, through `scorediff::nn::Guided`) or guidance by a noise-conditional classifier
//! (`--classifier`, through `scorediff::inverse::ClassifierGuidance`).

use crate::model_source::ModelSource;
use crate::{SamplerOpts, progress_bar, sampler_defaults, sampler_help, to_vec};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use indicatif::ProgressBar;
use scorediff::burn::module::Module;
use scorediff::burn::tensor::{Device, Tensor};
use scorediff::eval::ByRef;
use scorediff::export::LoadedNet;
use scorediff::inverse::ClassifierGuidance;
use scorediff::io::write_npy_f32_nd;
use scorediff::model::ScoreModel;
use scorediff::nn::{Classifier, Guided, UNet};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{BatchEvent, SamplerConfig, SamplerKind, draw_batches};
use scorediff::sde::Sde;
use scorediff::train::classifier::load_classifier_dir;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

#[derive(Args)]
#[command(after_help = sampler_help())]
pub struct SampleArgs {
    /// The model: a training run directory, an export directory (model.json) or a
    /// Gaussian-mixture .json file ({"sde": {...}, "weights", "means", "stds"}).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Which sampler (listed below).
    #[arg(long, value_name = "NAME", value_parser = SamplerKind::from_str)]
    sampler: SamplerKind,
    /// Grid steps (noise levels for ald; ignored by ode-rk45).
    #[arg(long, value_name = "N", default_value_t = sampler_defaults().steps())]
    steps: usize,
    /// Number of samples.
    #[arg(long, value_name = "COUNT")]
    n: usize,
    /// Seed of the noise; the same seed gives the same samples at any --batch.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Output: .npy (float32, shape [COUNT, ...one point's shape]) or, for image models, .png
    /// (a near-square grid, [-1, 1] mapped to levels 0..255, grey or RGB); written atomically.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Samples per batch [default: all at once]; sample i has its own noise stream, so the
    /// samples do not depend on it.
    #[arg(long, value_name = "B")]
    batch: Option<usize>,
    /// Also write a PNG strip of intermediate states: one row per sample (the first
    /// --trajectory-rows of the first batch), columns at evenly spaced steps from the prior
    /// to the final sample (image models).
    #[arg(long, value_name = "FILE.png")]
    trajectory: Option<PathBuf>,
    /// Rows (samples) of the --trajectory strip.
    #[arg(long, value_name = "R", default_value_t = 4)]
    trajectory_rows: usize,
    /// Columns (states) of the --trajectory strip.
    #[arg(long, value_name = "C", default_value_t = 10)]
    trajectory_cols: usize,
    /// Classifier-free guidance weight w: (1 + w) out(x, t, class) - w out(x, t, null).
    /// Needs a class-conditional model.
    #[arg(long, value_name = "W")]
    guidance: Option<f64>,
    /// The class to sample (with a class-conditional model) [default with --guidance: sample i
    /// gets class i mod num_classes].
    #[arg(long, value_name = "K")]
    class: Option<usize>,
    /// Classifier guidance (Song et al. 2021, eq. 14): a noise-conditional classifier directory
    /// (`train-classifier --noisy`, trained with the model's SDE); samples follow
    /// score + s grad log p_t(class | x_t), class --class or i mod classes.
    #[arg(long, value_name = "DIR", conflicts_with = "guidance")]
    classifier: Option<PathBuf>,
    /// The classifier guidance scale s.
    #[arg(long, value_name = "S", default_value_t = 1.0, requires = "classifier")]
    classifier_scale: f64,
    /// Compute backend: flex (CPU); wgpu, vulkan, cuda when built with that cargo feature.
    #[arg(long, value_name = "NAME", default_value = "flex")]
    backend: String,
    #[command(flatten)]
    opts: SamplerOpts,
    /// Print a JSON summary to stdout instead of the summary line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SampleSummary {
    sampler: String,
    steps: usize,
    nfe: usize,
    n: usize,
    dim: usize,
    shape: Vec<usize>,
    seconds: f64,
    out: String,
    trajectory: Option<String>,
}

/// Output kind, from the file extension.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Npy,
    Png,
}

fn format_of(path: &Path, flag: &str) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("npy") => Ok(Format::Npy),
        Some("png") => Ok(Format::Png),
        _ => bail!("{flag} {}: expected a .png or .npy file name, found extension {:?}", path.display(), path.extension().unwrap_or_default()),
    }
}

fn check_parent(path: &Path, flag: &str) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!("{flag} {}: directory {} does not exist", path.display(), parent.display());
    }
    Ok(())
}

/// What a sampling run produced: the samples and the first rows of batch 0 at the prior and
/// after every step (the last: the output).
struct Drawn {
    drawn: scorediff::sampler::Drawn,
    frames: Vec<Vec<f32>>,
}

/// Runs the core's batched loop ([`draw_batches`]) with a progress bar, recording the first
/// `traj_rows` samples of batch 0 at every state.
#[allow(clippy::too_many_arguments)]
fn draw<M: ScoreModel<D>, const D: usize>(
    config: &SamplerConfig,
    sde: &dyn Sde,
    n: usize,
    batch: usize,
    shape: impl Fn(usize) -> [usize; D],
    model_for: impl FnMut(usize, usize) -> Result<M>,
    noise: &NoiseSource,
    device: &Device,
    traj_rows: usize,
    bar: &ProgressBar,
) -> Result<Drawn> {
    let mut frames = Vec::new();
    let keep = |x: &Tensor<D>| -> Result<Vec<f32>> { to_vec(x.clone().narrow(0, 0, traj_rows.min(x.dims()[0]))) };
    let drawn = draw_batches(config, sde, n, batch, shape, model_for, noise, device, |event| {
        match event {
            BatchEvent::Start { batch: b, batches, x } => {
                bar.set_message(if batches > 1 { format!("{} batch {}/{batches}", config.kind(), b + 1) } else { config.kind().to_string() });
                if b == 0 && traj_rows > 0 {
                    frames.push(keep(x)?);
                }
            }
            BatchEvent::Step { batch: b, batches, progress: (k, total), x } => {
                bar.set_length((batches * total) as u64);
                bar.set_position((b * total + k) as u64);
                if b == 0 && traj_rows > 0 {
                    frames.push(keep(x)?);
                }
            }
            BatchEvent::Output { batch: 0, x } if traj_rows > 0 => {
                // The last column is the sample itself (the last step's noise-free mean).
                frames.pop();
                frames.push(keep(x)?);
            }
            BatchEvent::Output { .. } => {}
        }
        Ok(())
    })?;
    Ok(Drawn { drawn, frames })
}

/// Indices of `cols` frames evenly spaced over `0..len` (first and last included).
fn frame_indices(len: usize, cols: usize) -> Vec<usize> {
    if len == 0 {
        return vec![];
    }
    let cols = cols.clamp(1, len);
    let mut idx: Vec<usize> = (0..cols).map(|j| if cols == 1 { len - 1 } else { ((j * (len - 1)) as f64 / (cols - 1) as f64).round() as usize }).collect();
    idx.dedup();
    idx
}

/// The noise-conditional classifier of `--classifier` (in inference mode) and its number of
/// classes, checked against the model: trained on perturbed data of the model's SDE, for
/// images of the model's shape.
fn noisy_classifier(dir: &Path, class: Option<usize>, source: &ModelSource, device: &Device) -> Result<(Classifier, usize)> {
    let (card, net) = load_classifier_dir(dir, device).map_err(|e| anyhow!(e)).context("--classifier")?;
    let Some(sde) = &card.sde else {
        bail!("--classifier {}: expected a noise-conditional classifier (train-classifier --noisy), found one of clean images", dir.display());
    };
    let model_sde = source.card().map(|c| c.sde.clone());
    if model_sde.as_ref() != Some(sde) {
        bail!("--classifier {}: expected a classifier trained with the model's SDE {model_sde:?}, found {sde:?}", dir.display());
    }
    let c = &card.config;
    if vec![c.in_channels, c.image_size, c.image_size] != source.dim_shape() {
        bail!(
            "--classifier {}: expected a classifier of the model's images {:?}, found [{}, {}, {}]",
            dir.display(),
            source.dim_shape(),
            c.in_channels,
            c.image_size,
            c.image_size
        );
    }
    if let Some(k) = class.filter(|&k| k >= c.classes) {
        bail!("--class: expected a class of the classifier in 0..{}, found {k}", c.classes - 1);
    }
    Ok((net.valid(), c.classes))
}

/// The guidance labels and weight asked for, checked against the model.
fn guidance_plan(args: &SampleArgs, source: &ModelSource, net: Option<&LoadedNet>) -> Result<Option<(usize, f64)>> {
    if args.guidance.is_none() && args.class.is_none() {
        return Ok(None);
    }
    let flag = if args.guidance.is_some() { "--guidance" } else { "--class" };
    let classes = match net {
        Some(LoadedNet::Image(u)) => u.config().num_classes,
        _ => None,
    };
    let Some(k) = classes else {
        bail!(
            "{flag}: model {} is not class-conditional (expected a U-Net with network.num_classes set, found {}); sample without {flag}",
            source.path().display(),
            match net {
                Some(LoadedNet::Image(_)) => "num_classes = null",
                Some(LoadedNet::Point(_)) => "an MLP",
                Some(LoadedNet::Diffusers(_)) => "an imported diffusers-unet2d",
                None => "a Gaussian mixture",
            }
        );
    };
    if let Some(c) = args.class {
        if c >= k {
            bail!("--class: expected a class in 0..{}, found {c}", k - 1);
        }
    }
    let w = args.guidance.unwrap_or(0.0);
    if !w.is_finite() {
        bail!("--guidance: expected a finite weight, found {w}");
    }
    Ok(Some((k, w)))
}

pub fn sample(args: &SampleArgs) -> Result<()> {
    args.opts.config(args.sampler, args.steps)?;
    if args.n == 0 {
        bail!("--n: expected at least 1 sample, found 0");
    }
    let batch = args.batch.unwrap_or(args.n);
    if batch == 0 {
        bail!("--batch: expected at least 1, found 0");
    }
    let batch = batch.min(args.n);
    // Fail before sampling, not after, when an output cannot be written.
    let format = format_of(&args.out, "--out")?;
    check_parent(&args.out, "--out")?;
    if let Some(t) = &args.trajectory {
        if format_of(t, "--trajectory")? != Format::Png {
            bail!("--trajectory {}: expected a .png file name", t.display());
        }
        check_parent(t, "--trajectory")?;
        if args.trajectory_rows == 0 || args.trajectory_cols < 2 {
            bail!("--trajectory-rows / --trajectory-cols: expected at least 1 row and 2 columns, found {} and {}", args.trajectory_rows, args.trajectory_cols);
        }
    }
    let source = ModelSource::open(&args.model)?;
    let config = args.opts.config_for(args.sampler, args.steps, source.variance(), source.data_range())?;
    let point = source.dim_shape();
    let dim = source.dim();
    let image = source.is_image();
    if !image && (format == Format::Png || args.trajectory.is_some()) {
        let flag = if format == Format::Png { "--out" } else { "--trajectory" };
        bail!("{flag}: PNG images need an image model, found model {} of points of dim {dim} (write .npy; `plot` draws 2-D points)", source.path().display());
    }
    if image && format == Format::Png && point[0] != 1 && point[0] != 3 {
        bail!("--out: PNG images need 1 (grey) or 3 (RGB) channels, found model {} of {} channels (write .npy)", source.path().display(), point[0]);
    }
    let device = crate::train::backend_device(&args.backend)?;
    let sde = source.sde()?;
    let net = match source.stored() {
        Some(_) => Some(source.net(&device)?),
        None => None,
    };
    let classifier = match &args.classifier {
        Some(dir) => Some(noisy_classifier(dir, args.class, &source, &device)?),
        None => None,
    };
    let plan = match classifier {
        Some(_) => None,
        None => guidance_plan(args, &source, net.as_ref())?,
    };
    let noise = NoiseSource::new(args.seed);
    let traj_rows = if args.trajectory.is_some() { args.trajectory_rows } else { 0 };

    let bar = progress_bar("{msg} [{bar:40}] {pos}/{len} steps ({elapsed}, eta {eta})");
    let start = Instant::now();
    let drawn = match &net {
        Some(LoadedNet::Image(unet)) => {
            let [c, h, w] = [point[0], point[1], point[2]];
            let model_for = |first: usize, rows: usize| -> Result<GuidedUNet<'_>> {
                if let Some((net, k)) = &classifier {
                    let labels = (first..first + rows).map(|i| args.class.unwrap_or(i % k)).collect();
                    let guided = ClassifierGuidance::new(unet, sde.as_ref(), net, labels, args.classifier_scale);
                    return Ok(GuidedUNet::ClassifierGuided(guided.map_err(|e| anyhow!("--classifier-scale: {e}"))?));
                }
                Ok(match plan {
                    None => GuidedUNet::Plain(unet),
                    Some((k, g)) => {
                        let labels = (first..first + rows).map(|i| args.class.unwrap_or(i % k)).collect();
                        GuidedUNet::Guided(Guided::new(unet, labels, g).map_err(|e| anyhow!("--guidance: {e}"))?)
                    }
                })
            };
            draw(&config, sde.as_ref(), args.n, batch, |r| [r, c, h, w], model_for, &noise, &device, traj_rows, &bar)?
        }
        Some(LoadedNet::Diffusers(dnet)) => {
            if classifier.is_some() {
                bail!("--classifier: classifier guidance runs the core's U-Net; model {} is an imported diffusers-unet2d", source.path().display());
            }
            let [c, h, w] = [point[0], point[1], point[2]];
            let model_for = |_: usize, _: usize| -> Result<ByRef<'_, 4>> { Ok(ByRef(dnet)) };
            draw(&config, sde.as_ref(), args.n, batch, |r| [r, c, h, w], model_for, &noise, &device, traj_rows, &bar)?
        }
        _ => {
            let model = source.score_model_2d(&device)?;
            let model_for = |_: usize, _: usize| -> Result<ByRef<'_, 2>> { Ok(ByRef(model.as_ref())) };
            draw(&config, sde.as_ref(), args.n, batch, |r| [r, dim], model_for, &noise, &device, 0, &bar)?
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let bad = drawn.drawn.values.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        bail!(
            "{} with {} steps produced {bad} non-finite values out of {}; nothing written to {} (try more --steps)",
            config.kind(),
            config.steps(),
            drawn.drawn.values.len(),
            args.out.display()
        );
    }
    let mut shape = vec![args.n];
    shape.extend(&point);
    match format {
        Format::Npy => write_npy_f32_nd(&args.out, &drawn.drawn.values, &shape).with_context(|| format!("writing {}", args.out.display()))?,
        Format::Png => {
            let grid = crate::png::tile(&drawn.drawn.values, args.n, [point[0], point[1], point[2]], crate::png::grid_columns(args.n))?;
            scorediff::io::write_atomic(&args.out, &crate::png::encode(&grid)?).with_context(|| format!("writing {}", args.out.display()))?;
        }
    }
    if let Some(t) = &args.trajectory {
        let cols = frame_indices(drawn.frames.len(), args.trajectory_cols);
        let rows = args.trajectory_rows.min(batch);
        let len = point[0] * point[1] * point[2];
        let mut tiles = Vec::with_capacity(rows * cols.len() * len);
        for r in 0..rows {
            for &c in &cols {
                tiles.extend_from_slice(&drawn.frames[c][r * len..(r + 1) * len]);
            }
        }
        let strip = crate::png::tile(&tiles, rows * cols.len(), [point[0], point[1], point[2]], cols.len())?;
        scorediff::io::write_atomic(t, &crate::png::encode(&strip)?).with_context(|| format!("writing {}", t.display()))?;
    }

    let summary = SampleSummary {
        sampler: config.kind().to_string(),
        steps: drawn.drawn.steps,
        nfe: drawn.drawn.nfe,
        n: args.n,
        dim,
        shape: point,
        seconds,
        out: args.out.display().to_string(),
        trajectory: args.trajectory.as_ref().map(|t| t.display().to_string()),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let batches = args.n.div_ceil(batch);
        let per_batch = if batches > 1 { format!(" over {batches} batches") } else { String::new() };
        let traj = summary.trajectory.as_ref().map(|t| format!(", trajectory -> {t}")).unwrap_or_default();
        println!(
            "{}: {} steps, {} NFE{per_batch}, {} samples of shape {:?} in {:.2} s -> {}{traj}",
            summary.sampler, summary.steps, summary.nfe, summary.n, summary.shape, summary.seconds, summary.out
        );
    }
    Ok(())
}

/// The U-Net as sampled: unconditional (the null label when conditional) or guided.
enum GuidedUNet<'a> {
    Plain(&'a UNet),
    Guided(Guided<'a>),
    ClassifierGuided(ClassifierGuidance<'a, 4>),
}

impl ScoreModel<4> for GuidedUNet<'_> {
    fn parameterization(&self) -> scorediff::param::Parameterization {
        match self {
            Self::Plain(u) => ScoreModel::parameterization(*u),
            Self::Guided(g) => g.parameterization(),
            Self::ClassifierGuided(g) => g.parameterization(),
        }
    }
    fn forward(&self, x: scorediff::burn::tensor::Tensor<4>, t: &[f64]) -> scorediff::burn::tensor::Tensor<4> {
        self.forward_with_variance(x, t).0
    }
    fn forward_with_variance(&self, x: Tensor<4>, t: &[f64]) -> (Tensor<4>, Option<Tensor<4>>) {
        match self {
            Self::Plain(u) => ScoreModel::forward_with_variance(*u, x, t),
            Self::Guided(g) => g.forward_with_variance(x, t),
            Self::ClassifierGuided(g) => g.forward_with_variance(x, t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::frame_indices;

    #[test]
    fn frames_are_evenly_spaced_with_both_ends() {
        assert_eq!(frame_indices(11, 6), vec![0, 2, 4, 6, 8, 10]);
        assert_eq!(frame_indices(3, 10), vec![0, 1, 2]);
        assert_eq!(frame_indices(1001, 2), vec![0, 1000]);
    }
}
