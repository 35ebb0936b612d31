//! Exponential moving average of the weights.
//!
//! Ho et al. 2020, appendix B (decay 0.9999) and Song et al. 2021 (0.999 for continuous SDEs):
//! samples are drawn from `theta_ema <- decay theta_ema + (1 - decay) theta` rather than from the
//! last iterate. Song & Ermon 2020 ("Improved techniques", technique 5) show it removes the
//! colour shifts and instabilities of the raw weights.
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
