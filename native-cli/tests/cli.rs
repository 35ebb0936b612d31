//! End-to-end tests of the `native-cli` binary: run it on a small 2-D Gaussian mixture and
//! check its files, its numbers against the mixture's closed forms, and its error lines.

use scorediff::io::{npy_bytes_f32, read_npy, write_npy_f32};
use scorediff::mixture::{GaussianMixture, MixtureFile};
use scorediff::noise::NoiseSource;
use scorediff::sampler::SamplerKind;
use scorediff::sde::SdeConfig;
use std::path::{Path, PathBuf};

mod common;
use common::{TempDir, run_err, run_ok, s};

/// The test mixture: three well-separated components in 2-D under the default VP SDE.
fn mixture_file() -> MixtureFile {
    let mixture = GaussianMixture::new(vec![0.3, 0.5, 0.2], vec![vec![-2.0, 0.0], vec![1.5, 1.0], vec![0.0, -2.0]], vec![0.4, 0.5, 0.3]).unwrap();
    let sde: SdeConfig = serde_json::from_str(r#"{"kind": "vp"}"#).unwrap();
    MixtureFile { sde, mixture }
}

/// Writes the test mixture to `dir/mixture.json`.
fn write_mixture(dir: &TempDir) -> PathBuf {
    let path = dir.path("mixture.json");
    std::fs::write(&path, mixture_file().to_json()).unwrap();
    path
}

fn sample_args<'a>(model: &'a str, out: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec!["sample", "--model", model, "--sampler", "ddim", "--steps", "20", "--n", "200", "--seed", seed, "--out", out]
}

#[test]
fn sample_writes_npy_of_the_right_shape_deterministically() {
    let dir = TempDir::new("sample-shape");
    let model = write_mixture(&dir);
    let (a, b, c) = (dir.path("a.npy"), dir.path("b.npy"), dir.path("c.npy"));
    let line = run_ok(&sample_args(s(&model), s(&a), "1"));
    assert!(line.contains("ddim") && line.contains("NFE") && line.contains(s(&a)), "{line}");
    let arr = read_npy(&a).unwrap();
    assert_eq!(arr.shape, [200, 2]);
    assert!(arr.data.iter().all(|v| v.is_finite()));

    run_ok(&sample_args(s(&model), s(&b), "1"));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "same seed, different bytes");
    run_ok(&sample_args(s(&model), s(&c), "2"));
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap(), "different seeds, same bytes");
    assert!(!dir.path("a.npy.tmp").exists(), "the atomic write left its temporary file");
}

