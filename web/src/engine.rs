//! The platform-independent half of the bindings: models, sampling runs and the 2-D lab over
//! the core, on whichever [`Device`] the caller gives. No maths here: every formula is the
//! core's; this file only parses requests, holds state between calls and counts work.
//!
//! The browser forbids synchronous reads of GPU memory (burn's WebGPU backend panics on
//! `into_data()` in wasm; only `into_data_async().await` works). A few core routines read a
//! scalar back in the middle of a step: the adaptive step size of RK45 (`ode-rk45`), the
//! Langevin corrector's gradient norms (`pc`), the angle of `slerp` and the training loop's
//! non-finite-loss check; each sampler says so itself ([`SamplerKind::reads_back`]). Those runs
//! go to Flex on the CPU even when the page chose WebGPU, and say so ([`Run::backend`]); every
//! other sampler runs on the chosen device.

use scorediff::burn::module::Module;
use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::data::toy::Toy;
use scorediff::error::ConfigError;
use scorediff::export::{LoadedNet, ModelCard};
use scorediff::inverse::Inpainting;
use scorediff::mixture::{ComponentShares, GaussianMixture, HIGH_DENSITY, LOW_DENSITY, MixtureFile, MixtureScore, ScoreErrorByDensity};
pub use scorediff::model::ImageNet;
use scorediff::model::{ScoreFn, ScoreModel};
use scorediff::nn::{Guided, Mlp, MlpConfig};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{SamplerConfig, SamplerKind, SamplerSpec, Sampling, slerp};
use scorediff::sde::{Sde, SdeConfig};
use scorediff::train::{LossConfig, OptimConfig, Trainer};
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;
use std::rc::Rc;

/// Which backend a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn's wgpu backend on the browser's WebGPU.
    WebGpu,
    /// burn's Flex on the CPU (wasm in the browser, native in tests).
    Flex,
}

impl Backend {
    /// The name shown on the page: serde's (`webgpu`, `flex`), the one source of the names.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    }
}

/// A device and what it is.
#[derive(Debug, Clone)]
pub struct Target {
    /// The device tensors are created on.
    pub device: Device,
    /// Its backend.
    pub backend: Backend,
}

impl Target {
    /// Flex on the CPU.
    pub fn flex() -> Self {
        Self { device: Device::flex(), backend: Backend::Flex }
    }
}

/// The image panel's one-click sampler settings `(sampler, steps)`; the page opens on the
/// first. UniPC (bh2, order 2, log-SNR grid) at 10 steps is 10 network evaluations per image,
/// what a browser can afford at once, and the fewest-NFE winner on the analytic mixture and on
/// the shipped MNIST model (BENCHMARKS.md, issue 19); ancestral sampling at 50 steps (5x the
/// cost) is the robust fallback for a model whose deterministic samples are poor.
pub const IMAGE_PRESETS: [(SamplerKind, usize); 2] = [(SamplerKind::Unipc, 10), (SamplerKind::Ancestral, 50)];

/// What the page asks of an image model.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageRequest {
    /// The sampler and its options (`{"kind": "ddim", "steps": 50, "eta": 0}`), as given: the
    /// model's own variance and data range complete it ([`ImageModel`]).
    pub sampler: SamplerSpec,
    /// Seed of the prior draw and of every step's noise.
    pub seed: u64,
    /// The run's index of the first image: image `i` of the request is image `first + i` of
    /// the seed's run, with that image's noise whatever the batch ([`NoiseSource::for_samples`]),
    /// so parallel workers that each take a slice `[first, first + batch)` draw what one would.
    pub first: usize,
    /// Number of images, 1 to 64.
    pub batch: usize,
    /// Class label for a class-conditional model (`None`: unconditional / null label).
    pub label: Option<usize>,
    /// Classifier-free guidance weight `w` (class-conditional models only).
    pub guidance: f64,
    /// Inpainting: RePaint's steps per level (1: plain replacement).
    pub resample: usize,
}

impl Default for ImageRequest {
    fn default() -> Self {
        Self {
            sampler: SamplerSpec { steps: Some(50), ..SamplerSpec::new(SamplerKind::Ddim) },
            seed: 0,
            first: 0,
            batch: 16,
            label: None,
            guidance: 0.0,
            resample: 1,
        }
    }
}

/// RePaint's resampling belongs to inpainting only.
fn only_inpainting_resamples(r: &ImageRequest) -> Result<(), String> {
    if r.resample == 1 { Ok(()) } else { Err(format!("resample: only inpainting resamples; expected 1, found {}", r.resample)) }
}

