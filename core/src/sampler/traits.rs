//! The step protocol every sampler follows: a [`Sampler`] advances a state one step at a time;
//! a grid sampler is a [`Transition`] between two grid times; a [`PredictionStep`] is a
//! transition computed from the model's prediction alone (what DPS builds on).

use crate::model::{Prediction, ScoreFn};
use crate::noise::NoiseSource;
use crate::sde::Sde;
use burn::tensor::Tensor;

/// The state after one step.
#[derive(Debug, Clone)]
pub struct Step<const D: usize> {
    /// The new sample.
    pub x: Tensor<D>,
    /// Its mean before the step's noise was added (the denoised output at the last step).
    pub x_mean: Tensor<D>,
}

impl<const D: usize> Step<D> {
    /// A deterministic step: `x_mean = x`.
    pub fn deterministic(x: Tensor<D>) -> Self {
        Self { x_mean: x.clone(), x }
    }
}

/// A sampler that advances one step at a time.
pub trait Sampler<const D: usize> {
    /// Advances from `x` by one step.
    fn step(&mut self, x: Tensor<D>, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D>;
    /// Whether the last step has been taken.
    fn is_done(&self) -> bool;
    /// `(steps taken, steps in all)`; for adaptive samplers the total is an estimate.
    fn progress(&self) -> (usize, usize);
    /// The time the current state is at.
    fn time(&self) -> f64;
    /// Whether a step can be taken again from another state at the same time ([`rewind`]):
    /// `false` for samplers whose steps remember earlier ones (multistep, adaptive) or that
    /// take no reverse steps (annealed Langevin).
    ///
    /// [`rewind`]: Sampler::rewind
    fn can_rewind(&self) -> bool {
        false
    }
    /// Steps back to the previous time of the grid, so that the step just taken can be taken
    /// again from a re-noised state (RePaint's resampling); `false`, changing nothing, at the
    /// start or when [`can_rewind`](Sampler::can_rewind) is `false`.
    fn rewind(&mut self) -> bool {
        false
    }
    /// Whether a step reads a value back from the device in its middle (an adaptive step size,
    /// the Langevin corrector's gradient norms): such a sampler cannot run where only
    /// asynchronous reads are allowed (WebGPU in the browser).
    fn reads_back(&self) -> bool {
        false
    }
}

/// One transition of a grid sampler, from `t` to `t_next < t`.
pub trait Transition<const D: usize> {
    /// Moves `x` at time `t` to time `t_next`.
    fn transition(&mut self, x: Tensor<D>, t: f64, t_next: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D>;
    /// Whether a step depends on its state and times alone, so that the grid may step back and
    /// take it again (false for multistep methods, which keep the previous prediction).
    fn memoryless(&self) -> bool {
        true
    }
    /// Whether a step reads a value back from the device (see [`Sampler::reads_back`]).
    fn reads_back(&self) -> bool {
        false
    }
}

/// A transition computed from the model's prediction at `(x, t)` alone (DDPM ancestral, DDIM):
/// what methods that need the prediction first build on (DPS differentiates it before the step).
pub trait PredictionStep<const D: usize> {
    /// The step from `x` at `t` to `s < t`, given the model's prediction `pred` at `(x, t)` and,
    /// for a learned variance, its variance output `v` (`[batch, ...]`, in `[-1, 1]`).
    #[allow(clippy::too_many_arguments)]
    fn step_from(&self, x: Tensor<D>, pred: &Prediction<D>, v: Option<Tensor<D>>, t: f64, s: f64, sde: &dyn Sde, noise: &mut NoiseSource) -> Step<D>;
    /// Whether the step needs the model's variance output `v`.
    fn needs_variance(&self) -> bool {
        false
    }
}
