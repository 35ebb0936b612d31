//! 2-D convolution of a burn `Conv2d`: on Flex the im2col and Winograd kernels of
//! `backend::flex` (forward and gradients), elsewhere burn's `Conv2d::forward`, the
//! reference of the tests.
//!
//! Shapes: `x` `[batch, c_in, h, w]`, output `[batch, c_out, h_out, w_out]` with
//! `h_out = (h + pad_top + pad_bottom - k_h) / stride_h + 1` (likewise `w_out`).

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

/// `conv.forward(x)`: the im2col kernels on Flex where they apply, burn's otherwise.
///
/// # Shapes
/// - `x`: `[batch, c_in, h, w]`; output `[batch, c_out, h_out, w_out]`
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if let Some(bias) = &conv.bias
        && conv.groups == 1
        && conv.dilation == [1, 1]
        && crate::backend::flex::on_flex_f32(&x)
    {
        let pad = match conv.padding {
            PaddingConfig2d::Valid => Some([0; 4]),
            PaddingConfig2d::Explicit(top, left, bottom, right) => Some([top, bottom, left, right]),
            PaddingConfig2d::Same => None,
        };
        if let Some([top, bottom, left, right]) = pad {
            let g = crate::backend::flex::conv::ops::Geometry { stride: conv.stride, pad_top: top, pad_bottom: bottom, pad_left: left, pad_right: right };
            return crate::backend::flex::conv::ops::conv2d(x, conv.weight.val(), bias.val(), g);
        }
    }
    conv.forward(x)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;
    use crate::test_util::*;
    use burn::module::Param;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Device;

    /// The convolutions the networks use, and the edge cases of the index arithmetic: odd sides
    /// at stride 2, no padding, asymmetric padding, a kernel wider than tall.
    fn cases(dev: &Device) -> Vec<(Conv2d, [usize; 4])> {
        let with = |c: Conv2dConfig, seed: u64| {
            let mut conv = c.init(dev);
            // A non-zero bias, so that a dropped bias fails.
            let co = conv.weight.dims()[0];
            conv.bias = Some(Param::from_tensor(NoiseSource::new(seed).normal([co], dev)));
            conv
        };
        vec![
            (with(Conv2dConfig::new([3, 5], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)), 1), [2, 3, 7, 6]),
            (with(Conv2dConfig::new([4, 4], [3, 3]).with_stride([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)), 2), [3, 4, 7, 7]),
            (with(Conv2dConfig::new([6, 9], [1, 1]), 3), [2, 6, 5, 4]),
            (with(Conv2dConfig::new([2, 3], [3, 3]), 4), [2, 2, 6, 5]),
            (with(Conv2dConfig::new([2, 3], [2, 3]).with_stride([1, 2]).with_padding(PaddingConfig2d::Explicit(0, 2, 1, 1)), 5), [2, 2, 5, 8]),
            // Winograd F(2x2, 3x3) forward: odd sides, more images than one product takes.
            (with(Conv2dConfig::new([5, 7], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)), 8), [70, 5, 5, 3]),
            (with(Conv2dConfig::new([4, 3], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)), 9), [2, 4, 8, 9]),
            // Same-width fast paths of im2col / col2im: a 5x5 kernel, and uneven padding.
            (with(Conv2dConfig::new([2, 4], [5, 5]).with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2)), 6), [3, 2, 6, 7]),
            (with(Conv2dConfig::new([3, 2], [3, 2]).with_padding(PaddingConfig2d::Explicit(0, 1, 2, 0)), 7), [2, 3, 5, 4]),
        ]
    }

    #[test]
    fn forward_matches_burns_conv2d() {
        let dev = device();
        for (i, (conv, shape)) in cases(&dev).into_iter().enumerate() {
            let x = NoiseSource::new(10 + i as u64).normal(shape, &dev);
            let (a, b) = (conv2d(&conv, x.clone()), conv.forward(x));
            assert_eq!(a.dims(), b.dims(), "case {i}");
            assert_close(&a, &b, 1e-5);
        }
    }

    #[test]
    fn gradients_match_burns_autodiff() {
        let dev = device().autodiff();
        for (i, (conv, shape)) in cases(&dev).into_iter().enumerate() {
            let x0 = NoiseSource::new(20 + i as u64).normal(shape, &dev);
            let grads_of = |ours: bool| {
                let x = x0.clone().detach().require_grad();
                let y = if ours { conv2d(&conv, x.clone()) } else { conv.forward(x.clone()) };
                // A non-uniform upstream gradient.
                let w = NoiseSource::new(30 + i as u64).normal(y.dims(), &dev);
                let g = (y * w).sum().backward();
                let gw = conv.weight.val().grad(&g).unwrap();
                let gb = conv.bias.as_ref().unwrap().val().grad(&g).unwrap();
                (x.grad(&g).unwrap(), gw, gb)
            };
            let (ox, ow, ob) = grads_of(true);
            let (rx, rw, rb) = grads_of(false);
            assert_close(&ox, &rx, 1e-4);
            assert_close(&ow, &rw, 1e-4);
            assert_close(&ob, &rb, 1e-4);
        }
    }

    #[test]
    fn batch_smaller_and_larger_than_the_thread_count_agree() {
        // One image takes the sequential path with parallel products, many the parallel one.
        let dev = device();
        let (conv, _) = cases(&dev).remove(0);
        let x = NoiseSource::new(40).normal([9, 3, 7, 6], &dev);
        let all = conv2d(&conv, x.clone());
        for b in [0, 4, 8] {
            let one = conv2d(&conv, x.clone().narrow(0, b, 1));
            assert_close(&one, &all.clone().narrow(0, b, 1), 1e-6);
        }
    }
}