/// The largest batch the page may ask for.
pub const MAX_BATCH: usize = 64;

/// The most RePaint steps per level the page may ask for.
pub const MAX_RESAMPLE: usize = 20;

fn parse<T: for<'de> Deserialize<'de>>(what: &str, json: &str) -> Result<T, String> {
    serde_json::from_str(json).map_err(|e| format!("{what}: {e}"))
}

/// A sampler config's error as the page says it: the control's label where the page has one
/// (`Steps`, `Sampler`), else the request's path (`sampler.eta`).
pub fn sampler_error(e: ConfigError) -> String {
    e.message_with(|field| match field {
        "steps" => "Steps".into(),
        "kind" => "Sampler".into(),
        f => format!("sampler.{f}"),
    })
}

/// Parses and checks a sampler config (`{"kind": "ddim", "steps": 50, ...}`).
pub fn parse_sampler(json: &str) -> Result<SamplerConfig, String> {
    let spec: SamplerSpec = parse("sampler", json)?;
    spec.build().map_err(sampler_error)
}

/// Names a count or seed that is not a whole number `>= 0` (a negative seed, a fractional
/// batch), which serde's message would not: `seed: expected a whole number >= 0, found -1`.
fn whole_numbers(json: &str) -> Result<(), String> {
    let v: serde_json::Value = parse("sampling request", json)?;
    let fields = [("seed", v.get("seed")), ("first", v.get("first")), ("batch", v.get("batch")), ("label", v.get("label")), ("resample", v.get("resample"))];
    let steps = [("Steps", v.get("sampler").and_then(|s| s.get("steps")))];
    for (name, x) in fields.into_iter().chain(steps) {
        if let Some(x) = x.filter(|x| !x.is_null() && x.as_u64().is_none()) {
            return Err(format!("{name}: expected a whole number >= 0, found {x}"));
        }
    }
    Ok(())
}

/// Parses and checks a request.
pub fn parse_image_request(json: &str) -> Result<ImageRequest, String> {
    whole_numbers(json)?;
    let r: ImageRequest = parse("sampling request", json)?;
    r.sampler.clone().build().map_err(sampler_error)?;
    if let Some(steps) = r.sampler.steps {
        scorediff::limits::steps(steps).map_err(sampler_error)?;
    }
    if !(1..=MAX_BATCH).contains(&r.batch) {
        return Err(format!("batch: expected 1 to {MAX_BATCH} images, found {}", r.batch));
    }
    if !(1..=MAX_RESAMPLE).contains(&r.resample) {
        return Err(format!("resample: expected 1 to {MAX_RESAMPLE} steps per level, found {}", r.resample));
    }
    if !r.guidance.is_finite() || r.guidance < 0.0 {
        return Err(format!("guidance: expected a finite weight >= 0, found {}", r.guidance));
    }
    Ok(r)
}

/// An exported image model on the chosen device, with a Flex copy made on demand for the
/// samplers that read back and DPS: the core's U-Net, or an imported diffusers `UNet2DModel`
/// (sampled, interpolated, inpainted and solved by DPS alike, as the core's [`ImageNet`]; class
/// labels and guidance need the core's U-Net and refuse it by name).
pub struct ImageModel {
    /// The model card.
    pub card: ModelCard,
    net: ImageNet,
    flex_net: OnceCell<ImageNet>,
    weights: Vec<u8>,
    pub(crate) sde: Box<dyn Sde>,
    target: Target,
}

impl ImageModel {
    /// Loads `model.json`'s text and the weights' bytes onto `target`.
    pub fn load(model_json: &str, weights: Vec<u8>, target: Target) -> Result<Self, String> {
        let card = ModelCard::from_json(model_json).map_err(|e| e.to_string())?;
        let sde = card.sde().map_err(|e| e.to_string())?;
        match ImageNet::new(card.load_net(weights.clone(), &target.device).map_err(|e| e.to_string())?) {
            Ok(net) => Ok(Self { card, net, flex_net: OnceCell::new(), weights, sde, target }),
            Err(_) => Err(format!("model.json: `{}` is a 2-D model (an MLP); open it in the 2-D lab", card.name)),
        }
    }

    /// The network on `backend`'s device (loading the Flex copy the first time): what the runs
    /// evaluate, and what DPS differentiates through (web/src/inverse.rs).
    pub(crate) fn image_net(&self, backend: Backend) -> Result<&ImageNet, String> {
        if backend == self.target.backend {
            return Ok(&self.net);
        }
        if self.flex_net.get().is_none() {
            let net = ImageNet::new(self.card.load_net(self.weights.clone(), &Device::flex()).map_err(|e| e.to_string())?);
            let _ = self.flex_net.set(net.map_err(|_| "model.json: the card was checked at load".to_string())?);
        }
        Ok(self.flex_net.get().expect("just set"))
    }

