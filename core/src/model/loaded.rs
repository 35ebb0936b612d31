//! A trained score network as loaded from its card: the U-Net for images or the MLP for
//! points ([`crate::export`] builds it; [`crate::export::load`] also gives it `weights_bytes`).

use super::ScoreModel;
use crate::nn::{Mlp, UNet};
use crate::param::Parameterization;
use burn::module::Module;

/// A loaded score network: the U-Net for images or the MLP for points.
#[derive(Debug)]
pub enum LoadedNet {
    /// `[batch, channels, height, width]` data.
    Image(UNet),
    /// `[batch, dim]` data.
    Point(Mlp),
}

impl LoadedNet {
    /// What the network predicts.
    pub fn parameterization(&self) -> Parameterization {
        match self {
            Self::Image(n) => ScoreModel::parameterization(n),
            Self::Point(n) => ScoreModel::parameterization(n),
        }
    }

    /// Whether the network takes data points of `shape` (a card's `shape`): `[in_channels,
    /// height, width]` with positive sides for the U-Net (it runs at any size), `[dim]` for the MLP.
    pub fn takes_shape(&self, shape: &[usize]) -> bool {
        match self {
            Self::Image(n) => matches!(*shape, [c, h, w] if c == n.config().in_channels && h > 0 && w > 0),
            Self::Point(n) => shape == [n.config().dim],
        }
    }

    /// Number of stored float parameters.
    pub fn num_params(&self) -> usize {
        match self {
            Self::Image(n) => n.num_params(),
            Self::Point(n) => Module::num_params(n),
        }
    }

    /// The number of classes of a class-conditional U-Net (`None`: unconditional).
    pub fn num_classes(&self) -> Option<usize> {
        match self {
            Self::Image(n) => n.config().num_classes,
            Self::Point(_) => None,
        }
    }

    /// The network with gradients to its weights switched off and dropout inactive
    /// (`Module::freeze`): what an evaluation on an autodiff device (a likelihood) needs.
    pub fn freeze(self) -> Self {
        match self {
            Self::Image(n) => Self::Image(n.freeze()),
            Self::Point(n) => Self::Point(n.freeze()),
        }
    }
}
