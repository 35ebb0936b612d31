//! The weights shipped under `www/models/` load into the current architecture (strict
//! Burnpack loading: a renamed, added or reshaped parameter fails), their cards agree with the
//! weights (parameter count, shape, SHA-256), and the shipped 2-D models still sample their toy
//! distributions.
//!
//! Threshold for the toys (as in `train.rs`): the energy distance of 1000 DDIM samples to
//! fresh data must be below a quarter of that of the data's best Gaussian fit.
//!
//! The MNIST models must sample digits: on 16 ancestral samples (50 steps, each model with its
//! own variance) the shipped classifier must be confident (mean max-softmax above 0.7; a
//! uniform guess gives 0.1, both models measured above 0.9 on 64 samples, and a max-softmax
//! lies in [0.1, 1], so its standard deviation is at most
//! 0.45 and the mean of 16 has a standard error of at most 0.11: 0.7 is two of them below) and
//! not collapse onto few classes (class-histogram entropy above 2 bits; 16 draws from ten equally likely classes give
//! about 2.9 bits, one class 0).
//!
//! The Fashion-MNIST model must sample clothes, judged the same way by the shipped
//! Fashion-MNIST classifier (89% test accuracy, so less sure of itself than the MNIST one: 0.93
//! on real test images): mean confidence above 0.6, which is two standard errors of a
//! 16-sample mean (0.11 each, as above) under the 0.83 it gives 64 of the model's ancestral
//! samples (BENCHMARKS.md), and the same 2-bit entropy floor.

use scorediff::burn::tensor::{Device, Tensor};
use scorediff::data::Toy;
use scorediff::eval::sample_model;
use scorediff::export::{LoadedNet, read_dir, sha256_hex};
use scorediff::metrics::{energy_distance, histogram_entropy_bits, mean_max_softmax};
use scorediff::model::ScoreFn;
use scorediff::model::ScoreModel;
use scorediff::noise::NoiseSource;
use scorediff::sampler::sample;
use scorediff::sampler::{SamplerConfig, SamplerKind, SamplerOptions};
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
        assert!(stored.card.steps_trained > 0 && !stored.card.command.is_empty(), "{name}: the card must record how it was trained");
        match &net {
            LoadedNet::Image(unet) => {
                let x = Tensor::<4>::zeros([2, 1, 28, 28], &device);
                let out = ScoreModel::forward(unet, x, &[0.5, 0.5]);
                assert_eq!(out.dims(), [2, 1, 28, 28], "{name}");
                let values = out.into_data().try_to_vec::<f32>().unwrap();
                assert!(values.iter().all(|v| v.is_finite()), "{name}: non-finite output");
            }
            LoadedNet::Point(_) => {}
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
        let ours = energy_distance(&samples.data, &data, 2);
        let fit = energy_distance(&gaussian_fit(&toy.sample(N, &mut noise), N, &mut noise), &data, 2);
        println!("{}: energy distance ours {ours:.5}, gaussian fit {fit:.5}", toy.name());
        assert!(ours < 0.25 * fit, "{}: ours {ours} vs gaussian fit {fit}", toy.name());
    }
}

/// Each shipped MNIST model, sampled with its own variance (learned for `mnist-hybrid`).
#[test]
fn the_shipped_mnist_models_sample_digits() {
    let mnist = ["mnist", "mnist-hybrid"];
    assert!(models_dir().join("mnist/model.json").is_file(), "www/models/mnist is the page's default model");
    for name in mnist.into_iter().filter(|n| models_dir().join(n).join("model.json").is_file()) {
        samples_classes(name, "classifier-mnist", 0.7);
    }
}

/// Mean max-softmax that the Fashion-MNIST classifier must give 16 samples of the shipped
/// Fashion-MNIST model (see the module comment).
const FASHION_CONFIDENCE: f64 = 0.6;

#[test]
fn the_shipped_fashion_mnist_model_samples_clothes() {
    assert!(models_dir().join("fashion-mnist/model.json").is_file(), "www/models/fashion-mnist is shipped");
    samples_classes("fashion-mnist", "classifier-fashion-mnist", FASHION_CONFIDENCE);
}

/// 16 ancestral samples (50 steps) of the model `name`, with its own variance, must make the
/// ten-class `classifier` confident on average (above `min_confidence`) and spread over the
/// classes (histogram entropy above 2 bits).
fn samples_classes(name: &str, classifier: &str, min_confidence: f64) {
    let dir = models_dir().join(name);
    let device = Device::flex();
    let stored = read_dir(&dir).unwrap();
    let LoadedNet::Image(unet) = stored.load(&device).unwrap() else { panic!("{name}: expected a U-Net") };
    let sde = stored.card.sde().unwrap();
    let f = ScoreFn::new(&unet, sde.as_ref());
    let n = 16;
    let config = SamplerConfig { options: SamplerOptions::Ancestral { variance: stored.card.variance }, ..SamplerConfig::new(SamplerKind::Ancestral, 50) };
    let x = sample(&config, &f, [n, 1, 28, 28], &mut NoiseSource::new(3), &device, |_, _, _| {});
    let (_, classifier) = load_classifier_dir(&models_dir().join(classifier), &device).unwrap();
    let logits: Vec<f64> = classifier.forward(x, None).into_data().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect();
    let confidence = mean_max_softmax(&logits, 10);
    let mut counts = [0usize; 10];
    for row in logits.chunks(10) {
        counts[(0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap()] += 1;
    }
    let entropy = histogram_entropy_bits(&counts);
    println!("{name}: classifier confidence {confidence:.3}, class entropy {entropy:.3} bits, histogram {counts:?}");
    assert!(confidence > min_confidence, "{name} samples do not look like the data set's classes: confidence {confidence} <= {min_confidence}");
    assert!(entropy > 2.0, "{name} samples collapse onto few classes: {counts:?}");
}
