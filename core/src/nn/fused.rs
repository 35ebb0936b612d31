//! GroupNorm followed by SiLU (and the residual block's dropout) as one operation: on Flex the
//! fused kernel of `backend::flex` with its hand-derived gradient, elsewhere burn's
//! `GroupNorm`, `silu` and `Dropout` composed, the reference of the tests.
//!
//! GroupNorm: Wu & He 2018, eqs. 1-2 and 4; SiLU: Elfwing et al. 2018, eq. 3; dropout:
//! Srivastava et al. 2014.
//!
//! Shapes: `x` and the output `[batch, channels, ...]` (any number of trailing positions),
//! `gamma`, `beta` `[channels]`.

use burn::nn::{Dropout, GroupNorm};
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

/// `SiLU(GroupNorm(x))` (`act = true`) or `GroupNorm(x)` with `norm`'s groups, epsilon and
/// affine parameters: the fused kernel on Flex (f32, affine), burn's composition elsewhere.
///
/// # Shapes
/// - `x`, output: `[batch, channels, ...]`
pub fn group_norm_silu<const D: usize>(norm: &GroupNorm, x: Tensor<D>, act: bool) -> Tensor<D> {
    group_norm_silu_dropout(norm, x, act, None)
}

/// [`group_norm_silu`] followed by `dropout` where burn's `Dropout::forward` would apply it
/// (training flag set, autodiff device, probability above 0): inverted dropout, each value kept
/// with probability `1 - p` and scaled by `1 / (1 - p)` (Srivastava et al. 2014, section 10).
/// On Flex the mask comes from a hash of the position and a seed drawn from the device's
/// random numbers (so `Device::seed` still makes training repeatable) and is recomputed in the
/// backward pass instead of stored; elsewhere `dropout.forward`.
///
/// # Shapes
/// - `x`, output: `[batch, channels, ...]`
pub fn group_norm_silu_dropout<const D: usize>(norm: &GroupNorm, x: Tensor<D>, act: bool, dropout: Option<&Dropout>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta)
        && crate::backend::flex::group_norm::ops::applies(&x)
    {
        let device = x.device();
        let prob = dropout.filter(|d| d.training.is_enabled() && device.is_autodiff()).map_or(0.0, |d| d.prob);
        let seed = if prob > 0.0 { crate::backend::flex::group_norm::ops::draw_seed(&device) } else { 0 };
        return crate::backend::flex::group_norm::ops::group_norm_silu(x, gamma.val(), beta.val(), norm.num_groups, norm.epsilon, act, prob, seed);
    }
    let y = norm.forward(x);
    let y = if act { silu(y) } else { y };
    match dropout {
        Some(d) => d.forward(y),
        None => y,
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;
    use crate::test_util::*;
    use burn::module::{Module, Param};
    use burn::nn::GroupNormConfig;

    /// A GroupNorm with non-trivial affine parameters.
    fn norm(groups: usize, channels: usize, seed: u64, dev: &burn::tensor::Device) -> GroupNorm {
        let mut n = GroupNormConfig::new(groups, channels).init(dev);
        let mut noise = NoiseSource::new(seed);
        n.gamma = Some(Param::from_tensor(noise.normal([channels], dev).mul_scalar(0.5).add_scalar(1.0)));
        n.beta = Some(Param::from_tensor(NoiseSource::new(seed + 1).normal([channels], dev).mul_scalar(0.5)));
        n
    }

    fn composed<const D: usize>(n: &GroupNorm, x: Tensor<D>, act: bool) -> Tensor<D> {
        let y = n.forward(x);
        if act { silu(y) } else { y }
    }

    #[test]
    fn forward_matches_burns_group_norm_and_silu() {
        let dev = device();
        for (shape, groups) in [([3, 8, 5, 7], 4), ([2, 6, 4, 4], 3), ([1, 4, 1, 9], 1)] {
            let n = norm(groups, shape[1], 3, &dev);
            // Offset and scaled input: the statistics must not rely on x being standardised.
            let x = NoiseSource::new(7).normal(shape, &dev).mul_scalar(3.0).add_scalar(2.0);
            for act in [true, false] {
                assert_close(&group_norm_silu(&n, x.clone(), act), &composed(&n, x.clone(), act), 2e-5);
            }
        }
    }

    #[test]
    fn gradients_match_burns_autodiff_of_the_composition() {
        let dev = device().autodiff();
        let shape = [3, 8, 5, 6];
        let n = norm(4, 8, 11, &dev);
        let x0 = NoiseSource::new(13).normal(shape, &dev).mul_scalar(2.0).add_scalar(-1.0);
        // A non-uniform upstream gradient: the loss weights each output differently.
        let w = NoiseSource::new(17).normal(shape, &dev);
        for act in [true, false] {
            let grads_of = |fused: bool| {
                let x = x0.clone().detach().require_grad();
                let y = if fused { group_norm_silu(&n, x.clone(), act) } else { composed(&n, x.clone(), act) };
                let g = (y * w.clone()).sum().backward();
                let gx = x.grad(&g).unwrap();
                let gg = n.gamma.as_ref().unwrap().val().grad(&g).unwrap();
                let gb = n.beta.as_ref().unwrap().val().grad(&g).unwrap();
                (gx, gg, gb)
            };
            let (fx, fg, fb) = grads_of(true);
            let (cx, cg, cb) = grads_of(false);
            assert_close(&fx, &cx, 1e-4);
            assert_close(&fg, &cg, 1e-4);
            assert_close(&fb, &cb, 1e-4);
        }
    }

    /// The autodiff device's dropout `p`, in training mode.
    fn dropout(p: f64) -> Dropout {
        burn::nn::DropoutConfig::new(p).init()
    }

    #[test]
    fn dropout_keeps_1_minus_p_of_the_values_scaled_by_its_inverse() {
        let dev = device().autodiff();
        dev.seed(3);
        let (p, shape) = (0.3, [4, 8, 32, 32]);
        let n = norm(4, 8, 21, &dev);
        let x = NoiseSource::new(22).normal(shape, &dev);
        let plain = to_vec(group_norm_silu(&n, x.clone(), true));
        let dropped = to_vec(group_norm_silu_dropout(&n, x.clone(), true, Some(&dropout(p))));
        let zeros = dropped.iter().filter(|&&v| v == 0.0).count() as f64 / dropped.len() as f64;
        // Binomial sampling error of the dropped fraction over 32768 values: sqrt(p (1 - p) / N)
        // = 0.0025; five of them.
        let se = (p * (1.0 - p) / dropped.len() as f64).sqrt();
        assert!((zeros - p).abs() < 5.0 * se, "dropped fraction {zeros}, expected {p} +- {se}");
        for (d, v) in dropped.iter().zip(&plain) {
            assert!(*d == 0.0 || (d - v / (1.0 - p) as f32).abs() <= 1e-5 * (1.0 + d.abs()), "{d} vs {v} / (1 - p)");
        }
        // Another draw of the device's random numbers, another mask; the same seed, the same one.
        let again = to_vec(group_norm_silu_dropout(&n, x.clone(), true, Some(&dropout(p))));
        assert_ne!(again, dropped);
        // Other tests share the device's generator: a draw or a seed of theirs between a seed
        // and the draw after it gives another mask. So the pair (seed, draw) is repeated until
        // no such draw came in between, at most 5 times.
        let masked = || {
            dev.seed(3);
            to_vec(group_norm_silu_dropout(&n, x.clone(), true, Some(&dropout(p))))
        };
        assert!((0..5).any(|_| masked() == masked()), "the same seed must give the same mask");
        // Neighbouring values are dropped independently: P(both dropped) = p^2.
        let both = dropped.windows(2).filter(|w| w[0] == 0.0 && w[1] == 0.0).count() as f64 / (dropped.len() - 1) as f64;
        assert!((both - p * p).abs() < 5.0 * (p * p * (1.0 - p * p) / dropped.len() as f64).sqrt(), "both dropped {both}");
    }

    #[test]
    fn dropout_is_off_when_frozen_or_without_autodiff() {
        let (p, shape) = (0.5, [2, 4, 6, 6]);
        for dev in [device(), device().autodiff()] {
            let n = norm(2, 4, 23, &dev);
            let x = NoiseSource::new(24).normal(shape, &dev);
            let plain = group_norm_silu(&n, x.clone(), true);
            let d = if dev.is_autodiff() { dropout(p).freeze() } else { dropout(p) };
            assert_eq!(to_vec(group_norm_silu_dropout(&n, x, true, Some(&d))), to_vec(plain));
        }
    }

    #[test]
    fn gradients_through_dropout_match_burns_autodiff_with_the_same_mask() {
        let dev = device().autodiff();
        let (p, shape) = (0.25, [2, 8, 6, 5]);
        let n = norm(4, 8, 25, &dev);
        let x0 = NoiseSource::new(26).normal(shape, &dev);
        let w = NoiseSource::new(27).normal(shape, &dev);
        let x = x0.clone().detach().require_grad();
        let y = group_norm_silu_dropout(&n, x.clone(), true, Some(&dropout(p)));
        // The mask the fused operation drew, read off its output.
        let mask = y.clone().detach().equal_elem(0.0).bool_not().float().div_scalar(1.0 - p);
        let g = (y * w.clone()).sum().backward();
        let fused = (x.grad(&g).unwrap(), n.gamma.as_ref().unwrap().val().grad(&g).unwrap(), n.beta.as_ref().unwrap().val().grad(&g).unwrap());
        let x = x0.detach().require_grad();
        let g = (composed(&n, x.clone(), true) * mask * w).sum().backward();
        let reference = (x.grad(&g).unwrap(), n.gamma.as_ref().unwrap().val().grad(&g).unwrap(), n.beta.as_ref().unwrap().val().grad(&g).unwrap());
        assert_close(&fused.0, &reference.0, 1e-4);
        assert_close(&fused.1, &reference.1, 1e-4);
        assert_close(&fused.2, &reference.2, 1e-4);
    }

    #[test]
    fn runs_on_strided_input_and_without_autodiff_tracking() {
        let dev = device().autodiff();
        let n = norm(2, 4, 5, &dev);
        // A transposed view: not contiguous.
        let x = NoiseSource::new(3).normal([2, 6, 4, 4], &dev).swap_dims(2, 3).narrow(1, 1, 4);
        assert_close(&group_norm_silu(&n, x.clone(), true), &composed(&n, x, true), 2e-5);
    }
}
