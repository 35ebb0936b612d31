//! Judging a sampler against an analytic target.
//!
//! Samples a [`MixtureFile`]'s exact score with any sampler and compares the result with fresh
//! samples of the target `p_0` (the mixture perturbed by the SDE's marginal at `t = 0`, which is
//! the mixture itself except for VE's `sigma_min`): energy distance, mean and covariance errors
//! in units of their standard errors at this sample size. The tests, `native-cli eval-samplers`
//! and the quality-per-step table in `BENCHMARKS.md` all use this one routine.

use crate::metrics;
use crate::mixture::{GaussianMixture, MixtureError, MixtureFile};
use crate::model::ScoreModel;
use crate::noise::NoiseSource;
use crate::sampler::{ReadBackError, SamplerConfig, draw_batches};
use crate::sde::Sde;
use burn::tensor::Device;

/// Samples drawn from a mixture's exact score.
#[derive(Debug, Clone)]
pub struct MixtureSamples {
    /// Row-major `[n, dim]`.
    pub data: Vec<f64>,
    /// Data dimension.
    pub dim: usize,
    /// Function evaluations used.
    pub nfe: usize,
}

/// Runs `config` on the exact score of `file` for `n` samples from `seed`.
pub fn sample_mixture(file: &MixtureFile, config: &SamplerConfig, n: usize, seed: u64, device: &Device) -> Result<MixtureSamples, MixtureError> {
    let model = file.model(device)?;
    let sde = file.sde.build()?;
    Ok(sample_model(&model, sde.as_ref(), config, [n, file.mixture.dim()], seed, device))
}

/// Runs `config` on any model of `[n, dim]` data for `n` samples from `seed`, in one batch.
pub fn sample_model(model: &dyn ScoreModel<2>, sde: &dyn Sde, config: &SamplerConfig, shape: [usize; 2], seed: u64, device: &Device) -> MixtureSamples {
    let [n, dim] = shape;
    let noise = NoiseSource::new(seed);
    let drawn = draw_batches::<_, ReadBackError, 2>(config, sde, n, n, |rows| [rows, dim], |_, _| Ok(ByRef(model)), &noise, device, |_| Ok(()))
        .expect("f32 samples read back from the device");
    MixtureSamples { data: drawn.values.into_iter().map(f64::from).collect(), dim, nfe: drawn.nfe }
}

/// A borrowed score model (a trait object) as a sized one.
pub struct ByRef<'a, const D: usize>(pub &'a dyn ScoreModel<D>);

impl<const D: usize> ScoreModel<D> for ByRef<'_, D> {
    fn parameterization(&self) -> crate::param::Parameterization {
        self.0.parameterization()
    }
    fn forward(&self, x: burn::tensor::Tensor<D>, t: &[f64]) -> burn::tensor::Tensor<D> {
        self.0.forward(x, t)
    }
    fn forward_with_variance(&self, x: burn::tensor::Tensor<D>, t: &[f64]) -> (burn::tensor::Tensor<D>, Option<burn::tensor::Tensor<D>>) {
        self.0.forward_with_variance(x, t)
    }
}

/// The distribution a sampler should reproduce: `p_0` of the file's SDE.
pub fn target(file: &MixtureFile) -> Result<GaussianMixture, MixtureError> {
    let (m, s) = file.sde.build()?.marginal(0.0);
    Ok(file.mixture.perturbed(m, s))
}

/// How far samples are from a target.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Energy distance to fresh target samples of the same size.
    pub energy: f64,
    /// Largest `|mean_i - mu_i|` in standard errors `sqrt(C_ii / n)`.
    pub mean_z: f64,
    /// Largest `|C^_ij - C_ij|` in standard errors of the sample covariance, estimated from a
    /// large reference sample's fourth moments.
    pub cov_z: f64,
}

/// Compares `x` (`[n, dim]`) with `target`, using `noise` for the fresh reference samples.
pub fn compare(x: &[f64], target: &GaussianMixture, noise: &mut NoiseSource) -> Report {
    let d = target.dim();
    let n = x.len() / d;
    let fresh = target.sample(n, noise);
    let energy = metrics::energy_distance(x, &fresh, d);
    let (mu, cov) = (target.mean(), target.covariance());
    let m = metrics::mean(x, d);
    let mean_z = (0..d).map(|i| (m[i] - mu[i]).abs() / (cov[i * d + i] / n as f64).sqrt()).fold(0.0, f64::max);
    // Standard error of each covariance entry: sd of (x_i - mu_i)(x_j - mu_j) over sqrt(n),
    // with the sd estimated on 20 000 reference samples.
    let reference = target.sample(20_000, noise);
    let c = metrics::covariance(x, d);
    let mut cov_z: f64 = 0.0;
    for i in 0..d {
        for j in i..d {
            let prods: Vec<f64> = reference.chunks_exact(d).map(|r| (r[i] - mu[i]) * (r[j] - mu[j])).collect();
            let pm = prods.iter().sum::<f64>() / prods.len() as f64;
            let var = prods.iter().map(|p| (p - pm).powi(2)).sum::<f64>() / prods.len() as f64;
            cov_z = cov_z.max((c[i * d + j] - cov[i * d + j]).abs() / (var / n as f64).sqrt());
        }
    }
    Report { energy, mean_z, cov_z }
}

/// Energy distances between two independent target samples of size `n`, `replicates` times:
/// the null distribution a perfect sampler's energy distance follows.
pub fn energy_null(target: &GaussianMixture, n: usize, replicates: usize, noise: &mut NoiseSource) -> Vec<f64> {
    let d = target.dim();
    let mut v: Vec<f64> = (0..replicates).map(|_| metrics::energy_distance(&target.sample(n, noise), &target.sample(n, noise), d)).collect();
    v.sort_by(f64::total_cmp);
    v
}