    /// The backend the model was loaded on (where the page computes).
    pub fn backend(&self) -> Backend {
        self.target.backend
    }

    /// The refusal of `feature` for an imported model: it needs the core's U-Net.
    fn needs_core_unet(&self, feature: &str) -> String {
        format!(
            "{feature}: `{}` is an imported diffusers-unet2d; {feature} runs the core's U-Net only (sampling, interpolation, inpainting and DPS run it)",
            self.card.name
        )
    }

    /// Whether the network is an imported diffusers `UNet2DModel`.
    pub fn is_imported(&self) -> bool {
        self.net.is_imported()
    }

    /// Shape of one image `[c, h, w]`.
    pub fn image_shape(&self) -> [usize; 3] {
        [self.card.shape[0], self.card.shape[1], self.card.shape[2]]
    }

    /// The number of classes of a class-conditional model.
    pub fn num_classes(&self) -> Option<usize> {
        self.net.net().num_classes()
    }

    /// The network on the chosen device, and that device: what [`crate::bench`] evaluates.
    pub fn network(&self) -> (&ImageNet, &Target) {
        (&self.net, &self.target)
    }

    /// A summary for the page.
    pub fn info(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.card.name,
            "dataset": self.card.dataset.name(),
            "shape": self.card.shape,
            "parameters": self.net.num_params(),
            "steps_trained": self.card.steps_trained,
            "num_classes": self.num_classes(),
            "network": if self.is_imported() { "diffusers-unet2d" } else { "unet" },
            "sde": self.card.sde,
            "variance": self.card.variance.to_string(),
            "backend": self.target.backend.name(),
        })
    }

    fn check_label(&self, r: &ImageRequest) -> Result<(), String> {
        if self.is_imported() && (r.label.is_some() || r.guidance != 0.0) {
            let feature = if r.label.is_some() { "label (class-conditional sampling)" } else { "guidance" };
            return Err(self.needs_core_unet(feature));
        }
        match (r.label, self.num_classes()) {
            (Some(_), None) => Err(format!("label: `{}` is unconditional; leave the class empty", self.card.name)),
            (Some(l), Some(n)) if l >= n => Err(format!("label: expected a class in 0..{n}, found {l}")),
            (None, _) if r.guidance != 0.0 => Err("guidance: choose a class to guide towards".into()),
            _ => Ok(()),
        }
    }

    /// The request's sampler for this model: its own variance unless the request names one (a
    /// learned one asked of a model that has none is an error), its data range for `clip: auto`.
    fn sampler(&self, r: &ImageRequest) -> Result<SamplerConfig, String> {
        r.sampler.clone().build_for(self.card.variance, self.card.data_range()).map_err(|e| format!("`{}`: {}", self.card.name, sampler_error(e)))
    }

    /// Refuses a run of `batch` images whose memory would not fit in the page's worker
    /// ([`scorediff::limits::sampling_memory`] against [`scorediff::limits::PAGE_MEMORY_BYTES`]
    /// in all and WebGPU's default largest buffer).
    fn check_memory(&self, r: &ImageRequest, batch: usize) -> Result<(), String> {
        use scorediff::limits::{PAGE_BUFFER_BYTES, PAGE_MEMORY_BYTES, check_sampling_memory, sampling_memory};
        let memory = sampling_memory(self.net.layout(), self.image_shape(), batch, r.sampler.kind, r.label.is_some());
        check_sampling_memory(memory, batch, [PAGE_MEMORY_BYTES, PAGE_BUFFER_BYTES]).map_err(|e| format!("`{}`: {e}", self.card.name))
    }

    /// Where a sampler runs: Flex when it reads back mid-step (see the module docs).
    fn backend_for(&self, kind: SamplerKind) -> Backend {
        if kind.reads_back() { Backend::Flex } else { self.target.backend }
    }

    /// The device of `backend`: the model's own, or Flex's.
    pub(crate) fn device(&self, backend: Backend) -> Device {
        if backend == self.target.backend { self.target.device.clone() } else { Device::flex() }
    }

    /// Starts sampling from the prior.
    pub fn sample(self: &Rc<Self>, r: &ImageRequest) -> Result<Run, String> {
        self.check_label(r)?;
        only_inpainting_resamples(r)?;
        self.check_memory(r, r.batch)?;
        let backend = self.backend_for(r.sampler.kind);
        self.image_net(backend)?;
        let device = self.device(backend);
        let [c, h, w] = self.image_shape();
        let mut noise = NoiseSource::new(r.seed).for_samples(r.first, r.batch);
        let state = Sampling::new(&self.sampler(r)?, self.sde.as_ref(), [r.batch, c, h, w], &mut noise, &device);
        Ok(Run::image(self.clone(), r, backend, Box::new(state), noise))
    }

    /// Starts sampling from latents on the great circle between the prior draws of two seeds:
    /// image `i` starts from `slerp(z_a, z_b, alphas[i])` (DDIM, section 5.3). A deterministic
    /// sampler (DDIM with `eta = 0`, an ODE solver) then maps the path of latents to a smooth
    /// path of images. `r.seed` seeds the sampler's own noise, if any.
    pub fn interpolate(self: &Rc<Self>, r: &ImageRequest, seed_a: u64, seed_b: u64, alphas: &[f64]) -> Result<Run, String> {
        self.check_label(r)?;
        only_inpainting_resamples(r)?;
        if alphas.is_empty() || alphas.len() > MAX_BATCH || alphas.iter().any(|a| !(0.0..=1.0).contains(a)) {
            return Err(format!("alphas: expected 1 to {MAX_BATCH} numbers in [0, 1], found {alphas:?}"));
        }
        self.check_memory(r, alphas.len())?;
        let backend = self.backend_for(r.sampler.kind);
        self.image_net(backend)?;
        let device = self.device(backend);
        let [c, h, w] = self.image_shape();
        // slerp reads the angle back: computed on Flex, then uploaded.
        let flex = Device::flex();
        let prior = |seed| scorediff::sampler::prior_sample(self.sde.as_ref(), [1, c, h, w], &mut NoiseSource::new(seed), &flex);
        let (za, zb) = (prior(seed_a), prior(seed_b));
        let mut values = Vec::with_capacity(alphas.len() * c * h * w);
        for &a in alphas {
            let z = slerp(za.clone(), zb.clone(), a);
            values.extend(z.into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?);
        }
        let z = Tensor::<4>::from_data(TensorData::new(values, [alphas.len(), c, h, w]), &device);
        let state = Sampling::from_state(&self.sampler(r)?, self.sde.as_ref(), z);
        let r = ImageRequest { batch: alphas.len(), ..r.clone() };
        Ok(Run::image(self.clone(), &r, backend, Box::new(state), NoiseSource::new(r.seed).for_samples(r.first, r.batch)))
    }

    /// Starts inpainting `r.batch` copies of one image `y` (`[c, h, w]` values in `[-1, 1]`)
    /// where `mask` (same length, 1 = keep, 0 = fill) says which pixels are known, by the
    /// projection method with `r.resample` steps per level (RePaint's resampling when above 1).
    pub fn inpaint(self: &Rc<Self>, r: &ImageRequest, y: &[f32], mask: &[f32]) -> Result<Run, String> {
        self.check_label(r)?;
        let [c, h, w] = self.image_shape();
        let n = c * h * w;
        if y.len() != n || mask.len() != n {
            return Err(format!("image and mask: expected {n} values each ({c}x{h}x{w}), found {} and {}", y.len(), mask.len()));
        }
        if let Some(v) = y.iter().chain(mask).find(|v| !v.is_finite()) {
            return Err(format!("image and mask: expected finite values, found {v}"));
        }
        // The mask is counted here, on the host: nothing to fill or nothing kept is the page's
        // empty canvas, and the device is never read back (WebGPU forbids synchronous reads).
        let kept = mask.iter().filter(|&&m| m >= 0.5).count();
        if kept == n {
            return Err("mask: nothing is erased, so there is nothing to fill: erase a hole first".into());
        }
        if kept == 0 {
            return Err("mask: everything is erased, so nothing of the image is kept to fill from (Generate samples without a condition)".into());
        }
        self.check_memory(r, r.batch)?;
        let backend = self.backend_for(r.sampler.kind);
        self.image_net(backend)?;
        let device = self.device(backend);
        let rep = |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.repeat(r.batch), [r.batch, c, h, w]), &device);
        let mut noise = NoiseSource::new(r.seed).for_samples(r.first, r.batch);
        let config = self.sampler(r)?;
        let op = scorediff::inverse::Mask::from_values(&mask.repeat(r.batch), [r.batch, c, h, w], &device).map_err(sampler_error)?;
        let state = Inpainting::with_mask(&config, self.sde.as_ref(), rep(y), op, &mut noise, &device)
            .and_then(|run| run.with_resampling(r.resample, &config))
            .map_err(sampler_error)?;
        Ok(Run::image(self.clone(), r, backend, Box::new(state), noise))
    }
}

