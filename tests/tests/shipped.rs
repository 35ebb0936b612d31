//! The weights shipped under `www/models/` load into the current architecture (strict
//! Burnpack loading: a renamed, added or reshaped parameter fails), their cards agree with the
//! weights (parameter count, shape, SHA-256), and the shipped 2-D models still sample their toy
//! distributions.
//!
//! Threshold for the toys (as in `train.rs`): the energy distance of 1000 DDIM samples to
//! fresh data must be below a quarter of that of the data's best Gaussian fit.
//!
//! The image models (MNIST with a fixed and with a learned variance, Fashion-MNIST) must sample
//! digits and clothes for every seed, with the page's fast sampler as with the slow one. Each is
//! sampled with DPM-Solver++(2M) at 10 steps (`DPM_N` samples) and with the ancestral sampler at
//! 50 steps and the model's own variance (`ANCESTRAL_N` samples), and each sample is judged on
//! its own by the data set's failure rule (`scorediff::metrics::FailureRule`: a sample fails
//! when its mean absolute difference of neighbouring pixels is beyond that of real images, as
//! noise blobs and speckle are; it fails no MNIST image and 0.03% of Fashion-MNIST's). A mean
//! over the batch (the classifier's confidence, as this test used to check) hides failures: the
//! MNIST classifier is more confident on the noise blobs of today's models than on their digits.
//!
//! The thresholds come from the binomial sampling error of a failure count: the target is under
//! 1% failures (issue 17's target for DPM-Solver++(2M) at 10 steps), and a run may have at most
//! `k` failures, the smallest count that a model with exactly 1% failures exceeds with
//! probability under 0.5% ([`max_failures`]): 4 of 100 DPM-Solver++ samples, 3 of 48 ancestral
//! ones. So a model at the target fails a check with probability 0.34% (DPM-Solver++) and
//! 0.14% (ancestral), and a model with 10% failures passes with probability 2.4% and 28%. The
//! models shipped on 2026-12-01 (2300 training steps) fail: 48 of 100 DPM-Solver++ samples of
//! `mnist` fail, 39 of `mnist-hybrid`, 27 of `fashion-mnist` (0 of 48 ancestral samples each);
//! `native-cli eval` finds 44% of 2000 for `mnist`. Their retrained successors (v-prediction with
//! Min-SNR-5, issue 17) fail 0 of 100 and 0 of 48 each.
//!
//! The ancestral samples must also spread over the classes (class-histogram entropy by the
//! shipped classifier above 2 bits; 48 draws from ten equally likely classes give about 3.2
//! bits, one class 0).

use scorediff::burn::tensor::{Device, Tensor};
use scorediff::data::Toy;
use scorediff::eval::sample_model;
use scorediff::export::{LoadedNet, read_dir, sha256_hex};
use scorediff::metrics::{FailureRule, class_histogram, energy_distance, histogram_entropy_bits};
use scorediff::model::ScoreFn;
use scorediff::model::ScoreModel;
use scorediff::noise::NoiseSource;
use scorediff::sampler::sample;
use scorediff::sampler::{SamplerConfig, SamplerKind, SamplerOptions};
use scorediff::train::Dataset;
use scorediff::train::classifier::{CARD_FILE, ClassifierCard, WEIGHTS_FILE as CLASSIFIER_WEIGHTS, load_classifier_dir};
use scorediff_tests::gaussian_fit;
use std::path::PathBuf;

const N: usize = 1000;

/// The image score models that may be shipped: MNIST with `L_simple` (fixed variance) and with
/// `L_hybrid` (learned variance), Fashion-MNIST.
const IMAGE_MODELS: [&str; 3] = ["mnist", "mnist-hybrid", "fashion-mnist"];

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../www/models")
}

/// The shipped score models: one per toy (required), and the image models present.
fn shipped() -> Vec<String> {
    let mut names: Vec<String> = Toy::ALL.iter().map(|t| t.name().to_string()).collect();
    names.extend(IMAGE_MODELS.into_iter().filter(|n| models_dir().join(n).join("model.json").is_file()).map(String::from));
    names
}

