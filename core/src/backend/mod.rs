//! Hand-written kernels of one backend, behind burn's backend extensions
//! (`#[backend_extension(Flex, Autodiff)]`): the backend runs the kernel, its autodiff wrapper
//! records the kernel's gradient. The modules of [`crate::nn`] call them where they apply and
//! compose burn's operations everywhere else, so a network reads the same on every backend.
//!
//! - [`flex`]: Flex, burn's CPU backend (native and wasm): im2col and Winograd convolution, fused
//!   GroupNorm-SiLU-dropout, their backward passes, the SIMD and `unsafe` code they need.

pub(crate) mod flex;
