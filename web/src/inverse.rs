//! Inverse problems in the page: super-resolution, deblurring, colorization (colour models) and
//! phase retrieval of one image of the model's shape by diffusion posterior sampling (DPS: Chung, Kim, Mccann, Klasky & Ye, "Diffusion Posterior
//! Sampling for General Noisy Inverse Problems", ICLR 2023, Algorithm 1: each ancestral step is
//! followed by `x_{i-1} -= zeta_i grad_{x_i} ||y - A(x0_hat(x_i))||^2` with
//! `zeta_i = zeta' / ||y - A(x0_hat(x_i))||`), measured from `y = A(x) + n` (eq. 1) with
//! Gaussian noise `n ~ N(0, sigma_y^2 I)`.
//!
//! A thin adapter like [`crate::engine`]: the operators, the noise, DPS, the baselines (bicubic
//! upsampling, Wiener deconvolution), the measurement's picture and the PSNR/SSIM are all
//! `scorediff::inverse`'s; this file parses the page's request, keeps the measurement and the
//! ground truth between calls and hands the worker an [`engine::Run`](crate::engine::Run) to
//! step like any sampling run.
//!
//! # Where DPS runs
//! Where the page computes (WebGPU where it chose WebGPU), or on Flex (the CPU) when the request
//! says `"device": "flex"`. The core's DPS step computes `zeta_i` on the device and reads
//! nothing back, so a WebGPU step never waits on a synchronous read the browser forbids. The
//! gradient goes through burn's autodiff, which decorates either backend: the core lifts `x_i`
//! onto the device's autodiff at each step and evaluates the network there (the core's
//! [`ImageNet`](scorediff::model::ImageNet): the core's U-Net or an imported diffusers
//! `UNet2DModel`, one code path for both); the network's weights stay on the plain device and
//! take part as constants (in inference mode, `Module::valid`), so the backward pass computes
//! `grad_{x_i}` alone, not the weights' gradients a network loaded on the autodiff device would
//! also accumulate. The measurement, the baseline and the scores are computed on Flex (they read
//! back at once) and `y` is moved to the run's device.
//!
//! # Seeds
//! One [`NoiseSource`] from the request's seed draws the measurement noise first, then the
//! prior sample and every step's noise: the order of `native-cli solve --method dps`, so the
//! page and the command line start from the same numbers for the same seed.

use crate::engine::{Backend, ImageModel, ImageRequest, Run, sampler_error};
use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::inverse::dps::{DEFAULT_SIGMA_Y, DEFAULT_ZETA};
use scorediff::inverse::{BaselineKind, MeasurementNoise, Method, Problem, Scores, Task, TaskKind, baseline, measurement_preview, score};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{SamplerKind, SamplerSpec};
use serde::{Deserialize, Serialize};
use std::rc::Rc;

/// The tasks the page offers, in its menu's order (colorization on 3-channel models only:
/// [`task_channels`]).
pub const PAGE_TASKS: [TaskKind; 4] = [TaskKind::SuperResolution, TaskKind::Deblur, TaskKind::Colorize, TaskKind::PhaseRetrieval];

/// The super-resolution factors the page offers; its menu keeps those that divide the model's
/// height and width (both divide 28, 16 and 32).
pub const PAGE_FACTORS: [usize; 2] = [2, 4];

/// The number of channels a task requires of the model's images, if any (colorization's grey
/// levels are of 3-channel colour images; `Task::build` refuses it on other models).
pub fn task_channels(kind: TaskKind) -> Option<usize> {
    (kind == TaskKind::Colorize).then_some(3)
}

/// The page's default number of DPS steps: the e2e test's count, which beat bicubic on every
/// shipped test digit and seed tried (see `tests/e2e/inverse.mjs`).
pub const DEFAULT_STEPS: usize = 100;

