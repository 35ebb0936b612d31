//! The wasm-bindgen surface the page's worker (`www/worker.js`) calls. Every fallible call
//! returns a `JsError` whose message names what was wrong; reads of tensors are promises
//! (`into_data_async`), the only kind WebGPU allows in the browser. Seeds are `u32` (plain
//! JavaScript numbers).

use crate::engine::{self, Backend, ImageModel, Lab, PointModel, Run, Target};
use js_sys::{Float32Array, Promise};
use scorediff::burn::tensor::{Device, Tensor};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

fn err(message: impl std::fmt::Display) -> JsError {
    JsError::new(&message.to_string())
}

thread_local! {
    /// The WebGPU device once initialised (cubecl registers one client per device id).
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
    /// The message of the last panic, for the worker to show after a `RuntimeError`.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(s: &str);
}

/// Installs a panic hook that logs the message and keeps it for [`last_panic`]: a panic (a
/// bug, or WebGPU lost mid-step) aborts the call with a bare `RuntimeError: unreachable`, and
/// this is how the page learns what happened.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        console_error(&message);
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
    }));
}

/// The message of the last panic (empty if none).
#[wasm_bindgen(js_name = lastPanic)]
pub fn last_panic() -> String {
    LAST_PANIC.with(|p| p.borrow().clone().unwrap_or_default())
}

/// Whether `navigator.gpu` exists in this context (window or worker).
fn has_navigator_gpu() -> bool {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"navigator".into())
        .ok()
        .filter(|n| !n.is_undefined())
        .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()).ok())
        .is_some_and(|g| !g.is_undefined() && !g.is_null())
}

/// Brings up burn's wgpu backend on WebGPU (once per page).
pub(crate) async fn webgpu() -> Result<Device, String> {
    if let Some(d) = WEBGPU.with(|w| w.borrow().clone()) {
        return Ok(d);
    }
    if !has_navigator_gpu() {
        return Err("this browser has no navigator.gpu (WebGPU is off or unsupported)".into());
    }
    use scorediff::burn::backend::wgpu::{RuntimeOptions, try_init_setup_async};
    use scorediff::burn::backend::{AutoGraphicsApi, WgpuDevice};
    let wgpu = WgpuDevice::default();
    try_init_setup_async::<AutoGraphicsApi>(&wgpu, RuntimeOptions::default()).await.map_err(|e| format!("navigator.gpu gave no usable adapter: {e:?}"))?;
    let device = Device::from(wgpu);
    WEBGPU.with(|w| *w.borrow_mut() = Some(device.clone()));
    Ok(device)
}

/// The device the page computes on, chosen at run time.
#[wasm_bindgen]
pub struct Runtime {
    target: Target,
    note: String,
}

#[wasm_bindgen]
impl Runtime {
    /// `prefer`: `"auto"` (WebGPU when `navigator.gpu` gives an adapter, else Flex),
    /// `"webgpu"` (an error without one) or `"flex"`.
    pub async fn create(prefer: String) -> Result<Runtime, JsError> {
        match prefer.as_str() {
            "flex" => Ok(Runtime { target: Target::flex(), note: "Flex (CPU, WebAssembly) as asked".into() }),
            "webgpu" => {
                let device = webgpu().await.map_err(err)?;
                Ok(Runtime { target: Target { device, backend: Backend::WebGpu }, note: "WebGPU".into() })
            }
            "auto" => Ok(match webgpu().await {
                Ok(device) => Runtime { target: Target { device, backend: Backend::WebGpu }, note: "WebGPU".into() },
                Err(why) => Runtime { target: Target::flex(), note: format!("Flex (CPU, WebAssembly): {why}") },
            }),
            other => Err(err(format!("device: expected auto, webgpu or flex, found `{other}`"))),
        }
    }

    /// `"webgpu"` or `"flex"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.target.backend.name().into()
    }

    /// Why this backend (e.g. why not WebGPU).
    #[wasm_bindgen(getter)]
    pub fn note(&self) -> String {
        self.note.clone()
    }
}

/// Reads a flat tensor into a `Float32Array` (asynchronously: the only way WebGPU allows).
fn read(t: Tensor<1>) -> Promise {
    future_to_promise(async move {
        let data = t.into_data_async().await.map_err(|e| JsValue::from(err(format!("reading a tensor back: {e:?}"))))?;
        let v = data.try_to_vec::<f32>().map_err(|e| JsValue::from(err(format!("reading a tensor back: {e:?}"))))?;
        Ok(Float32Array::from(&v[..]).into())
    })
}

