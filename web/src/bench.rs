//! One network evaluation of a loaded image model, for the browser side-by-side with
//! onnxruntime-web (issue 20; `bench/browser/` times it, `scripts/browser-bench.sh` runs it).
//!
//! A benchmark entry point, not a sampler: [`evaluation`] runs the loaded U-Net
//! ([`ImageModel`], loaded as the page loads it) once at time `t` on a batch of standard normal
//! images, the work of one sampler step without the sampler's few element-wise operations. On
//! WebGPU the output is read back with `into_data_async().await` (the only read WebGPU allows
//! in the browser), so the promise resolves once the GPU has finished. No maths here: the
//! network is the core's, the noise the core's [`NoiseSource`].

use crate::engine::{ImageModel, MAX_BATCH};
use scorediff::burn::tensor::Tensor;
use scorediff::noise::NoiseSource;

/// Checks a benchmark request: `batch` in `1..=MAX_BATCH`, `t` a finite time in the model's
/// `[t_min, t_max]`.
pub fn check(model: &ImageModel, batch: usize, t: f64) -> Result<(), String> {
    if !(1..=MAX_BATCH).contains(&batch) {
        return Err(format!("batch: expected 1 to {MAX_BATCH} images, found {batch}"));
    }
    let sde = model.card.sde().map_err(|e| e.to_string())?;
    let (lo, hi) = (sde.t_min(), sde.t_max());
    if !t.is_finite() || t < lo || t > hi {
        return Err(format!("t: expected a time in [{lo}, {hi}], found {t}"));
    }
    Ok(())
}

/// One evaluation of `model`'s network at time `t` on `batch` standard normal images drawn
/// from `seed` (the core's [`NoiseSource`]), flattened to `[batch * c * h * w]`. On WebGPU the
/// work is queued; reading the result waits for it.
pub fn evaluation(model: &ImageModel, batch: usize, t: f64, seed: u64) -> Result<Tensor<1>, String> {
    check(model, batch, t)?;
    let [c, h, w] = model.image_shape();
    let (net, target) = model.network();
    let x = NoiseSource::new(seed).normal([batch, c, h, w], &target.device);
    let out = scorediff::model::ScoreModel::forward(net, x, &vec![t; batch]); // [batch, c, h, w]
    let n = out.shape().num_elements();
    Ok(out.reshape([n]))
}

#[cfg(target_arch = "wasm32")]
mod js {
    //! The JavaScript surface: `BenchModel.load(device, card, weights)` and
    //! `model.evaluate(batch, t)`.
    use super::evaluation;
    use crate::engine::{Backend, ImageModel, Target};
    use js_sys::{Float32Array, Promise};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_futures::future_to_promise;

    fn err(message: impl std::fmt::Display) -> JsError {
        JsError::new(&message.to_string())
    }

    /// An image model loaded for timing single evaluations.
    #[wasm_bindgen(js_name = BenchModel)]
    pub struct BenchModel {
        model: ImageModel,
        seed: u64,
    }

    #[wasm_bindgen(js_class = BenchModel)]
    impl BenchModel {
        /// Loads `model.json`'s text and the weights' bytes on `device`: `"flex"` (the CPU,
        /// WebAssembly) or `"webgpu"` (an error naming why when there is no adapter).
        pub async fn load(device: String, model_json: String, weights: Vec<u8>) -> Result<BenchModel, JsError> {
            let target = match device.as_str() {
                "flex" => Target::flex(),
                "webgpu" => Target { device: crate::webgpu_device().await.map_err(err)?, backend: Backend::WebGpu },
                other => return Err(err(format!("device: expected flex or webgpu, found `{other}`"))),
            };
            let model = ImageModel::load(&model_json, weights, target).map_err(err)?;
            Ok(BenchModel { model, seed: 0 })
        }

        /// `"webgpu"` or `"flex"`.
        #[wasm_bindgen(getter)]
        pub fn backend(&self) -> String {
            self.model.network().1.backend.name()
        }

        /// The network's parameter count.
        #[wasm_bindgen(getter)]
        pub fn parameters(&self) -> u32 {
            self.model.network().0.num_params() as u32
        }

        /// A promise of the output of one evaluation at time `t` on `batch` fresh standard
        /// normal images (`Float32Array`, `[batch * c * h * w]`), resolved after reading it back.
        pub fn evaluate(&mut self, batch: u32, t: f64) -> Result<Promise, JsError> {
            self.seed += 1;
            let out = evaluation(&self.model, batch as usize, t, self.seed).map_err(err)?;
            Ok(future_to_promise(async move {
                let data = out.into_data_async().await.map_err(|e| JsValue::from(err(format!("reading the output back: {e:?}"))))?;
                let v = data.try_to_vec::<f32>().map_err(|e| JsValue::from(err(format!("reading the output back: {e:?}"))))?;
                Ok(Float32Array::from(&v[..]).into())
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Target;

    fn mnist() -> ImageModel {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../www/models/mnist/");
        let card = std::fs::read_to_string(format!("{dir}model.json")).expect("the shipped MNIST card");
        let weights = std::fs::read(format!("{dir}weights.bpk")).expect("the shipped MNIST weights");
        ImageModel::load(&card, weights, Target::flex()).expect("the shipped MNIST model loads")
    }

    #[test]
    fn one_evaluation_has_the_batch_shape_and_bad_requests_are_refused() {
        let model = mnist();
        let out = evaluation(&model, 2, 0.5, 1).expect("batch 2 at t = 0.5");
        let v = crate::engine::read_sync(out).expect("read");
        assert_eq!(v.len(), 2 * 28 * 28);
        assert!(v.iter().all(|x| x.is_finite()));
        for (batch, t, field) in [(0, 0.5, "batch"), (MAX_BATCH + 1, 0.5, "batch"), (1, f64::NAN, "t"), (1, 2.0, "t"), (1, -1.0, "t")] {
            let e = evaluation(&model, batch, t, 1).map(|_| ()).expect_err("refused");
            assert!(e.starts_with(field), "batch {batch}, t {t}: {e}");
        }
    }
}