/// What the page asks: the task and its parameters, the sampler, DPS's step size, the noise and
/// the seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InverseRequest {
    /// The task's name (`super-resolution`, `deblur`, `phase-retrieval`, ... as the core
    /// spells them).
    pub task: String,
    /// Super-resolution's factor (must divide the image's side).
    pub factor: usize,
    /// The unconditional step DPS corrects: `ancestral` (Algorithm 1) or `ddim`.
    pub sampler: String,
    /// Steps of the sampler (one network evaluation and one backward pass each).
    pub steps: usize,
    /// DPS's step size `zeta'`.
    pub zeta: f64,
    /// The measurement noise `sigma_y`, in the data's `[-1, 1]` scale (0: noise-free).
    pub noise: f64,
    /// Seed of the measurement noise, the prior draw and every step's noise.
    pub seed: u64,
    /// Where DPS runs: `page` (where the page computes) or `flex` (the CPU).
    pub device: String,
}

/// The names of [`InverseRequest::device`]'s choices.
pub const DEVICES: [&str; 2] = ["page", "flex"];

impl Default for InverseRequest {
    fn default() -> Self {
        Self {
            task: TaskKind::SuperResolution.name().into(),
            factor: Task::new(TaskKind::SuperResolution).factor,
            sampler: SamplerKind::Ancestral.name().into(),
            steps: DEFAULT_STEPS,
            zeta: DEFAULT_ZETA,
            noise: DEFAULT_SIGMA_Y,
            seed: 0,
            device: DEVICES[0].into(),
        }
    }
}

/// The page's menus and defaults as JSON: `{"tasks": [{"name", "baseline", "channels"}],
/// "factors", "devices", "defaults": InverseRequest}` (`channels`: [`task_channels`], null for any).
pub fn page_options() -> serde_json::Value {
    let tasks: Vec<_> = PAGE_TASKS
        .iter()
        .map(|&k| serde_json::json!({"name": k.name(), "baseline": Task::new(k).baseline_kind().map(BaselineKind::name), "channels": task_channels(k)}))
        .collect();
    serde_json::json!({"tasks": tasks, "factors": PAGE_FACTORS, "devices": DEVICES, "defaults": InverseRequest::default()})
}

/// A baseline reconstruction and its scores against the truth.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineResult {
    /// Its name (`bicubic`, `wiener`).
    pub name: &'static str,
    /// The image, `[c, h, w]` row-major.
    #[serde(skip)]
    pub image: Vec<f32>,
    /// PSNR and SSIM against the ground truth.
    pub scores: Scores,
}

/// One image measured for a task, with its ground truth, baseline and measurement picture; a
/// DPS run to start on it.
pub struct InverseProblem {
    model: Rc<ImageModel>,
    task: Task,
    request: InverseRequest,
    method: Method,
    config: scorediff::sampler::SamplerConfig,
    noise_model: MeasurementNoise,
    y: Tensor<4>,
    truth: Vec<f32>,
    measurement: Vec<f32>,
    measurement_shape: [usize; 3],
    /// The measurement's own scores, where it is an image of the truth's shape (the blurs).
    measurement_scores: Option<Scores>,
    baseline: Option<BaselineResult>,
    operator: String,
    noise: Option<NoiseSource>,
    /// Where DPS runs.
    backend: Backend,
}

