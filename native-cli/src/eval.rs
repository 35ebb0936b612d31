//! `native-cli eval`: how close a model's samples are to its data.
//!
//! - 2-D models (a toy's MLP run, a mixture `.json`): the energy distance and the unbiased
//!   MMD^2 (Gaussian kernel, median-heuristic bandwidth) between `n` samples and `n` fresh draws
//!   of the data distribution (the toy's sampler, or the mixture's `p_0`); the energy distance
//!   between two fresh draws of size `n` is printed as the floor a perfect model reaches.
//! - Image models: the Frechet distance between Gaussians fitted to the shipped classifier's
//!   features (`scorediff::nn::Classifier`) of `n` samples and of `n` held-out test images;
//!   the classifier's mean max-softmax confidence and the entropy of its predicted-class
//!   histogram (bits; at most log2 10 = 3.32 for ten equally frequent classes). The floor is
//!   the Frechet distance of `n` training images against the same test images.
//!
//! Every formula is in `scorediff::metrics`; this file loads, samples and prints.

use crate::model_source::ModelSource;
use crate::{SamplerOpts, progress_bar};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use scorediff::burn::tensor::Device;
use scorediff::data::{DatasetKind, ImageDataset, Split, Toy};
use scorediff::eval::{sample_model, target};
use scorediff::export::LoadedNet;
use scorediff::io::read_npy;
use scorediff::metrics;
use scorediff::mixture::{GaussianMixture, MixtureFile};
use scorediff::model::ScoreFn;
use scorediff::noise::NoiseSource;
use scorediff::sampler::{self, SamplerConfig, SamplerKind, Variance};
use scorediff::sde::Sde;
use scorediff::train::Dataset;
use scorediff::train::classifier::load_classifier_dir;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

#[derive(Args)]
pub struct EvalArgs {
    /// The model: a training run directory, an export directory (www/models/NAME) or a
    /// Gaussian-mixture .json file.
    #[arg(long, value_name = "PATH", required_unless_present = "samples")]
    model: Option<PathBuf>,
    /// Evaluate these samples (.npy, [n, 2] points or [n, 784] / [n, 1, 28, 28] images in
    /// [-1, 1]) instead of sampling the model.
    #[arg(long, value_name = "FILE.npy")]
    samples: Option<PathBuf>,
    /// The data the samples should match, when --samples comes without --model: mnist,
    /// fashion-mnist or a 2-D toy.
    #[arg(long, value_name = "NAME", value_parser = Dataset::from_str)]
    dataset: Option<Dataset>,
    /// Number of samples (and of reference data points).
    #[arg(long, value_name = "COUNT", default_value_t = 1000)]
    n: usize,
    /// Sampler used to draw from the model [default: the core's default sampler].
    #[arg(long, value_name = "NAME", value_parser = SamplerKind::from_str)]
    sampler: Option<SamplerKind>,
    /// Sampler steps.
    #[arg(long, value_name = "K", default_value_t = SamplerConfig::default().steps)]
    steps: usize,
    /// Samples per batch when sampling an image model.
    #[arg(long, value_name = "B", default_value_t = 100)]
    batch: usize,
    /// Seed of the sampler and of the reference draws.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Classifier directory (classifier.json + classifier.bpk) [default: www/models/classifier-<dataset>].
    #[arg(long, value_name = "DIR")]
    classifier: Option<PathBuf>,
    /// Where MNIST / Fashion-MNIST idx files are (else the usual places; see scripts/fetch-data.sh).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    opts: SamplerOpts,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What the samples should look like.
enum Target {
    /// A Gaussian mixture's `p_0`.
    Mixture(GaussianMixture),
    /// A 2-D toy.
    Toy(Toy),
    /// An image data set.
    Image(DatasetKind),
}

impl Target {
    fn name(&self) -> String {
        match self {
            Self::Mixture(_) => "mixture".into(),
            Self::Toy(t) => t.name().into(),
            Self::Image(k) => k.name().into(),
        }
    }

