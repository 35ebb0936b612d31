//! Guidance by a noise-conditional classifier: Song et al., ICLR 2021, sec. 5 and eq. 14
//! (`grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x)`), with the guidance scale of
//! Dhariwal & Nichol 2021 (Alg. 1, `s`):
//!
//! `score_guided(x_t, t) = score(x_t, t) + s grad_{x_t} log p_t(y | x_t)`.
//!
//! The classifier must be trained on perturbed inputs of the same SDE (`native-cli
//! train-classifier --noisy`, [`crate::train::classifier`]); `s = 1` is the exact conditional
//! score when classifier and score are exact. Classifier-free guidance of a class-conditional
//! U-Net is [`crate::nn::Guided`].
//!
//! The gradient is taken with burn's autodiff: `x_t` is lifted onto autodiff
//! (`Tensor::autodiff().require_grad()`); a classifier on a plain device (in inference mode,
//! `Module::valid`) takes part as constants.

use crate::model::{ScoreFn, ScoreModel};
use crate::nn::Classifier;
use crate::param::Parameterization;
use crate::sde::Sde;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData};

/// A classifier of noisy samples, `log p_t(y | x_t)` up to a constant per sample: its logits.
pub trait NoisyClassifier<const D: usize> {
    /// Class logits `[batch, classes]` of `x_t` at the times `t` (one per sample).
    fn logits(&self, x: Tensor<D>, t: &[f64]) -> Tensor<2>;
}

impl NoisyClassifier<4> for Classifier {
    fn logits(&self, x: Tensor<4>, t: &[f64]) -> Tensor<2> {
        self.forward(x, Some(t))
    }
}

/// A score model guided towards classes by a noise-conditional classifier (see the module
/// docs). Its output is the guided score ([`Parameterization::Score`]).
pub struct ClassifierGuidance<'a, const D: usize> {
    model: &'a dyn ScoreModel<D>,
    sde: &'a dyn Sde,
    classifier: &'a dyn NoisyClassifier<D>,
    labels: Vec<usize>,
    scale: f64,
}

impl<'a, const D: usize> ClassifierGuidance<'a, D> {
    /// Guides `model` (under `sde`) to `labels` (one per sample, or one for the whole batch)
    /// with scale `scale`.
    ///
    /// # Errors
    /// When no label is given or the scale is not finite.
    pub fn new(model: &'a dyn ScoreModel<D>, sde: &'a dyn Sde, classifier: &'a dyn NoisyClassifier<D>, labels: Vec<usize>, scale: f64) -> Result<Self, String> {
        if labels.is_empty() {
            return Err("classifier guidance labels: expected at least one label, found none".into());
        }
        if !scale.is_finite() {
            return Err(format!("classifier guidance scale: expected a finite number, found {scale}"));
        }
        Ok(Self { model, sde, classifier, labels, scale })
    }

    /// `grad_{x} log softmax(logits(x, t))_{label}` per sample.
    pub fn log_prob_gradient(&self, x: Tensor<D>, t: &[f64]) -> Tensor<D> {
        let autodiff = x.is_autodiff();
        let b = x.dims()[0];
        let xg = x.detach().autodiff().require_grad();
        let log_p = log_softmax(self.classifier.logits(xg.clone(), t), 1); // [b, classes]
        let k = log_p.dims()[1];
        let mut one_hot = vec![0f32; b * k];
        for i in 0..b {
            let label = if self.labels.len() == 1 { self.labels[0] } else { self.labels[i] };
            assert!(label < k, "classifier guidance label {label}: expected a class below {k}");
            one_hot[i * k + label] = 1.0;
        }
        let one_hot = Tensor::<2>::from_data(TensorData::new(one_hot, [b, k]), &log_p.device());
        let grads = (log_p * one_hot).sum().backward();
        let g = xg.grad(&grads).expect("x_t requires grad on the autodiff device");
        if autodiff { g.autodiff() } else { g }
    }
}