impl InverseProblem {
    /// Measures `image` (`[c, h, w]` values in `[-1, 1]`, the ground truth) for the request's
    /// task with the request's noise; nothing is sampled yet.
    ///
    /// # Errors
    /// A message naming the field: `inverse request` (not JSON, an unknown field), `task` (an
    /// unknown name), `super-resolution factor` (one that does not divide the image's side),
    /// `Sampler` (neither ancestral nor ddim), `Steps` (0 or above the limit), `zeta`, `noise`,
    /// `image` (of another length than the model's images, or not finite).
    pub fn new(model: &Rc<ImageModel>, json: &str, image: &[f32]) -> Result<Self, String> {
        let request: InverseRequest = serde_json::from_str(json).map_err(|e| format!("inverse request: {e}"))?;
        let kind: TaskKind = request.task.parse().map_err(|e| format!("task: {e}"))?;
        let shape = model.image_shape();
        let [c, h, w] = shape;
        let len = c * h * w;
        if image.len() != len {
            return Err(format!("image: expected {len} values (one {c}x{h}x{w} image of `{}` in [-1, 1]), found {}", model.card.name, image.len()));
        }
        if let Some(i) = image.iter().position(|v| !v.is_finite()) {
            return Err(format!("image: expected finite values in [-1, 1], found {} at value {i}", image[i]));
        }
        if image.iter().all(|&v| v == image[0]) {
            return Err(format!("image: the image is blank (every value {}): draw on the canvas or choose another source", image[0]));
        }
        let sampler: SamplerKind = request.sampler.parse().map_err(|e| format!("Sampler: {e}"))?;
        if !matches!(sampler, SamplerKind::Ancestral | SamplerKind::Ddim) {
            return Err(format!("Sampler: expected ancestral or ddim for dps, found {sampler}"));
        }
        scorediff::limits::steps(request.steps).map_err(sampler_error)?;
        let spec = SamplerSpec { steps: Some(request.steps), ..SamplerSpec::new(sampler) };
        let config = spec.build_for(model.card.variance, model.card.data_range()).map_err(sampler_error)?;
        if !(request.zeta.is_finite() && request.zeta >= 0.0) {
            return Err(format!("zeta: expected a finite step size >= 0, found {}", request.zeta));
        }
        let backend = match request.device.as_str() {
            "page" => model.backend(),
            "flex" => Backend::Flex,
            other => return Err(format!("device: expected one of {}, found {other:?}", DEVICES.join(", "))),
        };
        // Loads the Flex copy DPS differentiates through when it runs there (either network),
        // before anything is measured.
        model.image_net(backend)?;
        let noise_model = MeasurementNoise::Gaussian { sigma: request.noise };
        noise_model.validate().map_err(|e| e.to_string())?;
        let mut task = Task::new(kind);
        task.factor = request.factor;
        let device = Device::flex();
        let op = task.build(shape, &device)?;
        let method = Method::Dps { zeta: request.zeta };
        method.check(&task, op.as_ref(), &config).map_err(|e| e.to_string())?;

        let mut noise = NoiseSource::new(request.seed);
        let x = Tensor::<4>::from_data(TensorData::new(image.to_vec(), [1, c, h, w]), &device);
        let y = noise_model.apply(op.forward(x), &mut noise);
        let measurement = measurement_preview(kind, op.as_ref(), y.clone(), shape)?;
        let measurement_shape = [measurement.len() / (h * w), h, w];
        let measurement_scores = (op.image_valued() && y.dims() == [1, c, h, w]).then(|| score(kind, &measurement, image, shape));
        let baseline = match task.baseline_kind() {
            Some(bk) => {
                let b = baseline(bk, op.as_ref(), y.clone(), noise_model.sigma(), task.factor)?;
                let b = crate::engine::read_sync(b.reshape([len]))?;
                Some(BaselineResult { name: bk.name(), scores: score(kind, &b, image, shape), image: b })
            }
            None => None,
        };
        Ok(Self {
            model: model.clone(),
            operator: op.describe(),
            task,
            request,
            method,
            config,
            noise_model,
            y,
            truth: image.to_vec(),
            measurement,
            measurement_shape,
            measurement_scores,
            baseline,
            noise: Some(noise),
            backend,
        })
    }

    /// Starts DPS on the measurement: a run on the request's device (see the module docs) to
    /// step with [`Run::step`]; once per problem.
    ///
    /// # Errors
    /// When started a second time, or what the core's DPS refuses.
    pub fn start(&mut self) -> Result<Run, String> {
        let mut noise = self.noise.take().ok_or("start: this measurement's run was already started; measure again for another run")?;
        let device = self.model.device(self.backend);
        let op = self.task.build(self.model.image_shape(), &device)?;
        let problem = Problem { task: &self.task, op, y: self.y.clone().to_device(&device), noise: self.noise_model, image: self.model.image_shape() };
        let run = self.method.start(&self.config, self.model.sde.as_ref(), problem, &mut noise, &device).map_err(|e| e.to_string())?;
        Ok(Run::image(self.model.clone(), &ImageRequest::default(), self.backend, run, noise))
    }

