//! Predictor–corrector sampling.
//!
//! Song et al. 2021, Alg. 1 (and Alg. 2-3 for VE/VP), in the paper's order: at each level the
//! predictor moves `x` from `t_{i+1}` to `t_i`, then the Langevin corrector refines it at `t_i`
//! (the reference code runs the corrector first, their issue #50). No corrector runs at
//! `t = 0`, where the score is undefined.

use super::{Ancestral, EulerMaruyama, LangevinCorrector, ReverseDiffusion, Step, Transition};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use crate::param::Variance;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The predictor of a PC sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = Predictor::unknown)]
pub enum Predictor {
    /// The reverse-diffusion predictor.
    #[default]
    ReverseDiffusion,
    /// The ancestral predictor.
    Ancestral,
    /// Euler–Maruyama.
    EulerMaruyama,
    /// No predictor: corrector only (annealed Langevin with the snr rule).
    None,
}

impl Predictor {
    /// Every predictor.
    pub const ALL: [Predictor; 4] = [Self::ReverseDiffusion, Self::Ancestral, Self::EulerMaruyama, Self::None];

    fn unknown(s: &str) -> String {
        crate::names::unknown("predictor", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// A predictor followed by Langevin corrector steps.
#[derive(Debug, Clone, Copy)]
pub struct PredictorCorrector {
    /// The predictor.
    pub predictor: Predictor,
    /// Variance of the ancestral predictor.
    pub variance: Variance,
    /// The corrector.
    pub corrector: LangevinCorrector,
}

impl<const D: usize> Transition<D> for PredictorCorrector {
    fn transition(&mut self, x: Tensor<D>, t: f64, t_next: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let step = match self.predictor {
            Predictor::ReverseDiffusion => ReverseDiffusion.transition(x, t, t_next, f, noise),
            Predictor::Ancestral => Ancestral { variance: self.variance }.transition(x, t, t_next, f, noise),
            Predictor::EulerMaruyama => EulerMaruyama.transition(x, t, t_next, f, noise),
            Predictor::None => Step::deterministic(x),
        };
        if f.sde().marginal(t_next).1 <= 0.0 || t_next <= 0.0 {
            return step;
        }
        self.corrector.correct(step, t_next, t - t_next, f, noise)
    }
    /// The corrector's step size reads the norms of the score and the noise back.
    fn reads_back(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_serde_names() {
        crate::names::serde_agrees(&Predictor::ALL);
        assert!("heun".parse::<Predictor>().unwrap_err().contains("reverse-diffusion"));
    }
}
