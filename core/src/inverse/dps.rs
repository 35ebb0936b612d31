//! Diffusion posterior sampling (DPS): Chung, Kim, Mccann, Klasky & Ye, "Diffusion Posterior
//! Sampling for General Noisy Inverse Problems", ICLR 2023, Algorithms 1 (Gaussian noise) and 2
//! (Poisson noise).
//!
//! The likelihood `p(y | x_t)` is approximated by `p(y | x0_hat(x_t))` with Tweedie's
//! `x0_hat = E[x_0 | x_t]` (the paper's sec. 3). At each step from `x_i` at `t` to `s < t`:
//!
//! 1. `x0_hat = x0_hat(x_i)` from the network and its gradient through the network and `A`,
//!    `g = grad_{x_i} ||y - A(x0_hat(x_i))||^2_Lambda` (burn's autodiff; `Lambda = I` for
//!    Gaussian noise, `diag(1 / (2 y_j))` in counts for Poisson, see
//!    [`MeasurementNoise::weights`]);
//! 2. `x'_{i-1}` = the unconditional step from the same prediction: DDPM ancestral (as in
//!    Alg. 1) or DDIM (`eta`; the same correction applied after a DDIM update instead);
//! 3. `x_{i-1} = x'_{i-1} - zeta_i g` with the paper's step size
//!    `zeta_i = zeta / ||y - A(x0_hat(x_i))||_Lambda` (the choice stated with the paper's
//!    experiments, `zeta` a constant per task).
//!
//! # Where the reference code differs, and what we follow
//! - **Norm and normalisation.** The code (`PosteriorSampling` in
//!   `guided_diffusion/condition_methods.py`) differentiates the *non-squared* norm
//!   `||y - A(x0_hat)||` and multiplies by a constant `scale`. Since
//!   `grad ||r||^2 / ||r|| = 2 grad ||r||`, that is the paper's rule with `scale = 2 zeta`. We
//!   implement the paper's formula; our `zeta` is the code's `scale / 2`.
//! - **Batch.** The code takes one norm over the whole batch, which couples the samples of a
//!   batch (exact only for batch size 1, what it runs); we take one norm per sample.
//! - **Noise scale.** The code adds `sigma_y` to images in `[-1, 1]`; the paper's `sigma_y =
//!   0.05` is that scale. We do the same: every measurement lives in the data's `[-1, 1]` space.
//! - **Poisson.** Alg. 2 weights the squared residual by `Lambda_jj = 1 / (2 y_j)`; the code
//!   instead divides the plain norm by `|y|` elementwise and averages. We follow the paper,
//!   with `Lambda` mapped to `[-1, 1]` space and floored at one photon (see
//!   [`MeasurementNoise`]).
//!
//! # Autodiff
//! The state lives on any device. Each step lifts `x_i` onto autodiff
//! (`Tensor::autodiff().require_grad()`) and evaluates the model there: a network whose weights
//! are on a plain device takes part as constants, so gradients reach `x_i` only (put it in
//! inference mode first, `Module::valid`, so that dropout is off). The graph is freed after the
//! backward pass; the step itself runs on detached tensors.
//!
//! # Nothing is read back
//! `zeta_i` is computed on the device from the squared norms (`[batch, 1]`, see
//! [`step_sizes`]), so a step never waits for the device: DPS runs where the network runs,
//! WebGPU in the browser included (which forbids synchronous reads of GPU memory).

use super::{MeasurementNoise, Operator, per_sample_sum};
use crate::error::ConfigError;
use crate::model::{Prediction, ScoreFn};
use crate::noise::NoiseSource;
use crate::sampler::{Ancestral, Ddim, GridSampler, PredictionStep, SamplerConfig, SamplerOptions, Sampling, Step, Transition, prior_sample};
use crate::sde::Sde;
use burn::tensor::{Device, Tensor};

/// The default step size `zeta'` of `zeta_i = zeta' / ||y - A(x0_hat)||` (Chung et al. 2023,
/// appendix C; not tuned for MNIST): what the command line and the page start from.
pub const DEFAULT_ZETA: f64 = 1.0;

/// The default measurement noise `sigma_y = 0.05` in the data's `[-1, 1]` scale (the paper's
/// sec. 4 experiments).
pub const DEFAULT_SIGMA_Y: f64 = 0.05;