/// A 2-D score model: an exported or live-trained MLP, or an analytic mixture. 2-D work runs on
/// Flex (batches of a few thousand points: a GPU round trip costs more than the arithmetic).
pub enum PointModel {
    /// A trained MLP and its SDE.
    Mlp {
        /// The network (no autodiff).
        net: Mlp,
        /// Its SDE.
        sde: Box<dyn Sde>,
    },
    /// The exact score of a Gaussian mixture.
    Mixture(MixtureScore),
}

impl PointModel {
    /// Loads an exported 2-D model (`model.json` + weights).
    pub fn load(model_json: &str, weights: Vec<u8>) -> Result<Self, String> {
        let card = ModelCard::from_json(model_json).map_err(|e| e.to_string())?;
        let sde = card.sde().map_err(|e| e.to_string())?;
        match card.load_net(weights, &Device::flex()).map_err(|e| e.to_string())? {
            LoadedNet::Point(net) if net.config().dim == 2 => Ok(Self::Mlp { net, sde }),
            LoadedNet::Point(net) => Err(format!("model.json: expected a 2-D model, found dim {}", net.config().dim)),
            LoadedNet::Image(_) | LoadedNet::Diffusers(_) => Err(format!("model.json: `{}` is an image model; open it in the image panel", card.name)),
        }
    }

