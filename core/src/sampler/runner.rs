//! Running a sampler: the protocol every run follows ([`Run`]: a sampling run, a projection
//! run, DPS and SDEdit), the sampling run itself ([`Sampling`]), and the batched loop that draws
//! many samples ([`draw_batches`]) which `native-cli sample`, `native-cli eval` and
//! [`crate::eval`] all use.

use super::{Sampler, SamplerConfig, Step, X0Clip};
use crate::model::{ScoreFn, ScoreModel};
use crate::noise::NoiseSource;
use crate::sde::Sde;
use burn::tensor::{Device, Tensor};

/// A run that steps from a start to an output, one call of [`next`](Run::next) at a time (the
/// browser yields between calls; the command line draws a progress bar).
pub trait Run<const D: usize> {
    /// Takes one step; returns `false` once finished.
    fn next(&mut self, f: &ScoreFn<D>, noise: &mut NoiseSource) -> bool;
    /// `(steps taken, steps in all)`.
    fn progress(&self) -> (usize, usize);
    /// Whether the run has finished.
    fn is_done(&self) -> bool;
    /// The current state: `x` and its noise-free mean.
    fn state(&self) -> &Step<D>;
    /// The time the current state is at (0 once finished).
    fn time(&self) -> f64;
    /// Tweedie's denoised estimate `E[x_0 | x_t]` of the current state (one network
    /// evaluation; the state itself once finished): what previews and per-step metrics want.
    fn denoised(&self, f: &ScoreFn<D>) -> Tensor<D> {
        if self.is_done() { self.state().x_mean.clone() } else { tweedie_denoise(f, self.state().x.clone(), self.time().max(f.sde().t_min())) }
    }
    /// The output: the last step's noise-free mean.
    fn output(self: Box<Self>) -> Tensor<D>;
}

/// `N(0, prior_std^2 I)`: where sampling starts.
pub fn prior_sample<const D: usize>(sde: &dyn Sde, shape: [usize; D], noise: &mut NoiseSource, device: &Device) -> Tensor<D> {
    noise.normal(shape, device).mul_scalar(sde.prior_std())
}

/// Tweedie's `E[x_0 | x_t]` at `t`: the optional final denoising step.
pub fn tweedie_denoise<const D: usize>(f: &ScoreFn<D>, x: Tensor<D>, t: f64) -> Tensor<D> {
    f.eval(x, t).x0()
}

/// A sampling run in progress: the state, the sampler, and whether to finish with Tweedie.
pub struct Sampling<const D: usize> {
    sampler: Box<dyn Sampler<D>>,
    state: Step<D>,
    denoise: bool,
    finished: bool,
    clip: Option<X0Clip>,
}

impl<const D: usize> Sampling<D> {
    /// Starts from a prior sample of `shape`.
    pub fn new(config: &SamplerConfig, sde: &dyn Sde, shape: [usize; D], noise: &mut NoiseSource, device: &Device) -> Self {
        let x = prior_sample(sde, shape, noise, device);
        Self::from_state(config, sde, x)
    }

    /// Starts from a given `x_T` (e.g. an ODE latent).
    pub fn from_state(config: &SamplerConfig, sde: &dyn Sde, x: Tensor<D>) -> Self {
        Self::from_state_at(config, sde, x, sde.t_max())
    }

    /// Starts from a given `x` at time `t_start` (SDEdit: a noised image part-way).
    ///
    /// The config's clipping ([`SamplerConfig::x0_clip`]) applies to every prediction; a config
    /// that fails [`SamplerConfig::validate`] there clips nothing.
    pub fn from_state_at(config: &SamplerConfig, sde: &dyn Sde, x: Tensor<D>, t_start: f64) -> Self {
        let clip = config.x0_clip().unwrap_or(None);
        Self { sampler: config.build_from(sde, t_start), state: Step::deterministic(x), denoise: config.denoise, finished: false, clip }
    }

    /// Runs a sampler built elsewhere (DPS's guided grid) from `x`, without a final Tweedie step,
    /// its predictions clipped by `clip`.
    pub fn with_sampler(sampler: Box<dyn Sampler<D>>, x: Tensor<D>, clip: Option<X0Clip>) -> Self {
        Self { sampler, state: Step::deterministic(x), denoise: false, finished: false, clip }
    }

    /// The clipping of `x0_hat` this run applies.
    pub fn clip(&self) -> Option<X0Clip> {
        self.clip
    }

    /// Whether the sampler's steps can be retaken ([`Sampler::can_rewind`]).
    pub fn can_rewind(&self) -> bool {
        self.sampler.can_rewind()
    }

    /// Whether a step reads a value back from the device ([`Sampler::reads_back`]).
    pub fn reads_back(&self) -> bool {
        self.sampler.reads_back()
    }

    /// Replaces the state at the current time (a projection on the measurement, a re-noising).
    pub fn set_state(&mut self, state: Step<D>) {
        self.state = state;
    }

    /// Steps the sampler back one time of its grid without touching the state (see
    /// [`Sampler::rewind`]; the caller puts a state at that time with [`set_state`](Self::set_state));
    /// `false` once finished.
    pub fn rewind(&mut self) -> bool {
        !self.finished && self.sampler.rewind()
    }

    /// The sample: the last step's noise-free mean.
    pub fn output(self) -> Tensor<D> {
        self.state.x_mean
    }
}

