//! The projection method (Song et al., ICLR 2021, appendix I.2 "imputation" and I.3
//! "colorization"; the replacement method of Song & Ermon 2019 and of RePaint without
//! resampling), for any linear operator whose pseudo-inverse is `A^+ = A^T / c`
//! ([`LinearOperator::pinv_scale`]).
//!
//! Run any reverse-time sampler on the whole image and, after every step to time `t`, replace
//! the measured component of the state, `P x = A^+ A x`, by a draw of the forward process from
//! the observation: `A x_t = m(t) y + s(t) A z` with `z ~ N(0, I)` (the perturbation kernel
//! `p_0t(x_t | x_0) = N(m(t) x_0, s(t)^2 I)` of eq. 29 pushed through `A`), so
//!
//! `x <- x - A^+ A x + A^+ (m(t) y + s(t) A z)`.
//!
//! The unmeasured component (`(I - P) x`: the missing pixels of inpainting, the two chroma
//! directions of colorization, the detail that average pooling removes) follows the reverse
//! process conditioned, approximately, on the measured one; at the end `A x = y` exactly.
//! For a mask `A^+ A` is the mask itself and this is inpainting by replacement ([`Inpainting`]).
//!
//! Replacement alone harmonises poorly: the unmeasured part sees the measured one only through
//! the score at each level, and a large hole is filled with something the context does not
//! support. RePaint's resampling (Lugmayr et al., CVPR 2022, Algorithm 1, jump length 1) fixes
//! much of it: after the step from `t` to `s` and the projection, the state is noised back to
//! `t` by the forward transition `x_t = a x_s + std z` ([`Sde::transition`]) and the step is
//! taken again, `U` times in all per level ([`Projection::with_resampling`]; `U = 1` is the
//! plain method). It costs `U` network evaluations per level.
//! Diffusion posterior sampling ([`super::dps`]) handles noisy and non-linear measurements.
//!
//! # Shapes
//! The state: `[batch, ...]`; `y`: the measurement `A x` of a state (for a mask, the state's
//! shape with the observed values where the mask is 1).

use super::{LinearOperator, Mask};
use crate::error::ConfigError;
use crate::model::ScoreFn;
use crate::noise::NoiseSource;
use crate::sampler::{Run, SamplerConfig, Sampling, Step};
use crate::sde::Sde;
use burn::tensor::{Device, Tensor};

/// A projection run: a [`Sampling`] whose measured component is reset after each step.
pub struct Projection<const D: usize, O> {
    run: Sampling<D>,
    measured: Measured<D, O>,
    /// RePaint's `U`: steps taken per level (1: plain replacement).
    resample: usize,
}

/// Projection inpainting: the projection method with a [`Mask`].
pub type Inpainting<const D: usize> = Projection<D, Mask<D>>;

/// The operator, its measurement and `c` of `A^+ = A^T / c`.
struct Measured<const D: usize, O> {
    op: O,
    y: Tensor<D>,
    scale: f64,
}

impl<const D: usize, O: LinearOperator<D>> Measured<D, O> {
    /// `x - A^+ A x + A^+ (m y + s A z)` for `x`, and the same with `z = 0` for `x_mean`.
    fn project(&self, state: &Step<D>, sde: &dyn Sde, t: f64, noise: &mut NoiseSource) -> Step<D> {
        let (m, s) = if t == 0.0 { (1.0, 0.0) } else { sde.marginal(t) };
        let op = &self.op;
        let pinv = |y: Tensor<D>| op.adjoint(y).div_scalar(self.scale);
        let drop_measured = |x: Tensor<D>| x.clone() - pinv(op.forward(x));
        let known_mean = pinv(self.y.clone().mul_scalar(m));
        let known = if s > 0.0 {
            let z = noise.normal(state.x.dims(), &state.x.device());
            known_mean.clone() + pinv(op.forward(z)).mul_scalar(s)
        } else {
            known_mean.clone()
        };
        Step { x: drop_measured(state.x.clone()) + known, x_mean: drop_measured(state.x_mean.clone()) + known_mean }
    }
}

