//! Encoding data to latents with the probability-flow ODE, decoding back, and spherical
//! interpolation between latents.
//!
//! The probability-flow ODE (Song et al. 2021, section 4.3) is a bijection between data at
//! `t_min` and latents at `T`: integrate it forwards to encode, backwards to decode
//! (both with [`Rk45`]). Latents of a Gaussian prior concentrate on a sphere, so they are
//! interpolated along great circles (Shoemake 1985; as in DDIM, section 5.3):
//! `slerp(z1, z2, a) = sin((1-a) theta)/sin(theta) z1 + sin(a theta)/sin(theta) z2`.

use super::{Rk45, ode_drift};
use crate::model::ScoreFn;
use crate::param::Coef;
use burn::tensor::Tensor;

/// Encodes data at `t_min` to latents at `T`.
pub fn ode_encode<const D: usize>(f: &ScoreFn<D>, x: Tensor<D>, rtol: f64, atol: f64) -> Tensor<D> {
    let sde = f.sde();
    Rk45::new(x, sde.t_min(), sde.t_max(), rtol, atol).solve(&mut |y, t| ode_drift(f, y, t))
}

/// Decodes latents at `T` to data at `t_min`.
pub fn ode_decode<const D: usize>(f: &ScoreFn<D>, z: Tensor<D>, rtol: f64, atol: f64) -> Tensor<D> {
    let sde = f.sde();
    Rk45::new(z, sde.t_max(), sde.t_min(), rtol, atol).solve(&mut |y, t| ode_drift(f, y, t))
}

/// Spherical interpolation between `z1` and `z2` (per sample) at `alpha in [0, 1]`.
pub fn slerp<const D: usize>(z1: Tensor<D>, z2: Tensor<D>, alpha: f64) -> Tensor<D> {
    let b = z1.dims()[0];
    let flat = |z: Tensor<D>| z.reshape([b as i32, -1]);
    let dot = (flat(z1.clone()) * flat(z2.clone())).sum_dim(1);
    let n1 = flat(z1.clone()).square().sum_dim(1).sqrt();
    let n2 = flat(z2.clone()).square().sum_dim(1).sqrt();
    let cos: Vec<f32> = (dot / (n1 * n2)).into_data().try_to_vec().unwrap_or_default();
    let (mut c1, mut c2) = (Vec::with_capacity(b), Vec::with_capacity(b));
    for c in cos {
        let theta = (c as f64).clamp(-1.0, 1.0).acos();
        if theta < 1e-6 {
            c1.push(1.0 - alpha);
            c2.push(alpha);
        } else {
            c1.push(((1.0 - alpha) * theta).sin() / theta.sin());
            c2.push((alpha * theta).sin() / theta.sin());
        }
    }
    Coef::PerSample(c1).apply(z1) + Coef::PerSample(c2).apply(z2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    #[test]
    fn slerp_ends_and_midpoint_of_orthogonal_vectors() {
        let dev = device();
        let z1 = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 2]), &dev);
        let z2 = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0], [1, 2]), &dev);
        assert_close(&slerp(z1.clone(), z2.clone(), 0.0), &z1, 1e-6);
        assert_close(&slerp(z1.clone(), z2.clone(), 1.0), &z2, 1e-6);
        // Halfway along the quarter circle: (cos 45, sin 45), still of norm 1.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let mid = Tensor::<2>::from_data(TensorData::new(vec![h, h], [1, 2]), &dev);
        assert_close(&slerp(z1, z2, 0.5), &mid, 1e-6);
    }
}