impl<const D: usize> Run<D> for Sampling<D> {
    fn next(&mut self, f: &ScoreFn<D>, noise: &mut NoiseSource) -> bool {
        if self.finished {
            return false;
        }
        let clipped = self.clip.map(|c| f.clipped(Some(c)));
        let f = clipped.as_ref().unwrap_or(f);
        if !self.sampler.is_done() {
            self.state = self.sampler.step(self.state.x.clone(), f, noise);
        } else {
            // Tweedie at the sampler's last time, from the noisy state.
            let t = self.sampler.time();
            self.state = Step::deterministic(tweedie_denoise(f, self.state.x.clone(), t));
            self.finished = true;
            return true;
        }
        if self.sampler.is_done() && !self.denoise {
            self.finished = true;
        }
        true
    }

    fn progress(&self) -> (usize, usize) {
        let (k, n) = self.sampler.progress();
        let extra = usize::from(self.denoise);
        (k + usize::from(self.finished && self.denoise), n + extra)
    }

    fn is_done(&self) -> bool {
        self.finished
    }

    fn state(&self) -> &Step<D> {
        &self.state
    }

    fn time(&self) -> f64 {
        if self.finished && !self.denoise { 0.0 } else { self.sampler.time() }
    }

    fn output(self: Box<Self>) -> Tensor<D> {
        (*self).output()
    }
}

/// Runs a sampler from the prior to the end; `callback(step, total, state)` after each step.
///
/// The samples are the same at any batch size when `noise` is per-sample
/// ([`NoiseSource::for_samples`] of `shape[0]` samples).
pub fn sample<const D: usize>(
    config: &SamplerConfig,
    f: &ScoreFn<D>,
    shape: [usize; D],
    noise: &mut NoiseSource,
    device: &Device,
    mut callback: impl FnMut(usize, usize, &Step<D>),
) -> Tensor<D> {
    let mut run = Sampling::new(config, f.sde(), shape, noise, device);
    while run.next(f, noise) {
        let (k, n) = run.progress();
        callback(k, n, run.state());
    }
    run.output()
}

/// What [`draw_batches`] reports as it goes.
#[derive(Debug)]
pub enum BatchEvent<'a, const D: usize> {
    /// Batch `batch` of `batches` starts from its prior draw `x`.
    Start {
        /// The batch's index.
        batch: usize,
        /// Batches in all.
        batches: usize,
        /// The prior draw.
        x: &'a Tensor<D>,
    },
    /// A step of batch `batch` was taken.
    Step {
        /// The batch's index.
        batch: usize,
        /// Batches in all.
        batches: usize,
        /// `(steps taken, steps in all)` of this batch.
        progress: (usize, usize),
        /// The new state.
        x: &'a Tensor<D>,
    },
    /// Batch `batch` ended with the samples `x`.
    Output {
        /// The batch's index.
        batch: usize,
        /// The samples.
        x: &'a Tensor<D>,
    },
}

/// What [`draw_batches`] drew.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    /// `n` samples, row-major.
    pub values: Vec<f32>,
    /// Steps taken per batch (the last batch's).
    pub steps: usize,
    /// Network evaluations over all batches.
    pub nfe: usize,
    /// Network evaluations each sample saw: the largest over batches (they differ only for
    /// adaptive samplers).
    pub nfe_per_sample: usize,
}

/// A tensor could not be read back to the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reading back the samples: {0}")]
pub struct ReadBackError(pub String);

/// Draws `n` samples with `config` in batches of at most `batch`, sample `i` from the noise of
/// sample `i` of `noise` ([`NoiseSource::for_samples`]), so that the samples are the same
/// whatever `batch` is: `model_for(first, rows)` gives the model of samples `first..first +
/// rows` (per-sample class labels), `shape(rows)` a batch's tensor shape; `observe` sees every
/// batch start, step and output (progress bars, trajectories) and may stop the run with an
/// error.
///
/// # Errors
/// What `model_for` or `observe` return, or a [`ReadBackError`].
#[allow(clippy::too_many_arguments)]
pub fn draw_batches<M: ScoreModel<D>, E: From<ReadBackError>, const D: usize>(
    config: &SamplerConfig,
    sde: &dyn Sde,
    n: usize,
    batch: usize,
    shape: impl Fn(usize) -> [usize; D],
    mut model_for: impl FnMut(usize, usize) -> Result<M, E>,
    noise: &NoiseSource,
    device: &Device,
    mut observe: impl FnMut(BatchEvent<'_, D>) -> Result<(), E>,
) -> Result<Drawn, E> {
    let batch = batch.clamp(1, n.max(1));
    let batches = n.div_ceil(batch);
    let mut out = Drawn { values: Vec::new(), steps: 0, nfe: 0, nfe_per_sample: 0 };
    for b in 0..batches {
        let first = b * batch;
        let rows = batch.min(n - first);
        let model = model_for(first, rows)?;
        let f = ScoreFn::new(&model, sde);
        let mut noise = noise.for_samples(first, rows);
        let mut run = Sampling::new(config, sde, shape(rows), &mut noise, device);
        observe(BatchEvent::Start { batch: b, batches, x: &run.state().x })?;
        while run.next(&f, &mut noise) {
            let progress = run.progress();
            out.steps = progress.0;
            observe(BatchEvent::Step { batch: b, batches, progress, x: &run.state().x })?;
        }
        let x = run.output();
        observe(BatchEvent::Output { batch: b, x: &x })?;
        out.values.extend(x.into_data().try_to_vec::<f32>().map_err(|e| ReadBackError(format!("{e:?}")))?);
        out.nfe += f.nfe();
        out.nfe_per_sample = out.nfe_per_sample.max(f.nfe());
    }
    Ok(out)
}
