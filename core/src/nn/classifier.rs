//! A small CNN image classifier: the feature space of the Frechet distance and the judge of
//! class confidence and diversity in `native-cli eval`.
//!
//! LeNet-style (LeCun et al. 1998) with ReLU and max pooling, sized for 28x28x1:
//! `conv3x3(1 -> c1) -> ReLU -> maxpool2 -> conv3x3(c1 -> c2) -> ReLU -> maxpool2 -> flatten ->
//! Linear(c2 * 7 * 7 -> hidden) -> ReLU` gives the features `phi(x)` (`[n, hidden]`), and
//! `Linear(hidden -> classes)` the logits. The Frechet distance is computed between Gaussians
//! fitted to `phi` of two image sets, as FID does with Inception's pool features (Heusel et al.
//! 2017, eq. 6); a classifier trained on the data set itself is the usual stand-in for MNIST.
//!
//! With [`ClassifierConfig::time_embedding`] set, the network also takes a time `t` (one per
//! image) whose embedding is added before the hidden ReLU: a noise-conditional classifier
//! `p_t(y | x_t)` for classifier guidance (Song et al. 2021, sec. 5 and appendix I.4;
//! Dhariwal & Nichol 2021). Without it, `t` must be `None`.

use super::embedding::{TimeEmbedder, TimeEmbedding};
use super::{NetworkConfig, NnError};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

/// Hyper-parameters of a [`Classifier`]; saved in `classifier.json` beside the weights.
///
/// The defaults (32 and 64 channels, 128 features, 10 classes) give 421 642 parameters.
#[derive(Config, Debug, PartialEq)]
pub struct ClassifierConfig {
    /// Channels of the input images.
    #[config(default = 1)]
    pub in_channels: usize,
    /// Image height and width (square; must be divisible by 4).
    #[config(default = 28)]
    pub image_size: usize,
    /// Channels of the first convolution.
    #[config(default = 32)]
    pub channels1: usize,
    /// Channels of the second convolution.
    #[config(default = 64)]
    pub channels2: usize,
    /// Width of the penultimate layer: the dimension of the feature space.
    #[config(default = 128)]
    pub hidden: usize,
    /// Number of classes.
    #[config(default = 10)]
    pub classes: usize,
    /// Time features for a noise-conditional classifier (`None`: a plain classifier of clean
    /// images).
    pub time_embedding: Option<TimeEmbedding>,
}

impl ClassifierConfig {
    /// Checks every field, naming the first offending one.
    pub fn validate(&self) -> Result<(), NnError> {
        let err = |field: &str, message: String| NnError::Config { field: field.into(), message };
        for (field, v) in [("in_channels", self.in_channels), ("channels1", self.channels1), ("channels2", self.channels2), ("hidden", self.hidden)] {
            if v == 0 {
                return Err(err(field, "expected at least 1, found 0".into()));
            }
        }
        if self.classes < 2 {
            return Err(err("classes", format!("expected at least 2 classes, found {}", self.classes)));
        }
        if self.image_size == 0 || !self.image_size.is_multiple_of(4) {
            return Err(err("image_size", format!("expected a positive multiple of 4 (two 2x2 poolings), found {}", self.image_size)));
        }
        if let Some(te) = self.time_embedding {
            te.validate(self.hidden).map_err(|m| err("time_embedding", m))?;
        }
        crate::limits::classifier(self)?;
        Ok(())
    }

    /// Length of the flattened map after the second pooling, `channels2 * (image_size / 4)^2`.
    pub fn flat_features(&self) -> usize {
        self.channels2 * (self.image_size / 4) * (self.image_size / 4)
    }

    /// Builds the network with freshly initialised weights.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails; [`NetworkConfig::build`] returns the error instead.
    pub fn init(&self, device: &Device) -> Classifier {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let conv = |cin, cout| Conv2dConfig::new([cin, cout], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device);
        Classifier {
            conv1: conv(self.in_channels, self.channels1),
            conv2: conv(self.channels1, self.channels2),
            dense: LinearConfig::new(self.flat_features(), self.hidden).init(device),
            time: self.time_embedding.map(|te| te.init(self.hidden, self.hidden, device)),
            output: LinearConfig::new(self.hidden, self.classes).init(device),
            config: self.clone(),
        }
    }
}

impl NetworkConfig for ClassifierConfig {
    type Net = Classifier;
    fn build(&self, device: &Device) -> Result<Classifier, NnError> {
        self.validate()?;
        Ok(self.init(device))
    }
}

