//! Probability-flow ODE encoding: data -> latent -> data is the identity (up to the solver's
//! tolerance), and latents of target samples follow the prior `N(0, I)` (VP).

use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::eval::compare;
use scorediff::mixture::GaussianMixture;
use scorediff::model::ScoreFn;
use scorediff::noise::NoiseSource;
use scorediff::sampler::{ode_decode, ode_encode, slerp};
use scorediff_tests::*;

#[test]
fn encode_then_decode_is_the_identity_and_latents_follow_the_prior() {
    let dev = Device::flex();
    let file = file(&mixture_2d(), sdes()[0].1.clone());
    let model = file.model(&dev).unwrap();
    let sde = file.sde.build().unwrap();
    let f = ScoreFn::new(&model, sde.as_ref());
    let mut noise = NoiseSource::new(3);
    let n = 2000;
    let x: Vec<f32> = mixture_2d().sample(n, &mut noise).iter().map(|&v| v as f32).collect();
    let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [n, 2]), &dev);
    let z = ode_encode(&f, xt, 1e-6, 1e-6);
    let back: Vec<f32> = ode_decode(&f, z.clone(), 1e-6, 1e-6).into_data().try_to_vec().unwrap();
    let max_err = x.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_err < 2e-2, "round trip max error {max_err}");
    let median_err = {
        let mut e: Vec<f32> = x.iter().zip(&back).map(|(a, b)| (a - b).abs()).collect();
        e.sort_by(f32::total_cmp);
        e[e.len() / 2]
    };
    assert!(median_err < 1e-3, "round trip median error {median_err}");
    // Latents: the prior N(0, I) up to VP's e^{-B(1)/2} ~ 7e-3 in the mean.
    let zs: Vec<f64> = z.into_data().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect();
    let prior = GaussianMixture::gaussian(vec![0.0, 0.0], 1.0).unwrap();
    let r = compare(&zs, &prior, &mut noise);
    assert!(r.mean_z < 4.5 && r.cov_z < 4.5, "{r:?}");
}

#[test]
fn slerp_of_latents_keeps_their_norm_scale() {
    let dev = Device::flex();
    let mut noise = NoiseSource::new(4);
    let (z1, z2) = (noise.normal([256, 64], &dev), noise.normal([256, 64], &dev));
    let mid = slerp(z1.clone(), z2, 0.5);
    // Two independent N(0, I_64) vectors are nearly orthogonal; the midpoint of the great-circle
    // arc keeps norm ~ sqrt(64), where the linear midpoint would shrink it by ~ 1/sqrt(2).
    let norm = |t: Tensor<2>| t.square().sum_dim(1).sqrt().mean().into_scalar::<f32>();
    let (n1, nm) = (norm(z1), norm(mid));
    assert!((nm / n1 - 1.0).abs() < 0.02, "{nm} vs {n1}");
}