#[test]
fn batched_sampling_is_deterministic_and_reports_json() {
    let dir = TempDir::new("sample-batch");
    let model = write_mixture(&dir);
    let (a, b) = (dir.path("a.npy"), dir.path("b.npy"));
    let mut args = sample_args(s(&model), s(&a), "3");
    args.extend(["--batch", "64", "--json"]);
    let json: serde_json::Value = serde_json::from_str(run_ok(&args).trim()).unwrap();
    assert_eq!(json["sampler"], "ddim");
    assert_eq!(json["steps"], 20);
    // 20 steps in each of 4 batches (64 + 64 + 64 + 8), one NFE per DDIM step.
    assert_eq!(json["nfe"], 80);
    assert_eq!((json["n"].as_u64(), json["dim"].as_u64()), (Some(200), Some(2)));
    assert!(json["seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(json["out"], s(&a));
    assert_eq!(read_npy(&a).unwrap().shape, [200, 2]);
    let mut args = sample_args(s(&model), s(&b), "3");
    args.extend(["--batch", "64"]);
    run_ok(&args);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn sample_mean_matches_the_mixture_mean() {
    let dir = TempDir::new("sample-mean");
    let model = write_mixture(&dir);
    let out = dir.path("x.npy");
    let n = 2000;
    let n_arg = n.to_string();
    run_ok(&["sample", "--model", s(&model), "--sampler", "ddim", "--steps", "20", "--n", &n_arg, "--seed", "1", "--out", s(&out)]);
    let arr = read_npy(&out).unwrap();
    let mix = mixture_file().mixture;
    let (mean, cov) = (mix.mean(), mix.covariance());
    for j in 0..2 {
        let got = arr.data.iter().skip(j).step_by(2).sum::<f64>() / n as f64;
        // 5 standard errors of the sample mean.
        let tol = 5.0 * (cov[j * 2 + j] / n as f64).sqrt();
        assert!((got - mean[j]).abs() < tol, "coordinate {j}: mean {got} vs {} (tol {tol})", mean[j]);
    }
}

#[test]
fn likelihood_matches_the_analytic_density() {
    let dir = TempDir::new("likelihood");
    let model = write_mixture(&dir);
    let data = dir.path("points.npy");
    let file = mixture_file();
    let n = 200;
    let points: Vec<f32> = file.mixture.sample(n, &mut NoiseSource::new(5)).iter().map(|&v| v as f32).collect();
    write_npy_f32(&data, &points, [n, 2]).unwrap();

    let stdout = run_ok(&["likelihood", "--model", s(&model), "--data", s(&data), "--json"]);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["divergence"], "exact", "exact is the default for dim <= 16");
    assert_eq!((json["n"].as_u64(), json["dim"].as_u64()), (Some(n as u64), Some(2)));
    // NFE per point is the largest solve's (RK45 is adaptive); 200 points at the default batch
    // of 16 are 13 solves, which the total counts.
    let (nfe, total) = (json["nfe"].as_u64().unwrap(), json["nfe_total"].as_u64().unwrap());
    assert!(nfe > 0 && total > nfe && total <= 13 * nfe, "nfe {nfe}, nfe_total {total}");

    // -log p_{t_min}(x) with p_{t_min} the mixture perturbed to the time the data is placed at.
    let (m, sigma) = file.sde.build().unwrap().marginal(1e-5);
    let p = file.mixture.perturbed(m, sigma);
    let exact = -points.chunks_exact(2).map(|x| p.log_density(&[x[0] as f64, x[1] as f64])).sum::<f64>() / n as f64;
    let nll = json["nll_nats"].as_f64().unwrap();
    assert!((nll - exact).abs() / 2.0 < 0.02, "NLL {nll} vs analytic {exact}");
    let per_dim = json["nll_nats_per_dim"].as_f64().unwrap();
    assert!((per_dim - nll / 2.0).abs() < 1e-12);
    let bpd = json["bits_per_dim"].as_f64().unwrap();
    assert!((bpd - per_dim / std::f64::consts::LN_2).abs() < 1e-12);

    // The text form says the same in one line.
    let line = run_ok(&["likelihood", "--model", s(&model), "--data", s(&data), "--divergence", "hutchinson-rademacher"]);
    assert!(line.contains("bits/dim") && line.contains("hutchinson-rademacher"), "{line}");
}

#[test]
fn every_sampler_runs_with_its_options() {
    let dir = TempDir::new("every-sampler");
    let model = write_mixture(&dir);
    let out = dir.path("x.npy");
    for name in SamplerKind::all().map(SamplerKind::name) {
        for extra in [&[][..], &["--denoise", "--spacing", "quadratic"][..]] {
            // 64 steps: reverse-diffusion on VP needs beta(t) dt < 1 at the largest (quadratic) step,
            // or `VpSde::discretize` gives NaN.
            let mut args = vec!["sample", "--model", s(&model), "--sampler", name, "--steps", "64", "--n", "16", "--out", s(&out), "--json"];
            args.extend(extra);
            let json: serde_json::Value = serde_json::from_str(run_ok(&args).trim()).unwrap();
            assert_eq!(json["sampler"], name);
            assert!(json["nfe"].as_u64().unwrap() > 0);
            let arr = read_npy(&out).unwrap();
            assert_eq!(arr.shape, [16, 2]);
            assert!(arr.data.iter().all(|v| v.is_finite()), "{name} {extra:?}");
        }
    }
    let pc = ["--predictor", "ancestral", "--variance", "large", "--snr", "0.1", "--corrector-steps", "2"];
    let mut args = vec!["sample", "--model", s(&model), "--sampler", "pc", "--steps", "64", "--n", "16", "--out", s(&out)];
    args.extend(pc);
    run_ok(&args);
}

#[test]
fn sample_help_lists_every_sampler() {
    let help = run_ok(&["sample", "--help"]);
    for (name, about) in SamplerKind::all().map(|k| (k.name(), k.about())) {
        assert!(help.contains(name), "--help lacks {name}");
        assert!(help.contains(about), "--help lacks the description of {name}");
    }
}

#[test]
fn bad_options_give_one_error_line() {
    let dir = TempDir::new("bad-options");
    let model = write_mixture(&dir);
    let out = dir.path("x.npy");
    let names: Vec<&str> = SamplerKind::all().map(SamplerKind::name).collect();
    let mut needles = vec!["--sampler", "`euler`"];
    needles.extend(&names);
    run_err(&["sample", "--model", s(&model), "--sampler", "euler", "--n", "3", "--out", s(&out)], &needles);
    run_err(&["sample", "--model", s(&model), "--sampler", "ddim", "--n", "3", "--out", s(&out), "--steps", "0"], &["--steps", "found 0"]);
    run_err(&["sample", "--model", s(&model), "--sampler", "ddim", "--n", "3", "--out", s(&out), "--eta", "2"], &["--eta", "found 2"]);
    run_err(&["sample", "--model", s(&model), "--sampler", "ddim", "--n", "0", "--out", s(&out)], &["--n"]);
    run_err(&["sample", "--model", s(&model), "--sampler", "ddim", "--n", "3"], &["--out"]);
    run_err(&["sample", "--model", s(&model), "--sampler", "pc", "--predictor", "heun", "--n", "3", "--out", s(&out)], &["heun", "reverse-diffusion"]);
    let missing_dir = dir.path("no/such/dir/x.npy");
    run_err(&["sample", "--model", s(&model), "--sampler", "ddim", "--n", "3", "--out", s(&missing_dir)], &["--out", "does not exist"]);
    run_err(&["likelihood", "--model", s(&model), "--data", s(&out), "--divergence", "trace"], &["trace", "exact", "hutchinson-rademacher"]);
    assert!(!out.exists());
}

#[test]
fn bad_model_files_give_one_error_line() {
    let dir = TempDir::new("bad-models");
    let out = dir.path("x.npy");
    let sample = |model: &Path| -> Vec<String> {
        ["sample", "--model", s(model), "--sampler", "ddim", "--steps", "5", "--n", "3", "--out", s(&out)].map(String::from).to_vec()
    };
    let run_err_owned = |args: Vec<String>, needles: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_err(&args, needles)
    };

    let missing = dir.path("missing.json");
    run_err_owned(sample(&missing), &[s(&missing), "No such file"]);

    let malformed = dir.path("malformed.json");
    std::fs::write(&malformed, "{\"sde\": {\"kind\": \"vp\"},\n \"weights\": [1,]\n}").unwrap();
    let line = run_err_owned(sample(&malformed), &[s(&malformed), "line 2 column"]);
    assert_eq!(line.matches("line 2 column").count(), 1, "cause repeated: {line}");

    let negative = dir.path("negative.json");
    std::fs::write(&negative, r#"{"sde": {"kind": "vp"}, "weights": [1], "means": [[0, 0]], "stds": [-1]}"#).unwrap();
    run_err_owned(sample(&negative), &[s(&negative), "stds[0]", "found -1"]);

    let weights = dir.path("weights.json");
    std::fs::write(&weights, r#"{"sde": {"kind": "vp"}, "weights": [0.5, 0.6], "means": [[0, 0], [1, 1]], "stds": [1, 1]}"#).unwrap();
    run_err_owned(sample(&weights), &[s(&weights), "`weights`", "summing to 1", "1.1"]);

    let sde = dir.path("sde.json");
    std::fs::write(&sde, r#"{"sde": {"kind": "vp", "beta_max": 0}, "weights": [1], "means": [[0, 0]], "stds": [1]}"#).unwrap();
    run_err_owned(sample(&sde), &[s(&sde), "beta_max"]);

    run_err_owned(sample(&dir.0), &["directory"]);
    assert!(!out.exists());
}

#[test]
fn bad_data_files_give_one_error_line() {
    let dir = TempDir::new("bad-data");
    let model = write_mixture(&dir);
    let likelihood = |data: &Path, needles: &[&str]| {
        run_err(&["likelihood", "--model", s(&model), "--data", s(data)], needles);
    };

    likelihood(&dir.path("missing.npy"), &["missing.npy", "cannot read", "No such file"]);

    let text = dir.path("text.npy");
    std::fs::write(&text, "x,y\n1,2\n").unwrap();
    likelihood(&text, &["text.npy", "magic"]);

    let truncated = dir.path("truncated.npy");
    let mut bytes = npy_bytes_f32(&[1.0, 2.0, 3.0, 4.0], [2, 2]);
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&truncated, bytes).unwrap();
    likelihood(&truncated, &["truncated.npy", "expected 16 data bytes", "found 13"]);

    let ints = dir.path("ints.npy");
    let mut bytes = npy_bytes_f32(&[1.0, 2.0], [1, 2]);
    let at = bytes.windows(3).position(|w| w == b"<f4").unwrap();
    bytes[at + 1] = b'i';
    std::fs::write(&ints, bytes).unwrap();
    likelihood(&ints, &["ints.npy", "'<i4'"]);

    let wide = dir.path("wide.npy");
    write_npy_f32(&wide, &[0.0; 6], [2, 3]).unwrap();
    likelihood(&wide, &["wide.npy", "expected 2 columns", "found 3"]);

    let nan = dir.path("nan.npy");
    write_npy_f32(&nan, &[0.0, 1.0, f32::NAN, 0.0], [2, 2]).unwrap();
    likelihood(&nan, &["nan.npy", "finite", "row 1, column 0"]);
}

#[test]
fn eval_samplers_prints_a_row_per_run_and_separates_good_from_bad_step_counts() {
    let dir = TempDir::new("eval");
    let model = write_mixture(&dir);
    let out = run_ok(&[
        "eval-samplers",
        "--model",
        s(&model),
        "--samplers",
        "ancestral,ode-rk45",
        "--steps",
        "2,200",
        "--tolerances",
        "1e-3",
        "--n",
        "400",
        "--json",
    ]);
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(rows[0]["sampler"], "ancestral");
    assert_eq!(rows[0]["nfe"], 2);
    assert_eq!(rows[1]["nfe"], 200);
    // Two ancestral steps cannot reproduce three separated modes; two hundred do.
    let (coarse, fine) = (rows[0]["energy"].as_f64().unwrap(), rows[1]["energy"].as_f64().unwrap());
    assert!(coarse > 5.0 * fine.abs().max(1e-3), "2 steps {coarse} vs 200 steps {fine}");
    assert_eq!(rows[2]["sampler"], "ode-rk45");
    let table = run_ok(&["eval-samplers", "--model", s(&model), "--samplers", "ddim", "--steps", "5", "--n", "100"]);
    assert!(table.contains("| sampler | steps | NFE | energy distance |") && table.contains("| ddim | 5 | 5 |"), "{table}");
    // A mixture has no learned variance: refused, not a panic in the ancestral step.
    run_err(
        &["eval-samplers", "--model", s(&model), "--samplers", "ancestral", "--steps", "5", "--n", "100", "--variance", "learned"],
        &["--variance", "no learned variance", "found learned"],
    );
}

#[test]
fn an_option_of_another_sampler_is_refused() {
    let dir = TempDir::new("foreign-option");
    let model = write_mixture(&dir);
    let out = dir.path("x.npy");
    let base = ["sample", "--model", s(&model), "--n", "3", "--steps", "4", "--out", s(&out)];
    run_err(&[&base[..], &["--sampler", "ancestral", "--eta", "0.5"]].concat(), &["--eta", "ancestral"]);
    run_err(&[&base[..], &["--sampler", "ddim", "--variance", "large"]].concat(), &["--variance", "ddim"]);
    run_err(&[&base[..], &["--sampler", "ode-euler", "--rtol", "1e-3"]].concat(), &["--rtol", "ode-euler"]);
    run_ok(&[&base[..], &["--sampler", "ddim", "--eta", "0.5"]].concat());
    run_ok(&[&base[..], &["--sampler", "ode-rk45", "--rtol", "1e-3"]].concat());
}

#[test]
fn plot_draws_every_point_in_its_panel() {
    let dir = TempDir::new("plot");
    let model = write_mixture(&dir);
    let (a, b, svg) = (dir.path("a.npy"), dir.path("b.npy"), dir.path("p.svg"));
    write_npy_f32(&a, &[0.0, 0.0, 1.0, 1.0, -1.0, 0.5], [3, 2]).unwrap();
    write_npy_f32(&b, &[0.5, -0.5, 0.2, 0.1], [2, 2]).unwrap();
    run_ok(&["plot", "--data", s(&a), s(&b), "--out", s(&svg)]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("a (3 points)") && text.contains("b (2 points)"));
    assert_eq!(text.matches("<circle").count(), 5);
    run_ok(&["plot", "--data", s(&a), "--reference", s(&model), "--out", s(&svg)]);
    assert!(std::fs::read_to_string(&svg).unwrap().matches("<circle").count() > 1000);
    run_err(&["plot", "--data", s(&dir.path("missing.npy")), "--out", s(&svg)], &["missing.npy"]);
}

/// The losses of `RUN_DIR/log.jsonl`, by step.
fn log_losses(run_dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run_dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn train_then_kill_and_resume_reproduces_the_uninterrupted_loss_curve() {
    let dir = TempDir::new("train-resume");
    let (straight, split) = (dir.path("straight"), dir.path("split"));
    let common = ["train", "--dataset", "two-moons", "--batch-size", "64", "--checkpoint-every", "50", "--seed", "3"];
    let with = |extra: &[&str]| -> Vec<String> { common.iter().chain(extra).map(|s| s.to_string()).collect() };
    let args = with(&["--steps", "200", "--out", s(&straight)]);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // A run stopped at step 100, then resumed to 200 (--resume keeps the config's other fields).
    let args = with(&["--steps", "100", "--out", s(&split)]);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    run_ok(&["train", "--resume", "--steps", "200", "--out", s(&split)]);
    let (a, b) = (log_losses(&straight), log_losses(&split));
    assert_eq!(a.len(), 20);
    assert_eq!(a.iter().map(|x| x.0).collect::<Vec<_>>(), b.iter().map(|x| x.0).collect::<Vec<_>>());
    for ((step, la), (_, lb)) in a.iter().zip(&b) {
        assert!((la - lb).abs() <= 1e-5 * la.abs().max(1.0), "step {step}: {la} vs {lb}");
    }
    for f in ["config.json", "ema.safetensors", "checkpoint/model.bpk", "checkpoint/ema.bpk", "checkpoint/optim.bpk", "checkpoint/state.json"] {
        assert!(split.join(f).is_file(), "{f} missing");
    }
}

/// A run killed after its last checkpoint but before `ema.safetensors` was written (found by
/// `scripts/fault-trials.sh`): `--resume` writes the missing export from the checkpoint's EMA,
/// the same weights an uninterrupted run exports.
#[test]
fn resume_at_the_last_step_writes_a_missing_export() {
    let dir = TempDir::new("train-export");
    let out = dir.path("run");
    run_ok(&["train", "--dataset", "two-moons", "--steps", "20", "--checkpoint-every", "10", "--out", s(&out)]);
    let export = out.join("ema.safetensors");
    let want = std::fs::read(&export).unwrap();
    std::fs::remove_file(&export).unwrap();
    let said = run_ok(&["train", "--resume", "--out", s(&out)]);
    assert!(said.contains("wrote the missing"), "{said}");
    let got = std::fs::read(&export).unwrap();
    // Burnpack/safetensors headers may differ; the tensors' bytes must not.
    let tensors = |b: &[u8]| {
        let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        b[8 + n..].to_vec()
    };
    assert_eq!(tensors(&got), tensors(&want), "the export differs from the uninterrupted run's");
    let again = run_ok(&["train", "--resume", "--out", s(&out)]);
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn train_help_lists_every_dataset() {
    let help = run_ok(&["train", "--help"]);
    for name in scorediff::train::Dataset::names() {
        assert!(help.contains(name), "train --help does not list {name}: {help}");
    }
}

/// A `--data-dir` without the files is refused with its name, never replaced by a data set
/// found elsewhere (the workspace's `data/`); nothing is written to `--out` (issue 18).
#[test]
fn explicit_data_dir_without_the_files_is_refused() {
    let dir = TempDir::new("train-data-dir");
    let out = dir.path("run");
    let empty = dir.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for given in [Path::new("/nonexistent/scorediff-data"), empty.as_path()] {
        run_err(&["train", "--dataset", "mnist", "--data-dir", s(given), "--steps", "1", "--out", s(&out)], &["cannot find mnist", s(given)]);
        assert!(!out.exists(), "{}", given.display());
    }
}

#[test]
fn bad_training_input_gives_one_error_line_and_keeps_the_checkpoint() {
    let dir = TempDir::new("train-bad");
    let run_dir = dir.path("run");
    run_ok(&["train", "--dataset", "rings", "--steps", "20", "--checkpoint-every", "10", "--out", s(&run_dir)]);
    let model = run_dir.join("checkpoint/model.bpk");
    let good = std::fs::read(&model).unwrap();

    run_err(&["train", "--dataset", "rings", "--out", s(&run_dir)], &["already holds a run", "--resume"]);
    run_err(&["train", "--dataset", "rings", "--backend", "metal", "--out", s(&dir.path("x"))], &["unknown backend `metal`"]);
    run_err(&["train", "--dataset", "rings", "--backend", "cuda", "--out", s(&dir.path("x"))], &["--features cuda"]);
    run_err(&["train", "--dataset", "cifar", "--out", s(&dir.path("x"))], &["unknown dataset `cifar`"]);
    run_err(&["train", "--resume", "--out", s(&dir.path("nothing"))], &["--resume", "config.json"]);

    // A config for another architecture: an MLP for an image data set.
    let config = run_dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    v["dataset"] = "mnist".into();
    let other = dir.path("other.json");
    std::fs::write(&other, v.to_string()).unwrap();
    run_err(&["train", "--config", s(&other), "--out", s(&dir.path("y"))], &["network.kind", "needs a unet"]);

    // Weights of another width in the checkpoint: refused, never overwritten.
    v["dataset"] = "rings".into();
    v["network"]["hidden"] = 64.into();
    std::fs::write(&config, v.to_string()).unwrap();
    run_err(&["train", "--resume", "--steps", "30", "--out", s(&run_dir)], &["model.bpk", "does not hold weights for this network"]);
    assert_eq!(std::fs::read(&model).unwrap(), good);

    // A truncated weights file: refused, left as it was.
    v["network"]["hidden"] = 128.into();
    std::fs::write(&config, v.to_string()).unwrap();
    std::fs::write(&model, &good[..good.len() / 3]).unwrap();
    run_err(&["train", "--resume", "--steps", "30", "--out", s(&run_dir)], &["model.bpk"]);
    assert_eq!(std::fs::read(&model).unwrap().len(), good.len() / 3);
}

// ---- Trained models: run directories and export directories (sample, likelihood, export) ----

/// Decodes an 8-bit grey-level PNG as the writer makes it (one IDAT, filter 0 on every row),
/// checking the signature and every chunk's CRC; returns `(width, height, pixels)`.
#[test]
fn devices_are_checked_and_one_device_trains_like_backend() {
    let dir = TempDir::new("train-devices");
    let x = dir.path("x");
    let base = ["train", "--dataset", "rings", "--out", s(&x)];
    let train = |extra: &[&'static str]| [&base[..], extra].concat();
    run_err(&train(&["--devices", "flex,metal"]), &["--devices", "unknown backend `metal`"]);
    run_err(&train(&["--devices", "cuda:0,cuda:1"]), &["--devices cuda:0", "--features cuda"]);
    run_err(&train(&["--devices", "cuda:x"]), &["--devices cuda:x", "device index"]);
    run_err(&train(&["--devices", "flex,flex"]), &["--devices flex,flex", "`flex` cannot train data-parallel", "only between CUDA devices"]);
    run_err(&train(&["--devices", "flex", "--backend", "flex"]), &["--devices", "cannot be used with", "--backend"]);
    assert!(!x.exists(), "a refused run left {} behind", x.display());

    let (one, plain) = (dir.path("one"), dir.path("plain"));
    run_ok(&["train", "--dataset", "rings", "--steps", "20", "--log-every", "1", "--devices", "flex", "--out", s(&one)]);
    run_ok(&["train", "--dataset", "rings", "--steps", "20", "--log-every", "1", "--backend", "flex", "--out", s(&plain)]);
    // The same seed on the same backend: the same losses, bit for bit.
    assert_eq!(log_losses(&one), log_losses(&plain));
}

fn decode_gray_png(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let (w, h, c, pixels) = decode_png(bytes);
    assert_eq!(c, 1, "8-bit grey");
    (w, h, pixels)
}

/// `(width, height, channels, levels)` of an 8-bit grey (1) or RGB (3) PNG, decoded by the
/// `png` crate (which checks the signature and every chunk's CRC).
fn decode_png(bytes: &[u8]) -> (usize, usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a buffer size")];
    let info = reader.next_frame(&mut pixels).expect("a PNG frame");
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "8-bit levels");
    let c = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::Rgb => 3,
        other => panic!("expected grey or RGB, found {other:?}"),
    };
    pixels.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, c, pixels)
}

fn run_owned(args: &[String]) -> String {
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn json_of(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn trained_mlp_run_samples_exports_and_gives_finite_likelihood() {
    let dir = TempDir::new("mlp-model");
    let run_dir = dir.path("run");
    run_ok(&["train", "--dataset", "two-moons", "--steps", "20", "--batch-size", "64", "--checkpoint-every", "10", "--out", s(&run_dir)]);
    let sample = |model: &Path, out: &Path| {
        run_ok(&["sample", "--model", s(model), "--sampler", "ddim", "--steps", "10", "--n", "16", "--seed", "5", "--out", s(out)]);
    };
    let a = dir.path("a.npy");
    sample(&run_dir, &a);
    let x = read_npy(&a).unwrap();
    assert_eq!(x.shape, [16, 2]);
    assert!(x.data.iter().all(|v| v.is_finite()));

    // Export, then the export directory samples exactly what the run directory did.
    let exp = dir.path("models/moons");
    let out = run_ok(&["export", "--model", s(&run_dir), "--out", s(&exp), "--command", "native-cli train --dataset two-moons"]);
    assert!(out.contains("moons"), "{out}");
    let card = scorediff::export::ModelCard::from_json(&std::fs::read_to_string(exp.join("model.json")).unwrap()).unwrap();
    assert_eq!((card.name.as_str(), card.dtype, card.steps_trained, card.shape.clone()), ("moons", scorediff::export::WeightsDType::F32, 20, vec![2]));
    assert!(card.parameters > 0 && card.command.contains("two-moons"));
    let b = dir.path("b.npy");
    sample(&exp, &b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "export and run dir sample alike");

    // Re-exporting the same weights is fine; other (f16) weights need --force.
    run_ok(&["export", "--model", s(&run_dir), "--out", s(&exp)]);
    run_err(&["export", "--model", s(&run_dir), "--out", s(&exp), "--f16"], &[s(&exp), "different model", "--force"]);
    let f32_len = std::fs::metadata(exp.join("weights.bpk")).unwrap().len();
    run_ok(&["export", "--model", s(&run_dir), "--out", s(&exp), "--f16", "--force"]);
    let f16_len = std::fs::metadata(exp.join("weights.bpk")).unwrap().len();
    assert!((f16_len as f64) < 0.6 * f32_len as f64, "f16 {f16_len} vs f32 {f32_len} bytes");
    let c = dir.path("c.npy");
    sample(&exp, &c);
    assert!(read_npy(&c).unwrap().data.iter().all(|v| v.is_finite()));

    // Likelihood of the samples (exact divergence in 2-D, and Hutchinson).
    for extra in [&[][..], &["--hutchinson", "gaussian"][..]] {
        let mut args: Vec<String> = ["likelihood", "--model", s(&run_dir), "--data", s(&a), "--json"].map(String::from).to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        let v = json_of(&run_owned(&args));
        assert!(v["bits_per_dim"].as_f64().unwrap().is_finite(), "{v}");
        assert_eq!(v["n"], 16);
    }

    // Bad input: one error line each.
    run_err(&["sample", "--model", s(&run_dir), "--sampler", "ddim", "--n", "2", "--out", s(&dir.path("x.png"))], &["--out", "image model"]);
    run_err(
        &["sample", "--model", s(&run_dir), "--sampler", "ddim", "--n", "2", "--guidance", "1", "--out", s(&dir.path("x.npy"))],
        &["--guidance", "not class-conditional"],
    );
    let mixture = write_mixture(&dir);
    run_err(&["export", "--model", s(&mixture), "--out", s(&dir.path("m"))], &["mixture"]);
    run_err(&["sample", "--model", s(&dir.0), "--sampler", "ddim", "--n", "2", "--out", s(&dir.path("x.npy"))], &["directory", "config.json", "model.json"]);
}

/// A tiny U-Net run on the MNIST test subset: base_channels 8, one level, a few steps.
fn train_tiny_unet(dir: &TempDir) -> PathBuf {
    let ddpm = serde_json::json!({"kind": "ddpm", "schedule": "linear", "levels": 1000});
    train_tiny_unet_with(dir, "unet-run", ddpm, serde_json::json!({"kind": "ddpm-simple"}), "small", 3, &[])
}

#[test]
fn class_conditional_training_gives_a_guidable_model() {
    let dir = TempDir::new("cond-unet");
    let run_dir = train_tiny_unet_with(
        &dir,
        "cond-run",
        serde_json::json!({"kind": "ddpm", "schedule": "linear", "levels": 1000}),
        serde_json::json!({"kind": "ddpm-simple"}),
        "small",
        3,
        &["--class-conditional"],
    );
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["network"]["num_classes"], 10);
    assert_eq!(config["label_dropout"], 0.1);
    let out = dir.path("guided.npy");
    let args = ["sample", "--model", s(&run_dir), "--sampler", "ddim", "--steps", "3", "--n", "2", "--guidance", "2", "--class", "3", "--seed", "1"];
    run_ok(&[&args[..], &["--out", s(&out)]].concat());
    assert!(read_npy(&out).unwrap().data.iter().all(|v| v.is_finite()));
    run_err(&["train", "--dataset", "two-moons", "--class-conditional", "--out", s(&dir.path("toy"))], &["--class-conditional", "two-moons", "no classes"]);
    run_err(&["train", "--resume", "--class-conditional", "--out", s(&run_dir)], &["--class-conditional", "--resume"]);
}

#[test]
fn trained_unet_run_samples_png_npy_trajectory_exports_and_gives_bits_per_dim() {
    let dir = TempDir::new("unet-model");
    let run_dir = train_tiny_unet(&dir);
    let subset = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/mnist-subset");

    // PNG grid (6 samples: 3 x 2 tiles of 28 px with 2 px gaps) and trajectory strip.
    let (grid, strip) = (dir.path("grid.png"), dir.path("traj.png"));
    run_ok(&[
        "sample",
        "--model",
        s(&run_dir),
        "--sampler",
        "ddim",
        "--steps",
        "5",
        "--n",
        "6",
        "--seed",
        "2",
        "--out",
        s(&grid),
        "--trajectory",
        s(&strip),
        "--trajectory-rows",
        "2",
        "--trajectory-cols",
        "4",
    ]);
    let (w, h, px) = decode_gray_png(&std::fs::read(&grid).unwrap());
    assert_eq!((w, h), (3 * 28 + 4 * 2, 2 * 28 + 3 * 2));
    assert_eq!(px.len(), w * h);
    let (w, h, _) = decode_gray_png(&std::fs::read(&strip).unwrap());
    assert_eq!((w, h), (4 * 28 + 5 * 2, 2 * 28 + 3 * 2));

    // .npy of shape [n, 1, 28, 28]; the same from the export directory with the same seed.
    let sample_npy = |model: &Path, out: &Path| {
        run_ok(&["sample", "--model", s(model), "--sampler", "ancestral", "--steps", "4", "--n", "3", "--batch", "2", "--seed", "7", "--out", s(out)]);
    };
    let a = dir.path("a.npy");
    sample_npy(&run_dir, &a);
    let bytes = std::fs::read(&a).unwrap();
    assert!(String::from_utf8_lossy(&bytes[..128]).contains("'shape': (3, 1, 28, 28)"));
    let x = read_npy(&a).unwrap();
    assert_eq!(x.shape, [3, 784]);
    assert!(x.data.iter().all(|v| v.is_finite()));
    let exp = dir.path("mnist-export");
    run_ok(&["export", "--model", s(&run_dir), "--out", s(&exp)]);
    let b = dir.path("b.npy");
    sample_npy(&exp, &b);
    assert_eq!(bytes, std::fs::read(&b).unwrap(), "export and run dir sample alike");

    // Bits/dim of dequantized test digits: finite and positive (the dequantized NLL bounds
    // -log P(k) >= 0 from above).
    let v = json_of(&run_ok(&[
        "likelihood",
        "--model",
        s(&run_dir),
        "--data",
        "mnist-test",
        "--data-dir",
        s(&subset),
        "--n",
        "2",
        "--batch",
        "2",
        "--hutchinson",
        "rademacher",
        "--rtol",
        "1e-3",
        "--atol",
        "1e-3",
        "--json",
    ]));
    let bpd = v["bits_per_dim"].as_f64().unwrap();
    assert!(bpd.is_finite() && bpd > 0.0, "{v}");
    assert_eq!(v["dequantization_offset_bits"], 7.0);
    assert_eq!((v["n"].as_u64(), v["dim"].as_u64()), (Some(2), Some(784)));

    // Bad input: guidance on an unconditional U-Net, corrupt weights, another format version.
    run_err(
        &["sample", "--model", s(&run_dir), "--sampler", "ddim", "--n", "2", "--guidance", "2", "--out", s(&dir.path("g.png"))],
        &["--guidance", "not class-conditional", "num_classes"],
    );
    let weights = exp.join("weights.bpk");
    let good = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &good[..good.len() / 2]).unwrap();
    run_err(&["sample", "--model", s(&exp), "--sampler", "ddim", "--n", "2", "--out", s(&dir.path("c.npy"))], &["weights.bpk"]);
    std::fs::write(&weights, &good).unwrap();
    let card = exp.join("model.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&card).unwrap()).unwrap();
    v["format"] = 99.into();
    std::fs::write(&card, v.to_string()).unwrap();
    run_err(
        &["sample", "--model", s(&exp), "--sampler", "ddim", "--n", "2", "--out", s(&dir.path("c.npy"))],
        &["model.json", "`format`", "expected version 1", "found 99"],
    );
    assert!(!dir.path("c.npy").exists());
}

/// A tiny U-Net run config with `sde`, `loss` and `variance` (`out_channels` 2 for a learned
/// variance) for `steps` steps.
fn tiny_unet_config(sde: serde_json::Value, loss: serde_json::Value, variance: &str, steps: usize) -> serde_json::Value {
    let out_channels = if variance == "learned-range" { serde_json::json!(2) } else { serde_json::Value::Null };
    serde_json::json!({
        "format": 1, "dataset": "mnist",
        "network": {
            "kind": "unet", "in_channels": 1, "out_channels": out_channels, "base_channels": 8, "channel_mult": [1],
            "num_res_blocks": 1, "attention_resolutions": null, "dropout": 0.0, "groups": 4,
            "time_embedding": {"kind": "sinusoidal", "scale": 1000.0}, "num_classes": null, "parameterization": "eps"
        },
        "sde": sde, "loss": loss, "variance": variance,
        "optim": {"lr": 1e-3, "warmup": 0},
        "batch_size": 4, "steps": steps, "seed": 1, "checkpoint_every": steps
    })
}

/// [`tiny_unet_config`] trained on the MNIST subset into `dir/name`.
fn train_tiny_unet_with(dir: &TempDir, name: &str, sde: serde_json::Value, loss: serde_json::Value, variance: &str, steps: usize, extra: &[&str]) -> PathBuf {
    let run_dir = dir.path(name);
    let config = dir.path(&format!("{name}.json"));
    std::fs::write(&config, tiny_unet_config(sde, loss, variance, steps).to_string()).unwrap();
    let subset = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/mnist-subset");
    let mut args = vec!["train", "--config", s(&config), "--data-dir", s(&subset), "--out", s(&run_dir)];
    args.extend(extra);
    run_ok(&args);
    run_dir
}

/// Improved DDPM end to end on a tiny random U-Net: `train --config` with the hybrid loss, a
/// learned variance and importance sampling; ancestral sampling on a respaced grid with the
/// learned variance by default; `likelihood --method vlb` gives a finite, positive bits/dim
/// whose parts add up; bad combinations give one error line.
#[test]
fn learned_variance_run_trains_samples_and_gives_vlb_bits_per_dim() {
    let dir = TempDir::new("improved-ddpm");
    let subset = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/mnist-subset");
    let ddpm = serde_json::json!({"kind": "ddpm", "schedule": "cosine", "levels": 30});
    let hybrid = serde_json::json!({"kind": "hybrid", "lambda": 0.001, "importance_sampling": true});
    let run_dir = train_tiny_unet_with(&dir, "hybrid-run", ddpm.clone(), hybrid.clone(), "learned-range", 3, &[]);
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["variance"].as_str(), config["loss"]["kind"].as_str()), (Some("learned"), Some("hybrid")));

    let out = dir.path("x.npy");
    let v =
        json_of(&run_ok(&["sample", "--model", s(&run_dir), "--sampler", "ancestral", "--steps", "6", "--n", "3", "--seed", "1", "--json", "--out", s(&out)]));
    assert_eq!((v["steps"].as_u64(), v["nfe"].as_u64()), (Some(6), Some(6)));
    assert!(read_npy(&out).unwrap().data.iter().all(|x| x.is_finite()));
    run_ok(&["sample", "--model", s(&run_dir), "--sampler", "ancestral", "--variance", "large", "--steps", "6", "--n", "3", "--out", s(&out)]);
    // `solve` honours the model's own (learned) variance unless told another.
    let solved = |extra: &[&str]| {
        let png = dir.path("solved.png");
        let args =
            ["solve", "--model", s(&run_dir), "--task", "inpaint", "--method", "projection", "--steps", "4", "--test-index", "0", "--data-dir", s(&subset)];
        run_ok(&[&args[..], &["--out", s(&png)], extra].concat());
        std::fs::read(&png).unwrap()
    };
    let own = solved(&[]);
    assert_eq!(own, solved(&["--variance", "learned"]), "solve without --variance uses the model's learned variance");
    assert_ne!(own, solved(&["--variance", "small"]));

    let vlb_with = |model: &Path, extra: &[&str]| {
        let args =
            ["likelihood", "--model", s(model), "--method", "vlb", "--data", "mnist-test", "--data-dir", s(&subset), "--n", "3", "--batch", "2", "--json"];
        json_of(&run_ok(&[&args[..], extra].concat()))
    };
    let vlb = |model: &Path| vlb_with(model, &[]);
    let v = vlb(&run_dir);
    let bpd = v["bits_per_dim"].as_f64().unwrap();
    assert!(bpd.is_finite() && bpd > 0.0, "{v}");
    let parts: f64 = ["prior_bits_per_dim", "kl_bits_per_dim", "decoder_bits_per_dim"].iter().map(|k| v[k].as_f64().unwrap()).sum();
    assert!((parts - bpd).abs() < 1e-9 * bpd.max(1.0), "{v}");
    assert_eq!((v["method"].as_str(), v["variance"].as_str(), v["levels"].as_u64()), (Some("vlb"), Some("learned"), Some(30)));
    // 30 levels per image, for each of the two batches (2 + 1 images).
    assert_eq!((v["n"].as_u64(), v["dim"].as_u64(), v["nfe"].as_u64(), v["nfe_total"].as_u64()), (Some(3), Some(784), Some(30), Some(60)));
    // The export directory carries the variance: the same bound from the same seed.
    let exp = dir.path("hybrid-export");
    run_ok(&["export", "--model", s(&run_dir), "--out", s(&exp)]);
    assert_eq!(vlb(&exp)["bits_per_dim"], v["bits_per_dim"]);
    // `--variance` overrides the model's own in the bound: the same points, another bound.
    for fixed in ["small", "large"] {
        let f = vlb_with(&run_dir, &["--variance", fixed]);
        assert_eq!(f["variance"].as_str(), Some(fixed), "{f}");
        let fb = f["bits_per_dim"].as_f64().unwrap();
        assert!(fb.is_finite() && fb > 0.0 && fb != bpd, "{f} vs {v}");
    }
    assert_eq!(vlb_with(&run_dir, &["--variance", "learned"])["bits_per_dim"], v["bits_per_dim"]);

    // Errors: the bound of a continuous SDE or a mixture, on continuous data; a learned variance
    // asked of a fixed-variance model; a learned variance or the hybrid loss on a continuous SDE.
    let vp = serde_json::json!({"kind": "vp"});
    let vp_run = train_tiny_unet_with(&dir, "vp-run", vp.clone(), serde_json::json!({"kind": "dsm"}), "small", 1, &[]);
    let data = ["--data", "mnist-test", "--data-dir", s(&subset), "--n", "2"];
    run_err(&[&["likelihood", "--model", s(&vp_run), "--method", "vlb"][..], &data].concat(), &["--method vlb", "sde.kind = vp", "--method ode"]);
    let mixture = write_mixture(&dir);
    let points = dir.path("p.npy");
    write_npy_f32(&points, &[0.0, 0.0], [1, 2]).unwrap();
    run_err(&["likelihood", "--model", s(&mixture), "--method", "vlb", "--data", s(&points)], &["--method vlb", "Gaussian mixture"]);
    run_err(&["likelihood", "--model", s(&run_dir), "--method", "vlb", "--data", s(&points)], &["--method vlb", "8-bit images"]);
    run_err(&["likelihood", "--model", s(&run_dir), "--method", "exact", "--data", s(&points)], &["--method"]);
    run_err(&["likelihood", "--model", s(&run_dir), "--variance", "small", "--data", s(&points)], &["--variance small", "--method vlb"]);
    let fixed_run = train_tiny_unet_with(&dir, "fixed-run", ddpm.clone(), serde_json::json!({"kind": "ddpm-simple"}), "small", 1, &[]);
    run_err(
        &[&["likelihood", "--model", s(&fixed_run), "--method", "vlb", "--variance", "learned"][..], &data].concat(),
        &["--variance", "no learned variance", "found learned", "small"],
    );
    run_err(
        &["sample", "--model", s(&vp_run), "--sampler", "ancestral", "--variance", "learned", "--n", "2", "--out", s(&out)],
        &["--variance", "no learned variance", "found learned"],
    );
    let bad = |sde: serde_json::Value, loss: serde_json::Value, variance: &str, needles: &[&str]| {
        let config = dir.path("bad.json");
        let mut v = tiny_unet_config(sde, loss, variance, 1);
        v["network"]["out_channels"] = 2.into();
        std::fs::write(&config, v.to_string()).unwrap();
        run_err(&["train", "--config", s(&config), "--data-dir", s(&subset), "--out", s(&dir.path("bad-run"))], needles);
    };
    bad(vp, hybrid.clone(), "learned-range", &["variance", "sde.kind = ddpm", "found sde.kind = vp"]);
    bad(ddpm.clone(), serde_json::json!({"kind": "ddpm-simple"}), "learned-range", &["loss.kind", "hybrid", "found ddpm-simple"]);
    bad(ddpm, hybrid, "fixed-large", &["variance", "expected learned, found large"]);
}

/// Headers and fields that size an allocation (issue 22): each claims far more than any model
/// needs and is refused with one line naming the file and field, before anything is allocated
/// (before: `memory allocation of 8000000000000 bytes failed`, SIGABRT, for `levels`).
#[test]
fn huge_sizes_in_files_are_refused_before_allocating() {
    let dir = TempDir::new("huge-sizes");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/models");
    let out = dir.path("x.npy");
    let export = |name: &str, model: &str, edit: &dyn Fn(&mut serde_json::Value)| -> PathBuf {
        let d = dir.path(name);
        std::fs::create_dir_all(&d).unwrap();
        let mut card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(shipped.join(model).join("model.json")).unwrap()).unwrap();
        edit(&mut card);
        std::fs::write(d.join("model.json"), card.to_string()).unwrap();
        std::fs::copy(shipped.join(model).join("weights.bpk"), d.join("weights.bpk")).unwrap();
        d
    };
    let sample = |model: &Path, needles: &[&str]| {
        run_err(&["sample", "--model", s(model), "--sampler", "ddim", "--steps", "5", "--n", "3", "--out", s(&out)], needles);
    };
    let levels = export("levels", "two-moons", &|c| c["sde"] = serde_json::json!({"kind": "ddpm", "schedule": "linear", "levels": 1_000_000_000_000u64}));
    sample(&levels, &["model.json", "sde.levels", "at most 1000000", "found 1000000000000"]);
    let hidden = export("hidden", "two-moons", &|c| c["network"]["hidden"] = (1u64 << 40).into());
    sample(&hidden, &["model.json", "hidden", "at most 16384"]);
    let layers = export("layers", "two-moons", &|c| c["network"]["layers"] = 1_000_000_000u64.into());
    sample(&layers, &["model.json", "layers", "at most 64"]);
    let width = export("width", "mnist", &|c| c["network"]["base_channels"] = (1u64 << 20).into());
    sample(&width, &["model.json", "base_channels", "at most 16384"]);
    let params = export("params", "mnist", &|c| c["network"]["base_channels"] = 4096.into());
    sample(&params, &["model.json", "parameters", "at most 134217728"]);
    let classes = export("classes", "mnist", &|c| c["network"]["num_classes"] = 1_000_000_000_000u64.into());
    sample(&classes, &["model.json", "num_classes", "at most 65536"]);
    let shape = export("shape", "mnist", &|c| c["shape"] = serde_json::json!([1, 1_000_000, 1_000_000]));
    sample(&shape, &["model.json", "shape", "at most 16384"]);
    assert!(!out.exists());

    // A .npy whose shape's product overflows, and one claiming 10^12 rows.
    let model = write_mixture(&dir);
    for (name, dims) in [("overflow.npy", "18446744073709551615, 4"), ("rows.npy", "1000000000000, 2")] {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}\n");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0; 16]);
        let path = dir.path(name);
        std::fs::write(&path, bytes).unwrap();
        run_err(&["likelihood", "--model", s(&model), "--data", s(&path)], &[name, "data bytes"]);
    }

    // Training configs: 10^12 levels, a batch of 10^15 images.
    let config = dir.path("levels.json");
    let mut v = tiny_unet_config(
        serde_json::json!({"kind": "ddpm", "schedule": "linear", "levels": 1_000_000_000_000u64}),
        serde_json::json!({"kind": "ddpm-simple"}),
        "small",
        1,
    );
    std::fs::write(&config, v.to_string()).unwrap();
    let subset = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/mnist-subset");
    run_err(&["train", "--config", s(&config), "--data-dir", s(&subset), "--out", s(&dir.path("r1"))], &["levels", "at most 1000000"]);
    v["sde"] = serde_json::json!({"kind": "ddpm", "schedule": "linear", "levels": 1000});
    v["batch_size"] = 1_000_000_000_000_000u64.into();
    std::fs::write(&config, v.to_string()).unwrap();
    run_err(&["train", "--config", s(&config), "--data-dir", s(&subset), "--out", s(&dir.path("r2"))], &["batch_size", "at most 268435456"]);
}

