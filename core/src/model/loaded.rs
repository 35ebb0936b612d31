//! A trained score network as loaded from its card: the U-Net for images, the MLP for points or
//! an imported diffusers `UNet2DModel` ([`crate::export`] builds it; [`crate::export::load`] also
//! gives it `weights_bytes`).

use super::ScoreModel;
use crate::nn::diffusers::DiffusersUNet;
use crate::nn::{Mlp, UNet};
use crate::param::Parameterization;
use burn::module::Module;

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
