//! Exponential moving average of the weights.
//!
//! Ho et al. 2020, appendix B (decay 0.9999) and Song et al. 2021 (0.999 for continuous SDEs):
//! samples are drawn from `theta_ema <- decay theta_ema + (1 - decay) theta` rather than from the
//! last iterate. Song & Ermon 2020 ("Improved techniques", technique 5) show it removes the
//! colour shifts and instabilities of the raw weights.
//!
//! With a decay of 0.999 the plain average still holds `0.999^n` of the random initial weights
//! after `n` steps (37% after 1000, 5% after 3000): sampled early, the EMA gives noise where the
//! model already gives digits. [`decay_at`] therefore warms the decay up as
//! `min(decay, (1 + n) / (10 + n))` (the warm-up of TensorFlow's `ExponentialMovingAverage`
//! with `num_updates`, used by the NCSN++ and score-SDE reference code), so the average forgets
//! the initialisation as fast as a running mean would.
//!
//! The average lives on the plain (non-autodiff) device, as a `valid()` copy of the model with
//! the same parameter ids, so it can be sampled from and saved like the model itself.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// Collects every float parameter, flattened, in visiting order.
pub(super) struct Collect(pub(super) Vec<(ParamId, Tensor<1>)>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push((param.id, param.val().reshape([-1])));
    }
}

/// Replaces every float parameter by `decay * ema + (1 - decay) * model`.
struct Blend {
    model: std::vec::IntoIter<(ParamId, Tensor<1>)>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, value) = self.model.next().expect("EMA and model have the same parameters");
        assert_eq!(id, param.id, "EMA and model parameters out of order");
        let decay = self.decay;
        param.map(|ema| {
            let shape = ema.dims();
            ema.mul_scalar(decay) + value.reshape(shape).mul_scalar(1.0 - decay)
        })
    }
}

/// The decay of the EMA update after `step` completed steps: `min(decay, (1 + step) / (10 +
/// step))` when `warmup`, else `decay`.
pub fn decay_at(decay: f64, step: usize, warmup: bool) -> f64 {
    if warmup { decay.min((1.0 + step as f64) / (10.0 + step as f64)) } else { decay }
}

/// One EMA update of `ema` (a `valid()` copy of `model`) towards `model`.
pub fn ema_update<M: Module>(ema: M, model: &M, decay: f64) -> M {
    let mut collect = Collect(Vec::new());
    model.valid().visit(&mut collect);
    ema.map(&mut Blend { model: collect.0.into_iter(), decay })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    fn weights(m: &Linear) -> Vec<f32> {
        m.weight.val().into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn the_warm_up_forgets_the_initialisation() {
        assert_eq!(decay_at(0.999, 0, true), 0.1);
        assert_eq!(decay_at(0.999, 90, true), 0.91);
        assert_eq!(decay_at(0.999, 8991, true), 0.999);
        assert_eq!(decay_at(0.999, 3, false), 0.999);
        // The weight left on the initial value after n updates is the product of the decays,
        // prod_{k<n} (1 + k) / (10 + k) = 9! n! / (n + 9)!, which is below 1e-6 by n = 1000
        // (where the plain 0.999 keeps 0.999^1000 = 37%).
        let left = |n: usize, warm: bool| (0..n).map(|k| decay_at(0.999, k, warm)).product::<f64>();
        let closed = |n: usize| (1..=9).map(|j| j as f64 / (n + j) as f64).product::<f64>();
        assert!((left(1000, true) - closed(1000)).abs() < 1e-12 * closed(1000).max(1e-300) + 1e-300);
        assert!(left(1000, true) < 1e-6 && (left(1000, false) - 0.999f64.powi(1000)).abs() < 1e-12);
    }

    #[test]
    fn blends_every_parameter_by_the_decay() {
        let dev = Device::flex();
        let model = LinearConfig::new(3, 2).init(&dev);
        let ema = model.valid();
        // Move the model's weight to all ones; one update with decay 0.75 gives 0.75 w + 0.25.
        let w0 = weights(&model);
        let ones = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 6], [3, 2]), &dev);
        let mut moved = model.clone();
        moved.weight = moved.weight.map(|_| ones);
        let ema = ema_update(ema, &moved, 0.75);
        for (e, w) in weights(&ema).iter().zip(&w0) {
            assert!((e - (0.75 * w + 0.25)).abs() < 1e-6);
        }
        // Decay 0 copies the model.
        let ema = ema_update(ema, &moved, 0.0);
        assert!(weights(&ema).iter().all(|&e| (e - 1.0).abs() < 1e-7));
    }
}
