//! The page samples a model trained with a learned variance (Nichol & Dhariwal 2021) with that
//! variance unless the request names another, as `native-cli sample` does; a learned variance
//! asked of a fixed-variance model is refused with a message naming both.
#![cfg(not(target_arch = "wasm32"))]

use scorediff::burn::tensor::Device;
use scorediff::data::mnist::DatasetKind;
use scorediff::export::{FORMAT_VERSION, ModelCard, WeightsDType, burnpack_bytes_as};
use scorediff::nn::UNetConfig;
use scorediff::sampler::Variance;
use scorediff::sde::{ScheduleKind, SdeConfig};
use scorediff::train::{Dataset, Network};
use scorediff_web::engine::{ImageModel, Target, parse_image_request, read_sync};
use std::rc::Rc;

/// A random tiny U-Net on a 100-level DDPM, with (`learned`) or without a variance output.
fn model(variance: Variance) -> Rc<ImageModel> {
    let out = (variance == Variance::Learned).then_some(2);
    let config = UNetConfig::new().with_base_channels(8).with_channel_mult(vec![1, 2]).with_num_res_blocks(1).with_groups(4).with_out_channels(out);
    let device = Device::flex();
    device.seed(3);
    let net = config.init(&device);
    let card = ModelCard {
        format: FORMAT_VERSION,
        name: format!("tiny-{variance}"),
        dataset: Dataset::Image(DatasetKind::Mnist),
        network: Network::Unet(config),
        sde: SdeConfig::Ddpm { schedule: ScheduleKind::Linear, levels: 100 },
        variance,
        weights: "weights.bpk".into(),
        dtype: WeightsDType::F32,
        shape: vec![1, 28, 28],
        parameters: net.num_params(),
        steps_trained: 0,
        command: "random initialisation with seed 3 (web/tests/variance.rs)".into(),
    };
    let weights = burnpack_bytes_as(&net, WeightsDType::F32).unwrap();
    Rc::new(ImageModel::load(&card.to_json(), weights, Target::flex()).unwrap())
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
