//! GroupNorm followed by SiLU as one operation, with a fused CPU kernel and its hand-derived
//! gradient.
//!
//! GroupNorm (Wu & He 2018, eqs. 1-2 and 4): for each sample and each group of `C / G`
//! channels, `x_hat = (x - mu) / sqrt(sigma^2 + eps)` with the group's mean `mu` and biased
//! variance `sigma^2` over its channels and positions, then `z = gamma_c x_hat + beta_c` per
//! channel. SiLU (Elfwing et al. 2018, eq. 3; Hendrycks & Gimpel 2016): `y = z sigmoid(z)`.
//!
//! The gradient, by hand: with `g = dL/dy` and `s = sigmoid(z)`, `dz = g s (1 + z (1 - s))`
//! (`dz = g` without SiLU); `dbeta_c = sum dz`, `dgamma_c = sum dz x_hat` over the batch and
//! positions; with `d = gamma_c dz`, the gradient through the normalisation is
//! `dx = (d - mean(d) - x_hat mean(d x_hat)) / sqrt(sigma^2 + eps)`, means over the group
//! (Wu & He's eq. 1 differentiated as in Ioffe & Szegedy 2015, section 3).
//!
//! Why: every residual block of the U-Net runs GroupNorm-SiLU twice. Composed from burn's tensor
//! operations that is about ten passes over the activations, a libm `expf` per element and as
//! many more for the gradient; here each (sample, group) block, a few kilobytes, is read once for
//! its statistics and once for the output, in SIMD code with a polynomial `exp`. On Flex (the CPU
//! backend, also in wasm) [`group_norm_silu`](crate::nn::fused::group_norm_silu) runs these kernels through a burn backend extension
//! ([`GroupNormSiluOps`](ops::GroupNormSiluOps)) whose autodiff implementation records the hand-derived gradient above;
//! on every other backend it composes burn's `GroupNorm` and `silu`, which the tests use as the
//! reference.
//!
//! [`group_norm_silu_dropout`](crate::nn::fused::group_norm_silu_dropout) adds the residual block's dropout (Srivastava et al. 2014) to the
//! same pass: its mask is a hash of the position, recomputed in the backward pass.
//!
//! Shapes: `x` and the output `[batch, channels, ...]` (any number of trailing positions),
//! `gamma`, `beta` `[channels]`.

#[cfg(feature = "flex")]
use burn::tensor::Tensor;

/// Whether `x` is an f32 tensor on a Flex device (with or without autodiff): what the Flex
/// kernels of this module and [`super::conv`] take.
#[cfg(feature = "flex")]
pub(crate) fn on_flex_f32<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == burn::tensor::DType::F32 && matches!(x.device().inner().as_dispatch(), burn::backend::DispatchDevice::Flex(_))
}

#[cfg(feature = "flex")]
pub(crate) use ops::{register, values};

