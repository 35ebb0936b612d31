//! Native Flex timing of one U-Net evaluation, beside the browser's (`bench.rs`): the same
//! architecture, batches and warm-up. Run with `cargo run -p scorediff-web --example
//! bench_native` (dependencies, where the time goes, are compiled with opt-level 3 even in the
//! dev profile).

use scorediff_web::scorediff::burn::tensor::{Device, Tensor};
use scorediff_web::scorediff::nn::UNetConfig;
use std::time::Instant;

fn main() {
    let device = Device::flex();
    let net = UNetConfig::new().with_base_channels(16).with_dropout(0.0).init(&device);
    for batch in [1, 16] {
        let x = Tensor::<4>::zeros([batch, 1, 28, 28], &device);
        let t = vec![0.5; batch];
        net.forward(x.clone(), &t, None).sum().into_data();
        let reps = 5;
        let start = Instant::now();
        for _ in 0..reps {
            net.forward(x.clone(), &t, None).sum().into_data();
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
        println!("BENCH native-flex batch {batch}: {ms:.1} ms per U-Net evaluation ({reps} evaluations)");
    }
}