/// The CNN classifier (see the [module docs](self)). Built by [`ClassifierConfig::init`].
#[derive(Module, Debug)]
pub struct Classifier {
    conv1: Conv2d,
    conv2: Conv2d,
    dense: Linear,
    time: Option<TimeEmbedder>,
    output: Linear,
    #[module(skip)]
    config: ClassifierConfig,
}

/// Features, logits and predicted classes of a set of images under a [`Classifier`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierStats {
    /// Penultimate-layer features, row-major `[n, dim]`, in `f64`.
    pub features: Vec<f64>,
    /// Feature dimension (the config's `hidden`).
    pub dim: usize,
    /// Class logits, row-major `[n, classes]`.
    pub logits: Vec<f64>,
    /// Number of classes.
    pub classes: usize,
    /// Arg-max class of each image.
    pub predicted: Vec<usize>,
}

impl Classifier {
    /// The configuration the network was built from.
    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// The penultimate layer `phi(x)`, after its ReLU.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, image_size, image_size]`, pixels in `[-1, 1]`
    /// - `t`: `batch` times when the config has a time embedding, else `None`
    /// - output: `[batch, hidden]`
    ///
    /// # Panics
    /// If `x` has the wrong shape, or `t` is given to a plain classifier (or missing for a
    /// noise-conditional one, or of the wrong length).
    pub fn features(&self, x: Tensor<4>, t: Option<&[f64]>) -> Tensor<2> {
        let c = &self.config;
        let [b, ch, h, w] = x.dims();
        let device = x.device();
        assert!(
            ch == c.in_channels && h == c.image_size && w == c.image_size,
            "expected images [batch, {}, {}, {}], found [{b}, {ch}, {h}, {w}]",
            c.in_channels,
            c.image_size,
            c.image_size
        );
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let x = pool.forward(relu(self.conv1.forward(x))); // [b, c1, h/2, w/2]
        let x = pool.forward(relu(self.conv2.forward(x))); // [b, c2, h/4, w/4]
        let mut z = self.dense.forward(x.reshape([b, c.flat_features()])); // [b, hidden]
        match (&self.time, t) {
            (Some(time), Some(t)) => {
                assert_eq!(t.len(), b, "expected one time per image ({b}), found {}", t.len());
                z = z + time.forward(t, &device); // [b, hidden]
            }
            (None, None) => {}
            (Some(_), None) => panic!("this noise-conditional classifier needs a time per image"),
            (None, Some(_)) => panic!("this classifier has no time input"),
        }
        relu(z)
    }

    /// The class logits.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, image_size, image_size]`
    /// - output: `[batch, classes]`
    pub fn forward(&self, x: Tensor<4>, t: Option<&[f64]>) -> Tensor<2> {
        self.output.forward(self.features(x, t))
    }

    /// Mean cross-entropy `-1/n sum_i log softmax(f(x_i))_{y_i}` of the logits against `labels`.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, image_size, image_size]`, `labels`: `batch` classes
    /// - output: `[1]`
    pub fn cross_entropy(&self, x: Tensor<4>, t: Option<&[f64]>, labels: &[usize]) -> Tensor<1> {
        let logits = self.forward(x, t); // [b, classes]
        let [b, k] = logits.dims();
        assert_eq!(labels.len(), b, "expected one label per image ({b}), found {}", labels.len());
        let mut one_hot = vec![0f32; b * k];
        for (i, &y) in labels.iter().enumerate() {
            assert!(y < k, "label {y} at {i} is not a class in 0..{k}");
            one_hot[i * k + y] = 1.0;
        }
        let one_hot = Tensor::<2>::from_data(TensorData::new(one_hot, [b, k]), &logits.device());
        let log_p = burn::tensor::activation::log_softmax(logits, 1); // [b, classes]
        (log_p * one_hot).sum().neg().div_scalar(b as f64)
    }