    /// The analytic mixture of a mixture file (`examples/*.json`).
    pub fn mixture(json: &str) -> Result<Self, String> {
        let file = MixtureFile::from_json(json).map_err(|e| format!("mixture file: {e}"))?;
        if file.mixture.dim() != 2 {
            return Err(format!("mixture file: expected 2-D means, found dimension {}", file.mixture.dim()));
        }
        Ok(Self::Mixture(file.model(&Device::flex()).map_err(|e| format!("mixture file: {e}"))?))
    }

    /// The analytic mixture, or an error naming `what` for an MLP.
    fn analytic(&self, what: &str) -> Result<&MixtureScore, String> {
        match self {
            Self::Mixture(m) => Ok(m),
            Self::Mlp { .. } => Err(format!("{what}: needs an analytic mixture, found an MLP")),
        }
    }

    /// Each component's share of the points `xy` (`[x0, y0, ...]`) against its weight, in
    /// binomial standard errors ([`GaussianMixture::component_shares`]; analytic mixtures only).
    pub fn component_shares(&self, xy: &[f32]) -> Result<ComponentShares, String> {
        let m = self.analytic("component shares")?;
        let points: Vec<f64> = xy.iter().map(|&v| f64::from(v)).collect();
        m.mixture.component_shares(&points).map_err(|e| format!("component shares: {e}"))
    }

    /// A learned score `learned` at the points `xy` and time `t` against this mixture's exact
    /// score there, by density region ([`GaussianMixture::score_error_by_density`] on the
    /// mixture perturbed to `t`, with the core's [`HIGH_DENSITY`] and [`LOW_DENSITY`]).
    pub fn score_error(&self, t: f64, xy: &[f32], learned: &[f32]) -> Result<ScoreErrorByDensity, String> {
        let m = self.analytic("score error")?;
        let sde = m.sde.as_ref();
        if !(t.is_finite() && t > 0.0 && t <= sde.t_max()) {
            return Err(format!("t: expected a time in (0, {}], found {t}", sde.t_max()));
        }
        let (mean, std) = sde.marginal(t.max(sde.t_min()));
        let perturbed: GaussianMixture = m.mixture.perturbed(mean, std);
        let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        perturbed.score_error_by_density(&f(xy), &f(learned), HIGH_DENSITY, LOW_DENSITY).map_err(|e| format!("score error: {e}"))
    }

    /// Plain and annealed Langevin dynamics for this model's SDE, and the particles they run
    /// ([`scorediff::sampler::mode_weights`]): `{"plain": spec, "annealed": spec, "particles": n}`.
    pub fn langevin_contrast(&self) -> serde_json::Value {
        use scorediff::sampler::mode_weights::{PARTICLES, contrast};
        let [plain, annealed] = contrast(self.sde());
        serde_json::json!({ "plain": plain, "annealed": annealed, "particles": PARTICLES })
    }

    fn parts(&self) -> (&dyn ScoreModel<2>, &dyn Sde) {
        match self {
            Self::Mlp { net, sde } => (net, sde.as_ref()),
            Self::Mixture(m) => (m, m.sde.as_ref()),
        }
    }

    /// The SDE.
    pub fn sde(&self) -> &dyn Sde {
        self.parts().1
    }

