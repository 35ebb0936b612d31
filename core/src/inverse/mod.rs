//! Inverse problems and controllable generation with a pretrained score model.
//!
//! A measurement `y = A(x) + n` of an image `x` (Chung et al., "Diffusion Posterior Sampling
//! for General Noisy Inverse Problems", ICLR 2023, eq. 1) is inverted by sampling the
//! posterior `p(x | y)` with the prior's score and the measurement's likelihood.
//!
//! - Measurement operators `A` on batched tensors ([`Operator`]; [`LinearOperator`] adds
//!   `A^T`): inpainting ([`Mask`]: box, random pixels, a user's mask), super-resolution
//!   ([`AvgPool`], [`Bicubic`]), Gaussian and motion blur ([`Blur`]), colorization
//!   ([`Grayscale`]), phase retrieval ([`FourierMagnitude`]), and a dense matrix for tests
//!   ([`Dense`]). [`Task`] builds the operator of a named task for an image shape.
//! - Measurement noise ([`MeasurementNoise`]): none, Gaussian `sigma_y`, Poisson.
//! - Methods: the score-SDE projection method ([`Projection`], Song et al. 2021, appendix
//!   I.2) for any operator whose pseudo-inverse is `A^T / c`; diffusion posterior sampling
//!   ([`dps`], Chung et al. 2023, Alg. 1 and 2) on ancestral and DDIM sampling; SDEdit
//!   ([`sdedit`], Meng et al. 2022); guidance by a noise-conditional classifier
//!   ([`ClassifierGuidance`], Song et al. 2021, eq. 14; Dhariwal & Nichol 2021).
//! - Baselines ([`baseline`]): the masked input, bicubic upsampling, Wiener deconvolution.
//! - Which method fits which task, and solving it ([`Method`]); scoring a reconstruction
//!   against the truth ([`score`]: PSNR and SSIM, after alignment for phase retrieval); drawing a
//!   measurement at the image's size ([`measurement_preview`]).
//!
//! # Shapes
//! Image operators take `[batch, channels, height, width]` and return the measurement as a
//! rank-4 tensor (`[batch, 1, height, width]` for colorization, `[batch, channels, h / k, w / k]`
//! for super-resolution, `[batch, channels, 2 height, 2 width]` for phase retrieval, the input
//! shape for masks and blurs). [`Mask`] and [`Dense`] work at any rank (`[batch, dim]` for the
//! analytic mixtures of the tests).
//!
//! Every operator is built from tensor operations only, so `A(x0_hat(x_t))` is differentiable
//! through burn's autodiff (DPS needs `grad_{x_t}`); matrices are kept on the host in `f64` and
//! uploaded to the input's device at each call.

mod baseline;
mod blur;
mod colorize;
mod dense;
pub mod dps;
mod guidance;
mod mask;
mod method;
mod noise;
mod phase;
mod preview;
mod projection;
mod resize;
mod score;
mod sdedit;
mod task;

pub use baseline::{BaselineKind, baseline, bicubic_upsample, wiener};
pub use blur::{Blur, motion_kernel};
pub use colorize::Grayscale;
pub use dense::Dense;
pub use dps::{DpsGradient, dps, dps_gradient};
pub use guidance::{ClassifierGuidance, NoisyClassifier};
pub use mask::Mask;
pub use method::{Method, MethodKind, OwnedLinear, Problem};
pub use noise::MeasurementNoise;
pub use phase::{FourierMagnitude, RECOVERED_PSNR_DB, align_phase};
pub use preview::measurement_preview;
pub use projection::{Inpainting, Projection};
pub use resize::{AvgPool, Bicubic, Resample, cubic_resize_matrix, keys_cubic};
pub use score::{Scores, score};
pub use sdedit::sdedit;
pub use task::{Downsample, GrayWeights, MaskSpec, Task, TaskKind};

use burn::tensor::{Tensor, TensorData};

/// A measurement operator `x -> A(x)`, linear or not.
pub trait Operator<const D: usize> {
    /// `A(x)`, batched over the first dimension.
    fn forward(&self, x: Tensor<D>) -> Tensor<D>;
    /// The operator as a linear one, when it is.
    fn linear(&self) -> Option<&dyn LinearOperator<D>> {
        None
    }
    /// Whether the measurement is an image in the data's `[-1, 1]` range (what Poisson noise
    /// counts photons of); `false` for the Fourier magnitude.
    fn image_valued(&self) -> bool {
        true
    }
    /// A short description (`"average pooling x4"`).
    fn describe(&self) -> String;
}