impl<const D: usize> ScoreModel<D> for ClassifierGuidance<'_, D> {
    fn parameterization(&self) -> Parameterization {
        Parameterization::Score
    }

    /// # Panics
    /// If the labels are neither one nor one per sample.
    fn forward(&self, x: Tensor<D>, t: &[f64]) -> Tensor<D> {
        let b = x.dims()[0];
        assert!(self.labels.len() == 1 || self.labels.len() == b, "expected one label per sample ({b}) or a single label, found {}", self.labels.len());
        let score = ScoreFn::new(self.model, self.sde).eval_per_sample(x.clone(), t).score();
        if self.scale == 0.0 {
            return score;
        }
        score + self.log_prob_gradient(x, t).mul_scalar(self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixture::{GaussianMixture, MixtureScore};
    use crate::nn::ClassifierConfig;
    use crate::noise::NoiseSource;
    use crate::sde::VpSde;
    use crate::test_util::*;
    use burn::module::Module;

    /// The exact classifier of a mixture's components: `log w_k + log N(x; m mu_k, v_k I)`.
    struct Components {
        mixture: GaussianMixture,
        sde: VpSde,
    }

    impl NoisyClassifier<2> for Components {
        fn logits(&self, x: Tensor<2>, t: &[f64]) -> Tensor<2> {
            let dev = x.device();
            let cols: Vec<Tensor<2>> = (0..self.mixture.weights.len())
                .map(|k| {
                    let (m, s) = self.sde.marginal(t[0]);
                    let v = m * m * self.mixture.stds[k].powi(2) + s * s;
                    let mu: Vec<f32> = self.mixture.means[k].iter().map(|&u| (m * u) as f32).collect();
                    let d = mu.len();
                    let mu = Tensor::<2>::from_data(TensorData::new(mu, [1, d]), &dev);
                    let c = self.mixture.weights[k].ln() - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * v).ln();
                    (x.clone() - mu).square().sum_dim(1).mul_scalar(-0.5 / v).add_scalar(c)
                })
                .collect();
            Tensor::cat(cols, 1)
        }
    }

    /// With the exact score and the exact component classifier, `s = 1` gives the score of the
    /// chosen component alone, `-(x - m mu_k) / v_k` (Bayes: p_t(x | k) = p_t(x) p_t(k | x) / w_k).
    #[test]
    fn unit_scale_gives_the_component_score() {
        let dev = device();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let mixture = GaussianMixture::new(vec![0.3, 0.7], vec![vec![-1.0, 0.5], vec![1.5, -0.5]], vec![0.4, 0.6]).unwrap();
        let model = MixtureScore::new(mixture.clone(), Box::new(sde.clone()), &dev).unwrap();
        let classifier = Components { mixture: mixture.clone(), sde: sde.clone() };
        let x = NoiseSource::new(1).normal([5, 2], &dev);
        for (label, t) in [(0, 0.2), (1, 0.2), (1, 0.7)] {
            let guided = ClassifierGuidance::new(&model, &sde, &classifier, vec![label], 1.0).unwrap();
            let got = guided.forward(x.clone(), &[t; 5]);
            let (m, s) = sde.marginal(t);
            let v = m * m * mixture.stds[label].powi(2) + s * s;
            let mu: Vec<f32> = mixture.means[label].iter().map(|&u| (m * u) as f32).collect();
            let mu = Tensor::<2>::from_data(TensorData::new(mu, [1, 2]), &dev);
            let expect = (x.clone() - mu).div_scalar(-v);
            assert_close(&got, &expect, 1e-4);
        }
        assert!(ClassifierGuidance::new(&model, &sde, &classifier, vec![], 1.0).is_err());
    }

    /// Through the CNN: the guidance term is the autodiff gradient of the log-probability,
    /// checked against central differences along a random direction.
    #[test]
    fn cnn_gradient_matches_finite_differences() {
        let dev = device();
        dev.seed(4);
        let cfg = ClassifierConfig::new()
            .with_channels1(2)
            .with_channels2(2)
            .with_hidden(8)
            .with_classes(3)
            .with_image_size(8)
            .with_time_embedding(Some(crate::nn::TimeEmbedding::Fourier { scale: 4.0 }));
        let net = cfg.init(&dev).valid();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let unet = super::super::test_support::tiny_unet(&dev);
        let guided = ClassifierGuidance::new(&unet, &sde, &net, vec![2], 1.0).unwrap();
        let mut noise = NoiseSource::new(6);
        let x = noise.normal([1, 1, 8, 8], &dev);
        let t = [0.4];
        let g = to_vec(guided.log_prob_gradient(x.clone(), &t));
        let log_p = |x: Tensor<4>| -> f64 { to_vec(log_softmax(net.forward(x, Some(&t)), 1))[2] as f64 };
        let v = noise.normal([1, 1, 8, 8], &dev);
        // ReLU and max pooling are piecewise linear: a small step stays on one piece.
        let h = 1e-3;
        let fd = (log_p(x.clone() + v.clone().mul_scalar(h)) - log_p(x.clone() - v.clone().mul_scalar(h))) / (2.0 * h);
        let ad: f64 = g.iter().zip(to_vec(v)).map(|(a, b)| *a as f64 * b as f64).sum();
        assert!((fd - ad).abs() < 2e-2 * ad.abs() + 1e-3, "autodiff {ad} vs finite differences {fd}");
        // The guided score adds exactly that gradient to the network's score.
        let plain = ScoreFn::new(&unet, &sde).eval(x.clone(), 0.4).score();
        assert_close(&guided.forward(x, &t), &(plain + Tensor::from_data(TensorData::new(g, [1, 1, 8, 8]), &dev)), 1e-4);
    }
}
