//! `native-cli eval`: how close a model's samples are to its data.
//!
//! - 2-D models (a toy's MLP run, a mixture `.json`): the energy distance and the unbiased
//!   MMD^2 (Gaussian kernel, median-heuristic bandwidth) between `n` samples and `n` fresh draws
//!   of the data distribution (the toy's sampler, or the mixture's `p_0`); the energy distance
//!   between two fresh draws of size `n` is printed as the floor a perfect model reaches.
//! - Image models: the Frechet distance between Gaussians fitted to the shipped classifier's
//!   features (`scorediff::nn::Classifier`) of `n` samples and of `n` held-out test images;
//!   the classifier's mean max-softmax confidence and the entropy of its predicted-class
//!   histogram (bits; at most log2 10 = 3.32 for ten equally frequent classes); the count of
//!   samples that fail the data set's per-sample rule (`scorediff::metrics::FailureRule`: noise
//!   blobs, speckle), with the same rule's count on the `n` test images (its false-positive
//!   rate). The floor is the Frechet distance of `n` training images against the same test
//!   images; `--floor-draws K` draws `K` such sets and reports the floor's spread, and without
//!   a model or samples (`--dataset NAME --floor-draws K`) eval reports the floor alone.
//!
//! `sampling.nfe` is per sample: the network evaluations each sample saw (every batch sees the
//! same number except with ode-rk45's adaptive steps, where it is the largest over batches).
//!
//! Every formula is in `scorediff::metrics`; this file loads, samples and prints.

use crate::model_source::ModelSource;
use crate::{SamplerOpts, progress_bar};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use scorediff::burn::tensor::Device;
use scorediff::data::{DatasetKind, ImageDataset, Split, Toy};
use scorediff::eval::{ByRef, sample_model, target};
use scorediff::export::LoadedNet;
use scorediff::io::read_npy;
use scorediff::metrics::{self, FailureRule, Spread};
use scorediff::mixture::{GaussianMixture, MixtureFile};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{BatchEvent, SamplerConfig, SamplerKind, Variance, draw_batches};
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
    #[arg(long, value_name = "PATH", required_unless_present_any = ["samples", "floor_draws"])]
    model: Option<PathBuf>,
    /// Evaluate these samples (.npy, [n, 2] points or [n, c h w] / [n, c, h, w] images of the
    /// model's or data set's shape in [-1, 1]) instead of sampling the model.
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
    #[arg(long, value_name = "K", default_value_t = SamplerConfig::default().steps())]
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
    /// Also draw K independent sets of n training images against the same n test images and
    /// report the Frechet distance floor's spread (image data sets; the first set is the
    /// reported floor). With --dataset and neither --model nor --samples: the floor alone.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    floor_draws: Option<u64>,
    /// Where MNIST / Fashion-MNIST idx files are (else the usual places; see scripts/fetch-data.sh).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    opts: SamplerOpts,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The distribution the samples should follow.
enum Reference {
    /// A Gaussian mixture's `p_0`.
    Mixture(GaussianMixture),
    /// A 2-D toy.
    Toy(Toy),
    /// An image data set, its images `[channels, height, width]`.
    Image(DatasetKind, [usize; 3]),
}

impl Reference {
    fn name(&self) -> String {
        match self {
            Self::Mixture(_) => "mixture".into(),
            Self::Toy(t) => t.name().into(),
            Self::Image(k, _) => k.name().into(),
        }
    }

    fn dim(&self) -> usize {
        match self {
            Self::Mixture(m) => m.dim(),
            Self::Toy(_) => 2,
            Self::Image(_, shape) => shape.iter().product(),
        }
    }

    /// The data set's distribution; `shape` is the model card's for images (the data set's
    /// own without a model).
    fn of(dataset: Dataset, shape: Option<&[usize]>) -> Result<Self> {
        Ok(match dataset {
            Dataset::Image(k) => {
                let shape = match shape {
                    Some(s) => s.try_into().map_err(|_| anyhow!("model: expected images [channels, height, width], found shape {s:?}"))?,
                    None => k.image_shape(),
                };
                Self::Image(k, shape)
            }
            Dataset::Toy(t) => Self::Toy(t),
            Dataset::External => bail!("model: an imported checkpoint (dataset external) has no data set of ours to be evaluated against"),
        })
    }
}