/// A linear measurement operator with its adjoint.
pub trait LinearOperator<const D: usize>: Operator<D> {
    /// `A^T y`, with `<A x, y> = <x, A^T y>` for the Euclidean inner products.
    fn adjoint(&self, y: Tensor<D>) -> Tensor<D>;
    /// `Some(c)` when `A A^T A = c A` (`A / sqrt(c)` is a partial isometry), so that the
    /// Moore–Penrose pseudo-inverse is `A^+ = A^T / c` and `A^+ A` the orthogonal projection on
    /// the measured subspace: what the projection method needs. `None` otherwise (blurs,
    /// bicubic downsampling).
    fn pinv_scale(&self) -> Option<f64> {
        None
    }
}

impl<const D: usize, T: Operator<D> + ?Sized> Operator<D> for &T {
    fn forward(&self, x: Tensor<D>) -> Tensor<D> {
        (**self).forward(x)
    }
    fn linear(&self) -> Option<&dyn LinearOperator<D>> {
        (**self).linear()
    }
    fn image_valued(&self) -> bool {
        (**self).image_valued()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

impl<const D: usize, T: LinearOperator<D> + ?Sized> LinearOperator<D> for &T {
    fn adjoint(&self, y: Tensor<D>) -> Tensor<D> {
        (**self).adjoint(y)
    }
    fn pinv_scale(&self) -> Option<f64> {
        (**self).pinv_scale()
    }
}

/// Checks that `y` has the shape of `A x` for states of `shape`.
pub fn check_measurement<const D: usize>(
    op: &dyn Operator<D>,
    y: &Tensor<D>,
    shape: [usize; D],
    device: &burn::tensor::Device,
) -> Result<(), crate::error::ConfigError> {
    let expected = op.forward(Tensor::<D>::zeros(shape, device)).dims();
    if y.dims() != expected {
        return Err(crate::error::ConfigError::new(
            "measurement",
            format!("shape {expected:?} (A x for states of shape {shape:?})"),
            format!("{:?}", y.dims()),
        ));
    }
    Ok(())
}

/// `A^+ y = A^T y / c` for an operator with [`LinearOperator::pinv_scale`] `c`.
pub fn pseudo_inverse<const D: usize>(op: &dyn LinearOperator<D>, y: Tensor<D>) -> Option<Tensor<D>> {
    op.pinv_scale().map(|c| op.adjoint(y).div_scalar(c))
}

/// A dense row-major matrix on the host, uploaded to a device when applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows * cols` entries, row after row.
    pub data: Vec<f64>,
}

impl Matrix {
    /// The transpose.
    pub fn t(&self) -> Matrix {
        let mut data = vec![0.0; self.data.len()];
        for i in 0..self.rows {
            for j in 0..self.cols {
                data[j * self.rows + i] = self.data[i * self.cols + j];
            }
        }
        Matrix { rows: self.cols, cols: self.rows, data }
    }

    /// The matrix as an `f32` tensor `[rows, cols]` on `device`.
    pub fn tensor(&self, device: &burn::tensor::Device) -> Tensor<2> {
        let data: Vec<f32> = self.data.iter().map(|&v| v as f32).collect();
        Tensor::from_data(TensorData::new(data, [self.rows, self.cols]), device)
    }

    /// `M v` for a host vector.
    pub fn apply(&self, v: &[f64]) -> Vec<f64> {
        self.data.chunks_exact(self.cols).map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum()).collect()
    }
}

/// `L X R^T` for every `[height, width]` plane `X` of `x`: a separable linear map.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`; `left`: `[h_out, height]`; `right`: `[w_out, width]`
/// - output: `[batch, channels, h_out, w_out]`
pub fn separable(x: Tensor<4>, left: &Matrix, right: &Matrix) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    assert_eq!((left.cols, right.cols), (h, w), "separable map for {}x{} planes applied to {h}x{w}", left.cols, right.cols);
    let device = x.device();
    let (ho, wo) = (left.rows, right.rows);
    let rt = right.t().tensor(&device); // [w, wo]
    let lt = left.t().tensor(&device); // [h, ho]
    let z = x.reshape([n * c * h, w]).matmul(rt); // [n c h, wo]
    let z = z.reshape([n, c, h, wo]).swap_dims(2, 3).reshape([n * c * wo, h]); // [n c wo, h]
    z.matmul(lt).reshape([n, c, wo, ho]).swap_dims(2, 3) // [n, c, ho, wo]
}

