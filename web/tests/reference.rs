//! The native reference for the browser test: runs the shared cases (`common`) on native Flex
//! and checks them against `tests/fixtures/reference.json`, which `browser.rs` compares Flex in
//! wasm and WebGPU against. The fixture model and the reference are written only with
//! `SCOREDIFF_BLESS=1` (`SCOREDIFF_BLESS=1 cargo test -p scorediff-web --test reference`); a
//! missing one fails with that command, and a change in the numbers fails here first.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::*;
use scorediff::nn::UNetConfig;
use scorediff::sampler::Variance;
use scorediff_web::engine::{ImageModel, Lab, PointModel, Target, read_sync};
use scorediff_web::inverse::InverseProblem;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

fn write_fixture(dir: &Path) {
    let config =
        UNetConfig::new().with_base_channels(8).with_channel_mult(vec![1, 2]).with_num_res_blocks(1).with_groups(4).with_dropout(0.0).with_num_classes(Some(2));
    let (card, weights) = random_unet("tiny-unet", config, 1000, Variance::Small, 42, "web/tests/reference.rs");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("model.json"), card.to_json()).unwrap();
    std::fs::write(dir.join("weights.bpk"), weights).unwrap();
}

/// Every number the browser test compares, by case name.
fn compute() -> BTreeMap<String, Vec<f32>> {
    let dir = Path::new(FIXTURE);
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let weights = std::fs::read(dir.join("weights.bpk")).unwrap();
    let model = Rc::new(ImageModel::load(&json, weights, Target::flex()).unwrap());
    let mut out = BTreeMap::new();
    for (name, request) in image_cases() {
        let mut run = model.sample(&request).unwrap();
        while run.step().unwrap() {}
        out.insert(name.to_string(), read_sync(run.state_tensor()).unwrap());
    }
    for (name, request) in dps_cases() {
        let mut run = InverseProblem::new(&model, request, &bar()).unwrap().start().unwrap();
        while run.step().unwrap() {}
        out.insert(name.to_string(), read_sync(run.state_tensor()).unwrap());
    }
    let mixture = PointModel::mixture(MIXTURE).unwrap();
    let field = mixture.field(0.3, &grid()).unwrap();
    out.insert("mixture-field".into(), read_sync(field.reshape([grid().len()])).unwrap());
    let mut lab = Lab::new(LAB_SETTINGS).unwrap();
    out.insert("lab-losses".into(), lab.train(LAB_STEPS).unwrap().into_iter().map(|v| v as f32).collect());
    out
}

#[test]
fn native_flex_matches_the_reference_file() {
    let dir = Path::new(FIXTURE);
    let bless = std::env::var("SCOREDIFF_BLESS").is_ok_and(|v| v == "1");
    if bless {
        write_fixture(dir);
    }
    let path = Path::new(REFERENCE);
    // A missing fixture is an error, not a reason to write one and pass without comparing.
    for file in [dir.join("model.json"), dir.join("weights.bpk"), path.to_path_buf()].iter().filter(|_| !bless) {
        assert!(
            file.exists(),
            "web/{} is missing: write the fixture model and the reference with `SCOREDIFF_BLESS=1 cargo test -p scorediff-web --test reference` and commit web/tests/fixtures/",
            file.display()
        );
    }
    let got = compute();
    for (name, v) in &got {
        assert!(v.iter().all(|x| x.is_finite()), "{name}: non-finite values");
    }
    // The cases differ from one another: a run that ignored its seed or sampler would not.
    assert!(max_rel_diff(&got["ddim-3"][..784], &got["ancestral-2-guided"][..784]) > 1e-2);
    if bless {
        std::fs::write(path, serde_json::to_string(&got).unwrap()).unwrap();
        return;
    }
    let want: BTreeMap<String, Vec<f32>> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "cases differ from {REFERENCE}");
    for (name, w) in &want {
        // Same code, but the file may come from another x86 CPU: Flex's kernels take the host's
        // widest vectors (AVX2 or AVX-512), which changes the order of sums, and two guided
        // ancestral steps (w = 1.5) amplify that (measured: 1.47e-4 on an AVX-512 machine
        // against the file written on an AVX2 one). So the bound of Flex in wasm (browser.rs),
        // 5e-4 of `1 + |x|`; a wrong kernel, layout or seed differs by order 1.
        let d = max_rel_diff(&got[name], w);
        assert!(d < 5e-4, "{name}: native Flex differs from {REFERENCE} by {d} (run with SCOREDIFF_BLESS=1 if the change is intended)");
    }
}
