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
//! - [`Grid`]: the times, an argument of a run (`grid.rs`).
//! - [`SamplerConfig`]: which sampler with its own options, tagged by kind (`config.rs`).
//! - [`Run`]: the protocol of a whole run, which [`Sampling`] implements as do the
//!   inverse-problem methods; [`sample`] runs to the end with a progress callback,
//!   [`draw_batches`] draws many samples in batches (`runner.rs`).

mod ald;
mod ancestral;
pub mod clip;
mod config;
mod ddim;
mod dpm_solver;
mod euler_maruyama;
mod grid;
mod interp;
mod langevin;
mod ode;
mod pc;
mod reverse_diffusion;
mod rk45;
mod runner;
mod traits;

pub use crate::param::Variance;
pub use crate::sde::{Posterior, Posteriors};
pub use ald::AnnealedLangevin;
pub use ancestral::Ancestral;
pub use clip::{Clip, X0Clip};
pub use config::{SamplerConfig, SamplerKind, SamplerOptions, SamplerSpec};
pub use ddim::Ddim;
pub use dpm_solver::DpmSolver2M;
pub use euler_maruyama::EulerMaruyama;
pub use grid::{Grid, GridSampler, Spacing, time_grid, time_grid_from};
pub use interp::{ode_decode, ode_encode, slerp};
pub use langevin::{LangevinCorrector, langevin_update};
pub use ode::{OdeEuler, OdeHeun, ode_drift, reverse_drift};
pub use pc::{Predictor, PredictorCorrector};
pub use reverse_diffusion::ReverseDiffusion;
pub use rk45::{Rk45, Rk45Sampler};
pub use runner::{BatchEvent, Drawn, ReadBackError, Run, Sampling, draw_batches, prior_sample, sample, tweedie_denoise};
pub use traits::{PredictionStep, Sampler, Step, Transition};