/// How the samples were obtained.
#[derive(Serialize, Default)]
struct Sampling {
    /// `model` or the .npy file.
    source: String,
    sampler: Option<String>,
    steps: Option<usize>,
    /// Network evaluations per sample.
    nfe: Option<usize>,
    /// Wall-clock seconds of the sampling.
    seconds: Option<f64>,
    samples_per_second: Option<f64>,
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
    /// Samples that fail the per-sample rule, and their share.
    failures: usize,
    failure_share: f64,
    /// The same rule on the `n` test images: its false-positive rate.
    test_failures: usize,
    test_failure_share: f64,
    /// The rule's threshold on the mean absolute difference of neighbouring pixels.
    failure_max_roughness: f64,
    #[serde(flatten)]
    floor: FloorSpread,
    classifier: String,
    classifier_test_accuracy: f64,
    sampling: Sampling,
    /// Wall-clock seconds of the whole evaluation (loading, sampling, classifier, floor).
    seconds: f64,
}

/// `--floor-draws`: every draw's Frechet distance and their spread.
#[derive(Serialize, Default)]
struct FloorSpread {
    #[serde(skip_serializing_if = "Option::is_none")]
    floor_draws: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    floor_spread: Option<Spread>,
}

/// `--dataset NAME --floor-draws K` without samples.
#[derive(Serialize)]
struct FloorReport {
    kind: &'static str,
    dataset: String,
    n: usize,
    /// The first draw's Frechet distance (what an image report calls its floor).
    frechet_distance_floor: f64,
    #[serde(flatten)]
    floor: FloorSpread,
    test_failures: usize,
    test_failure_share: f64,
    failure_max_roughness: f64,
    classifier: String,
    seconds: f64,
}

/// The loaded `--model`.
enum Model {
    Mixture(MixtureFile),
    Net { net: LoadedNet, sde: Box<dyn Sde>, dataset: Dataset, variance: Variance, data_range: Option<[f64; 2]>, shape: Vec<usize> },
}

