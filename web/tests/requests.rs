//! What the page's requests do beyond the sampler itself, on native Flex:
//! - a model trained with a learned variance (Nichol & Dhariwal 2021) samples with it unless
//!   the request names another, as `native-cli sample` does; a learned variance asked of a
//!   fixed-variance model is refused with a message naming both;
//! - inpainting takes RePaint's `resample` (U network evaluations per level but the last);
//!   sampling and interpolation refuse it;
//! - the sampler presets the page offers are requests it accepts, one network evaluation per
//!   step.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::random_image_model;
use scorediff::burn::tensor::Device;
use scorediff::export::{WeightsDType, burnpack_bytes_as};
use scorediff::nn::UNetConfig;
use scorediff::sampler::Variance;
use scorediff_web::engine::{IMAGE_PRESETS, ImageModel, Target, parse_image_request, read_sync};
use std::rc::Rc;

/// A random tiny U-Net on a 100-level DDPM, with (`learned`) or without a variance output.
fn model(variance: Variance) -> Rc<ImageModel> {
    let out = (variance == Variance::Learned).then_some(2);
    let config = UNetConfig::new().with_base_channels(8).with_channel_mult(vec![1, 2]).with_num_res_blocks(1).with_groups(4).with_out_channels(out);
    random_image_model(&format!("tiny-{variance}"), config, 100, variance, 3, "web/tests/requests.rs")
}

/// Four ancestral steps of two images from seed 5, `variance` named or not.
fn sample(model: &Rc<ImageModel>, variance: Option<&str>) -> Result<Vec<f32>, String> {
    let v = variance.map(|v| format!(r#", "variance": "{v}""#)).unwrap_or_default();
    let request = parse_image_request(&format!(r#"{{"sampler": {{"kind": "ancestral", "steps": 4{v}}}, "seed": 5, "batch": 2}}"#))?;
    let mut run = model.sample(&request)?;
    while run.step()? {}
    read_sync(run.state_tensor())
}

#[test]
fn a_learned_variance_model_samples_with_it_by_default() {
    let learned = model(Variance::Learned);
    assert_eq!(learned.info()["variance"], "learned");
    let default = sample(&learned, None).unwrap();
    assert_eq!(default, sample(&learned, Some("learned")).unwrap());
    for fixed in ["small", "large"] {
        let other = sample(&learned, Some(fixed)).unwrap();
        assert!(default.iter().zip(&other).any(|(a, b)| (a - b).abs() > 1e-3), "{fixed} variance gave the learned one's samples");
    }
}

#[test]
fn a_fixed_variance_model_keeps_its_own_and_refuses_a_learned_one() {
    let fixed = model(Variance::Small);
    assert_eq!(fixed.info()["variance"], "small");
    assert_eq!(sample(&fixed, None).unwrap(), sample(&fixed, Some("small")).unwrap());
    let err = sample(&fixed, Some("learned")).unwrap_err();
    assert!(err.contains("sampler.variance") && err.contains("no learned variance") && err.contains("small"), "{err}");
}

#[test]
fn inpainting_resamples_and_sampling_refuses_to() {
    let model = model(Variance::Small);
    let inpaint = |resample: usize| -> Result<(usize, Vec<f32>), String> {
        let request =
            parse_image_request(&format!(r#"{{"sampler": {{"kind": "ddim", "steps": 4, "eta": 1}}, "seed": 2, "batch": 1, "resample": {resample}}}"#))?;
        let y = vec![-1.0f32; 784];
        let mask: Vec<f32> = (0..784).map(|i| if (i / 28) < 14 { 1.0 } else { 0.0 }).collect();
        let mut run = model.inpaint(&request, &y, &mask)?;
        while run.step()? {}
        Ok((run.nfe(), read_sync(run.state_tensor())?))
    };
    let (nfe1, plain) = inpaint(1).unwrap();
    let (nfe3, resampled) = inpaint(3).unwrap();
    // Four levels; each but the last is taken three times.
    assert_eq!((nfe1, nfe3), (4, 4 + 3 * 2));
    // The known half is kept exactly; the hole differs once the steps are retaken.
    assert!(plain[..392].iter().chain(&resampled[..392]).all(|&v| v == -1.0));
    assert!(plain[392..].iter().zip(&resampled[392..]).any(|(a, b)| (a - b).abs() > 1e-3));
    let err = inpaint(0).unwrap_err();
    assert!(err.contains("resample") && err.contains("found 0"), "{err}");
    let request = parse_image_request(r#"{"sampler": {"kind": "ddim", "steps": 4}, "batch": 1, "resample": 2}"#).unwrap();
    let err = model.sample(&request).err().unwrap();
    assert!(err.contains("resample") && err.contains("only inpainting"), "{err}");
}

#[test]
fn the_page_presets_sample_one_evaluation_per_step() {
    let model = model(Variance::Small);
    for (kind, steps) in IMAGE_PRESETS {
        let request = parse_image_request(&format!(r#"{{"sampler": {{"kind": "{}", "steps": {steps}}}, "seed": 1, "batch": 1}}"#, kind.name())).unwrap();
        let mut run = model.sample(&request).unwrap();
        while run.step().unwrap() {}
        assert_eq!(run.nfe(), steps, "{}", kind.name());
    }
}

/// The page's backend names are serde's, and the runtime report carries them.
#[test]
fn backend_names_are_serdes() {
    use scorediff_web::engine::Backend;
    assert_eq!((Backend::WebGpu.name(), Backend::Flex.name()), ("webgpu".to_string(), "flex".to_string()));
    assert_eq!(Target::flex().backend.name(), "flex");
}

/// A request whose memory would not fit in the worker (issue 22) is refused with a message
/// naming the batch and the budget, and the model then serves a request that fits; so is a
/// grid of 10^12 steps.
#[test]
fn a_request_too_large_for_the_worker_is_refused() {
    let small = model(Variance::Small);
    let mut card = small.card.clone();
    card.shape = vec![1, 4096, 4096];
    let weights = burnpack_bytes_as(
        &UNetConfig::new().with_base_channels(8).with_channel_mult(vec![1, 2]).with_num_res_blocks(1).with_groups(4).init(&Device::flex()),
        WeightsDType::F32,
    )
    .unwrap();
    let big = Rc::new(ImageModel::load(&card.to_json(), weights, Target::flex()).unwrap());
    let request = parse_image_request(r#"{"sampler": {"kind": "ddim", "steps": 4}, "seed": 5, "batch": 64}"#).unwrap();
    let err = big.sample(&request).err().expect("64 images of 4096 x 4096 refused");
    assert!(err.contains("batch") && err.contains("MiB") && err.contains("1024"), "{err}");
    assert!(big.interpolate(&request, 1, 2, &[0.0, 0.5, 1.0]).is_err());
    assert!(sample(&small, None).is_ok());
    let err = parse_image_request(r#"{"sampler": {"kind": "ddim", "steps": 1000000000000}, "batch": 1}"#).unwrap_err();
    assert!(err.contains("Steps") && err.contains("at most 100000"), "{err}");
}