impl<const D: usize, O: LinearOperator<D>> Projection<D, O> {
    /// Starts from a prior sample of `shape` whose measured component is already the forward
    /// process's draw at `T`.
    ///
    /// # Errors
    /// When `op` has no pseudo-inverse of the form `A^T / c` (field `method`), or `y` is not
    /// the shape of `A x` for a state of `shape` (field `measurement`).
    pub fn with_operator(
        config: &SamplerConfig,
        sde: &dyn Sde,
        op: O,
        y: Tensor<D>,
        shape: [usize; D],
        noise: &mut NoiseSource,
        device: &Device,
    ) -> Result<Self, ConfigError> {
        let Some(scale) = op.pinv_scale() else {
            return Err(ConfigError::new(
                "method",
                "for projection, a linear operator whose pseudo-inverse is A^T / c (a mask, colorization, average pooling)",
                op.describe(),
            ));
        };
        super::check_measurement(&op, &y, shape, device)?;
        let measured = Measured { op, y, scale };
        let mut run = Sampling::new(config, sde, shape, noise, device);
        let t = run.time();
        let projected = measured.project(run.state(), sde, t, noise);
        run.set_state(projected);
        Ok(Self { run, measured, resample: 1 })
    }

    /// Takes every level's step `u` times, noising the projected state back in between
    /// (RePaint's resampling with jump length 1; `u = 1` is the plain method). `config` is the
    /// run's, to name its sampler.
    ///
    /// # Errors
    /// When `u` is 0, or above 1 for a sampler whose steps cannot be retaken
    /// ([`crate::sampler::Sampler::can_rewind`]: DPM-Solver++(2M) remembers the previous step;
    /// RK45 and annealed Langevin have no fixed grid of steps); field `resample`.
    pub fn with_resampling(mut self, u: usize, config: &SamplerConfig) -> Result<Self, ConfigError> {
        if u == 0 {
            return Err(ConfigError::new("resample", "at least 1 step per level (1: no resampling)", 0));
        }
        if u > 1 && !self.run.can_rewind() {
            return Err(ConfigError::new(
                "resample",
                format!("1 for {}, which cannot retake a step (it is multistep or adaptive), or a one-step sampler such as ancestral or ddim", config.kind()),
                u,
            ));
        }
        self.resample = u;
        Ok(self)
    }

    /// The result: the last step's mean, with `A x = y` exactly.
    pub fn output(self) -> Tensor<D> {
        self.run.output()
    }
}

impl<const D: usize, O: LinearOperator<D>> Run<D> for Projection<D, O> {
    /// One level: the sampler step followed by the projection, retaken from a re-noised state
    /// while resampling asks for it; returns `false` once finished.
    fn next(&mut self, f: &ScoreFn<D>, noise: &mut NoiseSource) -> bool {
        if self.run.is_done() {
            return false;
        }
        let sde = f.sde();
        for u in 1..=self.resample {
            let t = self.run.time();
            self.run.next(f, noise);
            // At the end the measured component is the observation itself.
            let done = self.run.is_done();
            let s = if done { 0.0 } else { self.run.time() };
            let projected = self.measured.project(self.run.state(), sde, s, noise);
            self.run.set_state(projected);
            if done || u == self.resample || !self.run.rewind() {
                break;
            }
            // Back to `t` by the forward process, `x_t = a x_s + std z`.
            let (a, std) = sde.transition(s, t);
            let x = self.run.state().x.clone();
            let z = noise.normal(x.dims(), &x.device());
            self.run.set_state(Step::deterministic(x.mul_scalar(a) + z.mul_scalar(std)));
        }
        true
    }

    fn progress(&self) -> (usize, usize) {
        self.run.progress()
    }

    fn is_done(&self) -> bool {
        self.run.is_done()
    }

    fn state(&self) -> &Step<D> {
        self.run.state()
    }

    fn time(&self) -> f64 {
        self.run.time()
    }

    fn output(self: Box<Self>) -> Tensor<D> {
        (*self).output()
    }
}

impl<const D: usize> Inpainting<D> {
    /// Projection inpainting of `y`, known where `mask = 1` (the mask is thresholded at 1/2).
    ///
    /// # Errors
    /// When `mask` and `y` differ in shape (field `mask`).
    pub fn new(config: &SamplerConfig, sde: &dyn Sde, y: Tensor<D>, mask: Tensor<D>, noise: &mut NoiseSource, device: &Device) -> Result<Self, ConfigError> {
        if y.dims() != mask.dims() {
            return Err(ConfigError::new("mask", format!("the observation's shape {:?}", y.dims()), format!("{:?}", mask.dims())));
        }
        Self::with_mask(config, sde, y, Mask::new(mask), noise, device)
    }

