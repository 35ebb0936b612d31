//! The score model interface and its evaluation at a time.
//!
//! A [`ScoreModel`] is any function `(x_t, t) -> output` whose output is in one of the
//! [`Parameterization`]s: a trained network, or the exact score of an analytic density
//! ([`crate::mixture`]). [`ScoreFn`] binds it to the SDE so samplers can ask for the score,
//! `eps` or Tweedie's `x_0` at one time, whatever the network predicts, and counts function
//! evaluations (NFE).

use crate::param::{Marginal, Parameterization};
use crate::sde::Sde;
use burn::tensor::Tensor;
use std::cell::Cell;

/// A time-conditional model of the score (in some parameterization).
///
/// # Shapes
/// - `x`: `[batch, ...]` (rank `D`, e.g. `[batch, dim]` or `[batch, channels, height, width]`)
/// - `t`: `batch` times in `[0, T]`
/// - output: the shape of `x`
pub trait ScoreModel<const D: usize> {
    /// What the output means.
    fn parameterization(&self) -> Parameterization;
    /// Evaluates the model; `t[i]` is the time of sample `i`.
    fn forward(&self, x: Tensor<D>, t: &[f64]) -> Tensor<D>;

    /// The output of [`forward`](Self::forward) and, for a model that learns its reverse-process
    /// variance, the interpolation output `v` of Nichol & Dhariwal's learned range (eq. 15; see
    /// [`crate::sampler::Posteriors::model_log_variance`]), of the shape of `x`, from one
    /// evaluation. Default: no variance output.
    fn forward_with_variance(&self, x: Tensor<D>, t: &[f64]) -> (Tensor<D>, Option<Tensor<D>>) {
        (self.forward(x, t), None)
    }
}

/// A model evaluated at a time: converts its output to any parameterization.
#[derive(Debug, Clone)]
pub struct Prediction<const D: usize> {
    /// The input `x_t`.
    pub x: Tensor<D>,
    /// The model's raw output.
    pub out: Tensor<D>,
    /// The model's parameterization.
    pub param: Parameterization,
    /// `m(t)`, `s(t)` of the perturbation kernel.
    pub marginal: Marginal,
}

impl<const D: usize> Prediction<D> {
    /// The score `grad log p_t(x_t)`.
    pub fn score(&self) -> Tensor<D> {
        self.marginal.to_score(self.param, self.x.clone(), self.out.clone())
    }
    /// The noise `eps`.
    pub fn eps(&self) -> Tensor<D> {
        self.marginal.to_eps(self.param, self.x.clone(), self.out.clone())
    }
    /// Tweedie's denoised estimate `E[x_0 | x_t]`.
    pub fn x0(&self) -> Tensor<D> {
        self.marginal.to_x0(self.param, self.x.clone(), self.out.clone())
    }
}

/// A model bound to its SDE, counting evaluations.
pub struct ScoreFn<'a, const D: usize> {
    model: &'a dyn ScoreModel<D>,
    sde: &'a dyn Sde,
    nfe: Cell<usize>,
}

impl<'a, const D: usize> ScoreFn<'a, D> {
    /// Binds `model` to `sde`.
    pub fn new(model: &'a dyn ScoreModel<D>, sde: &'a dyn Sde) -> Self {
        Self { model, sde, nfe: Cell::new(0) }
    }

    /// The SDE.
    pub fn sde(&self) -> &'a dyn Sde {
        self.sde
    }

    /// Number of function evaluations so far (one per batched call).
    pub fn nfe(&self) -> usize {
        self.nfe.get()
    }

    /// Evaluates the model at one time `t` for the whole batch.
    pub fn eval(&self, x: Tensor<D>, t: f64) -> Prediction<D> {
        let batch = x.dims()[0];
        self.eval_per_sample(x, &vec![t; batch])
    }

    /// Evaluates the model at one time per sample.
    pub fn eval_per_sample(&self, x: Tensor<D>, t: &[f64]) -> Prediction<D> {
        self.nfe.set(self.nfe.get() + 1);
        let out = self.model.forward(x.clone(), t);
        self.prediction(x, out, t)
    }

    fn prediction(&self, x: Tensor<D>, out: Tensor<D>, t: &[f64]) -> Prediction<D> {
        let marginal = if t.windows(2).all(|w| w[0] == w[1]) { Marginal::at(self.sde, t[0]) } else { Marginal::per_sample(self.sde, t) };
        Prediction { x, out, param: self.model.parameterization(), marginal }
    }

    /// [`eval`](Self::eval) with the model's learned-variance output `v`, if it has one (one
    /// evaluation; see [`ScoreModel::forward_with_variance`]).
    pub fn eval_with_variance(&self, x: Tensor<D>, t: f64) -> (Prediction<D>, Option<Tensor<D>>) {
        self.nfe.set(self.nfe.get() + 1);
        let t = vec![t; x.dims()[0]];
        let (out, v) = self.model.forward_with_variance(x.clone(), &t);
        (self.prediction(x, out, &t), v)
    }

    /// The score at time `t`.
    pub fn score(&self, x: Tensor<D>, t: f64) -> Tensor<D> {
        self.eval(x, t).score()
    }
}

/// A network conditioned on one class label per example: how a class-conditional model is
/// trained for classifier-free guidance (Ho & Salimans 2022, Alg. 1).
/// Used by [`Trainer::train_step_labelled`](crate::train::Trainer::train_step_labelled).
pub trait Conditional<const D: usize> {
    /// The number of classes `n` (label `n` is the null, unconditional label); `None` when the
    /// network takes no labels.
    fn num_classes(&self) -> Option<usize>;
    /// The model as a [`ScoreModel`] on a batch with these labels (one per example).
    fn with_labels(&self, labels: Vec<usize>) -> Box<dyn ScoreModel<D> + '_>;
}