    fn dim(&self) -> usize {
        match self {
            Self::Mixture(m) => m.dim(),
            Self::Toy(_) => 2,
            Self::Image(_) => 28 * 28,
        }
    }

    fn of(dataset: Dataset) -> Self {
        match dataset {
            Dataset::Image(k) => Self::Image(k),
            Dataset::Toy(t) => Self::Toy(t),
        }
    }
}

/// How the samples were obtained.
#[derive(Serialize, Default)]
struct Sampling {
    /// `model` or the .npy file.
    source: String,
    sampler: Option<String>,
    steps: Option<usize>,
    nfe: Option<usize>,
    seconds: Option<f64>,
}

#[derive(Serialize)]
struct PointReport {
    kind: &'static str,
    target: String,
    n: usize,
    dim: usize,
    /// Energy distance to `n` fresh data points.
    energy_distance: f64,
    /// Energy distance between two fresh draws of size `n`: the floor.
    energy_distance_floor: f64,
    /// Unbiased MMD^2, Gaussian kernel.
    mmd2: f64,
    mmd2_floor: f64,
    mmd_bandwidth: f64,
    sampling: Sampling,
}

#[derive(Serialize)]
struct ImageReport {
    kind: &'static str,
    dataset: String,
    n: usize,
    /// Frechet distance, samples vs `n` test images, in the classifier's feature space.
    frechet_distance: f64,
    /// Frechet distance, `n` training images vs the same test images.
    frechet_distance_floor: f64,
    /// Mean max-softmax probability of the samples.
    confidence: f64,
    /// Entropy (bits) of the samples' predicted-class histogram.
    class_entropy_bits: f64,
    /// log2 of the number of classes.
    class_entropy_max_bits: f64,
    class_histogram: Vec<usize>,
    /// The same two statistics on the test images.
    test_confidence: f64,
    test_class_entropy_bits: f64,
    classifier: String,
    classifier_test_accuracy: f64,
    sampling: Sampling,
}

/// The loaded `--model`.
enum Model {
    Mixture(MixtureFile),
    Net { net: LoadedNet, sde: Box<dyn Sde>, dataset: Dataset, variance: Variance },
}

fn open_model(path: &Path, device: &Device) -> Result<Model> {
    let source = ModelSource::open(path)?;
    match &source {
        ModelSource::Mixture { file, .. } => Ok(Model::Mixture(file.clone())),
        ModelSource::Run { stored, .. } | ModelSource::Export { stored, .. } => {
            Ok(Model::Net { net: source.net(device)?, sde: source.sde()?, dataset: stored.card.dataset, variance: stored.card.variance })
        }
    }
}

/// `k` distinct indices of `0..n` (a seeded partial Fisher-Yates shuffle).
fn choose(n: usize, k: usize, noise: &mut NoiseSource) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = i + noise.index(n - i);
        idx.swap(i, j);
    }
    idx.truncate(k.min(n));
    idx
}