    /// The score at time `t` of the points `xy` (`[x0, y0, x1, y1, ...]`), as the same layout.
    pub fn field(&self, t: f64, xy: &[f32]) -> Result<Tensor<2>, String> {
        let sde = self.sde();
        if !(t.is_finite() && t > 0.0 && t <= sde.t_max()) {
            return Err(format!("t: expected a time in (0, {}], found {t}", sde.t_max()));
        }
        if xy.len() % 2 != 0 || xy.is_empty() {
            return Err(format!("points: expected pairs (x, y), found {} numbers", xy.len()));
        }
        let x = Tensor::<2>::from_data(TensorData::new(xy.to_vec(), [xy.len() / 2, 2]), &Device::flex());
        let (model, sde) = self.parts();
        Ok(ScoreFn::new(model, sde).score(x, t.max(sde.t_min())))
    }

    /// Starts sampling `n` particles (their trajectories are the run's states).
    pub fn sample(self: &Rc<Self>, sampler: &SamplerConfig, n: usize, seed: u64) -> Result<Run, String> {
        sampler.validate().map_err(sampler_error)?;
        if !(1..=20_000).contains(&n) {
            return Err(format!("particles: expected 1 to 20000, found {n}"));
        }
        let mut noise = NoiseSource::new(seed).for_samples(0, n);
        let state = Sampling::new(sampler, self.sde(), [n, 2], &mut noise, &Device::flex());
        Ok(Run { state: RunState::Point(self.clone()), run: AnyRun::Point(Box::new(state)), noise, nfe: 0, preview_nfe: 0, backend: Backend::Flex })
    }
}

/// What a run computes with: an image model with its guidance, or a 2-D model.
enum RunState {
    Image { model: Rc<ImageModel>, labels: Option<Vec<usize>>, guidance: f64 },
    Point(Rc<PointModel>),
}

/// The core's run of either kind ([`scorediff::sampler::Run`]: sampling or inpainting).
enum AnyRun {
    Image(Box<dyn scorediff::sampler::Run<4>>),
    Point(Box<dyn scorediff::sampler::Run<2>>),
}

/// A sampling run that advances one step per call, so the worker can post intermediate states
/// and stop between steps.
pub struct Run {
    state: RunState,
    run: AnyRun,
    noise: NoiseSource,
    nfe: usize,
    preview_nfe: usize,
    backend: Backend,
}

impl Run {
    pub(crate) fn image(model: Rc<ImageModel>, r: &ImageRequest, backend: Backend, run: Box<dyn scorediff::sampler::Run<4>>, noise: NoiseSource) -> Self {
        let labels = r.label.map(|l| vec![l]);
        Self { state: RunState::Image { model, labels, guidance: r.guidance }, run: AnyRun::Image(run), noise, nfe: 0, preview_nfe: 0, backend }
    }

    /// Calls `g` with the image run's score function (the network on the run's backend,
    /// guided when the request named a class).
    fn with_image_score<R>(state: &RunState, backend: Backend, g: impl FnOnce(&ScoreFn<4>) -> R) -> Result<R, String> {
        let RunState::Image { model, labels, guidance } = state else { unreachable!("called on image runs only") };
        let net = model.image_net(backend)?;
        let guided;
        let m: &dyn ScoreModel<4> = match labels {
            Some(l) => {
                let unet = net.unet().ok_or_else(|| model.needs_core_unet("label (class-conditional sampling)"))?;
                guided = Guided::new(unet, l.clone(), *guidance).map_err(|e| e.to_string())?;
                &guided
            }
            None => net,
        };
        Ok(g(&ScoreFn::new(m, model.sde.as_ref())))
    }

    /// Takes one step; `Ok(false)` once finished.
    pub fn step(&mut self) -> Result<bool, String> {
        let more = match (&self.state, &mut self.run) {
            (RunState::Image { .. }, AnyRun::Image(run)) => {
                let noise = &mut self.noise;
                let (more, nfe) = Self::with_image_score(&self.state, self.backend, |f| (run.next(f, noise), f.nfe()))?;
                self.nfe += nfe;
                more
            }
            (RunState::Point(model), AnyRun::Point(run)) => {
                let (m, sde) = model.parts();
                let f = ScoreFn::new(m, sde);
                let more = run.next(&f, &mut self.noise);
                self.nfe += f.nfe();
                more
            }
            _ => unreachable!("an image run holds an image model, a point run a point model"),
        };
        Ok(more)
    }

    /// `(steps taken, steps in all)`.
    pub fn progress(&self) -> (usize, usize) {
        match &self.run {
            AnyRun::Image(r) => r.progress(),
            AnyRun::Point(r) => r.progress(),
        }
    }

