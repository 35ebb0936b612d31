//! Predictor–corrector sampling.
//!
//! Song et al. 2021, Alg. 1 (and Alg. 2-3 for VE/VP), in the paper's order: at each level the
//! predictor moves `x` from `t_{i+1}` to `t_i`, then the Langevin corrector refines it at `t_i`
//! (the reference code runs the corrector first, their issue #50). No corrector runs at
//! `t = 0`, where the score is undefined.

use super::{Ancestral, EulerMaruyama, LangevinCorrector, ReverseDiffusion, Step, Transition, Variance};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The predictor of a PC sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
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

impl FromStr for Predictor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reverse-diffusion" => Ok(Self::ReverseDiffusion),
            "ancestral" => Ok(Self::Ancestral),
            "euler-maruyama" => Ok(Self::EulerMaruyama),
            "none" => Ok(Self::None),
            _ => Err(format!("unknown predictor `{s}`: expected reverse-diffusion, ancestral, euler-maruyama or none")),
        }
    }
}

impl std::fmt::Display for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ReverseDiffusion => "reverse-diffusion",
            Self::Ancestral => "ancestral",
            Self::EulerMaruyama => "euler-maruyama",
            Self::None => "none",
        })
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
}
