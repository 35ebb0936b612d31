//! The page's Pitfalls block and its bad input, on native Flex (Song & Ermon 2019, sections 3.1
//! and 3.2):
//! - the Langevin settings the page runs are core's `sampler::mode_weights` for the mixture's
//!   SDE, and the component shares of the page's particles (the worker's `particles` run) are
//!   those `tests/tests/mode_weights.rs` judges: annealed within 4 standard errors, plain not;
//! - a score error is measured against a mixture only, and names a wrong length;
//! - the lab trains on a mixture file's samples under its SDE;
//! - inpainting refuses a mask with nothing erased and one with everything erased, by name;
//!   a request's negative seed or fractional batch is named.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::random_image_model;
use scorediff::nn::UNetConfig;
use scorediff::sampler::{SamplerSpec, Variance};
use scorediff_web::engine::{Lab, PointModel, parse_image_request, read_sync};
use std::rc::Rc;

const MIXTURE: &str = include_str!("../../www/models/mixtures/pitfalls.json");

/// The page's particles of one of the contrast's runs, as the worker's `particles` request.
fn particles(model: &Rc<PointModel>, which: &str) -> Vec<f32> {
    let settings = model.langevin_contrast();
    let spec: SamplerSpec = serde_json::from_value(settings[which].clone()).unwrap();
    let n = settings["particles"].as_u64().unwrap() as usize;
    let mut run = model.sample(&spec.build().unwrap(), n, 0).unwrap();
    while run.step().unwrap() {}
    read_sync(run.state_tensor()).unwrap()
}

#[test]
fn the_page_contrast_keeps_and_loses_the_weights() {
    let model = Rc::new(PointModel::mixture(MIXTURE).unwrap());
    let annealed = model.component_shares(&particles(&model, "annealed")).unwrap();
    let plain = model.component_shares(&particles(&model, "plain")).unwrap();
    assert_eq!((annealed.n, plain.n), (1000, 1000));
    assert!(annealed.max_abs_z() < 4.0, "{annealed:?}");
    assert!(plain.shares[0].z.abs() > 4.0, "{plain:?}");
}

#[test]
fn score_error_and_the_lab_on_a_mixture() {
    let mixture = PointModel::mixture(MIXTURE).unwrap();
    let xy = [5.0f32, 5.0, 0.0, 0.0];
    let exact = read_sync(mixture.field(0.3, &xy).unwrap().reshape([4])).unwrap();
    let e = mixture.score_error(0.3, &xy, &exact).unwrap();
    assert!(e.relative_error.iter().all(|&v| v < 1e-4), "{:?}", e.relative_error);
    assert!(mixture.score_error(0.3, &xy, &exact[..2]).unwrap_err().contains("`learned`"));
    assert!(mixture.score_error(0.0, &xy, &exact).unwrap_err().starts_with("t:"));

    let settings = serde_json::json!({ "mixture": MIXTURE, "hidden": 16, "layers": 1, "batch": 64, "seed": 0 }).to_string();
    let mut lab = Lab::new(&settings).unwrap();
    let losses = lab.train(3).unwrap();
    assert!(losses.len() == 3 && losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let mlp = lab.snapshot(false).unwrap();
    assert!((mlp.sde().prior_std() - 20.0).abs() < 1e-9, "the lab trains under the mixture file's SDE (VE up to 20)");
    assert!(mlp.component_shares(&xy).unwrap_err().contains("needs an analytic mixture"));
    let bad = serde_json::json!({ "mixture": "{\"weights\": [1]}" }).to_string();
    assert!(Lab::new(&bad).err().unwrap().starts_with("mixture file:"));
}

#[test]
fn an_empty_canvas_and_bad_numbers_are_named() {
    let config = UNetConfig::new().with_base_channels(8).with_channel_mult(vec![1, 2]).with_num_res_blocks(1).with_groups(4);
    let model = random_image_model("tiny", config, 100, Variance::Small, 3, "web/tests/pitfalls.rs");
    let request = parse_image_request(r#"{"sampler": {"kind": "ddim", "steps": 2}, "batch": 1}"#).unwrap();
    let blank = vec![-1.0f32; 784];
    let err = |mask: &[f32]| model.inpaint(&request, &blank, mask).err().unwrap();
    assert!(err(&[1.0; 784]).contains("nothing is erased"));
    assert!(err(&[0.0; 784]).contains("everything is erased"));
    let hole: Vec<f32> = (0..784).map(|i| if i < 392 { 1.0 } else { 0.0 }).collect();
    assert!(model.inpaint(&request, &blank, &hole).is_ok());
    for (json, field) in [(r#"{"seed": -1}"#, "seed"), (r#"{"batch": 2.5}"#, "batch"), (r#"{"sampler": {"kind": "ddim", "steps": -3}}"#, "Steps")] {
        let e = parse_image_request(json).err().unwrap();
        assert!(e.starts_with(&format!("{field}: expected a whole number")), "{json}: {e}");
    }
}
