//! The browser test (`wasm-pack test --headless --chrome --release` in `web/`, with
//! `webdriver.json` enabling WebGPU): runs the shared cases (`common`) on Flex in wasm and on
//! WebGPU, and compares both with the numbers native Flex wrote to
//! `tests/fixtures/reference.json` and with each other.
//!
//! Tolerances: Flex in wasm runs the same kernels as native Flex, but with 128-bit SIMD instead
//! of the host's wider vectors, which changes the order of sums (measured: 1.65e-4 after two
//! guided ancestral steps, where guidance `w = 1.5` amplifies differences), so `5e-4`; WebGPU
//! computes in f32 with other reduction orders and fused multiply-adds through samplers whose
//! errors compound, so `2e-3` of `1 + |x|`. A wrong kernel, layout or seed gives differences of
//! order 1.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use scorediff_web::engine::{Backend, ImageModel, Lab, PointModel, Target};
use scorediff_web::inverse::InverseProblem;
use std::collections::BTreeMap;
use std::rc::Rc;
use wasm_bindgen_test::*;

// In a dedicated worker, as the page runs the model: a long synchronous step (Flex in wasm, or a
// software WebGPU adapter) then cannot stall the page the test runner polls through the driver
// (on the main thread, ChromeDriver gave up after 30 s: "Timed out receiving message from
// renderer").
wasm_bindgen_test_configure!(run_in_dedicated_worker);

const MODEL_JSON: &str = include_str!("fixtures/tiny-unet/model.json");
const WEIGHTS: &[u8] = include_bytes!("fixtures/tiny-unet/weights.bpk");
const REFERENCE_JSON: &str = include_str!("fixtures/reference.json");

async fn read(t: scorediff_web::scorediff::burn::tensor::Tensor<1>) -> Vec<f32> {
    t.into_data_async().await.expect("read back").try_to_vec::<f32>().expect("f32")
}

/// The image cases on `target`.
async fn image_numbers(target: Target) -> BTreeMap<String, Vec<f32>> {
    let model = Rc::new(ImageModel::load(MODEL_JSON, WEIGHTS.to_vec(), target.clone()).expect("fixture loads"));
    let mut out = BTreeMap::new();
    for (name, request) in image_cases() {
        let mut run = model.sample(&request).expect("run starts");
        while run.step().expect("step") {}
        out.insert(name.to_string(), read(run.state_tensor()).await);
    }
    // DPS where the page computes: on WebGPU its autodiff and on-device step sizes.
    for (name, request) in dps_cases() {
        let mut run = InverseProblem::new(&model, request, &bar()).expect("measures").start().expect("run starts");
        assert_eq!(run.backend(), target.backend);
        while run.step().expect("step") {}
        out.insert(name.to_string(), read(run.state_tensor()).await);
    }
    out
}

fn reference() -> BTreeMap<String, Vec<f32>> {
    serde_json::from_str(REFERENCE_JSON).expect("reference.json parses")
}

fn check(label: &str, got: &[f32], want: &[f32], tol: f32) {
    let d = max_rel_diff(got, want);
    web_sys_log(&format!("{label}: max relative difference {d:.2e} (tolerance {tol:.0e})"));
    assert!(d < tol, "{label}: max relative difference {d} exceeds {tol}");
}

fn web_sys_log(s: &str) {
    wasm_bindgen_test::console_log!("{}", s);
}

#[wasm_bindgen_test]
async fn flex_in_wasm_matches_native() {
    let want = reference();
    let got = image_numbers(Target::flex()).await;
    for (name, v) in &got {
        check(&format!("flex-wasm {name}"), v, &want[name], 5e-4);
    }
    let mixture = PointModel::mixture(MIXTURE).unwrap();
    let field = mixture.field(0.3, &grid()).unwrap();
    let field = read(field.reshape([grid().len()])).await;
    check("flex-wasm mixture-field", &field, &want["mixture-field"], 5e-4);
    let mut lab = Lab::new(LAB_SETTINGS).unwrap();
    let losses: Vec<f32> = lab.train(LAB_STEPS).unwrap().into_iter().map(|v| v as f32).collect();
    check("flex-wasm lab-losses", &losses, &want["lab-losses"], 5e-4);
}

#[wasm_bindgen_test]
async fn webgpu_matches_native_and_flex() {
    let device = scorediff_web::webgpu_device().await.expect("WebGPU (run Chromium with --enable-unsafe-webgpu)");
    let want = reference();
    let started = js_sys::Date::now();
    let gpu = image_numbers(Target { device, backend: Backend::WebGpu }).await;
    web_sys_log(&format!("webgpu: the image cases took {:.0} ms", js_sys::Date::now() - started));
    let flex = image_numbers(Target::flex()).await;
    for (name, v) in &gpu {
        check(&format!("webgpu {name} vs native"), v, &want[name], 2e-3);
        check(&format!("webgpu {name} vs flex-wasm"), v, &flex[name], 2e-3);
    }
}
