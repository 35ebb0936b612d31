//! End-to-end tests of `native-cli solve`, `solve-eval` and `train-classifier --noisy` on a tiny
//! random U-Net (written as an export directory) and the MNIST test subset: the files and
//! numbers they write, their determinism, and one error line for each kind of bad input.

use scorediff::burn::tensor::Device;
use scorediff::data::DatasetKind;
use scorediff::export::{ModelCard, write_dir};
use scorediff::nn::{UNetConfig, burnpack_bytes};
use scorediff::train::{Dataset, Network, RunConfig};
use std::path::{Path, PathBuf};

mod common;
use common::{TempDir, read_png, run_err, run_err_with, run_ok, s, write_png};

fn subset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/mnist-subset")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = run_ok(args);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// A tiny random unconditional U-Net for MNIST (DDPM's linear schedule) as an export directory.
fn tiny_model(dir: &TempDir) -> PathBuf {
    let dev = Device::flex();
    dev.seed(7);
    let unet = UNetConfig::new().with_base_channels(8).with_groups(4).with_channel_mult(vec![1]).with_num_res_blocks(1).with_dropout(0.0);
    let net = unet.init(&dev);
    let mut config = RunConfig::preset(Dataset::Image(DatasetKind::Mnist));
    config.network = Network::Unet(unet);
    let card = ModelCard::from_run(&config, "tiny", net.num_params(), 0, "random initialisation (native-cli/tests/solve.rs)");
    let path = dir.path("tiny");
    write_dir(&path, &card, &burnpack_bytes(&net).unwrap(), false).unwrap();
    path
}

/// The common arguments of a short solve of test digit 0.
fn solve_args<'a>(model: &'a str, task: &'a str, method: &'a str, out: &'a str, data: &'a str) -> Vec<&'a str> {
    vec!["solve", "--model", model, "--task", task, "--method", method, "--out", out, "--steps", "3", "--data-dir", data, "--json"]
}

#[test]
fn solve_writes_the_panel_and_reports_psnr_and_ssim_for_every_task() {
    let dir = TempDir::new("tasks");
    let model = tiny_model(&dir);
    let data = subset();
    for (task, method, extra) in [
        ("inpaint", "projection", vec![]),
        ("inpaint", "projection", vec!["--resample", "3"]),
        ("inpaint", "dps", vec![]),
        ("inpaint", "sdedit", vec!["--t0", "0.3"]),
        ("super-resolution", "dps", vec!["--sampler", "ddim"]),
        ("super-resolution", "projection", vec!["--downsample", "pool", "--factor", "2"]),
        ("deblur", "dps", vec![]),
        ("motion-deblur", "dps", vec!["--noise", "poisson:50"]),
        ("phase-retrieval", "dps", vec!["--noise", "none"]),
    ] {
        let out = dir.path(&format!("{task}-{method}.png"));
        let mut args = solve_args(s(&model), task, method, s(&out), s(&data));
        args.extend(["--test-index", "0"]);
        let resample = if extra.contains(&"--resample") { 3 } else { 1 };
        args.extend(extra);
        let v = json(&args);
        let columns = v["columns"].as_array().unwrap().len();
        // measurement | baseline | result | ground truth (phase retrieval has no baseline).
        assert_eq!(columns, if task == "phase-retrieval" { 3 } else { 4 }, "{v}");
        let (w, h, c, px) = read_png(&out);
        assert_eq!((w, h, c), (columns * 28 + (columns + 1) * 2, 32, 1), "{task}");
        assert_eq!(px.len(), w * h);
        // RePaint retakes each of the 3 steps but the last `resample` times.
        assert_eq!(v["nfe"], 3 + 2 * (resample - 1), "{v}");
        let (p, q) = (v["psnr"].as_f64().unwrap(), v["ssim"].as_f64().unwrap());
        assert!(p.is_finite() && (-1.0..=1.0).contains(&q), "{v}");
        if task == "phase-retrieval" {
            assert!(v["recovered"].is_boolean() && v["baseline"].is_null(), "{v}");
        } else {
            assert!(v["baseline_psnr"].as_f64().unwrap().is_finite() && v["recovered"].is_null(), "{v}");
        }
    }
    // The summary line names the method, the metrics and the baseline.
    let line = run_ok(&[
        "solve",
        "--model",
        s(&model),
        "--task",
        "deblur",
        "--method",
        "dps",
        "--out",
        s(&dir.path("l.png")),
        "--steps",
        "2",
        "--test-index",
        "1",
        "--data-dir",
        s(&data),
    ]);
    assert!(line.contains("deblur") && line.contains("PSNR") && line.contains("SSIM") && line.contains("wiener"), "{line}");
}

