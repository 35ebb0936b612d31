//! A trained score network as loaded from its card: the U-Net for images, the MLP for points or
//! an imported diffusers `UNet2DModel` ([`crate::export`] builds it; [`crate::export::load`] also
//! gives it `weights_bytes`); [`ImageNet`], either image network as one score model of images.

use super::ScoreModel;
use crate::nn::diffusers::DiffusersUNet;
use crate::nn::{Mlp, UNet};
use crate::param::Parameterization;
use burn::module::Module;
use burn::tensor::Tensor;

/// A loaded score network: the U-Net for images, the MLP for points, or diffusers' U-Net.
#[derive(Debug)]
pub enum LoadedNet {
    /// `[batch, channels, height, width]` data.
    Image(UNet),
    /// `[batch, dim]` data.
    Point(Mlp),
    /// `[batch, channels, height, width]` data, through an imported diffusers `UNet2DModel`.
    Diffusers(DiffusersUNet),
}

impl LoadedNet {
    /// What the network predicts.
    pub fn parameterization(&self) -> Parameterization {
        match self {
            Self::Image(n) => ScoreModel::parameterization(n),
            Self::Point(n) => ScoreModel::parameterization(n),
            Self::Diffusers(n) => ScoreModel::parameterization(n),
        }
    }

    /// Whether the network takes data points of `shape` (a card's `shape`): `[in_channels,
    /// height, width]` with positive sides for the U-Net (it runs at any size) and for diffusers'
    /// (sides divisible by `2^(levels - 1)`), `[dim]` for the MLP.
    pub fn takes_shape(&self, shape: &[usize]) -> bool {
        match self {
            Self::Image(n) => matches!(*shape, [c, h, w] if c == n.config().in_channels && h > 0 && w > 0),
            Self::Point(n) => shape == [n.config().dim],
            Self::Diffusers(n) => {
                let m = n.config().side_multiple();
                matches!(*shape, [c, h, w] if c == n.config().in_channels && h > 0 && w > 0 && h % m == 0 && w % m == 0)
            }
        }
    }

    /// The network as a score model of images, if it is one (either U-Net).
    pub fn image_model(&self) -> Option<&dyn ScoreModel<4>> {
        match self {
            Self::Image(n) => Some(n),
            Self::Diffusers(n) => Some(n),
            Self::Point(_) => None,
        }
    }

    /// Number of stored float parameters.
    pub fn num_params(&self) -> usize {
        match self {
            Self::Image(n) => n.num_params(),
            Self::Point(n) => Module::num_params(n),
            Self::Diffusers(n) => n.num_params(),
        }
    }

    /// The number of classes of a class-conditional U-Net (`None`: unconditional).
    pub fn num_classes(&self) -> Option<usize> {
        match self {
            Self::Image(n) => n.config().num_classes,
            Self::Point(_) | Self::Diffusers(_) => None,
        }
    }

    /// The network with gradients to its weights switched off and dropout inactive
    /// (`Module::freeze`): what an evaluation on an autodiff device (a likelihood) needs.
    pub fn freeze(self) -> Self {
        match self {
            Self::Image(n) => Self::Image(n.freeze()),
            Self::Point(n) => Self::Point(n.freeze()),
            Self::Diffusers(n) => Self::Diffusers(n.freeze()),
        }
    }
}

/// An image network of a card, either U-Net ([`LoadedNet::Image`], the core's, or
/// [`LoadedNet::Diffusers`], an imported diffusers `UNet2DModel`; never an MLP), in inference
/// mode (`Module::valid`: dropout off), as a score model of `[batch, c, h, w]` images: what
/// every image sampler and inverse-problem method runs, DPS included. DPS differentiates
/// through either network the same way ([`crate::inverse::dps`]): `x_i` is lifted onto the
/// autodiff device and the weights take part as constants.
#[derive(Debug)]
pub struct ImageNet(LoadedNet);

impl ImageNet {
    /// The image network of `net` in inference mode; `Err` gives an MLP back.
    pub fn new(net: LoadedNet) -> Result<Self, LoadedNet> {
        match net {
            LoadedNet::Image(n) => Ok(Self(LoadedNet::Image(n.valid()))),
            LoadedNet::Diffusers(n) => Ok(Self(LoadedNet::Diffusers(n.valid()))),
            point @ LoadedNet::Point(_) => Err(point),
        }
    }

    /// The network as loaded.
    pub fn net(&self) -> &LoadedNet {
        &self.0
    }

    /// The core's U-Net, or `None` for an imported diffusers network (what class labels and
    /// guidance need).
    pub fn unet(&self) -> Option<&UNet> {
        match &self.0 {
            LoadedNet::Image(n) => Some(n),
            LoadedNet::Point(_) | LoadedNet::Diffusers(_) => None,
        }
    }

    /// Whether the network is an imported diffusers `UNet2DModel`.
    pub fn is_imported(&self) -> bool {
        matches!(self.0, LoadedNet::Diffusers(_))
    }

    /// Number of stored float parameters.
    pub fn num_params(&self) -> usize {
        self.0.num_params()
    }

    /// What the memory estimates ([`crate::limits::sampling_memory`]) read of the network.
    pub fn layout(&self) -> crate::limits::UNetLayout {
        match &self.0 {
            LoadedNet::Image(n) => n.config().into(),
            LoadedNet::Diffusers(n) => n.config().into(),
            LoadedNet::Point(_) => unreachable!("an ImageNet holds an image network"),
        }
    }

    fn model(&self) -> &dyn ScoreModel<4> {
        self.0.image_model().expect("an ImageNet holds an image network")
    }
}

impl ScoreModel<4> for ImageNet {
    fn parameterization(&self) -> Parameterization {
        self.model().parameterization()
    }

    fn forward(&self, x: Tensor<4>, t: &[f64]) -> Tensor<4> {
        self.model().forward(x, t)
    }

    fn forward_with_variance(&self, x: Tensor<4>, t: &[f64]) -> (Tensor<4>, Option<Tensor<4>>) {
        self.model().forward_with_variance(x, t)
    }
}