#[cfg(feature = "flex")]
pub(crate) mod ops {
    use burn::backend::autodiff::NodeId;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Autodiff, Backend, Flex, backend_extension, tensor::FloatTensor};
    use burn::tensor::{Shape, Tensor, TensorData};

    /// Whether the fused kernel can take `x`: rank 3 or more, f32, on a Flex device.
    pub fn applies<const D: usize>(x: &Tensor<D>) -> bool {
        D >= 3 && super::on_flex_f32(x)
    }

    /// The backend extension: Flex runs the kernels, its autodiff wrapper records their gradient.
    #[backend_extension(Flex, Autodiff)]
    pub trait GroupNormSiluOps: Backend {
        /// `act ? SiLU(GroupNorm(x)) : GroupNorm(x)`; shapes as [`crate::nn::fused::group_norm_silu`].
        #[allow(clippy::too_many_arguments)]
        fn group_norm_silu(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            groups: usize,
            eps: f64,
            act: bool,
            drop_prob: f64,
            seed: u64,
        ) -> FloatTensor<Self>;
    }

    #[allow(clippy::too_many_arguments)]
    pub fn group_norm_silu<const D: usize>(
        x: Tensor<D>,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        groups: usize,
        eps: f64,
        act: bool,
        drop_prob: f64,
        seed: u64,
    ) -> Tensor<D> {
        let gamma = gamma.to_device(&x.device());
        let beta = beta.to_device(&x.device());
        let out = <burn::backend::Dispatch as GroupNormSiluOps>::group_norm_silu(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            groups,
            eps,
            act,
            drop_prob,
            seed,
        );
        Tensor::from_dispatch(out)
    }

    /// A 48-bit dropout seed from the device's random numbers (two uniform f32 of 24 bits).
    pub fn draw_seed(device: &burn::tensor::Device) -> u64 {
        let u = Tensor::<1>::random([2], burn::tensor::Distribution::Uniform(0.0, 1.0), device).into_data();
        let u = u.try_to_vec::<f32>().expect("f32 values");
        u.iter().fold(0u64, |acc, &v| (acc << 24) | ((v * 16_777_216.0) as u64 & 0xff_ffff))
    }

    /// The kernels' description of what follows the normalisation.
    fn post(act: bool, drop_prob: f64, seed: u64) -> super::kernel::Post {
        super::kernel::Post { act, keep: (1.0 - drop_prob) as f32, seed }
    }

    impl GroupNormSiluOps for Flex {
        fn group_norm_silu(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, groups: usize, eps: f64, act: bool, drop_prob: f64, seed: u64) -> FlexTensor {
            forward(&x, &gamma, &beta, groups, eps, post(act, drop_prob, seed))
        }
    }

    /// What the backward pass keeps: the inputs (the statistics are recomputed, one cheap pass).
    #[derive(Clone, Debug)]
    struct Saved {
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        groups: usize,
        eps: f64,
        post: super::kernel::Post,
    }

    #[derive(Debug)]
    struct GroupNormSiluBackward;

    impl Backward<Flex, 3> for GroupNormSiluBackward {
        type State = Saved;

        fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let grad = grads.consume::<Flex>(&ops.node);
            let s = ops.state;
            let (dx, dgamma, dbeta) = backward(&s.x, &s.gamma, &s.beta, &grad, s.groups, s.eps, s.post);
            register(grads, ops.parents.map(|p| p.map(|node| node.id)), [Some(dx), Some(dgamma), Some(dbeta)]);
        }
    }

    impl<C: CheckpointStrategy> GroupNormSiluOps for Autodiff<Flex, C> {
        fn group_norm_silu(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            groups: usize,
            eps: f64,
            act: bool,
            drop_prob: f64,
            seed: u64,
        ) -> FloatTensor<Self> {
            let prep = GroupNormSiluBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful();
            let (x, gamma, beta) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive());
            let post = post(act, drop_prob, seed);
            let out = forward(&x, &gamma, &beta, groups, eps, post);
            match prep {
                OpsKind::Tracked(prep) => prep.finish(Saved { x, gamma, beta, groups, eps, post }, out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        }
    }

    /// Hands each computed gradient to its input's node, for the inputs that require one.
    pub(crate) fn register<const N: usize>(grads: &mut Gradients, parents: [Option<NodeId>; N], values: [Option<FlexTensor>; N]) {
        for (parent, g) in parents.into_iter().zip(values) {
            if let (Some(id), Some(g)) = (parent, g) {
                grads.register::<Flex>(id, g);
            }
        }
    }

    /// The f32 values of a Flex tensor, contiguous (a copy only when it is a strided view).
    pub(crate) fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
        match t.as_slice::<f32>() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("contiguous f32").to_vec()),
        }
    }

    /// `[batch, channels, positions]` of a `[batch, channels, ...]` shape.
    fn dims(shape: &Shape, groups: usize) -> super::kernel::Dims {
        let batch = shape[0];
        let channels = shape[1];
        let positions = shape.iter().skip(2).product();
        super::kernel::Dims { batch, channels, positions, groups }
    }

    fn forward(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, groups: usize, eps: f64, post: super::kernel::Post) -> FlexTensor {
        let shape = burn::backend::TensorMetadata::shape(x);
        let d = dims(&shape, groups);
        let mut out = vec![0f32; shape.num_elements()];
        super::kernel::forward(&values(x), &values(gamma), &values(beta), &mut out, d, eps as f32, post);
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    fn backward(
        x: &FlexTensor,
        gamma: &FlexTensor,
        beta: &FlexTensor,
        grad: &FlexTensor,
        groups: usize,
        eps: f64,
        post: super::kernel::Post,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = burn::backend::TensorMetadata::shape(x);
        let d = dims(&shape, groups);
        let mut dx = vec![0f32; shape.num_elements()];
        let (dgamma, dbeta) = super::kernel::backward(&values(x), &values(gamma), &values(beta), &values(grad), &mut dx, d, eps as f32, post);
        let c = d.channels;
        (
            FlexTensor::from_data(TensorData::new(dx, shape)),
            FlexTensor::from_data(TensorData::new(dgamma, [c])),
            FlexTensor::from_data(TensorData::new(dbeta, [c])),
        )
    }
}