/// A non-finite loss (injected by the hidden `--inject-nan-at`) stops training with the step
/// named; the checkpoint of step 20 is kept as it was, and resuming from it completes the run.
#[test]
fn a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint() {
    let dir = TempDir::new("train-nan");
    let run_dir = dir.path("run");
    let args = ["train", "--dataset", "rings", "--batch-size", "32", "--steps", "30", "--checkpoint-every", "10", "--out", s(&run_dir)];
    run_err(&[&args[..], &["--inject-nan-at", "25"]].concat(), &["NaN at step 25", "last good checkpoint"]);
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 20);
    let model = std::fs::read(run_dir.join("checkpoint/model.bpk")).unwrap();
    run_ok(&["train", "--resume", "--steps", "30", "--out", s(&run_dir)]);
    assert_ne!(std::fs::read(run_dir.join("checkpoint/model.bpk")).unwrap(), model);
}

/// An imported colour checkpoint (the tiny diffusers fixture, 3x16x16) samples into an RGB PNG
/// grid and an RGB trajectory strip whose tiles are the `.npy` samples' levels, channel by
/// channel.
#[test]
fn an_imported_rgb_model_samples_rgb_pngs() {
    let dir = TempDir::new("import-rgb");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/diffusers-tiny");
    let model = dir.path("tiny");
    run_ok(&["import-diffusers", "--from", s(&fixture), "--out", s(&model)]);
    let (png_out, npy_out, strip) = (dir.path("grid.png"), dir.path("grid.npy"), dir.path("strip.png"));
    let base = ["sample", "--model", s(&model), "--sampler", "ddim", "--steps", "4", "--n", "4", "--seed", "5"];
    run_ok(&[&base[..], &["--out", s(&png_out), "--trajectory", s(&strip), "--trajectory-rows", "2", "--trajectory-cols", "3"]].concat());
    run_ok(&[&base[..], &["--out", s(&npy_out)]].concat());
    let (w, h, c, pixels) = decode_png(&std::fs::read(&png_out).unwrap());
    // A 2x2 grid of 16x16 tiles with 2-pixel gaps.
    assert_eq!((w, h, c), (2 * 16 + 3 * 2, 2 * 16 + 3 * 2, 3));
    let samples = read_npy(&npy_out).unwrap();
    assert_eq!(samples.shape, [4, 3 * 16 * 16]);
    for i in 0..4 {
        let (y0, x0) = (2 + (i / 2) * 18, 2 + (i % 2) * 18);
        for ch in 0..3 {
            for (y, x) in [(0, 0), (7, 9), (15, 15)] {
                let v = samples.data[((i * 3 + ch) * 16 + y) * 16 + x];
                let want = scorediff::data::mnist::signed_to_pixel(v as f32);
                assert_eq!(pixels[((y0 + y) * w + x0 + x) * 3 + ch], want, "image {i}, channel {ch}, ({y}, {x})");
            }
        }
    }
    let (w, h, c, _) = decode_png(&std::fs::read(&strip).unwrap());
    assert_eq!((w, h, c), (3 * 16 + 4 * 2, 2 * 16 + 3 * 2, 3));
}
