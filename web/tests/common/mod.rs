//! What the native reference test (`reference.rs`) and the browser test (`browser.rs`) both
//! run: the same requests on the same fixture model with the same seeds, so the only difference
//! between their numbers is the backend's floating-point arithmetic.
#![allow(dead_code)]

use scorediff::burn::tensor::Device;
use scorediff::data::mnist::DatasetKind;
use scorediff::export::{FORMAT_VERSION, ModelCard, WeightsDType, burnpack_bytes_as};
use scorediff::nn::UNetConfig;
use scorediff::sampler::Variance;
use scorediff::sde::{ScheduleKind, SdeConfig};
use scorediff::train::{Dataset, Network};
use scorediff_web::engine::{ImageModel, ImageRequest, Target, parse_image_request};
use std::rc::Rc;

/// The fixture: a randomly initialised, class-conditional tiny U-Net exported as
/// `model.json` + `weights.bpk` (written by `reference.rs` when missing).
pub const FIXTURE: &str = "tests/fixtures/tiny-unet";
/// The reference numbers computed natively by `cargo test -p scorediff-web`.
pub const REFERENCE: &str = "tests/fixtures/reference.json";

/// A U-Net `config` initialised on Flex from `seed`, for 1x28x28 MNIST-shaped images on a
/// `levels`-level linear DDPM with `variance` and no data range (no x0 clipping): its card
/// named `name` (`note` says where it comes from) and its weights as burnpack bytes. The one
/// builder of the tests' random models.
pub fn random_unet(name: &str, config: UNetConfig, levels: usize, variance: Variance, seed: u64, note: &str) -> (ModelCard, Vec<u8>) {
    let device = Device::flex();
    device.seed(seed);
    let net = config.init(&device);
    let card = ModelCard {
        format: FORMAT_VERSION,
        name: name.into(),
        dataset: Dataset::Image(DatasetKind::Mnist),
        network: Network::Unet(config),
        sde: SdeConfig::ddpm(ScheduleKind::Linear, levels),
        variance,
        weights: "weights.bpk".into(),
        dtype: WeightsDType::F32,
        weights_sha256: None,
        shape: vec![1, 28, 28],
        data_range: None,
        parameters: net.num_params(),
        steps_trained: 0,
        command: format!("random initialisation with seed {seed} ({note})"),
    };
    let weights = burnpack_bytes_as(&net, WeightsDType::F32).expect("burnpack bytes of a fresh network");
    (card, weights)
}

/// [`random_unet`] loaded as the page loads a model, on Flex.
pub fn random_image_model(name: &str, config: UNetConfig, levels: usize, variance: Variance, seed: u64, note: &str) -> Rc<ImageModel> {
    let (card, weights) = random_unet(name, config, levels, variance, seed, note);
    Rc::new(ImageModel::load(&card.to_json(), weights, Target::flex()).expect("a random model loads"))
}

/// `(name, request)`: deterministic and stochastic samplers, one with guidance; few steps
/// (a software WebGPU takes seconds per evaluation).
pub fn image_cases() -> Vec<(&'static str, ImageRequest)> {
    let case = |json: &str| parse_image_request(json).expect("a valid request");
    vec![
        ("ddim-3", case(r#"{"sampler": {"kind": "ddim", "steps": 3}, "seed": 3, "batch": 2}"#)),
        ("ancestral-2-guided", case(r#"{"sampler": {"kind": "ancestral", "steps": 2}, "seed": 5, "batch": 2, "label": 1, "guidance": 1.5}"#)),
        ("dpm-solver2m-2", case(r#"{"sampler": {"kind": "dpm-solver2m", "steps": 2}, "seed": 7, "batch": 1}"#)),
    ]
}

/// `(name, request)` of the page's DPS (web/src/inverse.rs) on [`bar`], run where the page
/// computes: super-resolution and phase retrieval, few steps (each is an evaluation and a
/// backward pass).
pub fn dps_cases() -> Vec<(&'static str, &'static str)> {
    vec![
        ("dps-super-resolution-3", r#"{"task": "super-resolution", "factor": 4, "steps": 3, "seed": 2}"#),
        ("dps-phase-retrieval-2", r#"{"task": "phase-retrieval", "sampler": "ddim", "steps": 2, "seed": 4}"#),
    ]
}

/// A 1x28x28 image to measure: a vertical bar on black.
pub fn bar() -> Vec<f32> {
    (0..784).map(|i| if (12..16).contains(&(i % 28)) && (4..24).contains(&(i / 28)) { 1.0 } else { -1.0 }).collect()
}

/// The lab's first losses (Flex with autodiff: same code natively and in wasm).
pub const LAB_SETTINGS: &str = r#"{"toy": "two-moons", "seed": 1, "hidden": 32, "layers": 2, "batch": 128}"#;
/// Steps of lab training compared.
pub const LAB_STEPS: usize = 5;
/// The mixture whose exact score is compared (on the grid below at `t = 0.3`).
pub const MIXTURE: &str = include_str!("../../../examples/mixture-2d.json");

/// An 11 x 11 grid on `[-3, 3]^2`, `[x0, y0, x1, y1, ...]`.
pub fn grid() -> Vec<f32> {
    let mut xy = Vec::new();
    for j in 0..11 {
        for i in 0..11 {
            xy.push(-3.0 + 0.6 * i as f32);
            xy.push(-3.0 + 0.6 * j as f32);
        }
    }
    xy
}

/// The largest `|a - b| / (1 + |b|)`.
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f32::max)
}
