//! End-to-end tests of `native-cli eval` and `native-cli bench`: the Frechet distance of real
//! images sits at the real-data floor and that of noise far above it, and the per-sample
//! failure rule passes every real digit and fails every noise image; `--floor-draws` reports
//! its draws and their spread, alone or beside samples, on the same test images; `nfe` counts
//! the network evaluations per sample, however many batches; a mixture's exact samples get an
//! energy distance inside the null distribution; `bench --json` has its fields.
//!
//! The image tests use the shipped classifier (`www/models/classifier-mnist`), the MNIST subset
//! in `tests/data/mnist-subset` and the tiny U-Net of the web crate's fixtures, so they need no
//! download.

use scorediff::data::{ImageDataset, Split};
use scorediff::eval::{energy_null, target};
use scorediff::io::write_npy_f32;
use scorediff::mixture::MixtureFile;
use scorediff::noise::NoiseSource;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("native-cli-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_native-cli")).args(args).output().expect("native-cli runs");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn f(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no number `{key}` in {v}"))
}

#[test]
fn real_images_sit_at_the_floor_and_noise_far_above() {
    let subset = root().join("tests/data/mnist-subset");
    let classifier = root().join("www/models/classifier-mnist");
    let dir = temp("images");
    // The subset's 100 real training digits (10 of each class) as "samples": real data, so their
    // distance to the subset's 50 test digits is the floor's (50 training digits vs the same
    // test digits) up to sampling noise.
    let train = ImageDataset::load_dir(&subset, Split::Train).unwrap();
    let idx: Vec<usize> = (0..train.n).collect();
    let real = dir.join("real.npy");
    write_npy_f32(&real, &train.batch(&idx), [idx.len(), 784]).unwrap();
    let mut noise = NoiseSource::new(9);
    let junk: Vec<f32> = (0..100 * 784).map(|_| (2.0 * noise.uniform() - 1.0) as f32).collect();
    let noisy = dir.join("noise.npy");
    write_npy_f32(&noisy, &junk, [100, 784]).unwrap();

    let args = |samples: &Path| {
        let v = vec!["eval", "--samples", samples.to_str().unwrap(), "--dataset", "mnist", "--n", "100", "--json"];
        v.into_iter()
            .map(String::from)
            .chain(["--data-dir".into(), subset.display().to_string(), "--classifier".into(), classifier.display().to_string()])
            .collect::<Vec<_>>()
    };
    let real_args = args(&real);
    let r = run_json(&real_args.iter().map(String::as_str).collect::<Vec<_>>());
    let noise_args = args(&noisy);
    let z = run_json(&noise_args.iter().map(String::as_str).collect::<Vec<_>>());
    println!("real: {r}\nnoise: {z}");
    let (fd, floor, fd_noise) = (f(&r, "frechet_distance"), f(&r, "frechet_distance_floor"), f(&z, "frechet_distance"));
    // Real digits vs test digits is the floor's own comparison (training vs test digits); with
    // 100 samples instead of the floor's 50 the estimate's positive bias is, if anything, smaller.
    assert!(floor > 0.0 && fd < 2.0 * floor, "real {fd} vs floor {floor}");
    // At n = 50 in 128 dimensions the floor is mostly the estimator's bias (about Tr(S) dim / n),
    // so uniform noise is "only" several times above it; it also collapses onto one or two
    // classes (entropy far below log2 10).
    assert!(fd_noise > 5.0 * floor, "noise {fd_noise} vs floor {floor}");
    assert!(f(&z, "class_entropy_bits") < 1.0, "{z}");
    // A good classifier is confident on real digits and they cover the ten classes evenly
    // (10 of each: entropy log2 10 = 3.32 if all are classified right, 3.30 with one mistake).
    assert!(f(&r, "confidence") > 0.9, "{r}");
    assert!(f(&r, "class_entropy_bits") > 3.2 && f(&r, "class_entropy_bits") <= 10f64.log2() + 1e-12, "{r}");
    assert!(f(&z, "confidence") < f(&r, "confidence"), "{z}");
    assert_eq!(r["n"], 100);
    // The failure rule: no real digit fails it, every uniform-noise image does; the test
    // images' count (the rule's false-positive rate) comes with every report.
    let rule = scorediff::metrics::FailureRule::MNIST.max_roughness;
    for v in [&r, &z] {
        assert_eq!(f(v, "failure_max_roughness"), rule, "{v}");
        assert_eq!((v["test_failures"].as_u64(), f(v, "test_failure_share")), (Some(0), 0.0), "{v}");
    }
    assert_eq!((r["failures"].as_u64(), f(&r, "failure_share")), (Some(0), 0.0), "{r}");
    assert_eq!((z["failures"].as_u64(), f(&z, "failure_share")), (Some(100), 1.0), "{z}");
    // Without --floor-draws there is no spread.
    assert!(r.get("floor_spread").is_none() && r.get("floor_draws").is_none(), "{r}");
    std::fs::remove_dir_all(dir).ok();
}

