//! Samplers of the reverse process.
//!
//! Every sampler here is written from the SDE's scalar coefficients alone (its marginal at two
//! grid times, its drift and diffusion), so each works for VE, VP, sub-VP and the discrete DDPM
//! schedules without type checks (the Langevin corrector of the reference code crashes on
//! sub-VP because it reads `sde.alphas`; ours does not).
//!
//! - [`traits`](Sampler): a [`Sampler`] advances one step at a time (the browser yields between
//!   steps), returning a [`Step`] with the new state `x` and its noise-free mean `x_mean` (the
//!   final sample is the last `x_mean`, as in the reference code); a grid sampler is a
//!   [`Transition`] between two times; samplers say what they can do ([`Sampler::can_rewind`],
//!   [`Sampler::reads_back`]).
//! - [`Grid`]: the times, an argument of a run (`grid.rs`); noise-level schedules (Karras,
//!   exponential, polyexponential) and diffusers' timestep spacings ([`schedule`]).
//! - [`SamplerConfig`]: which sampler with its own options, tagged by kind (`config.rs`).
//! - [`Run`]: the protocol of a whole run, which [`Sampling`] implements as do the
//!   inverse-problem methods; [`sample`] runs to the end with a progress callback,
//!   [`draw_batches`] draws many samples in batches (`runner.rs`).
//! - [`mode_weights`]: plain against annealed Langevin dynamics on separated modes of unequal
//!   weight (Song & Ermon 2019, Fig. 3), the settings the page and its test share.

mod ald;
mod ancestral;
pub mod clip;
mod config;
mod ddim;
mod dpm_solver;
mod euler_ancestral;
mod euler_maruyama;
mod grid;
mod heun_edm;
mod interp;
mod langevin;
pub mod mode_weights;
mod ode;
mod pc;
mod reverse_diffusion;
mod rk45;
mod runner;
pub mod schedule;
mod traits;
mod unipc;

pub use crate::param::Variance;
pub use crate::sde::{Posterior, Posteriors};
pub use ald::AnnealedLangevin;
pub use ancestral::Ancestral;
pub use clip::{Clip, X0Clip};
pub use config::{SamplerConfig, SamplerKind, SamplerOptions, SamplerSpec};
pub use ddim::Ddim;
pub use dpm_solver::{DpmSolver2M, DpmSolverPp};
pub use euler_ancestral::EulerAncestral;
pub use euler_maruyama::EulerMaruyama;
pub use grid::{Grid, GridSampler, Spacing, time_grid, time_grid_from};
pub use heun_edm::HeunEdm;
pub use interp::{ode_decode, ode_encode, slerp};
pub use langevin::{LangevinCorrector, langevin_update};
pub use ode::{OdeEuler, OdeHeun, ode_drift, reverse_drift};
pub use pc::{Predictor, PredictorCorrector};
pub use reverse_diffusion::ReverseDiffusion;
pub use rk45::{Rk45, Rk45Sampler};
pub use runner::{BatchEvent, Drawn, ReadBackError, Run, Sampling, draw_batches, prior_sample, sample, tweedie_denoise};
pub use schedule::{SigmaKind, SigmaSchedule, TimestepSpacing};
pub use traits::{PredictionStep, Sampler, Step, Transition};
pub use unipc::{UniPc, UniPcVariant};