    /// Whether the run has finished.
    pub fn is_done(&self) -> bool {
        match &self.run {
            AnyRun::Image(r) => r.is_done(),
            AnyRun::Point(r) => r.is_done(),
        }
    }

    /// Score-network evaluations so far (a guided evaluation counts once: one batched call).
    /// The previews' evaluations ([`Run::denoised_tensor`]) are not counted here but in
    /// [`Run::preview_nfe`].
    pub fn nfe(&self) -> usize {
        self.nfe
    }

    /// Network evaluations spent on denoised previews ([`Run::denoised_tensor`]).
    pub fn preview_nfe(&self) -> usize {
        self.preview_nfe
    }

    /// The core's denoised estimate of the current state ([`scorediff::sampler::Run::denoised`],
    /// Tweedie's `E[x_0 | x_t]`: one network evaluation, none once finished), flattened like
    /// [`Run::state_tensor`]: what the page previews beside `x_t`. Its evaluations are counted
    /// in [`Run::preview_nfe`], apart from the sampler's.
    pub fn denoised_tensor(&mut self) -> Result<Tensor<1>, String> {
        let (x0, nfe) = match (&self.state, &self.run) {
            (RunState::Image { .. }, AnyRun::Image(run)) => {
                let (x0, nfe) = Self::with_image_score(&self.state, self.backend, |f| (run.denoised(f), f.nfe()))?;
                let n = x0.shape().num_elements();
                (x0.reshape([n]), nfe)
            }
            (RunState::Point(model), AnyRun::Point(run)) => {
                let (m, sde) = model.parts();
                let f = ScoreFn::new(m, sde);
                let x0 = run.denoised(&f);
                let n = x0.shape().num_elements();
                (x0.reshape([n]), f.nfe())
            }
            _ => unreachable!("an image run holds an image model, a point run a point model"),
        };
        self.preview_nfe += nfe;
        Ok(x0)
    }

    /// The backend the run computes on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The current state's noise-free mean, flattened (`[batch, c, h, w]` or `[n, 2]`).
    pub fn state_tensor(&self) -> Tensor<1> {
        fn flat<const D: usize>(x: &Tensor<D>) -> Tensor<1> {
            let n = x.shape().num_elements();
            x.clone().reshape([n])
        }
        match &self.run {
            AnyRun::Image(r) => flat(&r.state().x_mean),
            AnyRun::Point(r) => flat(&r.state().x_mean),
        }
    }

    /// The state's shape.
    pub fn shape(&self) -> Vec<usize> {
        match &self.run {
            AnyRun::Image(r) => r.state().x.dims().to_vec(),
            AnyRun::Point(r) => r.state().x.dims().to_vec(),
        }
    }
}

/// Settings of the live 2-D training.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabRequest {
    /// The toy distribution (`two-moons`, ...).
    pub toy: String,
    /// Seed of the data stream, the loss noise and the weights' initialisation.
    pub seed: u64,
    /// Width of the MLP's hidden layers.
    pub hidden: usize,
    /// Residual hidden layers.
    pub layers: usize,
    /// Points per step.
    pub batch: usize,
    /// The forward SDE.
    pub sde: SdeConfig,
    /// Learning rate (with a 100-step warm-up).
    pub lr: f64,
    /// A mixture file's JSON: train on its samples under its SDE instead of the toy's.
    pub mixture: Option<String>,
}

impl Default for LabRequest {
    fn default() -> Self {
        Self {
            toy: "two-moons".into(),
            seed: 0,
            hidden: 128,
            layers: 3,
            batch: 256,
            sde: SdeConfig::Vp { beta_min: 0.1, beta_max: 20.0 },
            lr: 1e-3,
            mixture: None,
        }
    }
}

/// A small MLP trained live on a toy with the core's [`Trainer`] (continuous DSM, AdamW, EMA)
/// on Flex's autodiff device.
pub struct Lab {
    trainer: Trainer<Mlp, 2>,
    toy: Toy,
    mixture: Option<GaussianMixture>,
    batch: usize,
    sde: SdeConfig,
}