fn open_model(path: &Path, device: &Device) -> Result<Model> {
    let source = ModelSource::open(path)?;
    match &source {
        ModelSource::Mixture { file, .. } => Ok(Model::Mixture(file.clone())),
        ModelSource::Run { stored, .. } | ModelSource::Export { stored, .. } => Ok(Model::Net {
            net: source.net(device)?,
            sde: source.sde()?,
            dataset: stored.card.dataset,
            variance: stored.card.variance,
            data_range: stored.card.data_range(),
            shape: stored.card.shape.clone(),
        }),
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
    let started = Instant::now();
    if args.n < 2 {
        bail!("--n: expected at least 2 samples, found {}", args.n);
    }
    if args.batch == 0 {
        bail!("--batch: expected at least 1, found 0");
    }
    let device = Device::flex();
    let model = args.model.as_deref().map(|p| open_model(p, &device)).transpose()?;
    let target = match (&model, args.dataset) {
        (Some(Model::Mixture(file)), _) => Reference::Mixture(target(file).context("the mixture's target")?),
        (Some(Model::Net { dataset, shape, .. }), _) => Reference::of(*dataset, Some(shape))?,
        (None, Some(d)) => Reference::of(d, None)?,
        (None, None) => bail!("without --model, --dataset NAME is needed (mnist, fashion-mnist or a 2-D toy)"),
    };
    if args.floor_draws.is_some() && !matches!(target, Reference::Image(..)) {
        bail!("--floor-draws: expected an image data set (mnist or fashion-mnist), found {}", target.name());
    }
    let dim = target.dim();

    // The samples: read, drawn from the model, or none (`--floor-draws` alone).
    let drawn: Option<(Vec<f64>, Sampling)> = if let Some(path) = &args.samples {
        Some(read_samples(path, &target)?)
    } else if let Some(model) = &model {
        let kind = args.sampler.unwrap_or(SamplerConfig::default().kind());
        let (own, data_range) = match model {
            Model::Net { variance, data_range, .. } => (*variance, *data_range),
            Model::Mixture(_) => (Variance::Small, None),
        };
        let config = args.opts.config_for(kind, args.steps, own, data_range)?;
        Some(draw(model, &config, args, &target, &device)?)
    } else {
        None
    };
    let mut noise = NoiseSource::new(args.seed ^ 0xe7a1_5eed);

    match target {
        Reference::Image(kind, shape) => eval_images(kind, shape, drawn, args, &device, &mut noise, started),
        point_target => {
            let (samples, sampling) = drawn.context("a 2-D target needs --model or --samples")?;
            let n = samples.len() / dim;
            let fresh = |noise: &mut NoiseSource| match &point_target {
                Reference::Mixture(m) => m.sample(n, noise),
                Reference::Toy(t) => t.sample(n, noise),
                Reference::Image(..) => unreachable!("handled above"),
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
                print_sampling(&report.sampling);
            }
            Ok(())
        }
    }
}

/// `--samples`: `[n, dim]` finite values.
fn read_samples(path: &Path, target: &Reference) -> Result<(Vec<f64>, Sampling)> {
    let dim = target.dim();
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
    Ok((a.data, Sampling { source: path.display().to_string(), ..Sampling::default() }))
}

/// The image metrics of `drawn` (or the floor alone), against `n` test images drawn with `noise`.
#[allow(clippy::too_many_arguments)]
fn eval_images(
    kind: DatasetKind,
    shape: [usize; 3],
    drawn: Option<(Vec<f64>, Sampling)>,
    args: &EvalArgs,
    device: &Device,
    noise: &mut NoiseSource,
    started: Instant,
) -> Result<()> {
    let dir = match &args.classifier {
        Some(d) => d.clone(),
        None => default_classifier(kind)?,
    };
    let (card, classifier) = load_classifier_dir(&dir, device).map_err(|e| anyhow!(e)).context("loading --classifier")?;
    if card.dataset != kind {
        bail!("--classifier {}: expected a {kind} classifier, found one for {}", dir.display(), card.dataset);
    }
    let test = ImageDataset::load(kind, Split::Test, args.data_dir.as_deref())?;
    let train = ImageDataset::load(kind, Split::Train, args.data_dir.as_deref())?;
    let n = drawn.as_ref().map_or(args.n, |(s, _)| s.len() / shape.iter().product::<usize>());
    let m = n.min(test.n);
    let stats = |x: &[f32]| classifier.stats(x, 500, device);
    let test_images = test.batch(&choose(test.n, m, noise));
    let reference = stats(&test_images);
    // The floor: `m` training images against the same test images, once or `--floor-draws` times.
    let floors: Vec<f64> = (0..args.floor_draws.unwrap_or(1))
        .map(|_| {
            let s = stats(&train.batch(&choose(train.n, m, noise)));
            metrics::frechet_distance(&s.features, &reference.features, s.dim)
        })
        .collect();
    let floor = match args.floor_draws {
        Some(_) => FloorSpread { floor_spread: Some(Spread::of(&floors)), floor_draws: Some(floors.clone()) },
        None => FloorSpread::default(),
    };
    let rule = FailureRule::for_dataset(kind);
    let test_failures = rule.count(&test_images, shape);

    let Some((samples, sampling)) = drawn else {
        let report = FloorReport {
            kind: "floor",
            dataset: kind.to_string(),
            n: m,
            frechet_distance_floor: floors[0],
            floor,
            test_failures: test_failures.failures,
            test_failure_share: test_failures.share(),
            failure_max_roughness: rule.max_roughness,
            classifier: dir.display().to_string(),
            seconds: started.elapsed().as_secs_f64(),
        };
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!("{m} {kind} training images vs {m} test images, classifier {}:", report.classifier);
            println!("  Frechet distance   {:.3}  (the first draw)", report.frechet_distance_floor);
            print_floor(&report.floor);
            println!("  failures           {} of {m} test images (rule: roughness above {})", report.test_failures, rule.max_roughness);
        }
        return Ok(());
    };
    let clamped: Vec<f32> = samples.iter().map(|&v| (v as f32).clamp(-1.0, 1.0)).collect();
    let generated = stats(&clamped);
    let failures = rule.count(&clamped, shape);
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
        frechet_distance_floor: floors[0],
        confidence,
        class_entropy_bits: entropy,
        class_entropy_max_bits: (generated.classes as f64).log2(),
        class_histogram: histogram,
        test_confidence,
        test_class_entropy_bits: test_entropy,
        failures: failures.failures,
        failure_share: failures.share(),
        test_failures: test_failures.failures,
        test_failure_share: test_failures.share(),
        failure_max_roughness: rule.max_roughness,
        floor,
        classifier: dir.display().to_string(),
        classifier_test_accuracy: card.test_accuracy,
        sampling,
        seconds: started.elapsed().as_secs_f64(),
    };
    print_image(&report, args.json)
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
        print_floor(&r.floor);
        println!(
            "  failures           {} ({:.2}%; test images: {}, {:.2}%; rule: roughness above {})",
            r.failures,
            100.0 * r.failure_share,
            r.test_failures,
            100.0 * r.test_failure_share,
            r.failure_max_roughness
        );
        println!("  confidence         {:.4}  (test images: {:.4})", r.confidence, r.test_confidence);
        println!("  class entropy      {:.4} bits of {:.4}  (test images: {:.4})", r.class_entropy_bits, r.class_entropy_max_bits, r.test_class_entropy_bits);
        println!("  class histogram    {:?}", r.class_histogram);
        print_sampling(&r.sampling);
    }
    Ok(())
}