#[test]
fn every_shipped_model_loads_and_matches_its_card() {
    let device = Device::flex();
    for name in shipped() {
        let dir = models_dir().join(&name);
        let stored = read_dir(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let net = stored.load(&device).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(net.num_params(), stored.card.parameters, "{name}: parameters in model.json vs weights");
        assert!(net.takes_shape(&stored.card.shape), "{name}: shape in model.json {:?} vs network", stored.card.shape);
        // An imported checkpoint (dataset `external`) was trained elsewhere: its card records
        // the import command and 0 steps trained here.
        let imported = matches!(net, LoadedNet::Diffusers(_));
        assert!((imported || stored.card.steps_trained > 0) && !stored.card.command.is_empty(), "{name}: the card must record how it was trained");
        match &net {
            LoadedNet::Image(unet) => {
                let x = Tensor::<4>::zeros([2, 1, 28, 28], &device);
                let out = ScoreModel::forward(unet, x, &[0.5, 0.5]);
                assert_eq!(out.dims(), [2, 1, 28, 28], "{name}");
                let values = out.into_data().try_to_vec::<f32>().unwrap();
                assert!(values.iter().all(|v| v.is_finite()), "{name}: non-finite output");
            }
            LoadedNet::Point(_) | LoadedNet::Diffusers(_) => {}
        }
    }
}

/// Every shipped card, of a score model or a classifier, carries the SHA-256 of its weights
/// file (what the page keys its cached copy by, and what loading checks): weights retrained
/// without exporting the card again fail here.
#[test]
fn every_shipped_card_carries_its_weights_sha256() {
    for name in shipped() {
        let stored = read_dir(&models_dir().join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let found = sha256_hex(&stored.weights);
        assert_eq!(
            stored.card.weights_sha256.as_deref(),
            Some(found.as_str()),
            "{name}: `weights_sha256` of model.json vs the SHA-256 of {}",
            stored.card.weights
        );
    }
    let mut classifiers = 0;
    for entry in std::fs::read_dir(models_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join(CARD_FILE)) else { continue };
        let card: ClassifierCard = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let found = sha256_hex(&std::fs::read(dir.join(CLASSIFIER_WEIGHTS)).unwrap());
        assert_eq!(
            card.weights_sha256.as_deref(),
            Some(found.as_str()),
            "{}: `weights_sha256` of {CARD_FILE} vs the SHA-256 of {CLASSIFIER_WEIGHTS}",
            dir.display()
        );
        load_classifier_dir(&dir, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
        classifiers += 1;
    }
    assert!(classifiers >= 2, "the MNIST and Fashion-MNIST classifiers are shipped (found {classifiers})");
}

#[test]
fn the_shipped_toy_models_sample_their_distributions() {
    let device = Device::flex();
    for toy in Toy::ALL {
        let stored = read_dir(&models_dir().join(toy.name())).unwrap_or_else(|e| panic!("{}: {e}", toy.name()));
        let LoadedNet::Point(mlp) = stored.load(&device).unwrap() else { panic!("{}: expected an MLP", toy.name()) };
        let sde = stored.card.sde().unwrap();
        let samples = sample_model(&mlp, sde.as_ref(), &SamplerConfig::new(SamplerKind::Ddim, 100), [N, 2], 1, &device);
        let mut noise = NoiseSource::new(7);
        let data = toy.sample(N, &mut noise);
        let fitted = gaussian_fit(&toy.sample(N, &mut noise), N, &mut noise);
        if toy == Toy::Rings {
            // The four rings (radii 3, 2.25, 1.5, 0.75, no width) fill a disc, whose Gaussian
            // fit is close in energy distance (0.0018 at n = 1000, against 0.03 to 0.09 for the
            // other toys). What a model must get is the rings: the share of its samples within
            // 0.1 of one must beat the Gaussian fit's by 5 binomial standard errors.
            let near = |x: &[f64]| {
                let hits = x.chunks(2).filter(|p| [3.0, 2.25, 1.5, 0.75].iter().any(|r| (p[0].hypot(p[1]) - r).abs() < 0.1)).count();
                hits as f64 / (x.len() / 2) as f64
            };
            let (ours, fit) = (near(&samples.data), near(&fitted));
            let se = (fit * (1.0 - fit) / N as f64).sqrt();
            println!("rings: share within 0.1 of a ring ours {ours:.3}, gaussian fit {fit:.3} (se {se:.3})");
            assert!(ours > fit + 5.0 * se, "rings: share within 0.1 of a ring {ours} vs the gaussian fit's {fit} + 5 x {se}");
            continue;
        }
        let ours = energy_distance(&samples.data, &data, 2);
        let fit = energy_distance(&fitted, &data, 2);
        println!("{}: energy distance ours {ours:.5}, gaussian fit {fit:.5}", toy.name());
        assert!(ours < 0.25 * fit, "{}: ours {ours} vs gaussian fit {fit}", toy.name());
    }
}

/// DPM-Solver++(2M) samples (10 steps) per model.
const DPM_N: usize = 100;
/// Ancestral samples (50 steps) per model.
const ANCESTRAL_N: usize = 48;
/// The failure share a shipped model must stay under (module docs).
const TARGET_FAILURE_SHARE: f64 = 0.01;
/// The chance that a model exactly at the target fails one sampler's check.
const FALSE_ALARM: f64 = 0.005;

/// Each shipped MNIST model, the ancestral samples with its own variance (learned for
/// `mnist-hybrid`).
#[test]
fn the_shipped_mnist_models_sample_digits() {
    let mnist = ["mnist", "mnist-hybrid"];
    assert!(models_dir().join("mnist/model.json").is_file(), "www/models/mnist is the page's default model");
    let failed: Vec<String> =
        mnist.into_iter().filter(|n| models_dir().join(n).join("model.json").is_file()).flat_map(|name| samples_classes(name, "classifier-mnist")).collect();
    assert!(failed.is_empty(), "samples that fail one by one:\n{}", failed.join("\n"));
}

#[test]
fn the_shipped_fashion_mnist_model_samples_clothes() {
    assert!(models_dir().join("fashion-mnist/model.json").is_file(), "www/models/fashion-mnist is shipped");
    let failed = samples_classes("fashion-mnist", "classifier-fashion-mnist");
    assert!(failed.is_empty(), "samples that fail one by one:\n{}", failed.join("\n"));
}

/// The largest failure count `k` that `n` samples of a model failing with probability `p`
/// exceed with probability at most `alpha`: the smallest `k` with `P(X > k) <= alpha`,
/// `X ~ Binomial(n, p)`.
fn max_failures(n: usize, p: f64, alpha: f64) -> usize {
    let ln_choose = |k: usize| (1..=k).map(|i| ((n + 1 - i) as f64 / i as f64).ln()).sum::<f64>();
    let pmf = |k: usize| (ln_choose(k) + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln()).exp();
    let mut at_most = 0.0;
    (0..=n)
        .find(|&k| {
            at_most += pmf(k);
            1.0 - at_most <= alpha
        })
        .unwrap_or(n)
}

#[test]
fn max_failures_by_hand() {
    // n = 2, p = 0.5: P(X > 0) = 3/4, P(X > 1) = 1/4, P(X > 2) = 0.
    assert_eq!((max_failures(2, 0.5, 0.8), max_failures(2, 0.5, 0.5), max_failures(2, 0.5, 0.1)), (0, 1, 2));
    // The module docs' thresholds at p = 0.01: n = 100, P(X > 3) = 0.0184, P(X > 4) = 0.0034;
    // n = 48, P(X > 2) = 0.0124, P(X > 3) = 0.0014.
    assert_eq!((max_failures(DPM_N, TARGET_FAILURE_SHARE, FALSE_ALARM), max_failures(ANCESTRAL_N, TARGET_FAILURE_SHARE, FALSE_ALARM)), (4, 3));
}

/// The model `name`'s DPM-Solver++(2M) samples (10 steps) and ancestral samples (50 steps, its
/// own variance) must each have few failures by the data set's rule (module docs), and the
/// ancestral ones must spread over the ten-class `classifier`'s classes (histogram entropy above
/// 2 bits). Returns what failed, one line each.
fn samples_classes(name: &str, classifier: &str) -> Vec<String> {
    let dir = models_dir().join(name);
    let device = Device::flex();
    let stored = read_dir(&dir).unwrap();
    let LoadedNet::Image(unet) = stored.load(&device).unwrap() else { panic!("{name}: expected a U-Net") };
    let sde = stored.card.sde().unwrap();
    let f = ScoreFn::new(&unet, sde.as_ref());
    let Dataset::Image(kind) = stored.card.dataset else { panic!("{name}: expected an image data set") };
    let rule = FailureRule::for_dataset(kind);
    let (_, classifier) = load_classifier_dir(&models_dir().join(classifier), &device).unwrap();
    let runs = [
        (SamplerConfig::new(SamplerKind::DpmSolver2m, 10), DPM_N, 4),
        (
            SamplerConfig { options: SamplerOptions::Ancestral { variance: stored.card.variance }, ..SamplerConfig::new(SamplerKind::Ancestral, 50) },
            ANCESTRAL_N,
            3,
        ),
    ];
    let &[c, h, w] = stored.card.shape.as_slice() else { panic!("{name}: expected a [c, h, w] image shape, found {:?}", stored.card.shape) };
    let mut failed = Vec::new();
    for (config, n, seed) in runs {
        let x = sample(&config, &f, [n, c, h, w], &mut NoiseSource::new(seed), &device, |_, _, _| {});
        let logits = classifier.forward(x.clone(), None);
        let images = x.into_data().try_to_vec::<f32>().unwrap();
        let count = rule.count(&images, [c, h, w]);
        let allowed = max_failures(n, TARGET_FAILURE_SHARE, FALSE_ALARM);
        let logits: Vec<f64> = logits.into_data().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect();
        let predicted: Vec<usize> = logits.chunks(10).map(|r| (0..10).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap()).collect();
        let histogram = class_histogram(&predicted, 10);
        let entropy = histogram_entropy_bits(&histogram);
        let variance = match config.options {
            SamplerOptions::Ancestral { variance } => format!(", {variance} variance"),
            _ => String::new(),
        };
        let line = format!(
            "{name}, {} at {} steps{variance}: {} of {n} samples fail (at most {allowed}), class entropy {entropy:.3} bits, histogram {histogram:?}",
            config.kind(),
            config.steps(),
            count.failures
        );
        println!("{line}");
        if count.failures > allowed {
            failed.push(format!("{line} (rule: roughness above {})", rule.max_roughness));
        }
        if config.kind() == SamplerKind::Ancestral && entropy <= 2.0 {
            failed.push(format!("{name}: ancestral samples collapse onto few classes: {histogram:?}"));
        }
    }
    failed
}