/// An exported image model: the core's U-Net or an imported diffusers `UNet2DModel`.
#[wasm_bindgen(js_name = ImageModel)]
pub struct JsImageModel(pub(crate) Rc<ImageModel>);

#[wasm_bindgen(js_class = ImageModel)]
impl JsImageModel {
    /// Loads `model.json`'s text and the bytes of its weights file.
    pub fn load(runtime: &Runtime, model_json: &str, weights: Vec<u8>) -> Result<JsImageModel, JsError> {
        Ok(Self(Rc::new(ImageModel::load(model_json, weights, runtime.target.clone()).map_err(err)?)))
    }

    /// JSON: name, dataset, shape, parameters, steps_trained, num_classes, network (`unet` or
    /// `diffusers-unet2d`), sde, variance, backend.
    pub fn info(&self) -> String {
        self.0.info().to_string()
    }

    /// Starts sampling; `request` is JSON `{"sampler": {"kind", "steps", ...}, "seed", "first",
    /// "batch", "label", "guidance"}`: images `first..first + batch` of the seed's run (`first`
    /// 0 unless given), the same whatever the batch, so parallel workers can split a run.
    pub fn sample(&self, request: &str) -> Result<JsRun, JsError> {
        let r = engine::parse_image_request(request).map_err(err)?;
        Ok(JsRun(self.0.sample(&r).map_err(err)?))
    }

    /// Starts sampling from the latents `slerp(z(seed_a), z(seed_b), alpha)`, one per alpha.
    pub fn interpolate(&self, request: &str, seed_a: u32, seed_b: u32, alphas: Vec<f64>) -> Result<JsRun, JsError> {
        let r = engine::parse_image_request(request).map_err(err)?;
        Ok(JsRun(self.0.interpolate(&r, seed_a as u64, seed_b as u64, &alphas).map_err(err)?))
    }

    /// Starts inpainting `image` (`[c*h*w]` in `[-1, 1]`) where `mask` is 0 (1 = keep).
    pub fn inpaint(&self, request: &str, image: Vec<f32>, mask: Vec<f32>) -> Result<JsRun, JsError> {
        let r = engine::parse_image_request(request).map_err(err)?;
        Ok(JsRun(self.0.inpaint(&r, &image, &mask).map_err(err)?))
    }
}

/// Checks an image request as a whole (`batch` 1 to 64, the sampler's options, ...) without a
/// model: the worker pool asks this of the whole run before it splits the batch into slices,
/// each of which alone could pass where the whole would not.
#[wasm_bindgen(js_name = checkImageRequest)]
pub fn check_image_request(request: &str) -> Result<(), JsError> {
    engine::parse_image_request(request).map(|_| ()).map_err(err)
}

/// A run that advances one step per call.
#[wasm_bindgen(js_name = Run)]
pub struct JsRun(pub(crate) Run);

#[wasm_bindgen(js_class = Run)]
impl JsRun {
    /// Takes one step (queued on WebGPU; the next `read` waits for it). `false` once finished.
    pub fn step(&mut self) -> Result<bool, JsError> {
        self.0.step().map_err(err)
    }

    /// `[steps taken, steps in all]` (an estimate for `ode-rk45`).
    pub fn progress(&self) -> Vec<u32> {
        let (k, n) = self.0.progress();
        vec![k as u32, n as u32]
    }

    /// Whether the run has finished.
    #[wasm_bindgen(getter)]
    pub fn done(&self) -> bool {
        self.0.is_done()
    }

    /// Score-network evaluations so far.
    #[wasm_bindgen(getter)]
    pub fn nfe(&self) -> u32 {
        self.0.nfe() as u32
    }