#[test]
fn inputs_masks_and_seeds_give_reproducible_results() {
    let dir = TempDir::new("inputs");
    let model = tiny_model(&dir);
    let data = subset();
    // Test digit 2 as a PNG: --input gives what --test-index 2 gives, byte for byte.
    let digits = scorediff::data::ImageDataset::load_dir(&data, scorediff::data::Split::Test).unwrap();
    let digit = dir.path("digit.png");
    write_png(&digit, 28, 28, 1, digits.image(2));
    let (a, b, c) = (dir.path("a.png"), dir.path("b.png"), dir.path("c.png"));
    // A hand-drawn mask: white (observed) except rows 10..18, cols 4..24.
    let mut m = vec![255u8; 784];
    for r in 10..18 {
        for col in 4..24 {
            m[r * 28 + col] = 0;
        }
    }
    let mask = dir.path("mask.png");
    write_png(&mask, 28, 28, 1, &m);
    let mut args = solve_args(s(&model), "inpaint", "dps", s(&a), s(&data));
    args.extend(["--test-index", "2", "--mask", s(&mask), "--seed", "1"]);
    let va = json(&args);
    let mut args = solve_args(s(&model), "inpaint", "dps", s(&b), s(&data));
    args.extend(["--input", s(&digit), "--mask", "box:10,4,8,20", "--seed", "1"]);
    let vb = json(&args);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "--input and --test-index, PNG mask and box spec");
    assert_eq!(va["psnr"], vb["psnr"]);
    assert!(va["operator"].as_str().unwrap().contains(&format!("{:.0}%", 100.0 * (1.0 - 160.0 / 784.0))), "{va}");
    let mut args = solve_args(s(&model), "inpaint", "dps", s(&c), s(&data));
    args.extend(["--input", s(&digit), "--mask", "box:10,4,8,20", "--seed", "2"]);
    json(&args);
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap(), "another seed, the same result");
    // An already-measured input: a 7x7 low-resolution image; no ground truth, so no metrics.
    let low = dir.path("low.png");
    write_png(&low, 7, 7, 1, &[128u8; 49]);
    let mut args = solve_args(s(&model), "super-resolution", "dps", s(&c), s(&data));
    args.extend(["--input", s(&low), "--measured"]);
    let v = json(&args);
    assert!(v["psnr"].is_null() && v["truth"].is_null(), "{v}");
    assert_eq!(v["columns"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_input_gives_one_error_line_naming_what_is_expected() {
    let dir = TempDir::new("errors");
    let model = tiny_model(&dir);
    let data = subset();
    let out = dir.path("x.png");
    let big = dir.path("big.png");
    write_png(&big, 32, 32, 1, &[0u8; 1024]);
    let rgb = dir.path("rgb.png");
    write_png(&rgb, 28, 28, 3, &[0u8; 3 * 784]);
    let small_mask = dir.path("mask.png");
    write_png(&small_mask, 14, 14, 1, &[255u8; 196]);
    let (model_s, out_s, data_s) = (s(&model), s(&out), s(&data));
    let base = |task: &'static str, method: &'static str| -> Vec<&str> {
        vec!["solve", "--model", model_s, "--task", task, "--method", method, "--out", out_s, "--steps", "2", "--data-dir", data_s]
    };
    let check = |args: Vec<&str>, extra: &[&str], needles: &[&str]| {
        run_err_with(&args, extra, needles);
    };
    check(base("inpaint", "dps"), &["--input", s(&big)], &["big.png", "expected a 28x28 grey-level PNG", "found a 32x32"]);
    check(base("inpaint", "dps"), &["--input", s(&rgb)], &["rgb.png", "grey-level", "RGB"]);
    check(base("inpaint", "dps"), &["--test-index", "0", "--mask", s(&small_mask)], &["mask.png", "expected a 28x28", "found 14x14"]);
    check(base("inpaint", "dps"), &["--test-index", "0", "--mask", "lasso"], &["--mask lasso", "box"]);
    check(base("deblur", "dps"), &["--test-index", "0", "--mask", "box"], &["--mask", "only for --task inpaint"]);
    check(base("denoise", "dps"), &["--test-index", "0"], &["denoise", "inpaint", "phase-retrieval"]);
    check(base("phase-retrieval", "projection"), &["--test-index", "0"], &["projection", "phase-retrieval", "pseudo-inverse"]);
    check(base("deblur", "projection"), &["--test-index", "0"], &["projection", "Gaussian blur"]);
    check(base("colorize", "dps"), &["--test-index", "0"], &["colorize", "3-channel", "found 1 channel"]);
    check(base("inpaint", "dps"), &["--test-index", "100000"], &["--test-index 100000", "below 50"]);
    check(base("phase-retrieval", "dps"), &["--test-index", "0", "--noise", "poisson:10"], &["poisson", "image"]);
    check(base("super-resolution", "dps"), &["--input", s(&big), "--measured"], &["expected a 7x7", "found a 32x32"]);
    check(base("super-resolution", "dps"), &["--test-index", "0", "--factor", "3"], &["factor", "28x28"]);
    check(base("inpaint", "dps"), &["--test-index", "0", "--noise", "gaussian:x"], &["--noise", "gaussian:SIGMA"]);
    check(base("inpaint", "dps"), &["--test-index", "0", "--sampler", "ode-euler"], &["dps", "ancestral or ddim"]);
    check(base("inpaint", "dps"), &[], &["--input"]);
    check(base("inpaint", "dps"), &["--test-index", "0", "--resample", "4"], &["--resample 4", "--method projection", "found --method dps"]);
    check(base("inpaint", "projection"), &["--test-index", "0", "--resample", "0"], &["--resample", "at least 1"]);
    check(base("inpaint", "projection"), &["--test-index", "0", "--resample", "2", "--sampler", "dpm-solver2m"], &["--resample", "dpm-solver2m", "ancestral"]);
    // A learned variance asked of a model without one is refused (it panicked in the ancestral step).
    check(base("inpaint", "projection"), &["--test-index", "0", "--variance", "learned"], &["--variance", "no learned variance", "found learned"]);
    check(base("inpaint", "dps"), &["--test-index", "0", "--variance", "learned"], &["--variance", "no learned variance"]);
    // An option the sampler does not have is refused, not ignored.
    check(base("inpaint", "projection"), &["--test-index", "0", "--eta", "0.5"], &["--eta", "ancestral"]);
}

#[test]
fn solve_eval_reports_every_task_and_method_next_to_the_baselines() {
    let dir = TempDir::new("eval");
    let model = tiny_model(&dir);
    let data = subset();
    let v = json(&[
        "solve-eval",
        "--model",
        s(&model),
        "--n",
        "2",
        "--batch",
        "1",
        "--steps",
        "2",
        "--methods",
        "projection,dps",
        "--data-dir",
        s(&data),
        "--json",
    ]);
    let rows = v["rows"].as_array().unwrap();
    // Five tasks (colorize needs colour): a baseline row for the four linear ones, and a row per method.
    assert_eq!(rows.len(), 4 + 5 * 2, "{v}");
    for row in rows {
        let (task, method) = (row["task"].as_str().unwrap(), row["method"].as_str().unwrap());
        let projectable = task == "inpaint";
        if method == "projection" && !projectable {
            assert!(row["skipped"].is_string() && row["psnr"].is_null(), "{row}");
            continue;
        }
        assert_eq!(row["n"], 2, "{row}");
        assert!(row["psnr"].as_f64().unwrap().is_finite() && row["ssim"].as_f64().unwrap().is_finite(), "{row}");
        assert_eq!(row["recovered"].is_number(), task == "phase-retrieval", "{row}");
        assert_eq!(row["nfe"].is_number(), !method.starts_with("baseline"), "{row}");
    }
    let methods: Vec<&str> = rows.iter().filter(|r| r["task"] == "deblur").map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["baseline: wiener", "projection", "dps"]);
    // The table names the columns; a bad task list is one error line.
    let table = run_ok(&["solve-eval", "--model", s(&model), "--n", "1", "--steps", "1", "--tasks", "inpaint", "--methods", "dps", "--data-dir", s(&data)]);
    assert!(table.contains("| task | operator | method | PSNR (dB) | SSIM |") && table.contains("baseline: masked input"), "{table}");
    run_err(&["solve-eval", "--model", s(&model), "--tasks", "inpaint,colorize", "--data-dir", s(&data)], &["colorize", "3-channel"]);
    run_err(&["solve-eval", "--model", s(&model), "--n", "51", "--data-dir", s(&data)], &["--n 51", "at most 50"]);
}

#[test]
fn train_classifier_noisy_records_the_sde_and_guides_sampling() {
    let dir = TempDir::new("classifier");
    let model = tiny_model(&dir);
    let out = dir.path("noisy");
    run_ok(&[
        "train-classifier",
        "--dataset",
        "mnist",
        "--noisy",
        "--model",
        s(&model),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--data-dir",
        s(&subset()),
        "--out",
        s(&out),
    ]);
    let card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("classifier.json")).unwrap()).unwrap();
    assert_eq!(card["sde"]["kind"], "ddpm", "{card}");
    assert!(card["config"]["time_embedding"].is_object(), "{card}");
    let by_time = card["accuracy_by_time"].as_array().unwrap();
    assert_eq!(by_time.len(), 5);
    assert!(by_time.iter().all(|p| (0.0..=1.0).contains(&p[1].as_f64().unwrap())), "{card}");
    // The classifier is loadable (strict loading checks every tensor against the config).
    scorediff::train::classifier::load_classifier_dir(&out, &Device::flex()).unwrap();
    run_err(&["train-classifier", "--dataset", "mnist", "--model", s(&out), "--out", s(&out)], &["--noisy"]);

    // Classifier guidance in `sample`: runs, and changes the samples (same seed).
    let sample = |extra: &[&str], file: &str| -> Vec<u8> {
        let path = dir.path(file);
        let mut args = vec!["sample", "--model", s(&model), "--sampler", "ddim", "--steps", "3", "--n", "2", "--seed", "4", "--out", s(&path)];
        args.extend(extra);
        run_ok(&args);
        std::fs::read(&path).unwrap()
    };
    let plain = sample(&[], "plain.npy");
    let guided = sample(&["--classifier", s(&out), "--class", "3", "--classifier-scale", "5"], "guided.npy");
    assert_ne!(plain, guided, "classifier guidance left the samples unchanged");
    let (model_s, out_s) = (s(&model), s(&out));
    let x_npy = dir.path("x.npy");
    let args = vec!["sample", "--model", model_s, "--sampler", "ddim", "--steps", "2", "--n", "1", "--out", s(&x_npy), "--classifier", out_s];
    let err = |a: Vec<&str>, extra: &[&str], needles: &[&str]| {
        run_err_with(&a, extra, needles);
    };
    err(args.clone(), &["--class", "10"], &["--class", "0..9", "found 10"]);
    err(args.clone(), &["--guidance", "1"], &["--guidance", "--classifier"]);
    // A classifier of clean images, and one trained with another SDE, are refused.
    let card_path = out.join("classifier.json");
    let mut card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
    card["sde"] = serde_json::json!({"kind": "vp", "beta_min": 0.1, "beta_max": 20.0});
    std::fs::write(&card_path, card.to_string()).unwrap();
    err(args.clone(), &[], &["--classifier", "the model's SDE"]);
    card.as_object_mut().unwrap().remove("sde");
    std::fs::write(&card_path, card.to_string()).unwrap();
    err(args.clone(), &[], &["--classifier", "noise-conditional"]);
}