/// The DPS guidance at one state.
#[derive(Debug, Clone)]
pub struct DpsGradient<const D: usize> {
    /// The model's prediction at `(x_i, t)`, detached from the graph.
    pub pred: Prediction<D>,
    /// `grad_{x_i} ||y - A(x0_hat(x_i))||^2_Lambda`, per sample.
    pub grad: Tensor<D>,
    /// `||y - A(x0_hat(x_i))||^2_Lambda` of each sample, `[batch, 1]`, on `x`'s device (on
    /// autodiff where `x` is, detached from the graph).
    pub sq_norms: Tensor<2>,
    /// The model's variance output `v` at `(x_i, t)` (a learned variance), detached.
    pub variance: Option<Tensor<D>>,
}

/// `t` moved back to `x`'s side of autodiff (a plain tensor stays plain).
fn like<const D: usize>(t: Tensor<D>, autodiff: bool) -> Tensor<D> {
    if autodiff { t.detach() } else { t.inner() }
}

/// The DPS gradient of the measurement residual at `x` (`[batch, ...]`) and time `t`, through
/// the model and the operator (see the module docs). `weights` is `Lambda` (`None`: `I`).
pub fn dps_gradient<const D: usize>(f: &ScoreFn<D>, op: &dyn Operator<D>, y: &Tensor<D>, weights: Option<&Tensor<D>>, x: Tensor<D>, t: f64) -> DpsGradient<D> {
    let autodiff = x.is_autodiff();
    let xg = x.clone().detach().autodiff().require_grad();
    let (pred, v) = f.eval_with_variance(xg.clone(), t);
    let residual = y.clone() - op.forward(pred.x0());
    let sq = residual.square();
    let sq = per_sample_sum(match weights {
        Some(w) => sq * w.clone(),
        None => sq,
    }); // [b, 1]: sum_j Lambda_j r_j^2
    let grads = sq.clone().sum().backward();
    let grad = xg.grad(&grads).expect("x_t requires grad on the autodiff device");
    let grad = if autodiff { grad.autodiff() } else { grad };
    let pred = Prediction { x, out: like(pred.out, autodiff), param: pred.param, marginal: pred.marginal };
    DpsGradient { pred, grad, sq_norms: like(sq, autodiff), variance: v.map(|v| like(v, autodiff)) }
}

/// The paper's step sizes `zeta_i = zeta / ||r_i||_Lambda` from the squared norms `sq`
/// (`[batch, 1]`), on `sq`'s device, as `[batch, 1, ..., 1]` (`D` dimensions) to multiply a
/// state by; 0 where the residual vanishes (so does its gradient there, and `zeta / 0` would
/// turn `0 * inf` into NaN).
pub fn step_sizes<const D: usize>(sq: Tensor<2>, zeta: f64) -> Tensor<D> {
    let vanishes = sq.clone().lower_equal_elem(0.0);
    let zeta_i = sq.sqrt().recip().mul_scalar(zeta).mask_fill(vanishes, 0.0);
    let mut shape = [1usize; D];
    shape[0] = zeta_i.dims()[0];
    zeta_i.reshape(shape)
}

/// One DPS transition (see the module docs).
pub struct Dps<const D: usize> {
    step: Box<dyn PredictionStep<D>>,
    op: Box<dyn Operator<D>>,
    y: Tensor<D>,
    weights: Option<Tensor<D>>,
    zeta: f64,
}

impl<const D: usize> Transition<D> for Dps<D> {
    fn transition(&mut self, x: Tensor<D>, t: f64, s: f64, f: &ScoreFn<D>, noise: &mut NoiseSource) -> Step<D> {
        let g = dps_gradient(f, self.op.as_ref(), &self.y, self.weights.as_ref(), x.clone(), t);
        let step = self.step.step_from(x, &g.pred, g.variance, t, s, f.sde(), noise);
        let correction = g.grad * step_sizes::<D>(g.sq_norms, self.zeta);
        Step { x: step.x - correction.clone(), x_mean: step.x_mean - correction }
    }
}

