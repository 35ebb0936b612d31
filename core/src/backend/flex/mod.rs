//! Kernels for Flex, burn's CPU backend (native, and wasm32 with simd128).
//!
//! - [`conv`]: 2-D convolution as im2col and one matrix product per image, Winograd's
//!   F(2x2, 3x3) for 3x3 stride-1 convolutions, and the gradients as matrix products; called by
//!   [`crate::nn::conv::conv2d`].
//! - [`group_norm`]: GroupNorm + SiLU + dropout in one pass with its hand-derived gradient, SIMD
//!   with a polynomial `exp`; called by [`crate::nn::fused::group_norm_silu_dropout`].
//!
//! Each has an `ops` module (the backend extension on Flex and `Autodiff<Flex>`, built with the
//! `flex` feature) and a `kernel` module on plain `f32` slices.

pub(crate) mod conv;
pub(crate) mod group_norm;

#[cfg(feature = "flex")]
pub(crate) use group_norm::on_flex_f32;
