//! # scorediff-web
//!
//! WebAssembly bindings of the core for the page in `www/`: load an exported model (the
//! `model.json` + `weights.bpk` pair `native-cli export` writes), choose the device at run time
//! (WebGPU through burn's wgpu backend when `navigator.gpu` gives an adapter, else Flex on the
//! CPU), run any sampler of the core as a stepper, interpolate seeds along great circles
//! (Song, Meng & Ermon 2021, section 5.3), inpaint by projection (Song et al. 2021, appendix
//! I.2), and the 2-D lab: toy data, exact mixture scores, learned score fields, particle
//! trajectories and live training with the core's trainer.
//!
//! A thin adapter: [`engine`] holds state and parses requests over the core on any device (and
//! is what the native reference test drives); `bindings` (wasm32 only) is the JavaScript
//! surface, with errors as `JsError` and tensor reads as promises.

pub mod bench;
pub mod engine;
pub mod inverse;

#[cfg(target_arch = "wasm32")]
mod bindings;

/// Brings up burn's wgpu backend on the browser's WebGPU (once per page); an error says why not.
#[cfg(target_arch = "wasm32")]
pub async fn webgpu_device() -> Result<scorediff::burn::tensor::Device, String> {
    bindings::webgpu().await
}

pub use scorediff;