    /// Where DPS runs.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// PSNR and SSIM of `result` (`[c, h, w]`) against the ground truth; for phase retrieval
    /// after removing its shift and rotation ambiguities.
    ///
    /// # Errors
    /// When `result` has another length than the image.
    pub fn score(&self, result: &[f32]) -> Result<Scores, String> {
        if result.len() != self.truth.len() {
            return Err(format!("result: expected {} values (one image), found {}", self.truth.len(), result.len()));
        }
        Ok(score(self.task.kind, result, &self.truth, self.model.image_shape()))
    }

    /// The measurement drawn at the image's size ([`measurement_preview`]), `[c_y, h, w]`.
    pub fn measurement(&self) -> &[f32] {
        &self.measurement
    }

    /// The baseline reconstruction, if the task has one.
    pub fn baseline(&self) -> Option<&BaselineResult> {
        self.baseline.as_ref()
    }

    /// The ground truth.
    pub fn truth(&self) -> &[f32] {
        &self.truth
    }

    /// A summary for the page: the task, the operator, the method and its settings, where it
    /// runs, the measurement's shape and scores (the blurs), the baseline's name and scores.
    pub fn info(&self) -> serde_json::Value {
        serde_json::json!({
            "task": self.task.kind.name(),
            "operator": self.operator,
            "method": self.method.kind().name(),
            "request": self.request,
            "measurement_shape": self.measurement_shape,
            "measurement_scores": self.measurement_scores,
            "baseline": self.baseline,
            "backend": self.backend.name(),
        })
    }
}

#[cfg(target_arch = "wasm32")]
mod js {
    //! The JavaScript surface: `new InverseProblem(model, request, image)`, its `info`,
    //! `measurement`, `baseline`, `truth`, `start` (a `Run`) and `score`; `inverseOptions()`.
    use crate::bindings::{JsImageModel, JsRun};
    use wasm_bindgen::prelude::*;

    fn err(message: impl std::fmt::Display) -> JsError {
        JsError::new(&message.to_string())
    }

    /// One image measured for an inverse problem (see [`super::InverseProblem`]).
    #[wasm_bindgen(js_name = InverseProblem)]
    pub struct JsInverseProblem(super::InverseProblem);

    #[wasm_bindgen(js_class = InverseProblem)]
    impl JsInverseProblem {
        /// Measures `image` (`[c*h*w]` in `[-1, 1]`) for `request` (JSON `{"task", "factor",
        /// "sampler", "steps", "zeta", "noise", "seed", "device"}`, all optional).
        #[wasm_bindgen(constructor)]
        pub fn new(model: &JsImageModel, request: &str, image: Vec<f32>) -> Result<JsInverseProblem, JsError> {
            Ok(Self(super::InverseProblem::new(&model.0, request, &image).map_err(err)?))
        }

        /// JSON: task, operator, method, request, measurement_shape, measurement_scores,
        /// baseline {name, scores}, backend.
        pub fn info(&self) -> String {
            self.0.info().to_string()
        }

        /// The measurement drawn at the image's size.
        pub fn measurement(&self) -> Vec<f32> {
            self.0.measurement().to_vec()
        }

        /// The baseline reconstruction (undefined for phase retrieval).
        pub fn baseline(&self) -> Option<Vec<f32>> {
            self.0.baseline().map(|b| b.image.clone())
        }

        /// The ground truth.
        pub fn truth(&self) -> Vec<f32> {
            self.0.truth().to_vec()
        }

        /// Starts DPS: a run to step like a sampling run (once per problem).
        pub fn start(&mut self) -> Result<JsRun, JsError> {
            Ok(JsRun(self.0.start().map_err(err)?))
        }

        /// JSON `{"psnr", "ssim", "recovered"}` of `result` against the ground truth.
        pub fn score(&self, result: Vec<f32>) -> Result<String, JsError> {
            Ok(serde_json::to_string(&self.0.score(&result).map_err(err)?).map_err(err)?)
        }
    }

    /// The page's tasks, factors and defaults as JSON ([`super::page_options`]).
    #[wasm_bindgen(js_name = inverseOptions)]
    pub fn inverse_options() -> String {
        super::page_options().to_string()
    }
}