/// Per-sample sums over all but the first dimension, `[batch, 1]`.
pub(crate) fn per_sample_sum<const D: usize>(x: Tensor<D>) -> Tensor<2> {
    let dims = x.dims();
    let rest: usize = dims[1..].iter().product();
    x.reshape([dims[0], rest]).sum_dim(1)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! The adjoint test shared by every linear operator's tests.
    use super::*;
    use crate::noise::NoiseSource;
    use crate::test_util::*;

    /// `<A x, y>` and `<x, A^T y>` for Gaussian `x`, `y` agree to f32 rounding: each inner
    /// product sums `n` products of O(1) terms, so its rounding error is about
    /// `sqrt(n) * 6e-8 * |terms|`; 1e-4 relative to `sum |terms|` is a generous but still
    /// discriminating bound (a wrong adjoint is off by O(1)).
    pub fn check_adjoint<const D: usize>(op: &dyn LinearOperator<D>, x_shape: [usize; D], seed: u64) {
        let dev = device();
        let mut noise = NoiseSource::new(seed);
        let x = noise.normal(x_shape, &dev);
        let ax = op.forward(x.clone());
        let y = noise.normal(ax.dims(), &dev);
        let aty = op.adjoint(y.clone());
        assert_eq!(aty.dims(), x_shape, "{}: adjoint shape", op.describe());
        let dot = |a: Tensor<D>, b: Tensor<D>| -> (f64, f64) {
            let (a, b) = (to_vec(a), to_vec(b));
            a.iter().zip(&b).fold((0.0, 0.0), |(s, m), (p, q)| (s + (*p as f64) * (*q as f64), m + (*p as f64 * *q as f64).abs()))
        };
        let (lhs, mag_l) = dot(ax, y);
        let (rhs, _) = dot(x, aty);
        assert!((lhs - rhs).abs() <= 1e-4 * mag_l.max(1.0), "{}: <A x, y> = {lhs} but <x, A^T y> = {rhs}", op.describe());
    }

    /// A tiny random U-Net (4 channels, one level) in inference mode: a network to
    /// differentiate through.
    pub fn tiny_unet(dev: &burn::tensor::Device) -> crate::nn::UNet {
        use burn::module::Module;
        crate::nn::UNetConfig::new().with_base_channels(4).with_groups(2).with_channel_mult(vec![1]).with_num_res_blocks(1).with_dropout(0.0).init(dev).valid()
    }

    /// The tiny diffusers `UNet2DModel` of `tests/data/diffusers-tiny` (3x16x16 colour images)
    /// imported as `native-cli import-diffusers` imports it, with its card's SDE: an imported
    /// network to differentiate through.
    pub fn tiny_diffusers(dev: &burn::tensor::Device) -> (crate::nn::diffusers::DiffusersUNet, Box<dyn crate::sde::Sde>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/diffusers-tiny");
        let (card, weights) = crate::export::diffusers::import_dir(&dir, "tiny", None, "core/src/inverse tests", dev).unwrap();
        let crate::model::LoadedNet::Diffusers(net) = card.load_net(weights, dev).unwrap() else { panic!("expected an imported diffusers-unet2d") };
        (net, card.sde().unwrap())
    }

    /// `A A^T A x = c A x` for an operator claiming `pinv_scale = c`.
    pub fn check_pinv_scale<const D: usize>(op: &dyn LinearOperator<D>, x_shape: [usize; D]) {
        let Some(c) = op.pinv_scale() else { return };
        let x = NoiseSource::new(99).normal(x_shape, &device());
        let ax = op.forward(x);
        let aatax = op.forward(op.adjoint(ax.clone()));
        assert_close(&aatax, &ax.mul_scalar(c), 1e-5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn separable_map_is_l_x_rt_per_plane() {
        let dev = device();
        let left = Matrix { rows: 2, cols: 3, data: vec![1.0, 2.0, 0.0, -1.0, 0.5, 3.0] };
        let right = Matrix { rows: 1, cols: 2, data: vec![2.0, -1.0] };
        // Two planes of 3x2.
        let x: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0];
        let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 2, 3, 2]), &dev);
        let out = to_vec(separable(t, &left, &right));
        for p in 0..2 {
            let plane = &x[p * 6..p * 6 + 6];
            for i in 0..2 {
                let mut e = 0.0;
                for a in 0..3 {
                    for b in 0..2 {
                        e += left.data[i * 3 + a] * plane[a * 2 + b] as f64 * right.data[b];
                    }
                }
                assert!((out[p * 2 + i] as f64 - e).abs() < 1e-5, "plane {p} row {i}: {} vs {e}", out[p * 2 + i]);
            }
        }
    }
}
