//! Timing of one U-Net evaluation in the browser, for BENCHMARKS.md: the MNIST architecture
//! (`www/models/mnist`'s config: base 16 channels, multipliers `[1, 2, 2]`, 2 blocks per level,
//! unconditional; random weights, which cost the same) at batch 1 and 16, on Flex in wasm and
//! on WebGPU. Not part of the test suite (it only measures); run it with
//! `cd web && wasm-pack test --headless --chrome --release -- --test bench` (and
//! `cargo run -p scorediff-web --example bench_native` for native Flex).
#![cfg(target_arch = "wasm32")]

use scorediff_web::scorediff::burn::tensor::{Device, Tensor};
use scorediff_web::scorediff::nn::UNetConfig;
use wasm_bindgen_test::*;

// In a dedicated worker, like the page and the browser test (see browser.rs).
wasm_bindgen_test_configure!(run_in_dedicated_worker);

/// Mean milliseconds per evaluation over `reps`, after one warm-up evaluation.
async fn ms_per_eval(device: &Device, batch: usize, reps: usize) -> f64 {
    let net = UNetConfig::new().with_base_channels(16).with_dropout(0.0).init(device);
    let x = Tensor::<4>::zeros([batch, 1, 28, 28], device);
    let t = vec![0.5; batch];
    let warm = net.forward(x.clone(), &t, None).sum();
    warm.into_data_async().await.unwrap();
    let start = js_sys::Date::now();
    let mut acc = Tensor::<1>::zeros([1], device);
    for _ in 0..reps {
        acc = acc + net.forward(x.clone(), &t, None).sum();
    }
    acc.into_data_async().await.unwrap();
    (js_sys::Date::now() - start) / reps as f64
}

#[wasm_bindgen_test]
async fn unet_evaluation_time() {
    let gpu = scorediff_web::webgpu_device().await.expect("WebGPU");
    for (name, device, reps) in [("flex-wasm", Device::flex(), 5), ("webgpu", gpu, 5)] {
        for batch in [1, 16] {
            let ms = ms_per_eval(&device, batch, reps).await;
            console_log!("BENCH {name} batch {batch}: {ms:.1} ms per U-Net evaluation ({reps} evaluations)");
        }
    }
}