/// The kernels on plain slices, parallel over (sample, group) blocks when the `rayon` feature
/// is on. Each block is `channels / groups` channels of `positions` values, contiguous in NCHW.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
pub(crate) mod kernel {
    #[derive(Clone, Copy, Debug)]
    pub struct Dims {
        pub batch: usize,
        pub channels: usize,
        pub positions: usize,
        pub groups: usize,
    }

    impl Dims {
        fn per_group(&self) -> usize {
            self.channels / self.groups
        }
        fn block_len(&self) -> usize {
            self.per_group() * self.positions
        }
    }

    /// `exp(x)` to about 2 ulp for `x` in `[-87, 88]` (clamped outside): Cody-Waite reduction
    /// `x = n ln 2 + r`, `|r| <= ln 2 / 2`, and Cephes' degree-7 polynomial for `exp(r)`
    /// (Moshier 1989, `expf.c`), `2^n` written into the exponent bits. Branch-free, so the loops
    /// that call it vectorise.
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_359_4;
        const LN2_LO: f32 = -2.121_944_4e-4;
        // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
        const ROUND: f32 = 12_582_912.0;
        let x = x.clamp(-87.0, 88.0);
        let shifted = x * LOG2E + ROUND;
        let n = shifted - ROUND;
        let r = x - n * LN2_HI - n * LN2_LO;
        let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5.000_000_1e-1;
        let e = p * r * r + r + 1.0;
        let n = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
        e * f32::from_bits(((n + 127) << 23) as u32)
    }

    /// What follows the normalisation: SiLU or not, then inverted dropout keeping each value
    /// with probability `keep` (1: no dropout) by the mask of [`Post::scale`].
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Post {
        pub act: bool,
        pub keep: f32,
        pub seed: u64,
    }

    impl Post {
        /// The dropout factor of element `i` of the tensor: `1 / keep` where the mask keeps it,
        /// else 0 (always 1 without dropout). The mask is a counter-based hash of `(seed, i)`,
        /// two rounds of Wellons' `lowbias32` (2018), whose top 24 bits are a uniform number
        /// `u` in `[0, 1)`: kept when `u < keep`. The backward pass recomputes it from the seed.
        #[inline(always)]
        fn scale(&self, i: usize) -> f32 {
            #[inline(always)]
            fn lowbias32(mut x: u32) -> u32 {
                x ^= x >> 16;
                x = x.wrapping_mul(0x7feb_352d);
                x ^= x >> 15;
                x = x.wrapping_mul(0x846c_a68b);
                x ^ (x >> 16)
            }
            let h = lowbias32((i as u32).wrapping_mul(0x9e37_79b9) ^ self.seed as u32);
            let u = (lowbias32(h ^ (self.seed >> 32) as u32) >> 8) as f32 * (1.0 / 16_777_216.0);
            if u < self.keep { 1.0 / self.keep } else { 0.0 }
        }
    }

    #[inline(always)]
    fn sigmoid(z: f32) -> f32 {
        1.0 / (1.0 + exp(-z))
    }

    /// The sums of `f(a_i, b_i).0` and `.1` over two equal-length slices, in eight partial
    /// sums (which vectorise and round better than one running sum).
    #[inline(always)]
    pub(crate) fn sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> (f32, f32)) -> (f32, f32) {
        let (mut s0, mut s1) = ([0f32; 8], [0f32; 8]);
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (mut r0, mut r1) = (0f32, 0f32);
        for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
            let (u, v) = f(x, y);
            r0 += u;
            r1 += v;
        }
        for (xa, xb) in ca.zip(cb) {
            for k in 0..8 {
                let (u, v) = f(xa[k], xb[k]);
                s0[k] += u;
                s1[k] += v;
            }
        }
        (s0.iter().sum::<f32>() + r0, s1.iter().sum::<f32>() + r1)
    }

    /// Mean and `1 / sqrt(var + eps)` of a block (two passes).
    #[inline(always)]
    fn stats(x: &[f32], eps: f32) -> (f32, f32) {
        let n = x.len() as f32;
        let mean = sum2(x, x, |v, _| (v, 0.0)).0 / n;
        let var = sum2(x, x, |v, _| ((v - mean) * (v - mean), 0.0)).0 / n;
        (mean, 1.0 / (var + eps).sqrt())
    }

    /// One block forward: `x`, `y` `[per_group, positions]`, `gamma`, `beta` `[per_group]`;
    /// `base` is the block's first element in the whole tensor (for the dropout mask).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn forward_block(x: &[f32], y: &mut [f32], gamma: &[f32], beta: &[f32], positions: usize, eps: f32, post: Post, base: usize) {
        let (mean, rstd) = stats(x, eps);
        for (c, (xc, yc)) in x.chunks_exact(positions).zip(y.chunks_exact_mut(positions)).enumerate() {
            let (a, b) = (gamma[c] * rstd, beta[c]);
            let first = base + c * positions;
            if post.keep < 1.0 {
                for (k, (yi, &xi)) in yc.iter_mut().zip(xc).enumerate() {
                    let z = (xi - mean) * a + b;
                    let v = if post.act { z * sigmoid(z) } else { z };
                    *yi = v * post.scale(first + k);
                }
            } else if post.act {
                for (yi, &xi) in yc.iter_mut().zip(xc) {
                    let z = (xi - mean) * a + b;
                    *yi = z * sigmoid(z);
                }
            } else {
                for (yi, &xi) in yc.iter_mut().zip(xc) {
                    *yi = (xi - mean) * a + b;
                }
            }
        }
    }

    /// One block backward. `dx` receives the input gradient; `dgamma`, `dbeta` `[per_group]`
    /// this sample's contributions.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn backward_block(
        x: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        gamma: &[f32],
        beta: &[f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
        positions: usize,
        eps: f32,
        post: Post,
        base: usize,
    ) {
        let (mean, rstd) = stats(x, eps);
        let n = x.len() as f32;
        // dz into dx, per-channel sums of dz and dz x_hat.
        let (mut sum_d, mut sum_dxh) = (0f32, 0f32);
        for c in 0..gamma.len() {
            let range = c * positions..(c + 1) * positions;
            let (xc, dyc, dzc) = (&x[range.clone()], &dy[range.clone()], &mut dx[range]);
            let (g, b) = (gamma[c], beta[c]);
            let first = base + c * positions;
            if post.keep < 1.0 {
                // Through the dropout mask first, then SiLU.
                for (k, ((dz, &xi), &gi)) in dzc.iter_mut().zip(xc).zip(dyc).enumerate() {
                    let gi = gi * post.scale(first + k);
                    *dz = if post.act {
                        let z = (xi - mean) * rstd * g + b;
                        let s = sigmoid(z);
                        gi * s * (1.0 + z * (1.0 - s))
                    } else {
                        gi
                    };
                }
            } else if post.act {
                for ((dz, &xi), &gi) in dzc.iter_mut().zip(xc).zip(dyc) {
                    let z = (xi - mean) * rstd * g + b;
                    let s = sigmoid(z);
                    *dz = gi * s * (1.0 + z * (1.0 - s));
                }
            } else {
                dzc.copy_from_slice(dyc);
            }
            let (s_dz, s_dzxh) = sum2(dzc, xc, |dz, xi| (dz, dz * (xi - mean) * rstd));
            dbeta[c] = s_dz;
            dgamma[c] = s_dzxh;
            sum_d += g * s_dz;
            sum_dxh += g * s_dzxh;
        }
        let (mean_d, mean_dxh) = (sum_d / n, sum_dxh / n);
        for c in 0..gamma.len() {
            let range = c * positions..(c + 1) * positions;
            let g = gamma[c];
            for (dz, &xi) in dx[range.clone()].iter_mut().zip(&x[range]) {
                let xh = (xi - mean) * rstd;
                *dz = rstd * (g * *dz - mean_d - xh * mean_dxh);
            }
        }
    }

    /// Runs `body` compiled for AVX2 + FMA when the CPU has them (the portable build targets
    /// SSE2), else as it is.
    macro_rules! simd_dispatch {
        ($name:ident, $generic:ident, ($($arg:ident : $ty:ty),*)) => {
            #[allow(clippy::too_many_arguments)]
            fn $name($($arg: $ty),*) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    fn avx2($($arg: $ty),*) {
                        $generic($($arg),*)
                    }
                    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                        // SAFETY: the CPU supports the features `avx2` was compiled for.
                        return unsafe { avx2($($arg),*) };
                    }
                }
                $generic($($arg),*)
            }
        };
    }
    simd_dispatch!(forward_block_simd, forward_block, (x: &[f32], y: &mut [f32], gamma: &[f32], beta: &[f32], positions: usize, eps: f32, post: Post, base: usize));
    simd_dispatch!(backward_block_simd, backward_block, (x: &[f32], dy: &[f32], dx: &mut [f32], gamma: &[f32], beta: &[f32], dgamma: &mut [f32], dbeta: &mut [f32], positions: usize, eps: f32, post: Post, base: usize));

    /// Forward over all blocks: `x`, `y` `[batch, channels, positions]`.
    pub fn forward(x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], d: Dims, eps: f32, post: Post) {
        let (len, cg) = (d.block_len(), d.per_group());
        let run = |(i, (xb, yb)): (usize, (&[f32], &mut [f32]))| {
            let g = i % d.groups;
            let ch = g * cg..(g + 1) * cg;
            forward_block_simd(xb, yb, &gamma[ch.clone()], &beta[ch], d.positions, eps, post, i * len);
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            x.par_chunks_exact(len).zip(y.par_chunks_exact_mut(len)).enumerate().for_each(run);
        }
        #[cfg(not(feature = "rayon"))]
        x.chunks_exact(len).zip(y.chunks_exact_mut(len)).enumerate().for_each(run);
    }

    /// Backward over all blocks; returns `(dgamma, dbeta)`, each `[channels]`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(x: &[f32], gamma: &[f32], beta: &[f32], dy: &[f32], dx: &mut [f32], d: Dims, eps: f32, post: Post) -> (Vec<f32>, Vec<f32>) {
        let (len, cg) = (d.block_len(), d.per_group());
        // Per-sample contributions `[batch, channels]`, summed over the batch below.
        let mut part_g = vec![0f32; d.batch * d.channels];
        let mut part_b = vec![0f32; d.batch * d.channels];
        let run = |(i, (((xb, dyb), dxb), (pg, pb))): (usize, (((&[f32], &[f32]), &mut [f32]), (&mut [f32], &mut [f32])))| {
            let g = i % d.groups;
            let ch = g * cg..(g + 1) * cg;
            backward_block_simd(xb, dyb, dxb, &gamma[ch.clone()], &beta[ch], pg, pb, d.positions, eps, post, i * len);
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            x.par_chunks_exact(len)
                .zip(dy.par_chunks_exact(len))
                .zip(dx.par_chunks_exact_mut(len))
                .zip(part_g.par_chunks_exact_mut(cg).zip(part_b.par_chunks_exact_mut(cg)))
                .enumerate()
                .for_each(run);
        }
        #[cfg(not(feature = "rayon"))]
        x.chunks_exact(len)
            .zip(dy.chunks_exact(len))
            .zip(dx.chunks_exact_mut(len))
            .zip(part_g.chunks_exact_mut(cg).zip(part_b.chunks_exact_mut(cg)))
            .enumerate()
            .for_each(run);
        let sum_batch = |p: Vec<f32>| {
            let mut s = vec![0f32; d.channels];
            for row in p.chunks_exact(d.channels) {
                for (a, v) in s.iter_mut().zip(row) {
                    *a += v;
                }
            }
            s
        };
        (sum_batch(part_g), sum_batch(part_b))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn exp_matches_libm_to_a_few_ulp() {
            let mut worst = 0f32;
            let mut x = -87.0f32;
            while x <= 88.0 {
                let (a, b) = (exp(x), x.exp());
                worst = worst.max(((a - b) / b).abs());
                x += 0.0137;
            }
            // 2 ulp of f32 is 2.4e-7 relative.
            assert!(worst < 3e-7, "worst relative error {worst}");
            assert_eq!(exp(-200.0), exp(-87.0));
            assert!(exp(200.0).is_finite());
            assert_eq!(exp(0.0), 1.0);
        }
    }
}