/// The default classifier folder for `kind`: `www/models/classifier-<kind>` under the current
/// directory, else under the workspace root.
fn default_classifier(kind: DatasetKind) -> Result<PathBuf> {
    let rel = Path::new("www").join("models").join(format!("classifier-{}", kind.name()));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [rel.clone(), manifest.parent().unwrap_or(manifest).join(&rel)];
    candidates.iter().find(|d| d.join("classifier.json").is_file()).cloned().ok_or_else(|| {
        anyhow!(
            "no classifier for {kind}: expected classifier.json in {} (train one with `native-cli train-classifier --dataset {kind} --out DIR` and pass --classifier DIR)",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or ")
        )
    })
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    if args.n < 2 {
        bail!("--n: expected at least 2 samples, found {}", args.n);
    }
    if args.batch == 0 {
        bail!("--batch: expected at least 1, found 0");
    }
    let device = Device::flex();
    let model = args.model.as_deref().map(|p| open_model(p, &device)).transpose()?;
    let target = match (&model, args.dataset) {
        (Some(Model::Mixture(file)), _) => Target::Mixture(target(file).context("the mixture's target")?),
        (Some(Model::Net { dataset, .. }), _) => Target::of(*dataset),
        (None, Some(d)) => Target::of(d),
        (None, None) => bail!("--samples without --model needs --dataset NAME (mnist, fashion-mnist or a 2-D toy)"),
    };
    let dim = target.dim();

    // The samples: read, or drawn from the model.
    let (samples, sampling): (Vec<f64>, Sampling) = if let Some(path) = &args.samples {
        let a = read_npy(path).context("reading --samples")?;
        let [n, cols] = a.shape;
        if cols != dim {
            bail!("samples {}: expected {dim} values per row ({}), found {cols}", path.display(), target.name());
        }
        if n < 2 {
            bail!("samples {}: expected at least 2 rows, found {n}", path.display());
        }
        if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
            bail!("samples {}: expected finite values, found {} at row {}", path.display(), a.data[i], i / dim);
        }
        (a.data, Sampling { source: path.display().to_string(), ..Sampling::default() })
    } else {
        let model = model.as_ref().expect("clap requires --model without --samples");
        let kind = args.sampler.unwrap_or(SamplerConfig::default().kind);
        let own = match model {
            Model::Net { variance, .. } => *variance,
            Model::Mixture(_) => Variance::Small,
        };
        let config = args.opts.config_for(kind, args.steps, own, args.model.as_deref().unwrap_or(Path::new("")))?;
        draw(model, &config, args, dim, &device)?
    };
    let n = samples.len() / dim;
    let mut noise = NoiseSource::new(args.seed ^ 0xe7a1_5eed);

    match target {
        Target::Image(kind) => {
            let dir = match &args.classifier {
                Some(d) => d.clone(),
                None => default_classifier(kind)?,
            };
            let (card, classifier) = load_classifier_dir(&dir, &device).map_err(|e| anyhow!(e)).context("loading --classifier")?;
            if card.dataset != kind {
                bail!("--classifier {}: expected a {kind} classifier, found one for {}", dir.display(), card.dataset);
            }
            let test = ImageDataset::load(kind, Split::Test, args.data_dir.as_deref())?;
            let train = ImageDataset::load(kind, Split::Train, args.data_dir.as_deref())?;
            let m = n.min(test.n);
            let stats = |x: &[f32]| classifier.stats(x, 500, &device);
            let real = |d: &ImageDataset, noise: &mut NoiseSource| stats(&d.batch(&choose(d.n, m, noise)));
            let reference = real(&test, &mut noise);
            let floor_set = real(&train, &mut noise);
            let clamped: Vec<f32> = samples.iter().map(|&v| (v as f32).clamp(-1.0, 1.0)).collect();
            let generated = stats(&clamped);
            let summary = |s: &scorediff::nn::ClassifierStats| {
                let h = metrics::class_histogram(&s.predicted, s.classes);
                (metrics::mean_max_softmax(&s.logits, s.classes), metrics::histogram_entropy_bits(&h), h)
            };
            let (confidence, entropy, histogram) = summary(&generated);
            let (test_confidence, test_entropy, _) = summary(&reference);
            let report = ImageReport {
                kind: "image",
                dataset: kind.to_string(),
                n,
                frechet_distance: metrics::frechet_distance(&generated.features, &reference.features, generated.dim),
                frechet_distance_floor: metrics::frechet_distance(&floor_set.features, &reference.features, generated.dim),
                confidence,
                class_entropy_bits: entropy,
                class_entropy_max_bits: (generated.classes as f64).log2(),
                class_histogram: histogram,
                test_confidence,
                test_class_entropy_bits: test_entropy,
                classifier: dir.display().to_string(),
                classifier_test_accuracy: card.test_accuracy,
                sampling,
            };
            print_image(&report, args.json)
        }
        point_target => {
            let fresh = |noise: &mut NoiseSource| match &point_target {
                Target::Mixture(m) => m.sample(n, noise),
                Target::Toy(t) => t.sample(n, noise),
                Target::Image(_) => unreachable!("handled above"),
            };
            let (a, b) = (fresh(&mut noise), fresh(&mut noise));
            let (mmd2, h) = metrics::mmd2_median(&samples, &a, dim);
            let report = PointReport {
                kind: "points",
                target: point_target.name(),
                n,
                dim,
                energy_distance: metrics::energy_distance(&samples, &a, dim),
                energy_distance_floor: metrics::energy_distance(&b, &a, dim),
                mmd2,
                mmd2_floor: metrics::mmd2(&b, &a, dim, h),
                mmd_bandwidth: h,
                sampling,
            };
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} samples vs {} ({} fresh points): energy distance {:.5} (floor {:.5}), MMD^2 {:.5} (floor {:.5}, bandwidth {:.3})",
                    report.sampling.source, report.target, n, report.energy_distance, report.energy_distance_floor, report.mmd2, report.mmd2_floor, h
                );
            }
            Ok(())
        }
    }
}

