//! A run split into slices (`first`, `batch`), as the page's parallel workers split it, draws
//! the images one batch would: every image has its own noise (`NoiseSource::for_samples`).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::FIXTURE;
use scorediff_web::engine::{ImageModel, Target, parse_image_request, read_sync};
use std::path::Path;
use std::rc::Rc;

fn images(model: &Rc<ImageModel>, kind: &str, first: usize, batch: usize) -> Vec<f32> {
    let r = parse_image_request(&format!(r#"{{"sampler": {{"kind": "{kind}", "steps": 3}}, "seed": 9, "first": {first}, "batch": {batch}}}"#)).unwrap();
    let mut run = model.sample(&r).unwrap();
    while run.step().unwrap() {}
    read_sync(run.state_tensor()).unwrap()
}

#[test]
fn slices_of_a_run_are_the_run() {
    let dir = Path::new(FIXTURE);
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let model = Rc::new(ImageModel::load(&json, std::fs::read(dir.join("weights.bpk")).unwrap(), Target::flex()).unwrap());
    for kind in ["ancestral", "ddim"] {
        let whole = images(&model, kind, 0, 5);
        let split = [images(&model, kind, 0, 2), images(&model, kind, 2, 3)].concat();
        let d = whole.iter().zip(&split).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(d < 1e-4, "{kind}: images 0..5 in one batch and in slices 0..2, 2..5 differ by {d}");
        // Another slice is other images.
        assert!(images(&model, kind, 1, 2) != whole[..2 * 784], "{kind}: first is ignored");
    }
}