    /// Projection inpainting of `y` with a mask operator built elsewhere (e.g.
    /// [`Mask::from_values`], which reads nothing back from the device).
    ///
    /// # Errors
    /// When the mask and `y` differ in shape (field `mask`).
    pub fn with_mask(config: &SamplerConfig, sde: &dyn Sde, y: Tensor<D>, op: Mask<D>, noise: &mut NoiseSource, device: &Device) -> Result<Self, ConfigError> {
        if y.dims() != op.mask().dims() {
            return Err(ConfigError::new("mask", format!("the observation's shape {:?}", y.dims()), format!("{:?}", op.mask().dims())));
        }
        let shape = y.dims();
        let y = super::Operator::forward(&op, y);
        Self::with_operator(config, sde, op, y, shape, noise, device)
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

    /// Replacement's known bias and RePaint's cure. Components at `(-1, -1)` and `(1, 1)`
    /// (std 0.5), `x1 = 0.5` observed: the exact posterior puts `w = 1 / (1 + e^-4) = 0.982`
    /// of `x2` on the second component. Plain replacement (U = 1) under-uses the observation
    /// (measured: 71% of the samples on that side); resampling moves the share towards `w` as
    /// `U` grows (measured: 84% at U = 3, 95% at U = 10). With n = 4000 the standard error of
    /// a share is at most 0.008, so each step up in U must gain more than 4 of them, and U = 10
    /// must come within 0.05 of `w`.
    #[test]
    fn resampling_moves_replacement_towards_the_exact_posterior() {
        let dev = device();
        let mixture = GaussianMixture::new(vec![0.5, 0.5], vec![vec![-1.0, -1.0], vec![1.0, 1.0]], vec![0.5, 0.5]).unwrap();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let model = MixtureScore::new(mixture, Box::new(sde.clone()), &dev).unwrap();
        let f = ScoreFn::new(&model, &sde);
        let n = 4000;
        let y = Tensor::<2>::from_data(TensorData::new([0.5f32, 0.0].repeat(n), [n, 2]), &dev);
        let mask = Tensor::<2>::from_data(TensorData::new([1.0f32, 0.0].repeat(n), [n, 2]), &dev);
        let config = SamplerConfig::new(SamplerKind::Ancestral, 20);
        let share = |u: usize| {
            let mut noise = NoiseSource::new(7);
            let mut run = Inpainting::new(&config, &sde, y.clone(), mask.clone(), &mut noise, &dev).unwrap().with_resampling(u, &config).unwrap();
            let mut levels = 0;
            while run.next(&f, &mut noise) {
                levels += 1;
            }
            assert_eq!(levels, 20, "one call of next per level, whatever U");
            let out = to_vec(run.output());
            assert!(out.iter().step_by(2).all(|&v| v == 0.5), "known coordinate changed");
            out.iter().skip(1).step_by(2).filter(|&&v| v > 0.0).count() as f64 / n as f64
        };
        let w = 1.0 / (1.0 + (-4.0f64).exp());
        let shares = [share(1), share(3), share(10)];
        let se = (0.25 / n as f64).sqrt();
        assert!(shares[0] < w - 0.15, "plain replacement: {shares:?}, exact {w}");
        assert!(shares[1] > shares[0] + 4.0 * se && shares[2] > shares[1] + 4.0 * se, "resampling does not help: {shares:?}");
        assert!((shares[2] - w).abs() < 0.05, "U = 10: {} vs exact {w}", shares[2]);
    }

    #[test]
    fn resampling_needs_a_sampler_that_can_retake_a_step() {
        let dev = device();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let y = Tensor::<2>::zeros([3, 2], &dev);
        let mask = Tensor::<2>::ones([3, 2], &dev);
        let run = |kind, u| {
            let config = SamplerConfig::new(kind, 5);
            Inpainting::new(&config, &sde, y.clone(), mask.clone(), &mut NoiseSource::new(0), &dev).unwrap().with_resampling(u, &config).err()
        };
        let e = run(SamplerKind::DpmSolver2m, 2).unwrap().to_string();
        assert!(e.contains("resample") && e.contains("dpm-solver2m"), "{e}");
        assert!(run(SamplerKind::DpmSolver2m, 1).is_none());
        assert!(run(SamplerKind::Ddim, 4).is_none());
        let e = run(SamplerKind::Ancestral, 0).unwrap().to_string();
        assert!(e.contains("at least 1"), "{e}");
    }

    /// Colorization with the channel mean. Two equally likely colours, red `(0.8, -0.4, -0.4)`
    /// and blue `(-0.4, -0.4, 0.8)` per pixel (std 0.2), have the same grey level 0, so the
    /// prior factorises into grey times chroma and the posterior of the chroma given any grey
    /// image is the prior's: half red, half blue, each mode centred on `mu_k + A^+ y`. The
    /// projection method is exact here up to the sampler's discretisation; 4 standard errors.
    #[test]
    fn colorization_posterior_of_a_factorised_prior() {
        let dev = device();
        let (red, blue) = ([0.8, -0.4, -0.4], [-0.4, -0.4, 0.8]);
        // Channel-major [3, 1, 2]: each colour repeated on both pixels.
        let mean = |c: [f64; 3]| vec![c[0], c[0], c[1], c[1], c[2], c[2]];
        let mixture = GaussianMixture::new(vec![0.5, 0.5], vec![mean(red), mean(blue)], vec![0.2, 0.2]).unwrap();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let mixture = MixtureScore::new(mixture, Box::new(sde.clone()), &dev).unwrap();
        let model = crate::model::Flattened(&mixture);
        let f = ScoreFn::new(&model, &sde);
        let n = 600;
        let gray = [0.3f32, -0.2];
        let y = Tensor::<4>::from_data(TensorData::new(gray.repeat(n), [n, 1, 1, 2]), &dev);
        let mut noise = NoiseSource::new(3);
        let config = SamplerConfig::new(SamplerKind::Ancestral, 200);
        let mut run = Projection::with_operator(&config, &sde, super::super::Grayscale::MEAN, y, [n, 3, 1, 2], &mut noise, &dev).unwrap();
        while run.next(&f, &mut noise) {}
        let out = to_vec(run.output());
        let (mut reds, mut sums) = (0usize, [[0.0f64; 6]; 2]);
        for x in out.chunks_exact(6) {
            for p in 0..2 {
                let g = (x[p] + x[2 + p] + x[4 + p]) / 3.0;
                assert!((g - gray[p]).abs() < 1e-5, "grey level {g}, observed {}", gray[p]);
            }
            let k = if x[0] + x[1] > x[4] + x[5] { 0 } else { 1 };
            reds += usize::from(k == 0);
            for (s, v) in sums[k].iter_mut().zip(x) {
                *s += *v as f64;
            }
        }
        let frac = reds as f64 / n as f64;
        assert!((frac - 0.5).abs() < 4.0 * (0.25 / n as f64).sqrt(), "fraction red {frac}");
        for (k, c) in [(0, red), (1, blue)] {
            let count = if k == 0 { reds } else { n - reds } as f64;
            for ch in 0..3 {
                for p in 0..2 {
                    // mu_k + A^+ y: A mu_k = 0 and A^+ y = y in every channel.
                    let expect = c[ch] + gray[p] as f64;
                    let got = sums[k][ch * 2 + p] / count;
                    // Within a mode each coordinate has variance 0.04 (1 - 1/3).
                    let se = (0.04 * 2.0 / 3.0 / count).sqrt();
                    assert!((got - expect).abs() < 4.0 * se, "mode {k} channel {ch} pixel {p}: {got} vs {expect}");
                }
            }
        }
    }

    #[test]
    fn rejects_an_operator_without_a_simple_pseudo_inverse() {
        let dev = device();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let blur = super::super::Blur::gaussian(3, 1.0).unwrap();
        let y = Tensor::<4>::zeros([1, 1, 4, 4], &dev);
        let e = Projection::with_operator(&SamplerConfig::new(SamplerKind::Ddim, 5), &sde, blur, y, [1, 1, 4, 4], &mut NoiseSource::new(0), &dev)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("pseudo-inverse") && e.contains("Gaussian blur"), "{e}");
    }

    #[test]
    fn rejects_a_mask_of_another_shape() {
        let dev = device();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let y = Tensor::<2>::zeros([3, 2], &dev);
        let mask = Tensor::<2>::zeros([3, 1], &dev);
        let err = Inpainting::new(&SamplerConfig::new(SamplerKind::Ddim, 5), &sde, y, mask, &mut NoiseSource::new(0), &dev).err().unwrap().to_string();
        assert!(err.contains("mask"), "{err}");
    }
}