fn print_image(r: &ImageReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!(
            "{} samples ({}) vs {} {} test images, classifier {} (test accuracy {:.4}):",
            r.n, r.sampling.source, r.n, r.dataset, r.classifier, r.classifier_test_accuracy
        );
        println!("  Frechet distance   {:.3}  (floor, train vs test: {:.3})", r.frechet_distance, r.frechet_distance_floor);
        println!("  confidence         {:.4}  (test images: {:.4})", r.confidence, r.test_confidence);
        println!("  class entropy      {:.4} bits of {:.4}  (test images: {:.4})", r.class_entropy_bits, r.class_entropy_max_bits, r.test_class_entropy_bits);
        println!("  class histogram    {:?}", r.class_histogram);
    }
    Ok(())
}

/// Draws `args.n` samples from the model.
fn draw(model: &Model, config: &SamplerConfig, args: &EvalArgs, dim: usize, device: &Device) -> Result<(Vec<f64>, Sampling)> {
    let started = Instant::now();
    let mut sampling = Sampling { source: "model".into(), sampler: Some(config.kind.to_string()), steps: Some(config.steps), ..Sampling::default() };
    let data = match model {
        Model::Mixture(file) => {
            let s = scorediff::eval::sample_mixture(file, config, args.n, args.seed, device)?;
            sampling.nfe = Some(s.nfe);
            s.data
        }
        Model::Net { net: LoadedNet::Point(mlp), sde, .. } => {
            let s = sample_model(mlp, sde.as_ref(), config, [args.n, dim], args.seed, device);
            sampling.nfe = Some(s.nfe);
            s.data
        }
        Model::Net { net: LoadedNet::Image(unet), sde, .. } => {
            let f = ScoreFn::new(unet, sde.as_ref());
            let mut noise = NoiseSource::new(args.seed);
            let batches = args.n.div_ceil(args.batch);
            let bar = progress_bar("{msg} [{bar:40}] {pos}/{len} steps ({elapsed}, eta {eta})");
            let mut out = Vec::with_capacity(args.n * dim);
            for b in 0..batches {
                let rows = args.batch.min(args.n - b * args.batch);
                bar.set_message(format!("{} batch {}/{batches}", config.kind, b + 1));
                let x = sampler::sample(config, &f, [rows, 1, 28, 28], &mut noise, device, |k, total, _| {
                    bar.set_length((batches * total) as u64);
                    bar.set_position((b * total + k) as u64);
                });
                out.extend(crate::to_vec(x)?.into_iter().map(f64::from));
            }
            bar.finish_and_clear();
            sampling.nfe = Some(f.nfe());
            out
        }
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        bail!("{} with {} steps produced a non-finite value at sample {} (try more --steps)", config.kind, config.steps, i / dim);
    }
    sampling.seconds = Some(started.elapsed().as_secs_f64());
    Ok((data, sampling))
}
