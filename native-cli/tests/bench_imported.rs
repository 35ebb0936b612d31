//! `native-cli bench --model` on an imported diffusers `UNet2DModel` (issue 21): the committed
//! tiny fixture (`tests/data/diffusers-tiny`, 3x16x16, seeded random weights) imported by
//! `import-diffusers` and timed by the evaluation workloads at the card's shape, with its own
//! parameter count, no invented FLOP count, and one error line for what it cannot time.

use std::path::{Path, PathBuf};

mod common;
use common::{TempDir, run_err_with, run_ok, s};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/diffusers-tiny")
}

/// The parameter count of a safetensors file, from its header (every tensor's shape), not
/// from the code under test.
fn safetensors_parameters(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let tensors = header.as_object().unwrap().iter().filter(|(k, _)| *k != "__metadata__");
    tensors.map(|(_, v)| v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).product::<u64>()).sum()
}

#[test]
fn bench_times_an_imported_model_at_its_cards_shape() {
    let dir = TempDir::new("bench-imported");
    let model = dir.path("tiny");
    run_ok(&["import-diffusers", "--from", s(&fixture()), "--out", s(&model)]);
    let base = ["bench", "--model", s(&model), "--batches", "2", "--repeats", "1", "--warmup", "0"];
    let text = run_ok(&[&base[..], &["--workload", "nfe,ddim", "--ddim-steps", "2", "--json"]].concat());
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(v["image"], serde_json::json!([3, 16, 16]), "the card's shape: {v}");
    assert_eq!(v["parameters"].as_u64(), Some(safetensors_parameters(&fixture().join("diffusion_pytorch_model.safetensors"))), "{v}");
    assert!(v["network"].as_str().unwrap().starts_with("diffusers-unet2d"), "{v}");
    assert_eq!(v["diffusers"]["unet"]["block_out_channels"], serde_json::json!([8, 16, 16, 16]), "{v}");
    assert!(v["forward_flops_per_image"].is_null() && v.get("unet").is_none(), "no FLOP count and no core U-Net config: {v}");
    let m = v["measurements"].as_array().unwrap();
    assert_eq!(m.len(), 2, "{v}");
    for (m, workload) in m.iter().zip(["nfe", "ddim"]) {
        assert_eq!((m["workload"].as_str(), m["batch"].as_u64()), (Some(workload), Some(2)), "{m}");
        assert!(m["median_s"].as_f64().unwrap() > 0.0 && m["flops"].is_null() && m["gflops_per_s"].is_null(), "{m}");
    }
    // The table says n/a rather than a GFLOP/s.
    let table = run_ok(&[&base[..], &["--workload", "nfe"]].concat());
    assert!(table.contains("3x16x16") && table.contains("FLOPs n/a") && table.contains("n/a"), "{table}");
    // Training needs the core's U-Net; inputs must have the card's c*h*w values per row.
    run_err_with(&base, &["--workload", "nfe,train"], &["train", "imported diffusers-unet2d"]);
    let npy = dir.path("wrong.npy");
    scorediff::io::write_npy_f32(&npy, &[0.0; 2 * 784], [2, 784]).unwrap();
    run_err_with(&base, &["--workload", "nfe", "--input", s(&npy)], &["--input", "768", "3x16x16"]);
    let npy = dir.path("right.npy");
    scorediff::io::write_npy_f32(&npy, &[0.5; 2 * 768], [2, 768]).unwrap();
    run_ok(&[&base[..], &["--workload", "nfe", "--input", s(&npy), "--json"]].concat());
}