impl Lab {
    /// A fresh MLP for `r.toy`.
    pub fn new(json: &str) -> Result<Self, String> {
        let r: LabRequest = parse("lab settings", json)?;
        let toy: Toy = r.toy.parse()?;
        let file = match r.mixture.as_deref() {
            Some(json) => {
                let file = MixtureFile::from_json(json).map_err(|e| format!("mixture file: {e}"))?;
                if file.mixture.dim() != 2 {
                    return Err(format!("mixture file: expected 2-D means, found dimension {}", file.mixture.dim()));
                }
                Some(file)
            }
            None => None,
        };
        let sde = file.as_ref().map_or(r.sde.clone(), |f| f.sde.clone());
        if !(1..=4096).contains(&r.batch) {
            return Err(format!("batch: expected 1 to 4096 points, found {}", r.batch));
        }
        let config = MlpConfig::new().with_hidden(r.hidden).with_layers(r.layers);
        config.validate().map_err(|e| e.to_string())?;
        let device = Device::flex().autodiff();
        device.seed(r.seed);
        let model = config.init(&device);
        let opt = OptimConfig { lr: r.lr, warmup: 100, ..OptimConfig::default() };
        let trainer = Trainer::new(model, sde.clone(), LossConfig::default(), opt, r.seed)?;
        Ok(Self { trainer, toy, mixture: file.map(|f| f.mixture), batch: r.batch, sde })
    }

    /// `steps` optimisation steps; returns their losses.
    pub fn train(&mut self, steps: usize) -> Result<Vec<f64>, String> {
        let (toy, n, mixture) = (self.toy, self.batch, &self.mixture);
        let device = Device::flex().autodiff();
        let data = |noise: &mut NoiseSource| match mixture {
            Some(m) => Tensor::<2>::from_data(TensorData::new(m.sample(n, noise).into_iter().map(|v| v as f32).collect::<Vec<f32>>(), [n, 2]), &device),
            None => toy.sample_tensor(n, noise, &device),
        };
        (0..steps)
            .map(|_| {
                let report = self.trainer.train_step(|noise| data(noise)).map_err(|e| e.to_string())?;
                Ok(report.loss)
            })
            .collect()
    }

    /// Steps trained so far.
    pub fn steps(&self) -> usize {
        self.trainer.step()
    }

    /// The current EMA weights as a [`PointModel`] (for arrows and sampling).
    pub fn snapshot(&self, ema: bool) -> Result<PointModel, String> {
        let net = if ema { self.trainer.ema.clone() } else { self.trainer.model.valid() };
        Ok(PointModel::Mlp { net, sde: self.sde.build().map_err(|e| e.to_string())? })
    }
}

/// `n` points of a toy distribution, `[x0, y0, x1, y1, ...]`.
pub fn toy_samples(toy: &str, n: usize, seed: u64) -> Result<Vec<f32>, String> {
    let toy: Toy = toy.parse()?;
    if !(1..=100_000).contains(&n) {
        return Err(format!("n: expected 1 to 100000 points, found {n}"));
    }
    Ok(toy.sample(n, &mut NoiseSource::new(seed)).into_iter().map(|v| v as f32).collect())
}

/// Reads a tensor on a device where synchronous reads are allowed (Flex, native tests).
pub fn read_sync(t: Tensor<1>) -> Result<Vec<f32>, String> {
    t.into_data().try_to_vec::<f32>().map_err(|e| format!("reading a tensor: {e:?}"))
}

/// An MNIST classifier (`core::nn::Classifier`) on Flex: the end-to-end test's judge of whether
/// generated images look like digits (its confidence on them).
pub struct ImageClassifier {
    net: scorediff::nn::Classifier,
}

impl ImageClassifier {
    /// Loads the classifier from its card (`classifier.json`, as `native-cli train-classifier`
    /// writes it) and Burnpack weights.
    pub fn load(card_json: &str, weights: Vec<u8>) -> Result<Self, String> {
        let card: scorediff::train::classifier::ClassifierCard = parse("classifier.json", card_json)?;
        let net = card.load_net(weights, scorediff::train::classifier::WEIGHTS_FILE, &Device::flex())?;
        Ok(Self { net })
    }

    /// Class probabilities (softmax of the logits) of `pixels` (`[n, c, h, w]` in `[-1, 1]`).
    ///
    /// # Shapes
    /// Returns `[n, classes]`.
    pub fn probabilities(&self, pixels: &[f32]) -> Result<Tensor<2>, String> {
        let c = self.net.config();
        let per = c.in_channels * c.image_size * c.image_size;
        if pixels.is_empty() || pixels.len() % per != 0 {
            return Err(format!("pixels: expected a multiple of {per} values, found {}", pixels.len()));
        }
        let n = pixels.len() / per;
        let x = Tensor::<4>::from_data(TensorData::new(pixels.to_vec(), [n, c.in_channels, c.image_size, c.image_size]), &Device::flex());
        Ok(scorediff::burn::tensor::activation::softmax(self.net.forward(x, None), 1))
    }
}