    /// `"webgpu"` or `"flex"` (samplers that read back mid-step run on Flex).
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.0.backend().name().into()
    }

    /// The state's shape, `[batch, c, h, w]` or `[n, 2]`.
    pub fn shape(&self) -> Vec<u32> {
        self.0.shape().into_iter().map(|d| d as u32).collect()
    }

    /// A promise of the current state (the noise-free mean) as a `Float32Array`.
    pub fn read(&self) -> Promise {
        read(self.0.state_tensor())
    }

    /// A promise of the denoised estimate of the current state (Tweedie's `E[x_0 | x_t]`, the
    /// core's `Run::denoised`) as a `Float32Array` of `read`'s layout: one network evaluation
    /// (none once finished), counted in `previewNfe`, not in `nfe`.
    #[wasm_bindgen(js_name = readDenoised)]
    pub fn read_denoised(&mut self) -> Result<Promise, JsError> {
        Ok(read(self.0.denoised_tensor().map_err(err)?))
    }

    /// Network evaluations spent on `readDenoised` previews.
    #[wasm_bindgen(getter, js_name = previewNfe)]
    pub fn preview_nfe(&self) -> u32 {
        self.0.preview_nfe() as u32
    }
}

/// A 2-D score model: an exported MLP, a snapshot of the live one, or an analytic mixture.
#[wasm_bindgen(js_name = PointModel)]
pub struct JsPointModel(Rc<PointModel>);

#[wasm_bindgen(js_class = PointModel)]
impl JsPointModel {
    /// Loads an exported 2-D model.
    pub fn load(model_json: &str, weights: Vec<u8>) -> Result<JsPointModel, JsError> {
        Ok(Self(Rc::new(PointModel::load(model_json, weights).map_err(err)?)))
    }

    /// The exact score of a mixture file (`{"sde", "weights", "means", "stds"}`).
    pub fn mixture(json: &str) -> Result<JsPointModel, JsError> {
        Ok(Self(Rc::new(PointModel::mixture(json).map_err(err)?)))
    }

    /// The SDE's end time `T`.
    #[wasm_bindgen(getter, js_name = tMax)]
    pub fn t_max(&self) -> f64 {
        self.0.sde().t_max()
    }

    /// The smallest time sampled, `t_min`.
    #[wasm_bindgen(getter, js_name = tMin)]
    pub fn t_min(&self) -> f64 {
        self.0.sde().t_min()
    }

    /// A promise of the score at time `t` of the points `xy = [x0, y0, x1, y1, ...]`.
    pub fn field(&self, t: f64, xy: Vec<f32>) -> Result<Promise, JsError> {
        Ok(read(flat(self.0.field(t, &xy).map_err(err)?)))
    }

    /// JSON of each component's share of the points `xy` against its weight, in binomial
    /// standard errors: `{"n", "unassigned", "shares": [{"weight", "count", "fraction", "se",
    /// "z"}, ...]}` (analytic mixtures only).
    #[wasm_bindgen(js_name = componentShares)]
    pub fn component_shares(&self, xy: Vec<f32>) -> Result<String, JsError> {
        let shares = self.0.component_shares(&xy).map_err(err)?;
        serde_json::to_string(&shares).map_err(err)
    }

    /// JSON of a learned score `learned` at the points `xy` and time `t` against this
    /// mixture's exact score: `{"relative_error", "relative_density", "high", "low",
    /// "thresholds"}` (analytic mixtures only).
    #[wasm_bindgen(js_name = scoreError)]
    pub fn score_error(&self, t: f64, xy: Vec<f32>, learned: Vec<f32>) -> Result<String, JsError> {
        let e = self.0.score_error(t, &xy, &learned).map_err(err)?;
        serde_json::to_string(&e).map_err(err)
    }

    /// JSON of plain and annealed Langevin dynamics for this model's SDE:
    /// `{"plain", "annealed", "particles"}`.
    #[wasm_bindgen(js_name = langevinContrast)]
    pub fn langevin_contrast(&self) -> String {
        self.0.langevin_contrast().to_string()
    }

    /// Starts sampling `n` particles; `sampler` is JSON `{"kind", "steps", ...}`.
    pub fn sample(&self, sampler: &str, n: u32, seed: u32) -> Result<JsRun, JsError> {
        let config = engine::parse_sampler(sampler).map_err(err)?;
        Ok(JsRun(self.0.sample(&config, n as usize, seed as u64).map_err(err)?))
    }
}

fn flat(t: Tensor<2>) -> Tensor<1> {
    let n = t.shape().num_elements();
    t.reshape([n])
}

/// Live training of a small MLP on a toy distribution.
#[wasm_bindgen(js_name = Lab)]
pub struct JsLab(Lab);

