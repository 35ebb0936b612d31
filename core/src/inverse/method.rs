//! The methods that solve an inverse problem with a pretrained score model, which of them fits
//! which measurement, and one call that solves it ([`Method::solve`]):
//!
//! - **projection** ([`Projection`]) needs a linear operator whose pseudo-inverse is
//!   `A^T / c` (inpainting, colorization, super-resolution by average pooling), and any sampler
//!   (with RePaint's resampling, one whose steps can be retaken);
//! - **dps** ([`dps`]) takes any operator, linear or not, on ancestral or DDIM steps;
//! - **sdedit** ([`sdedit`]) starts from the task's baseline reconstruction, so it needs a task
//!   that has one (every task but phase retrieval), and any sampler.

use super::{LinearOperator, MeasurementNoise, Operator, Projection, Task, baseline, dps, sdedit};
use crate::error::ConfigError;
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use crate::sampler::{Run, SamplerConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The methods, by their names in configs and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = MethodKind::unknown)]
pub enum MethodKind {
    /// The score-SDE projection method.
    Projection,
    /// Diffusion posterior sampling.
    Dps,
    /// SDEdit from the baseline reconstruction.
    Sdedit,
}

impl MethodKind {
    /// Every method.
    pub const ALL: [MethodKind; 3] = [Self::Projection, Self::Dps, Self::Sdedit];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        self.into()
    }

    fn unknown(s: &str) -> String {
        crate::names::unknown("method", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// A method with its own parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The projection method with RePaint's `resample` steps per level (1: plain replacement).
    Projection {
        /// Steps per level.
        resample: usize,
    },
    /// DPS with the paper's step size `zeta'`.
    Dps {
        /// The step size.
        zeta: f64,
    },
    /// SDEdit from the baseline noised to `t0`.
    Sdedit {
        /// The start time in `(0, T]`.
        t0: f64,
    },
}

impl Method {
    /// Which method.
    pub fn kind(&self) -> MethodKind {
        match self {
            Self::Projection { .. } => MethodKind::Projection,
            Self::Dps { .. } => MethodKind::Dps,
            Self::Sdedit { .. } => MethodKind::Sdedit,
        }
    }

    /// Whether the method fits `task` (whose operator is `op`) and the sampler of `config`.
    ///
    /// # Errors
    /// Naming the field that rules it out: `method` (projection without a pseudo-inverse of the
    /// form `A^T / c`, sdedit without a baseline), `sampler` (dps on a sampler other than
    /// ancestral or ddim), `resample` (0, or above 1 for a sampler whose steps cannot be
    /// retaken).
    pub fn check(&self, task: &Task, op: &dyn Operator<4>, config: &SamplerConfig) -> Result<(), ConfigError> {
        match self {
            Self::Projection { resample } => {
                if !Task::supports_projection(op) {
                    return Err(ConfigError::new(
                        "method",
                        "a task whose operator has the pseudo-inverse A^T / c for projection (inpaint, colorize, super-resolution with downsample pool)",
                        format!("projection for {} ({})", task.kind, op.describe()),
                    ));
                }
                if *resample == 0 {
                    return Err(ConfigError::new("resample", "at least 1 step per level (1: no resampling)", 0));
                }
                if *resample > 1 && !config.kind().can_rewind() {
                    return Err(ConfigError::new(
                        "resample",
                        format!(
                            "1 for {}, which cannot retake a step (it is multistep or adaptive), or a one-step sampler such as ancestral or ddim",
                            config.kind()
                        ),
                        resample,
                    ));
                }
                Ok(())
            }
            Self::Dps { .. } => super::dps::prediction_step::<4>(config).map(|_| ()),
            Self::Sdedit { .. } if task.baseline_kind().is_none() => Err(ConfigError::new(
                "method",
                "a task with a baseline reconstruction to start sdedit from (every task but phase-retrieval)",
                format!("sdedit for {}", task.kind),
            )),
            Self::Sdedit { .. } => Ok(()),
        }
    }

    /// Starts solving `problem`: a run to step with [`Run::next`].
    ///
    /// # Errors
    /// What [`check`](Self::check) refuses, and the methods' own checks (the measurement's
    /// shape, the step size, the start time).
    pub fn start(
        &self,
        config: &SamplerConfig,
        sde: &dyn crate::sde::Sde,
        problem: Problem<'_>,
        noise: &mut NoiseSource,
        device: &Device,
    ) -> Result<Box<dyn Run<4>>, ConfigError> {
        let Problem { task, op, y, noise: noise_model, image: [c, h, w] } = problem;
        self.check(task, op.as_ref(), config)?;
        let shape = [y.dims()[0], c, h, w];
        Ok(match *self {
            Self::Projection { resample } => {
                let run = Projection::with_operator(config, sde, OwnedLinear::new(op).expect("checked: linear"), y, shape, noise, device)?;
                Box::new(run.with_resampling(resample, config)?)
            }
            Self::Dps { zeta } => Box::new(dps(config, sde, op, y, noise_model, zeta, shape, noise, device)?),
            Self::Sdedit { t0 } => {
                let kind = task.baseline_kind().expect("checked: a baseline");
                let guide = baseline(kind, op.as_ref(), y, noise_model.sigma(), task.factor)
                    .map_err(|e| ConfigError::new("method", "a linear operator for sdedit's baseline", e))?;
                Box::new(sdedit(config, sde, guide, t0, noise)?)
            }
        })
    }

    /// Solves `problem` with the model `f` (see [`start`](Self::start)), calling
    /// `on_step(steps taken, steps in all)` after each step; returns the reconstruction
    /// `[batch, c, h, w]`.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn solve(
        &self,
        f: &ScoreFn<4>,
        config: &SamplerConfig,
        problem: Problem<'_>,
        noise: &mut NoiseSource,
        device: &Device,
        mut on_step: impl FnMut(usize, usize),
    ) -> Result<Tensor<4>, ConfigError> {
        let mut run = self.start(config, f.sde(), problem, noise, device)?;
        while run.next(f, noise) {
            let (k, n) = run.progress();
            on_step(k, n);
        }
        Ok(run.output())
    }
}

