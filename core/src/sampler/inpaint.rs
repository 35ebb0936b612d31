//! Inpainting by projection (Song et al., ICLR 2021, appendix I.2, "imputation"; the
//! replacement method of Song & Ermon 2019 and of RePaint without resampling).
//!
//! Given an observation `y` known on the pixels where `mask = 1`, run any reverse-time sampler on
//! the whole image and, after every step to time `t`, replace the known pixels by a draw of the
//! forward process from the observation, `x_t[known] = m(t) y + s(t) z` with `z ~ N(0, I)`
//! (the perturbation kernel `p_0t(x_t | y) = N(m(t) y, s(t)^2 I)` of eq. 29 for every SDE).
//! The unknown pixels then follow the reverse process conditioned, approximately, on the known
//! ones; at the end the known pixels equal `y` exactly. Diffusion posterior sampling (DPS) is
//! the more exact alternative and lives beside it when implemented.
//!
//! # Shapes
//! `y`, `mask` and the state: `[batch, ...]` of the same shape; `mask` holds 1 where `y` is
//! known and 0 where it is to be filled.

use super::{SamplerConfig, Sampling, Step};
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use crate::sde::Sde;
use burn::tensor::{Device, Tensor};

/// A projection-inpainting run: a [`Sampling`] whose known pixels are reset after each step.
pub struct Inpainting<const D: usize> {
    run: Sampling<D>,
    y: Tensor<D>,
    mask: Tensor<D>,
}

/// `mask * (m(t) y + s(t) z) + (1 - mask) x` for `x`, and the same with `z = 0` for `x_mean`.
fn project<const D: usize>(state: Step<D>, y: &Tensor<D>, mask: &Tensor<D>, sde: &dyn Sde, t: f64, noise: &mut NoiseSource) -> Step<D> {
    let (m, s) = if t == 0.0 { (1.0, 0.0) } else { sde.marginal(t) };
    let keep = mask.clone().neg().add_scalar(1.0); // 1 on the pixels to fill
    let known_mean = y.clone().mul_scalar(m);
    let known = if s > 0.0 { known_mean.clone() + noise.normal(y.dims(), &y.device()).mul_scalar(s) } else { known_mean.clone() };
    Step { x: state.x * keep.clone() + known * mask.clone(), x_mean: state.x_mean * keep + known_mean * mask.clone() }
}

impl<const D: usize> Inpainting<D> {
    /// Starts from a prior sample of `y`'s shape whose known pixels are already the forward
    /// process's draw at `T`. `mask` must have `y`'s shape (1 = known).
    ///
    /// # Errors
    /// When `mask` and `y` differ in shape.
    pub fn new(config: &SamplerConfig, sde: &dyn Sde, y: Tensor<D>, mask: Tensor<D>, noise: &mut NoiseSource, device: &Device) -> Result<Self, String> {
        if y.dims() != mask.dims() {
            return Err(format!("mask: expected the observation's shape {:?}, found {:?}", y.dims(), mask.dims()));
        }
        let mut run = Sampling::new(config, sde, y.dims(), noise, device);
        let t = run.sampler.time();
        run.state = project(run.state.clone(), &y, &mask, sde, t, noise);
        Ok(Self { run, y, mask })
    }

    /// The current state.
    pub fn state(&self) -> &Step<D> {
        self.run.state()
    }

    /// `(steps taken, steps in all)`.
    pub fn progress(&self) -> (usize, usize) {
        self.run.progress()
    }

    /// Whether the run has finished.
    pub fn is_done(&self) -> bool {
        self.run.is_done()
    }

    /// One sampler step followed by the projection; returns `false` once finished.
    pub fn next(&mut self, f: &ScoreFn<D>, noise: &mut NoiseSource) -> bool {
        if !self.run.next(f, noise) {
            return false;
        }
        // At the end the known pixels are the observation itself.
        let t = if self.run.is_done() { 0.0 } else { self.run.sampler.time() };
        self.run.state = project(self.run.state.clone(), &self.y, &self.mask, f.sde(), t, noise);
        true
    }

    /// The inpainted sample: the last step's mean, equal to `y` on the known pixels.
    pub fn output(self) -> Tensor<D> {
        self.run.output()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixture::{GaussianMixture, MixtureScore};
    use crate::sampler::SamplerKind;
    use crate::sde::VpSde;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    /// Two well separated components at `(-2, -2)` and `(2, 2)` (std 0.3): knowing `x1 = 2`
    /// puts the posterior of `x2` on the second component, `N(2, 0.3^2)`, whereas the prior's
    /// `x2` has mean 0 and std above 2. The projection method must find the right component.
    #[test]
    fn fills_the_unknown_coordinate_from_the_right_component() {
        let dev = device();
        let mixture = GaussianMixture::new(vec![0.5, 0.5], vec![vec![-2.0, -2.0], vec![2.0, 2.0]], vec![0.3, 0.3]).unwrap();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let model = MixtureScore::new(mixture, Box::new(sde.clone()), &dev).unwrap();
        let f = ScoreFn::new(&model, &sde);
        let n = 400;
        let y = Tensor::<2>::from_data(TensorData::new([2.0f32, 0.0].repeat(n), [n, 2]), &dev);
        let mask = Tensor::<2>::from_data(TensorData::new([1.0f32, 0.0].repeat(n), [n, 2]), &dev);
        let config = SamplerConfig::new(SamplerKind::Ancestral, 200);
        let mut noise = NoiseSource::new(7);
        let mut run = Inpainting::new(&config, &sde, y, mask, &mut noise, &dev).unwrap();
        while run.next(&f, &mut noise) {}
        let out = to_vec(run.output());
        let x1: Vec<f64> = out.iter().step_by(2).map(|&v| v as f64).collect();
        let x2: Vec<f64> = out.iter().skip(1).step_by(2).map(|&v| v as f64).collect();
        assert!(x1.iter().all(|&v| v == 2.0), "known coordinate changed");
        let mean = x2.iter().sum::<f64>() / n as f64;
        let std = (x2.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        // Standard error of the mean is 0.3 / 20 = 0.015; the projection method is approximate.
        assert!((mean - 2.0).abs() < 0.15, "mean of the filled coordinate {mean}, expected 2");
        assert!((0.2..0.45).contains(&std), "std of the filled coordinate {std}, expected 0.3");
    }

    #[test]
    fn rejects_a_mask_of_another_shape() {
        let dev = device();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let y = Tensor::<2>::zeros([3, 2], &dev);
        let mask = Tensor::<2>::zeros([3, 1], &dev);
        let err = Inpainting::new(&SamplerConfig::new(SamplerKind::Ddim, 5), &sde, y, mask, &mut NoiseSource::new(0), &dev).err().unwrap();
        assert!(err.contains("mask"), "{err}");
    }
}