#[wasm_bindgen(js_class = Lab)]
impl JsLab {
    /// `settings`: JSON `{"toy", "seed", "hidden", "layers", "batch", "sde", "lr"}` (all optional).
    #[wasm_bindgen(constructor)]
    pub fn new(settings: &str) -> Result<JsLab, JsError> {
        Ok(Self(Lab::new(settings).map_err(err)?))
    }

    /// Trains `steps` steps; returns their losses.
    pub fn train(&mut self, steps: u32) -> Result<Vec<f64>, JsError> {
        self.0.train(steps as usize).map_err(err)
    }

    /// Steps trained so far.
    #[wasm_bindgen(getter)]
    pub fn steps(&self) -> u32 {
        self.0.steps() as u32
    }

    /// The current weights (`ema`: their moving average) as a model for arrows and sampling.
    pub fn snapshot(&self, ema: bool) -> Result<JsPointModel, JsError> {
        Ok(JsPointModel(Rc::new(self.0.snapshot(ema).map_err(err)?)))
    }
}

/// `n` points of a toy distribution (`swiss-roll`, `two-moons`, `8gaussians`, `checkerboard`,
/// `rings`, `pinwheel`) as `[x0, y0, x1, y1, ...]`.
#[wasm_bindgen(js_name = toySamples)]
pub fn toy_samples(toy: &str, n: u32, seed: u32) -> Result<Vec<f32>, JsError> {
    engine::toy_samples(toy, n as usize, seed as u64).map_err(err)
}

/// Every sampler as JSON `[[name, description], ...]`, and whether it runs on Flex even under
/// WebGPU (it reads back mid-step).
#[wasm_bindgen]
pub fn samplers() -> String {
    let list: Vec<_> =
        scorediff::sampler::SamplerKind::all().map(|k| serde_json::json!({"name": k.name(), "about": k.about(), "flex_only": k.reads_back()})).collect();
    serde_json::Value::Array(list).to_string()
}

/// The image panel's sampler presets as JSON `[{"name", "steps"}, ...]`, the default first
/// ([`engine::IMAGE_PRESETS`]).
#[wasm_bindgen(js_name = samplerPresets)]
pub fn sampler_presets() -> String {
    let list: Vec<_> = engine::IMAGE_PRESETS.iter().map(|(k, steps)| serde_json::json!({"name": k.name(), "steps": steps})).collect();
    serde_json::Value::Array(list).to_string()
}

/// An image classifier (`classifier.json` + Burnpack weights), on Flex.
#[wasm_bindgen(js_name = Classifier)]
pub struct JsClassifier(engine::ImageClassifier);

#[wasm_bindgen(js_class = Classifier)]
impl JsClassifier {
    /// Loads the classifier's config JSON and weights.
    pub fn load(config_json: &str, weights: Vec<u8>) -> Result<JsClassifier, JsError> {
        Ok(Self(engine::ImageClassifier::load(config_json, weights).map_err(err)?))
    }

    /// A promise of the class probabilities `[n * classes]` of `pixels` (`[n, c, h, w]`, in `[-1, 1]`).
    pub fn probabilities(&self, pixels: Vec<f32>) -> Result<Promise, JsError> {
        Ok(read(flat(self.0.probabilities(&pixels).map_err(err)?)))
    }
}

/// Which of `pixels` (row-major `[n, channels, height, width]`, in the data's `[-1, 1]`) fail
/// the data set's failure rule (`scorediff::metrics::FailureRule`, as `native-cli eval`
/// counts them): one byte per sample, 1 where it fails.
#[wasm_bindgen(js_name = failedSamples)]
pub fn failed_samples(dataset: &str, pixels: &[f32], channels: u32, height: u32, width: u32) -> Result<Vec<u8>, JsError> {
    let kind: scorediff::data::DatasetKind = dataset.parse().map_err(err)?;
    let shape = [channels as usize, height as usize, width as usize];
    let len = shape.iter().product::<usize>();
    if len == 0 || pixels.len() % len != 0 {
        return Err(err(format!("failedSamples: expected a whole number of {channels}x{height}x{width} images, found {} values", pixels.len())));
    }
    let flags = scorediff::metrics::FailureRule::for_dataset(kind).per_sample(pixels, shape);
    Ok(flags.into_iter().map(u8::from).collect())
}
