//! A small residual MLP score network for low-dimensional data (2-D toy densities).
//!
//! The time-conditional MLP of the toy experiments in Song & Ermon 2019 and Song et al. 2021,
//! with a residual stack (He et al. 2016) and SiLU activations (Elfwing et al. 2018):
//! `h_0 = Linear(x) + emb(t)`, `h_{l+1} = h_l + Linear(SiLU(h_l))` for `layers` layers, then
//! `out = Linear(SiLU(h_L))`, where `emb` is a [`TimeEmbedding`] followed by its MLP.

use super::NnError;
use super::embedding::{TimeEmbedder, TimeEmbedding};
use crate::model::ScoreModel;
use crate::param::Parameterization;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

/// Hyper-parameters of an [`Mlp`]; saved as `config.json` beside the weights.
#[derive(Config, Debug, PartialEq)]
pub struct MlpConfig {
    /// Dimension of the data.
    #[config(default = 2)]
    pub dim: usize,
    /// Width of the hidden layers (and of the time features; must be even).
    #[config(default = 128)]
    pub hidden: usize,
    /// Number of residual hidden layers.
    #[config(default = 3)]
    pub layers: usize,
    /// The time features.
    #[config(default = "TimeEmbedding::Fourier { scale: 16.0 }")]
    pub time_embedding: TimeEmbedding,
    /// What the network predicts.
    #[config(default = "Parameterization::Eps")]
    pub parameterization: Parameterization,
}

impl MlpConfig {
    /// Checks every field, naming the first offending one.
    pub fn validate(&self) -> Result<(), NnError> {
        let err = |field: &str, message: String| NnError::Config { field: field.into(), message };
        crate::limits::mlp(self)?;
        if self.dim == 0 {
            return Err(err("dim", "expected a data dimension >= 1, found 0".into()));
        }
        if self.hidden == 0 {
            return Err(err("hidden", "expected a width >= 1, found 0".into()));
        }
        self.time_embedding.validate(self.hidden).map_err(|m| err("time_embedding", m))
    }

    /// Builds the network with freshly initialised weights.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails; [`super::NetworkConfig::build`] returns the
    /// error instead.
    pub fn init(&self, device: &Device) -> Mlp {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        Mlp {
            time: self.time_embedding.init(self.hidden, self.hidden, device),
            input: LinearConfig::new(self.dim, self.hidden).init(device),
            hidden: (0..self.layers).map(|_| LinearConfig::new(self.hidden, self.hidden).init(device)).collect(),
            output: LinearConfig::new(self.hidden, self.dim).init(device),
            config: self.clone(),
        }
    }
}

/// A time-conditional residual MLP (see the [module docs](self)). Built by
/// [`MlpConfig::init`].
#[derive(Module, Debug)]
pub struct Mlp {
    time: TimeEmbedder,
    input: Linear,
    hidden: Vec<Linear>,
    output: Linear,
    #[module(skip)]
    config: MlpConfig,
}

impl Mlp {
    /// The configuration the network was built from.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Evaluates the network.
    ///
    /// # Shapes
    /// - `x`: `[batch, dim]`
    /// - `t`: `batch` times
    /// - output: `[batch, dim]`
    ///
    /// # Panics
    /// If `x` has the wrong width or `t` the wrong length.
    pub fn forward(&self, x: Tensor<2>, t: &[f64]) -> Tensor<2> {
        let [b, d] = x.dims();
        assert_eq!(d, self.config.dim, "expected data of dimension {}, found {d}", self.config.dim);
        assert_eq!(t.len(), b, "expected one time per sample ({b}), found {}", t.len());
        let emb = self.time.forward(t, &x.device()); // [b, hidden]
        let mut h = self.input.forward(x) + emb; // [b, hidden]
        for layer in &self.hidden {
            h = h.clone() + layer.forward(silu(h)); // [b, hidden]
        }
        self.output.forward(silu(h)) // [b, dim]
    }
}

impl ScoreModel<2> for Mlp {
    fn parameterization(&self) -> Parameterization {
        self.config.parameterization
    }

    fn forward(&self, x: Tensor<2>, t: &[f64]) -> Tensor<2> {
        Mlp::forward(self, x, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;
    use crate::test_util::*;

    #[test]
    fn output_shape_and_parameter_count() {
        let dev = device();
        let cfg = MlpConfig::new().with_hidden(16).with_layers(2);
        let net = cfg.init(&dev);
        let x = NoiseSource::new(0).normal([5, 2], &dev);
        let t = [0.1, 0.2, 0.3, 0.4, 0.5];
        assert_eq!(net.forward(x.clone(), &t).dims(), [5, 2]);
        assert_eq!(ScoreModel::forward(&net, x, &t).dims(), [5, 2]);
        // Fourier W (8) + time MLP (16*16+16)*2 + input (2*16+16) + 2 hidden (16*16+16) + output (16*2+2).
        assert_eq!(net.num_params(), 8 + 2 * 272 + 48 + 2 * 272 + 34);
        let sin = MlpConfig::new().with_dim(3).with_hidden(8).with_time_embedding(TimeEmbedding::Sinusoidal { scale: 1000.0 });
        assert_eq!(sin.init(&dev).forward(NoiseSource::new(1).normal([2, 3], &dev), &[0.0, 1.0]).dims(), [2, 3]);
        assert!(MlpConfig::new().with_hidden(7).validate().is_err());
    }
}
