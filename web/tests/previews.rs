//! The page's previews and its worker pool, on native Flex and the fixture U-Net:
//! - the denoised preview (`Run::denoised_tensor`, the core's Tweedie estimate `E[x_0 | x_t]`)
//!   has the state's layout, costs one network evaluation counted apart from the sampler's
//!   NFE (none once finished, where it is the output itself), and leaves the run's images
//!   unchanged;
//! - a run split into slices (the pool's workers) is bit-identical to one batch on Flex, in
//!   floats and so in the 8-bit pixels the page draws (measured, then asserted), for sampling,
//!   interpolation (slices of the alphas) and inpainting, as the page splits each.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::FIXTURE;
use scorediff_web::engine::{ImageModel, Target, parse_image_request, read_sync};
use std::path::Path;
use std::rc::Rc;

fn fixture() -> Rc<ImageModel> {
    let dir = Path::new(FIXTURE);
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    Rc::new(ImageModel::load(&json, std::fs::read(dir.join("weights.bpk")).unwrap(), Target::flex()).unwrap())
}

/// Images `first..first + batch` of seed 9's run; with `previews`, a denoised preview is read
/// after every step, as the page does with its x0 canvas on.
fn images(model: &Rc<ImageModel>, kind: &str, steps: usize, first: usize, batch: usize, previews: bool) -> Vec<f32> {
    let r = parse_image_request(&format!(r#"{{"sampler": {{"kind": "{kind}", "steps": {steps}}}, "seed": 9, "first": {first}, "batch": {batch}}}"#)).unwrap();
    let mut run = model.sample(&r).unwrap();
    while run.step().unwrap() {
        if previews {
            read_sync(run.denoised_tensor().unwrap()).unwrap();
        }
    }
    read_sync(run.state_tensor()).unwrap()
}

/// The page's 8-bit grey level of a value in `[-1, 1]` (main.js's drawGrid).
fn pixel(v: f32) -> u8 {
    ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}

#[test]
fn the_denoised_preview_is_counted_apart_and_changes_nothing() {
    let model = fixture();
    let r = parse_image_request(r#"{"sampler": {"kind": "dpm-solver2m", "steps": 4}, "seed": 9, "batch": 3}"#).unwrap();
    let mut run = model.sample(&r).unwrap();
    run.step().unwrap();
    let (nfe, state) = (run.nfe(), read_sync(run.state_tensor()).unwrap());
    let x0 = read_sync(run.denoised_tensor().unwrap()).unwrap();
    assert_eq!(x0.len(), state.len(), "the preview has the state's layout");
    assert!(x0.iter().all(|v| v.is_finite()), "the preview is finite");
    assert!(x0 != state, "mid-run, the denoised estimate is not the state itself");
    assert_eq!((run.nfe(), run.preview_nfe()), (nfe, 1), "one preview evaluation, counted apart");
    while run.step().unwrap() {}
    let out = read_sync(run.state_tensor()).unwrap();
    assert_eq!(read_sync(run.denoised_tensor().unwrap()).unwrap(), out, "once finished, the preview is the output");
    assert_eq!(run.preview_nfe(), 1, "a finished run's preview evaluates nothing");
    assert_eq!(run.nfe(), 4, "DPM-Solver++(2M) at 4 steps is 4 evaluations, previews aside");
    // Previews read the state; they draw no noise and leave the images as they were.
    for kind in ["dpm-solver2m", "ancestral"] {
        assert_eq!(images(&model, kind, 4, 0, 3, true), images(&model, kind, 4, 0, 3, false), "{kind}: previews changed the images");
    }
}

#[test]
fn slices_of_a_batch_measured_in_floats_and_pixels() {
    let model = fixture();
    // The page's default sampler; a batch of 16 split as 2 and 8 workers split it.
    let whole = images(&model, "dpm-solver2m", 4, 0, 16, false);
    for parts in [2usize, 8] {
        let per = 16 / parts;
        let split: Vec<f32> = (0..parts).flat_map(|k| images(&model, "dpm-solver2m", 4, k * per, per, false)).collect();
        let floats = whole.iter().zip(&split).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        let pixels = whole.iter().zip(&split).map(|(&a, &b)| pixel(a).abs_diff(pixel(b))).max().unwrap_or(0);
        let differ = whole.iter().zip(&split).filter(|(a, b)| a != b).count();
        println!("16 images as {parts} slices of {per}: {differ} of {} floats differ, max |diff| {floats:e}, max 8-bit diff {pixels}", whole.len());
        // Measured: Flex computes every image of a batch alone (no reduction across the batch),
        // so the slices are bit-identical to one batch; the pool's e2e check relies on it.
        assert_eq!((differ, pixels), (0, 0), "{parts} slices: images differ from one batch by {floats} ({pixels} grey levels)");
    }
}

/// Runs a run to its end and reads its images.
fn finish(mut run: scorediff_web::engine::Run) -> Vec<f32> {
    while run.step().unwrap() {}
    read_sync(run.state_tensor()).unwrap()
}

#[test]
fn interpolation_and_inpainting_split_as_the_pool_splits_them() {
    let model = fixture();
    let request = |first: usize, batch: usize| {
        parse_image_request(&format!(r#"{{"sampler": {{"kind": "ancestral", "steps": 3}}, "seed": 4, "first": {first}, "batch": {batch}}}"#)).unwrap()
    };
    // Interpolation: the pool gives each worker a slice of the alphas (and `first`).
    let alphas: Vec<f64> = (0..6).map(|i| i as f64 / 5.0).collect();
    let whole = finish(model.interpolate(&request(0, 6), 1, 2, &alphas).unwrap());
    let split =
        [finish(model.interpolate(&request(0, 4), 1, 2, &alphas[..4]).unwrap()), finish(model.interpolate(&request(4, 2), 1, 2, &alphas[4..]).unwrap())]
            .concat();
    assert!(whole == split, "interpolation: alphas 0..6 in one run and in slices 0..4, 4..6 differ");
    // Inpainting: copies of one image, each with its own noise.
    let [c, h, w] = model.image_shape();
    let image: Vec<f32> = (0..c * h * w).map(|i| if i % 7 == 0 { 1.0 } else { -1.0 }).collect();
    let mask: Vec<f32> = (0..c * h * w).map(|i| if i < c * h * w / 2 { 1.0 } else { 0.0 }).collect();
    let whole = finish(model.inpaint(&request(0, 4), &image, &mask).unwrap());
    let split = [finish(model.inpaint(&request(0, 1), &image, &mask).unwrap()), finish(model.inpaint(&request(1, 3), &image, &mask).unwrap())].concat();
    assert!(whole == split, "inpainting: 4 copies in one run and in slices 0..1, 1..4 differ");
    let per = c * h * w;
    assert!(whole[..per] != whole[per..2 * per], "inpainting: two copies drew the same noise");
}