/// A DPS run for the measurement `y` of `op` with noise `noise_model`, from a prior sample of
/// `shape`: a [`Sampling`] to step with [`Run::next`](crate::sampler::Run::next). `config`
/// chooses `ancestral` (its `variance`, a learned one too) or `ddim` (its `eta`) and the grid;
/// `zeta` is the paper's `zeta'` (see the module docs).
///
/// # Errors
/// For another sampler (field `sampler`), a `zeta` that is negative or not finite, a `y` whose
/// shape is not `A x`'s, or Poisson noise on a measurement that is not an image (`noise`).
#[allow(clippy::too_many_arguments)]
pub fn dps<const D: usize>(
    config: &SamplerConfig,
    sde: &dyn Sde,
    op: Box<dyn Operator<D>>,
    y: Tensor<D>,
    noise_model: MeasurementNoise,
    zeta: f64,
    shape: [usize; D],
    noise: &mut NoiseSource,
    device: &Device,
) -> Result<Sampling<D>, ConfigError> {
    config.validate()?;
    let step = prediction_step::<D>(config)?;
    if !(zeta.is_finite() && zeta >= 0.0) {
        return Err(ConfigError::new("zeta", "a finite number >= 0 (the dps step size)", zeta));
    }
    noise_model.validate()?;
    if matches!(noise_model, MeasurementNoise::Poisson { .. }) && !op.image_valued() {
        return Err(ConfigError::new("noise", format!("gaussian or none for {}, whose measurement is not an image", op.describe()), noise_model));
    }
    super::check_measurement(op.as_ref(), &y, shape, device)?;
    let weights = noise_model.weights(&y);
    let transition = Dps { step, op, y, weights, zeta };
    let x = prior_sample(sde, shape, noise, device);
    Ok(Sampling::with_sampler(Box::new(GridSampler::new(config.grid.times(sde, sde.t_max()), transition)), x, config.x0_clip()?))
}