fn print_floor(f: &FloorSpread) {
    if let (Some(s), Some(draws)) = (&f.floor_spread, &f.floor_draws) {
        println!("  floor spread       {} draws: mean {:.3}, sd {:.3}, min {:.3}, max {:.3}", s.count, s.mean, s.sd, s.min, s.max);
        println!("  floor draws        {}", draws.iter().map(|d| format!("{d:.2}")).collect::<Vec<_>>().join(" "));
    }
}

fn print_sampling(s: &Sampling) {
    if let (Some(sampler), Some(nfe), Some(seconds), Some(rate)) = (&s.sampler, s.nfe, s.seconds, s.samples_per_second) {
        println!("  sampling           {sampler}, {nfe} NFE per sample, {seconds:.2} s ({rate:.2} samples/s, {:.1} s per 1000)", 1000.0 / rate);
    }
}

/// Draws `args.n` samples from the model (of `reference`'s shape).
fn draw(model: &Model, config: &SamplerConfig, args: &EvalArgs, reference: &Reference, device: &Device) -> Result<(Vec<f64>, Sampling)> {
    let started = Instant::now();
    let dim = reference.dim();
    let mut sampling = Sampling { source: "model".into(), sampler: Some(config.kind().to_string()), steps: Some(config.steps()), ..Sampling::default() };
    let data = match (model, reference) {
        (Model::Mixture(file), _) => {
            let s = scorediff::eval::sample_mixture(file, config, args.n, args.seed, device)?;
            sampling.nfe = Some(s.nfe);
            s.data
        }
        (Model::Net { net: LoadedNet::Point(mlp), sde, .. }, _) => {
            let s = sample_model(mlp, sde.as_ref(), config, [args.n, dim], args.seed, device);
            sampling.nfe = Some(s.nfe);
            s.data
        }
        (Model::Net { net: LoadedNet::Image(unet), sde, .. }, &Reference::Image(_, [c, h, w])) => {
            let noise = NoiseSource::new(args.seed);
            let bar = progress_bar("{msg} [{bar:40}] {pos}/{len} steps ({elapsed}, eta {eta})");
            let drawn = draw_batches(
                config,
                sde.as_ref(),
                args.n,
                args.batch,
                |rows| [rows, c, h, w],
                |_, _| Ok::<_, anyhow::Error>(ByRef(unet)),
                &noise,
                device,
                |event| {
                    match event {
                        BatchEvent::Start { batch, batches, .. } => bar.set_message(format!("{} batch {}/{batches}", config.kind(), batch + 1)),
                        BatchEvent::Step { batch, batches, progress: (k, total), .. } => {
                            bar.set_length((batches * total) as u64);
                            bar.set_position((batch * total + k) as u64);
                        }
                        BatchEvent::Output { .. } => {}
                    }
                    Ok(())
                },
            )?;
            bar.finish_and_clear();
            // Every sample of a batch sees each of its network evaluations: the count per
            // sample is the batch's, not the sum over batches.
            sampling.nfe = Some(drawn.nfe_per_sample);
            drawn.values.into_iter().map(f64::from).collect()
        }
        (Model::Net { net: LoadedNet::Image(_), .. }, _) => bail!("model: an image U-Net for a data set of points"),
        (Model::Net { net: LoadedNet::Diffusers(_), .. }, _) => bail!("model: an imported diffusers-unet2d is not evaluated yet"),
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        bail!("{} with {} steps produced a non-finite value at sample {} (try more --steps)", config.kind(), config.steps(), i / dim);
    }
    let seconds = started.elapsed().as_secs_f64();
    sampling.seconds = Some(seconds);
    sampling.samples_per_second = Some((data.len() / dim) as f64 / seconds);
    Ok((data, sampling))
}