fn subset_args(extra: &[&str]) -> Vec<String> {
    let (subset, classifier) = (root().join("tests/data/mnist-subset"), root().join("www/models/classifier-mnist"));
    let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    v.extend(["--data-dir".into(), subset.display().to_string(), "--classifier".into(), classifier.display().to_string(), "--json".into()]);
    v
}

fn run_subset(extra: &[&str]) -> serde_json::Value {
    let args = subset_args(extra);
    run_json(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `--floor-draws K` alone: K distances and their mean, sd, min and max; the first draw is the
/// floor that an evaluation of samples with the same seed reports, against the same test images.
#[test]
fn floor_draws_report_their_spread() {
    let alone = run_subset(&["eval", "--dataset", "mnist", "--n", "20", "--seed", "3", "--floor-draws", "4"]);
    println!("{alone}");
    assert_eq!((alone["kind"].as_str(), alone["n"].as_u64()), (Some("floor"), Some(20)), "{alone}");
    let draws: Vec<f64> = alone["floor_draws"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(draws.len(), 4);
    assert!(draws.iter().all(|&d| d > 0.0) && draws.windows(2).any(|w| w[0] != w[1]), "independent draws differ: {draws:?}");
    let s = &alone["floor_spread"];
    let mean = draws.iter().sum::<f64>() / 4.0;
    let sd = (draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
    assert_eq!(s["count"], 4);
    assert!((f(s, "mean") - mean).abs() < 1e-9 && (f(s, "sd") - sd).abs() < 1e-9, "{s}");
    assert_eq!((f(s, "min"), f(s, "max")), (draws.iter().cloned().fold(f64::INFINITY, f64::min), draws.iter().cloned().fold(0.0, f64::max)));
    assert_eq!(f(&alone, "frechet_distance_floor"), draws[0]);
    assert_eq!(alone["test_failures"], 0);

    // Beside samples: the same draws (the same seed draws the same test and training images).
    let train = ImageDataset::load_dir(&root().join("tests/data/mnist-subset"), Split::Train).unwrap();
    let dir = temp("floor");
    let real = dir.join("real.npy");
    write_npy_f32(&real, &train.batch(&(0..20).collect::<Vec<_>>()), [20, 784]).unwrap();
    let samples = ["eval", "--samples", real.to_str().unwrap(), "--dataset", "mnist", "--n", "20", "--seed", "3"];
    let with = run_subset(&[&samples[..], &["--floor-draws", "4"]].concat());
    let without = run_subset(&samples);
    assert_eq!(with["floor_draws"], alone["floor_draws"], "{with}");
    assert_eq!(f(&with, "frechet_distance_floor"), draws[0]);
    assert_eq!(f(&without, "frechet_distance_floor"), draws[0]);
    assert_eq!(with["frechet_distance"], without["frechet_distance"]);
    // --floor-draws is for image data sets.
    let out = Command::new(env!("CARGO_BIN_EXE_native-cli")).args(["eval", "--dataset", "two-moons", "--floor-draws", "2"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--floor-draws"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(dir).ok();
}

/// `sampling.nfe` is what each sample saw: 5 samples in batches of 2 at 3 DDIM steps are 3
/// evaluations each (9 batched calls); a 2-D model in one batch likewise. The sampling time
/// and rate agree.
#[test]
fn nfe_is_per_sample_and_time_is_reported() {
    let unet = root().join("web/tests/fixtures/tiny-unet");
    let v = run_subset(&["eval", "--model", unet.to_str().unwrap(), "--sampler", "ddim", "--steps", "3", "--n", "5", "--batch", "2"]);
    println!("{v}");
    let s = &v["sampling"];
    assert_eq!((s["nfe"].as_u64(), s["steps"].as_u64(), v["n"].as_u64()), (Some(3), Some(3), Some(5)), "{v}");
    assert!(f(s, "seconds") > 0.0 && (f(s, "samples_per_second") * f(s, "seconds") - 5.0).abs() < 1e-6, "{s}");
    assert!(f(&v, "seconds") >= f(s, "seconds"), "{v}");
    assert!(v["failures"].as_u64().unwrap() <= 5 && (0.0..=1.0).contains(&f(&v, "failure_share")), "{v}");
    let toy = root().join("www/models/two-moons");
    let p = run_json(&["eval", "--model", toy.to_str().unwrap(), "--sampler", "ddim", "--steps", "4", "--n", "50", "--json"]);
    assert_eq!(p["sampling"]["nfe"], 4, "{p}");
    assert!(f(&p["sampling"], "samples_per_second") > 0.0, "{p}");
}

#[test]
fn exact_mixture_samples_have_a_null_energy_distance() {
    let model = root().join("examples/mixture-2d.json");
    let file = MixtureFile::from_json(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let p0 = target(&file).unwrap();
    let n = 400;
    let dir = temp("mixture");
    // Exact samples of p_0 from an independent stream, and the same shifted by 0.5.
    let exact: Vec<f64> = p0.sample(n, &mut NoiseSource::new(77));
    let shifted: Vec<f32> = exact.iter().map(|&v| v as f32 + 0.5).collect();
    let (a, b) = (dir.join("exact.npy"), dir.join("shifted.npy"));
    write_npy_f32(&a, &exact.iter().map(|&v| v as f32).collect::<Vec<_>>(), [n, 2]).unwrap();
    write_npy_f32(&b, &shifted, [n, 2]).unwrap();
    let m = model.to_str().unwrap();
    let e = run_json(&["eval", "--model", m, "--samples", a.to_str().unwrap(), "--n", "400", "--json"]);
    let s = run_json(&["eval", "--model", m, "--samples", b.to_str().unwrap(), "--n", "400", "--json"]);
    // The null distribution of the energy distance at this n (200 pairs of exact samples).
    let null = energy_null(&p0, n, 200, &mut NoiseSource::new(5));
    let q99 = null[(0.99 * null.len() as f64) as usize];
    println!("exact {e}\nshifted {s}\nnull 99% {q99}");
    assert!(f(&e, "energy_distance") < q99, "{e}");
    assert!(f(&e, "energy_distance_floor") < q99, "{e}");
    assert!(f(&s, "energy_distance") > 5.0 * q99, "{s}");
    assert!(f(&s, "mmd2") > 10.0 * f(&e, "mmd2").abs().max(1e-4), "{s} vs {e}");
    // Sampling the mixture's exact score: DDIM with 100 steps is close to exact.
    let d = run_json(&["eval", "--model", m, "--sampler", "ddim", "--steps", "100", "--n", "400", "--json"]);
    assert_eq!(d["sampling"]["nfe"], 100);
    assert!(f(&d, "energy_distance") < 2.0 * q99, "{d}");
    std::fs::remove_dir_all(dir).ok();
}

/// Every workload reports its runs, and its FLOPs follow the counter: a training step is 3
/// forward passes per image, a DDIM sample one per step and image, a gemm `2 n^3`.
#[test]
fn bench_json_has_its_fields() {
    let v = run_json(&[
        "bench",
        "--json",
        "--batches",
        "1,2",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--workload",
        "train,nfe,ddim,gemm",
        "--ddim-steps",
        "3",
        "--gemm-size",
        "16",
    ]);
    assert!(v["parameters"].as_u64().unwrap() > 1_000_000, "{v}");
    let forward = v["forward_flops_per_image"].as_u64().unwrap();
    let unet: scorediff::nn::UNetConfig = serde_json::from_value(v["unet"].clone()).unwrap();
    assert_eq!(forward, scorediff::nn::flops::unet_forward(&unet, 28, 28));
    let m = v["measurements"].as_array().unwrap();
    let expect = [
        ("train", 1, 3 * forward),
        ("train", 2, 6 * forward),
        ("nfe", 1, forward),
        ("nfe", 2, 2 * forward),
        ("ddim", 1, 3 * forward),
        ("ddim", 2, 6 * forward),
        ("gemm", 16, 2 * 16 * 16 * 16),
    ];
    assert_eq!(m.len(), expect.len(), "{v}");
    for (row, (w, b, flops)) in m.iter().zip(expect) {
        assert_eq!((row["workload"].as_str().unwrap(), row["batch"].as_u64().unwrap(), row["flops"].as_u64().unwrap()), (w, b, flops), "{row}");
        let times: Vec<f64> = row["times_s"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
        assert_eq!(times.len(), 2);
        assert!(times.iter().all(|&t| t > 0.0), "{row}");
        assert!((f(row, "median_s") - 0.5 * (times[0] + times[1])).abs() < 1e-12, "{row}");
        assert!((f(row, "gflops_per_s") - flops as f64 / f(row, "median_s") / 1e9).abs() < 1e-9, "{row}");
    }
    assert!(f(&v, "peak_rss_mib") > 1.0, "{v}");
}

/// `--input` must hold 28x28 images for the largest batch; the error names the file and shapes.
#[test]
fn bench_rejects_an_input_of_the_wrong_shape() {
    let dir = temp("bench-input");
    let path = dir.join("x.npy");
    write_npy_f32(&path, &vec![0.0; 3 * 10], [3, 10]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_native-cli")).args(["bench", "--input", path.to_str().unwrap(), "--batches", "2"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x.npy") && err.contains("[N >= 2, 784]") && err.contains("[3, 10]"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
