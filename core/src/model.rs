//! The score model interface and its evaluation at a time.
//!
//! A [`ScoreModel`] is any function `(x_t, t) -> output` whose output is in one of the
//! [`Parameterization`]s: a trained network, or the exact score of an analytic density
//! ([`crate::mixture`]). [`ScoreFn`] binds it to the SDE so samplers can ask for the score,
//! `eps` or Tweedie's `x_0` at one time, whatever the network predicts, and counts function
//! evaluations (NFE). [`LoadedNet`] is a trained network as its model card builds it, [`ImageNet`]
//! either image network of one.

mod loaded;
pub use loaded::{ImageNet, LoadedNet};

use crate::param::{Marginal, Parameterization};
use crate::sampler::X0Clip;
use crate::sde::Sde;
use burn::tensor::Tensor;
use std::cell::Cell;
use std::rc::Rc;

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
    nfe: Rc<Cell<usize>>,
    clip: Option<X0Clip>,
}

impl<'a, const D: usize> ScoreFn<'a, D> {
    /// Binds `model` to `sde`.
    pub fn new(model: &'a dyn ScoreModel<D>, sde: &'a dyn Sde) -> Self {
        Self { model, sde, nfe: Rc::new(Cell::new(0)), clip: None }
    }

    /// The same model whose predictions clip `x0_hat` by `clip` (none: unclipped); it counts
    /// its evaluations with this one's.
    pub fn clipped(&self, clip: Option<X0Clip>) -> Self {
        Self { model: self.model, sde: self.sde, nfe: self.nfe.clone(), clip }
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

    /// The model's output at `x` as a prediction; with clipping, the clipped `x0_hat` itself (an
    /// `x0` prediction, so that `eps_hat = (x_t - m x0_c) / s` and the score follow from it).
    fn prediction(&self, x: Tensor<D>, out: Tensor<D>, t: &[f64]) -> Prediction<D> {
        let marginal = if t.windows(2).all(|w| w[0] == w[1]) { Marginal::at(self.sde, t[0]) } else { Marginal::per_sample(self.sde, t) };
        let param = self.model.parameterization();
        match &self.clip {
            None => Prediction { x, out, param, marginal },
            Some(clip) => {
                let x0 = clip.apply(marginal.to_x0(param, x.clone(), out));
                Prediction { x, out: x0, param: Parameterization::X0, marginal }
            }
        }
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

/// A model of flat points `[batch, dim]` evaluated on images `[batch, c, h, w]` with
/// `c h w = dim` (row-major flattening): an analytic mixture as an exact image prior.
pub struct Flattened<'a>(pub &'a dyn ScoreModel<2>);

impl ScoreModel<4> for Flattened<'_> {
    fn parameterization(&self) -> Parameterization {
        self.0.parameterization()
    }

    fn forward(&self, x: Tensor<4>, t: &[f64]) -> Tensor<4> {
        let dims = x.dims();
        self.0.forward(x.reshape([dims[0], dims[1] * dims[2] * dims[3]]), t).reshape(dims)
    }
}