/// An inverse problem to solve: a task, its operator, a batch of measurements and their noise.
pub struct Problem<'a> {
    /// The task (its parameters: the baseline of SDEdit, the super-resolution factor).
    pub task: &'a Task,
    /// The task's operator `A` (from [`Task::build`]).
    pub op: Box<dyn Operator<4>>,
    /// The measurements `y = A(x) + n`, `[batch, ...]`.
    pub y: Tensor<4>,
    /// The measurement noise `n`.
    pub noise: MeasurementNoise,
    /// The images' shape `[channels, height, width]`.
    pub image: [usize; 3],
}

/// An owned operator known to be linear, as a [`LinearOperator`] (what [`Projection`] needs of
/// a task's boxed operator).
pub struct OwnedLinear<const D: usize>(Box<dyn Operator<D>>);

impl<const D: usize> OwnedLinear<D> {
    /// `op` when it is linear.
    pub fn new(op: Box<dyn Operator<D>>) -> Option<Self> {
        op.linear().is_some().then_some(Self(op))
    }

    fn lin(&self) -> &dyn LinearOperator<D> {
        self.0.linear().expect("checked at construction: linear")
    }
}

impl<const D: usize> Operator<D> for OwnedLinear<D> {
    fn forward(&self, x: Tensor<D>) -> Tensor<D> {
        self.0.forward(x)
    }
    fn linear(&self) -> Option<&dyn LinearOperator<D>> {
        Some(self)
    }
    fn image_valued(&self) -> bool {
        self.0.image_valued()
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

impl<const D: usize> LinearOperator<D> for OwnedLinear<D> {
    fn adjoint(&self, y: Tensor<D>) -> Tensor<D> {
        self.lin().adjoint(y)
    }
    fn pinv_scale(&self) -> Option<f64> {
        self.lin().pinv_scale()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inverse::TaskKind;
    use crate::sampler::SamplerKind;

    #[test]
    fn which_method_fits_which_task() {
        let dev = crate::test_util::device();
        let ancestral = SamplerConfig::new(SamplerKind::Ancestral, 5);
        let fits = |method: Method, kind: TaskKind, config: &SamplerConfig| {
            let task = Task::new(kind);
            let op = task.build([1, 8, 8], &dev).unwrap();
            method.check(&task, op.as_ref(), config).map_err(|e| e.field)
        };
        let projection = Method::Projection { resample: 1 };
        assert_eq!(fits(projection, TaskKind::Inpaint, &ancestral), Ok(()));
        assert_eq!(fits(projection, TaskKind::Deblur, &ancestral), Err("method".into()));
        assert_eq!(fits(projection, TaskKind::PhaseRetrieval, &ancestral), Err("method".into()));
        assert_eq!(fits(Method::Projection { resample: 2 }, TaskKind::Inpaint, &SamplerConfig::new(SamplerKind::DpmSolver2m, 5)), Err("resample".into()));
        assert_eq!(fits(Method::Projection { resample: 0 }, TaskKind::Inpaint, &ancestral), Err("resample".into()));
        assert_eq!(fits(Method::Dps { zeta: 1.0 }, TaskKind::PhaseRetrieval, &ancestral), Ok(()));
        assert_eq!(fits(Method::Dps { zeta: 1.0 }, TaskKind::Inpaint, &SamplerConfig::new(SamplerKind::OdeEuler, 5)), Err("sampler".into()));
        assert_eq!(fits(Method::Sdedit { t0: 0.5 }, TaskKind::Deblur, &SamplerConfig::new(SamplerKind::OdeEuler, 5)), Ok(()));
        assert_eq!(fits(Method::Sdedit { t0: 0.5 }, TaskKind::PhaseRetrieval, &ancestral), Err("method".into()));
        crate::names::serde_agrees(&MethodKind::ALL);
    }
}