    /// Features, logits and predicted classes of `n` clean images given as
    /// row-major `[n, in_channels, image_size, image_size]` values in `[-1, 1]`, evaluated
    /// `batch` at a time on `device` (a plain, non-autodiff device). Plain classifiers only.
    pub fn stats(&self, images: &[f32], batch: usize, device: &Device) -> ClassifierStats {
        let c = &self.config;
        let len = c.in_channels * c.image_size * c.image_size;
        assert_eq!(images.len() % len, 0, "expected a whole number of {len}-value images, found {} values", images.len());
        let (dim, classes) = (c.hidden, c.classes);
        let mut out = ClassifierStats { features: Vec::new(), dim, logits: Vec::new(), classes, predicted: Vec::new() };
        for chunk in images.chunks(batch.max(1) * len) {
            let b = chunk.len() / len;
            let x = Tensor::<4>::from_data(TensorData::new(chunk.to_vec(), [b, c.in_channels, c.image_size, c.image_size]), device);
            let phi = self.features(x, None); // [b, hidden]
            let logits = self.output.forward(phi.clone()); // [b, classes]
            out.features.extend(phi.into_data().try_to_vec::<f32>().expect("f32 features").into_iter().map(f64::from));
            let logits: Vec<f64> = logits.into_data().try_to_vec::<f32>().expect("f32 logits").into_iter().map(f64::from).collect();
            for row in logits.chunks_exact(classes) {
                out.predicted.push(row.iter().enumerate().fold(0, |a, (i, &v)| if v > row[a] { i } else { a }));
            }
            out.logits.extend(logits);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{load_burnpack, save_burnpack};
    use crate::noise::NoiseSource;
    use crate::test_util::*;

    #[test]
    fn shapes_and_parameter_count() {
        let dev = device();
        let cfg = ClassifierConfig::new();
        let net = cfg.init(&dev);
        let x = NoiseSource::new(0).normal([3, 1, 28, 28], &dev);
        assert_eq!(net.features(x.clone(), None).dims(), [3, 128]);
        assert_eq!(net.forward(x, None).dims(), [3, 10]);
        // conv1 (9 + 1) * 32, conv2 (9 * 32 + 1) * 64, dense (3136 + 1) * 128, output (128 + 1) * 10.
        assert_eq!(net.num_params(), 320 + 18_496 + 401_536 + 1_290);
        let noisy = cfg.clone().with_time_embedding(Some(TimeEmbedding::Fourier { scale: 16.0 })).init(&dev);
        let x = NoiseSource::new(1).normal([2, 1, 28, 28], &dev);
        assert_eq!(noisy.forward(x, Some(&[0.1, 0.9])).dims(), [2, 10]);
        assert!(cfg.clone().with_image_size(30).validate().is_err());
        assert!(cfg.with_classes(1).validate().is_err());
    }

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_k() {
        let dev = device();
        let mut net = ClassifierConfig::new().with_classes(4).init(&dev);
        // Zero output weights and bias: every logit is 0, so the loss is ln 4 for any label.
        net.output = LinearConfig::new(128, 4).with_initializer(burn::nn::Initializer::Zeros).init(&dev);
        let x = NoiseSource::new(2).normal([5, 1, 28, 28], &dev);
        let l = net.cross_entropy(x, None, &[0, 1, 2, 3, 0]).into_scalar::<f32>();
        assert!((l as f64 - 4f64.ln()).abs() < 1e-6, "{l}");
    }

    #[test]
    fn burnpack_round_trip_is_bitwise_and_strict() {
        let dev = device();
        let dir = temp_dir("classifier");
        let cfg = ClassifierConfig::new().with_channels1(8).with_channels2(16).with_hidden(32);
        let net = cfg.init(&dev);
        let path = dir.join("classifier.bpk");
        save_burnpack(&net, &path).unwrap();
        let loaded = load_burnpack(&cfg, &path, &dev).unwrap();
        let x = NoiseSource::new(3).normal([2, 1, 28, 28], &dev);
        assert_eq!(to_vec(net.forward(x.clone(), None)), to_vec(loaded.forward(x.clone(), None)));
        let images = to_vec(x.clone());
        let (a, b) = (net.stats(&images, 2, &dev), loaded.stats(&images, 2, &dev));
        assert_eq!(a, b);
        // One image at a time: the same up to the kernels' float rounding.
        let c = net.stats(&images, 1, &dev);
        assert_eq!(c.predicted, a.predicted);
        assert!(c.logits.iter().zip(&a.logits).all(|(x, y)| (x - y).abs() < 1e-5));
        assert_eq!(a.features.len(), 2 * 32);
        let e = load_burnpack(&cfg.clone().with_hidden(64), &path, &dev).unwrap_err();
        assert!(matches!(e, NnError::Architecture { .. }), "{e}");
        let e = load_burnpack(&cfg.with_time_embedding(Some(TimeEmbedding::Fourier { scale: 16.0 })), &path, &dev).unwrap_err();
        assert!(matches!(e, NnError::Architecture { .. }) && e.to_string().contains("time"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
