//! SDEdit: Meng, He, Song, Song, Wu, Zhu & Ermon, "SDEdit: Guided Image Synthesis and Editing
//! with Stochastic Differential Equations", ICLR 2022, Algorithm 1.
//!
//! Perturb a guide image (a stroke painting, a degraded image, a baseline reconstruction) with
//! the forward kernel to an intermediate time, `x_{t0} = m(t0) x_guide + s(t0) z`, and run the
//! reverse-time sampler from `t0` to 0. Small `t0` stays faithful to the guide, `t0 = T` ignores
//! it; in between the output is realistic under the prior and close to the guide. With an exact
//! score and a fine ancestral grid the output is a draw of `p(x_0 | x_{t0})`.

use crate::error::ConfigError;
use crate::noise::NoiseSource;
use crate::sampler::{SamplerConfig, Sampling};
use crate::sde::Sde;
use burn::tensor::Tensor;

/// An SDEdit run from `guide` (`[batch, ...]`) at `t0`, to step with
/// [`Run::next`](crate::sampler::Run::next).
///
/// # Errors
/// When `t0` is not in `(0, T]` (field `t0`).
pub fn sdedit<const D: usize>(config: &SamplerConfig, sde: &dyn Sde, guide: Tensor<D>, t0: f64, noise: &mut NoiseSource) -> Result<Sampling<D>, ConfigError> {
    if !(t0 > 0.0 && t0 <= sde.t_max()) {
        return Err(ConfigError::new("t0", format!("a start time in (0, {}] for sdedit", sde.t_max()), t0));
    }
    config.validate()?;
    let t0 = sde.snap(t0.max(sde.t_min()));
    let (m, s) = sde.marginal(t0);
    let z = noise.normal(guide.dims(), &guide.device());
    let x = guide.mul_scalar(m) + z.mul_scalar(s);
    Ok(Sampling::from_state_at(config, sde, x, t0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixture::{GaussianMixture, MixtureScore};
    use crate::model::ScoreFn;
    use crate::sampler::{Run, SamplerKind};
    use crate::sde::VpSde;
    use crate::test_util::*;

    /// Prior `N(0, s0^2 I)`: `x_0 | x_t0 ~ N(a x_t0, s0^2 s^2 / v)` with `v = m^2 s0^2 + s^2`,
    /// `a = m s0^2 / v`, and `x_t0 = m g + s z`, so the output has mean `a m g` and variance
    /// `a^2 s^2 + s0^2 s^2 / v` per coordinate; 4000 draws (4 standard errors).
    #[test]
    fn output_is_the_posterior_given_the_noised_guide() {
        let dev = device();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let s0 = 0.5;
        let model = MixtureScore::new(GaussianMixture::gaussian(vec![0.0], s0).unwrap(), Box::new(sde.clone()), &dev).unwrap();
        let f = ScoreFn::new(&model, &sde);
        let n = 4000;
        let g = 1.5;
        for t0 in [0.3, 0.6] {
            let mut noise = NoiseSource::new(2);
            let guide = Tensor::<2>::full([n, 1], g, &dev);
            let mut run = sdedit(&SamplerConfig::new(SamplerKind::Ancestral, 300), &sde, guide, t0, &mut noise).unwrap();
            while run.next(&f, &mut noise) {}
            let out: Vec<f64> = to_vec(run.output()).into_iter().map(f64::from).collect();
            let mean = out.iter().sum::<f64>() / n as f64;
            let var = out.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let (m, s) = sde.marginal(t0);
            let v = m * m * s0 * s0 + s * s;
            let a = m * s0 * s0 / v;
            let (em, ev) = (a * m * g, a * a * s * s + s0 * s0 * s * s / v);
            let se = (ev / n as f64).sqrt();
            assert!((mean - em).abs() < 4.0 * se, "t0 {t0}: mean {mean} vs {em}");
            assert!((var - ev).abs() < 4.0 * ev * (2.0 / n as f64).sqrt(), "t0 {t0}: variance {var} vs {ev}");
        }
        let e =
            sdedit(&SamplerConfig::new(SamplerKind::Ddim, 5), &sde, Tensor::<2>::zeros([1, 1], &dev), 0.0, &mut NoiseSource::new(0)).err().unwrap().to_string();
        assert!(e.contains("t0"), "{e}");
    }
}
