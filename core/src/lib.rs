//! # scorediff
//!
//! Score-based generative models (Song et al., ICLR 2021) on burn tensors: forward SDEs with
//! scalar coefficients ([`sde`]), score parameterizations ([`param`]), training losses
//! ([`loss`]), samplers ([`sampler`]), likelihood through the probability-flow ODE
//! ([`likelihood`]), analytic Gaussian-mixture scores ([`mixture`]) and sample-quality
//! metrics ([`metrics`]).
//!
//! Every function takes tensors that carry their `Device`, so the same code runs on Flex (CPU),
//! WebGPU, Vulkan and CUDA. Randomness comes only from an explicit [`noise::NoiseSource`].
#![warn(missing_docs)]

pub(crate) mod backend;
pub mod data;
pub mod error;
pub mod eval;
pub mod export;
pub mod inverse;
pub mod io;
pub mod likelihood;
pub mod limits;
pub mod loss;
pub mod metrics;
pub mod mixture;
pub mod model;
pub mod names;
pub mod nn;
pub mod noise;
pub mod param;
pub mod precond;
pub mod sampler;
pub mod sde;
pub mod train;

#[cfg(test)]
pub(crate) mod test_util;

pub use burn;