/// The unconditional step DPS corrects: `config`'s ancestral or DDIM step.
///
/// # Errors
/// For another sampler (field `sampler`).
pub fn prediction_step<const D: usize>(config: &SamplerConfig) -> Result<Box<dyn PredictionStep<D>>, ConfigError> {
    match config.options {
        SamplerOptions::Ancestral { variance } => Ok(Box::new(Ancestral { variance })),
        SamplerOptions::Ddim { eta } => Ok(Box::new(Ddim { eta })),
        other => Err(ConfigError::new("sampler", "ancestral or ddim for dps", other.kind())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AvgPool, Dense, FourierMagnitude, Grayscale, Matrix};
    use super::*;
    use crate::mixture::{GaussianMixture, MixtureScore};
    use crate::model::ScoreModel;
    use crate::sampler::{Run, SamplerKind};
    use crate::sde::VpSde;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    /// `sum_i ||y_i - A(x0_hat(x_i))||^2_Lambda` evaluated without autodiff, in f64 on the host.
    fn loss(f: &ScoreFn<4>, op: &dyn Operator<4>, y: &Tensor<4>, w: Option<&Tensor<4>>, x: Tensor<4>, t: f64) -> f64 {
        let r = to_vec(y.clone() - op.forward(f.eval(x, t).x0()));
        let w = w.map(|w| to_vec(w.clone())).unwrap_or_else(|| vec![1.0; r.len()]);
        r.iter().zip(&w).map(|(&r, &w)| w as f64 * (r as f64).powi(2)).sum()
    }

    /// The autodiff gradient of `net` (in inference mode) against central differences of the
    /// loss along random directions, on states of `shape` at two times, through a linear, a
    /// Poisson-weighted and the non-linear operator, and colorization for colour images.
    /// Central differences with step `h` (`step`) err by `h^2 |L'''| / 6` plus rounding
    /// `~1e-7 |L| / h`; with the `h` each caller states both are below 1e-3 of the directional
    /// derivative, so 1e-2 is a safe but still discriminating tolerance (a wrong gradient is off
    /// by O(1)).
    fn check_gradient(net: &dyn ScoreModel<4>, sde: &dyn Sde, shape: [usize; 4], step: f64) {
        let dev = device();
        let f = ScoreFn::new(net, sde);
        let mut noise = NoiseSource::new(5);
        let [_, c, h, w] = shape;
        let x = noise.normal(shape, &dev);
        let truth = noise.normal(shape, &dev).clamp(-1.0, 1.0);
        let pool = AvgPool::new(2, [h, w]).unwrap();
        let phase = FourierMagnitude::new([h, w]);
        let poisson = MeasurementNoise::Poisson { rate: 30.0 };
        let y_pool = pool.forward(truth.clone());
        let w_pool = poisson.weights(&y_pool);
        let mut cases: Vec<(&dyn Operator<4>, Tensor<4>, Option<Tensor<4>>)> =
            vec![(&pool, y_pool.clone(), None), (&pool, y_pool, w_pool), (&phase, phase.forward(truth.clone()), None)];
        if c == 3 {
            cases.push((&Grayscale::MEAN, Grayscale::MEAN.forward(truth.clone()), None));
        }
        for (op, y, w) in cases {
            for t in [0.3, 0.8] {
                let g = dps_gradient(&f, op, &y, w.as_ref(), x.clone(), t);
                assert!(!g.grad.is_autodiff());
                let l0 = loss(&f, op, &y, w.as_ref(), x.clone(), t);
                let norms: f64 = to_vec(g.sq_norms.clone()).iter().map(|&n| n as f64).sum();
                assert!((norms - l0).abs() < 1e-4 * l0, "norms {norms} vs loss {l0}");
                for k in 0..3 {
                    let v = noise.normal(shape, &dev);
                    let lp = loss(&f, op, &y, w.as_ref(), x.clone() + v.clone().mul_scalar(step), t);
                    let lm = loss(&f, op, &y, w.as_ref(), x.clone() - v.clone().mul_scalar(step), t);
                    let fd = (lp - lm) / (2.0 * step);
                    let ad: f64 = to_vec(g.grad.clone()).iter().zip(to_vec(v)).map(|(a, b)| *a as f64 * b as f64).sum();
                    assert!((fd - ad).abs() < 1e-2 * ad.abs().max(1e-3 * l0), "{} t={t} dir {k}: autodiff {ad} vs finite differences {fd}", op.describe());
                }
            }
        }
    }

    /// [`check_gradient`] through a tiny random U-Net (eps-parameterised, so
    /// `x0_hat = (x - s eps) / m` exercises the conversion too), `h = 1e-2`.
    #[test]
    fn gradient_matches_finite_differences() {
        let dev = device();
        dev.seed(3);
        let net = super::super::test_support::tiny_unet(&dev);
        check_gradient(&net, &VpSde::new(0.1, 20.0).unwrap(), [2, 1, 8, 8], 1e-2);
    }

    /// [`check_gradient`] through an imported diffusers `UNet2DModel` (the tiny fixture of
    /// `tests/data/diffusers-tiny`, 3x16x16 colour images, with attention, on its card's
    /// 1000-level DDPM): the same lift of `x_i` onto autodiff differentiates it, so DPS's
    /// gradient is real for imported models too. `h = 1e-3`: a step along a direction of 1536
    /// Gaussian coordinates moves the state by `h sqrt(1536)`, and at `h = 1e-2` the Fourier
    /// magnitudes' curvature near their zeros made the central difference err by 16% on a small
    /// directional derivative (0.746 against autodiff's 0.645 at `t = 0.3`, the loss 516); at
    /// `h = 1e-3` it gives 0.6452, and the largest rounding error seen (13 on a derivative of
    /// 17 217, the loss 7e5) stays well inside the tolerance.
    #[test]
    fn gradient_through_an_imported_diffusers_network_matches_finite_differences() {
        let (net, sde) = super::super::test_support::tiny_diffusers(&device());
        check_gradient(&net, sde.as_ref(), [2, 3, 16, 16], 1e-3);
    }

    /// Linear-Gaussian: prior `N(0, I_2)` (exact score), `y = x_1 + n`, `sigma_y = 0.1`, `y = 1`.
    /// Under VP, `x0_hat(x_t) = m x_t` is linear and isotropic, so the DPS gradient has no
    /// component along `x_2`: `x_2` follows the unconditional reverse process and must come out
    /// `N(0, 1)` as the prior (4 standard errors). Along `x_1` the exact posterior is
    /// `N(y / (1 + sigma^2), sigma^2 / (1 + sigma^2)) = N(0.990, 0.0995^2)`. DPS only
    /// approximates it (its normalised correction moves `x_1` by at most `2 zeta m` per step,
    /// which does not fully undo the noise the ancestral steps inject), so the check is loose: the
    /// mean within 0.1 prior standard deviations of 0.99 and the variance below a tenth of the
    /// prior's (the measurement must have done most of the work).
    #[test]
    fn linear_gaussian_leaves_the_unmeasured_coordinate_to_the_prior() {
        let dev = device();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let model = MixtureScore::new(GaussianMixture::gaussian(vec![0.0, 0.0], 1.0).unwrap(), Box::new(sde.clone()), &dev).unwrap();
        let f = ScoreFn::new(&model, &sde);
        let n = 1000;
        let zeta = 0.02;
        for kind in [SamplerKind::Ancestral, SamplerKind::Ddim] {
            let op = Dense::new(Matrix { rows: 1, cols: 2, data: vec![1.0, 0.0] });
            let y = Tensor::<2>::ones([n, 1], &dev);
            let mut noise = NoiseSource::new(11);
            let config = SamplerConfig::new(kind, 200);
            let mut run = dps(&config, &sde, Box::new(op), y, MeasurementNoise::Gaussian { sigma: 0.1 }, zeta, [n, 2], &mut noise, &dev).unwrap();
            while run.next(&f, &mut noise) {}
            let out = to_vec(run.output());
            let moments = |v: Vec<f64>| {
                let m = v.iter().sum::<f64>() / v.len() as f64;
                (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64)
            };
            let (m1, v1) = moments(out.iter().step_by(2).map(|&v| v as f64).collect());
            let (m2, v2) = moments(out.iter().skip(1).step_by(2).map(|&v| v as f64).collect());
            println!("{kind}: x1 mean {m1:.4} var {v1:.4}, x2 mean {m2:.4} var {v2:.4}");
            let se = 1.0 / (n as f64).sqrt();
            assert!(m2.abs() < 4.0 * se && (v2 - 1.0).abs() < 4.0 * (2.0f64).sqrt() * se, "{kind}: x2 ~ N({m2}, {v2}), expected N(0, 1)");
            assert!((m1 - 0.99).abs() < 0.1, "{kind}: mean of x1 {m1}, expected 0.99");
            assert!(v1 < 0.1, "{kind}: variance of x1 {v1}");
        }
    }

    /// `zeta / sqrt(sq)` per sample against the closed form, 0 (not NaN) for a vanishing
    /// residual, shaped to broadcast over a state; and a DPS run reads nothing back.
    #[test]
    fn step_sizes_are_zeta_over_the_norm() {
        let dev = device();
        let sq = Tensor::<2>::from_data(TensorData::new(vec![4.0f32, 0.0, 0.25, 1e-6], [4, 1]), &dev);
        let z = step_sizes::<4>(sq, 3.0);
        assert_eq!(z.dims(), [4, 1, 1, 1]);
        let got = to_vec(z);
        for (g, want) in got.iter().zip([1.5, 0.0, 6.0, 3000.0]) {
            assert!((*g as f64 - want).abs() <= 1e-6 * want, "{got:?}");
        }
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let op = Box::new(Dense::new(Matrix { rows: 1, cols: 2, data: vec![1.0, 0.0] }));
        let (config, y) = (SamplerConfig::new(SamplerKind::Ddim, 3), Tensor::<2>::ones([2, 1], &dev));
        let run = dps(&config, &sde, op, y, MeasurementNoise::None, 1.0, [2, 2], &mut NoiseSource::new(0), &dev).unwrap();
        assert!(!run.reads_back());
    }

    /// Poisson weights and the sampler checks.
    #[test]
    fn rejects_bad_configurations() {
        let dev = device();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let mut noise = NoiseSource::new(0);
        // The Fourier magnitude of 4x4 images: 8x8 measurements.
        let mut error = |kind: SamplerKind, y_side: usize, noise_model: MeasurementNoise, zeta: f64| -> String {
            let op = Box::new(FourierMagnitude::new([4, 4]));
            let y = Tensor::<4>::zeros([1, 1, y_side, y_side], &dev);
            let cfg = SamplerConfig::new(kind, 5);
            dps(&cfg, &sde, op, y, noise_model, zeta, [1, 1, 4, 4], &mut noise, &dev).err().unwrap().to_string()
        };
        let e = error(SamplerKind::OdeEuler, 8, MeasurementNoise::None, 1.0);
        assert!(e.contains("ancestral or ddim"), "{e}");
        let e = error(SamplerKind::Ddim, 8, MeasurementNoise::Poisson { rate: 10.0 }, 1.0);
        assert!(e.contains("poisson"), "{e}");
        let e = error(SamplerKind::Ddim, 8, MeasurementNoise::None, -1.0);
        assert!(e.contains("zeta"), "{e}");
        let e = error(SamplerKind::Ddim, 4, MeasurementNoise::None, 1.0);
        assert!(e.contains("[1, 1, 8, 8]"), "{e}");
    }
}
