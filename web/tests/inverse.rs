//! The page's inverse problems (`scorediff_web::inverse`) on native Flex: bad requests name
//! their field, a DPS run steps and is scored by the core, and the seed fixes the run.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{bar, random_image_model};
use scorediff::nn::UNetConfig;
use scorediff::sampler::Variance;
use scorediff_web::engine::{Backend, ImageModel, read_sync};
use scorediff_web::inverse::InverseProblem;
use std::rc::Rc;

/// A random tiny U-Net for 1x28x28 images on a 100-level DDPM.
fn model() -> Rc<ImageModel> {
    let config = UNetConfig::new().with_base_channels(4).with_channel_mult(vec![1]).with_num_res_blocks(1).with_groups(2).with_dropout(0.0);
    random_image_model("tiny", config, 100, Variance::Small, 3, "web/tests/inverse.rs")
}

fn error(model: &Rc<ImageModel>, json: &str, image: &[f32]) -> String {
    match InverseProblem::new(model, json, image) {
        Ok(_) => panic!("{json} with {} values was accepted", image.len()),
        Err(e) => e,
    }
}

/// Bad input gives a message naming the field (and the page's control), never a panic; a
/// good request is still served after them.
#[test]
fn bad_requests_name_the_field() {
    let m = model();
    let img = bar();
    let cases: [(&str, Vec<f32>, &[&str]); 14] = [
        (r#"{"task": "colorize"}"#, img.clone(), &["colorize", "3-channel", "1 channel"]),
        (r#"{"steps": 2}"#, vec![0.0; 783], &["image", "784", "783"]),
        (r#"{"steps": 2}"#, vec![], &["image", "784", "found 0"]),
        (r#"{"task": "denoise"}"#, img.clone(), &["task", "denoise", "super-resolution"]),
        (r#"{"task": "super-resolution", "factor": 3}"#, img.clone(), &["factor", "28x28", "found 3"]),
        (r#"{"task": "super-resolution", "factor": 0}"#, img.clone(), &["factor", "found 0"]),
        (r#"{"steps": 0}"#, img.clone(), &["Steps", "0"]),
        (r#"{"steps": 100000000}"#, img.clone(), &["Steps"]),
        (r#"{"zeta": -1}"#, img.clone(), &["zeta", "-1"]),
        (r#"{"noise": -0.5}"#, img.clone(), &["noise"]),
        (r#"{"sampler": "ode-euler"}"#, img.clone(), &["Sampler", "ancestral or ddim"]),
        (r#"{"stepz": 3}"#, img.clone(), &["inverse request", "stepz"]),
        (r#"{"device": "gpu"}"#, img.clone(), &["device", "page, flex", "gpu"]),
        (
            r#"{"steps": 2}"#,
            {
                let mut v = img.clone();
                v[5] = f32::NAN;
                v
            },
            &["image", "finite", "NaN"],
        ),
    ];
    for (json, image, words) in cases {
        let e = error(&m, json, &image);
        for w in words {
            assert!(e.contains(w), "{json}: `{e}` does not say `{w}`");
        }
    }
    assert!(InverseProblem::new(&m, r#"{"steps": 2}"#, &img).is_ok());
    assert!(InverseProblem::new(&m, r#"{"steps": 2, "device": "flex"}"#, &img).is_ok());
}

/// The page's task menu (`page_options`) says which tasks need colour images, as the core's
/// operators do: each task offered builds on every shape the menu would offer it for (1x28x28
/// grey, 3x16x16 and 3x32x32 colour), and is refused on the others; every factor offered divides
/// those sides.
#[test]
fn the_menu_offers_what_the_core_builds() {
    use scorediff::inverse::{Task, TaskKind};
    let options = scorediff_web::inverse::page_options();
    let tasks = options["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), scorediff_web::inverse::PAGE_TASKS.len());
    assert!(tasks.iter().any(|t| t["name"] == "colorize" && t["channels"] == 3), "{options}");
    let device = scorediff::burn::tensor::Device::flex();
    for t in tasks {
        let kind: TaskKind = t["name"].as_str().unwrap().parse().unwrap();
        for shape in [[1, 28, 28], [3, 16, 16], [3, 32, 32]] {
            let offered = t["channels"].is_null() || t["channels"] == shape[0];
            for f in options["factors"].as_array().unwrap() {
                let f = f.as_u64().unwrap() as usize;
                assert!(shape[1] % f == 0 && shape[2] % f == 0);
                let mut task = Task::new(kind);
                task.factor = f;
                let built = task.build(shape, &device);
                assert_eq!(built.is_ok(), offered, "{kind} on {shape:?}: offered {offered}, built {:?}", built.err());
            }
        }
    }
}

/// A run: the measurement of super-resolution x4 drawn at the image's size, the bicubic
/// baseline scored, two DPS steps on Flex giving one finite image scored by the core, and a
/// second start refused.
#[test]
fn a_dps_run_steps_and_scores() {
    let m = model();
    let img = bar();
    let mut p = InverseProblem::new(&m, r#"{"task": "super-resolution", "factor": 4, "steps": 2, "seed": 1}"#, &img).unwrap();
    assert_eq!(p.measurement().len(), 784);
    let b = p.baseline().expect("bicubic");
    assert_eq!((b.name, b.image.len()), ("bicubic", 784));
    assert!(b.scores.psnr.is_finite() && b.scores.psnr > 5.0, "{:?}", b.scores);
    let mut run = p.start().unwrap();
    assert_eq!(run.backend(), Backend::Flex);
    while run.step().unwrap() {}
    assert!(run.is_done() && run.progress() == (2, 2), "{:?}", run.progress());
    let out = read_sync(run.state_tensor()).unwrap();
    assert!(out.len() == 784 && out.iter().all(|v| v.is_finite()));
    let s = p.score(&out).unwrap();
    assert!(s.psnr.is_finite());
    assert!(p.score(&out[..10]).unwrap_err().contains("result"));
    assert!(p.start().err().expect("a second start is refused").contains("already started"));
    // The truth scores infinite against itself; phase retrieval has no baseline, a blur
    // scores its measurement too.
    assert!(p.score(&img).unwrap().psnr.is_infinite());
    let phase = InverseProblem::new(&m, r#"{"task": "phase-retrieval", "steps": 2}"#, &img).unwrap();
    assert!(phase.baseline().is_none() && phase.info()["baseline"].is_null());
    let blur = InverseProblem::new(&m, r#"{"task": "deblur", "steps": 2}"#, &img).unwrap();
    assert_eq!(blur.baseline().unwrap().name, "wiener");
    assert!(blur.info()["measurement_scores"]["psnr"].as_f64().unwrap() > 5.0);
}

/// The same seed measures and samples the same numbers; another seed does not.
#[test]
fn the_seed_fixes_the_run() {
    let m = model();
    let img = bar();
    let run = |seed: u64| {
        let mut p = InverseProblem::new(&m, &format!(r#"{{"steps": 2, "seed": {seed}}}"#), &img).unwrap();
        let mut r = p.start().unwrap();
        while r.step().unwrap() {}
        (p.measurement().to_vec(), read_sync(r.state_tensor()).unwrap())
    };
    assert_eq!(run(4), run(4));
    assert_ne!(run(4).0, run(5).0);
}
