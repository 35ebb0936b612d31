//! Training objectives.
//!
//! All losses are means over the batch of a per-sample sum over data dimensions, and take the
//! model's output in any [`Parameterization`](crate::param::Parameterization), converted to the
//! score through the SDE's marginal: the parameterization only changes what the network's head
//! predicts, never the objective.
//!
//! - [`dsm`]: continuous-time denoising score matching (Song et al. 2021, eq. 7) with
//!   `lambda(t) = s(t)^2` or the likelihood weighting `g(t)^2` (Song et al. 2021b, eq. 9);
//! - [`ddpm`]: Ho et al.'s `L_simple` on the discrete grid;
//! - [`ncsn`]: NCSN's annealed DSM over geometric sigmas (Song & Ermon 2019, eq. 5-6);
//! - [`ssm`]: sliced score matching (Song et al. 2019), Rademacher or Gaussian projections,
//!   plain or variance-reduced.

pub mod ddpm;
pub mod dsm;
pub mod ncsn;
pub mod ssm;

pub use ddpm::ddpm_simple_loss;
pub use dsm::{dsm_at, dsm_loss, Weighting};
pub use ncsn::ncsn_loss;
pub use ssm::{ssm_loss, Projection};

use burn::tensor::Tensor;

/// Per-sample squared norm over all but the batch dimension: `[batch, ...] -> [batch, 1]`.
pub(crate) fn sq_norm<const D: usize>(x: Tensor<D>) -> Tensor<2> {
    let b = x.dims()[0];
    x.reshape([b as i32, -1]).square().sum_dim(1)
}

/// `mean_i c_i v_i` for per-sample values `v: [batch, 1]` and host coefficients `c`.
pub(crate) fn weighted_mean(v: Tensor<2>, c: &[f64]) -> Tensor<1> {
    crate::param::Coef::PerSample(c.to_vec()).apply(v).mean()
}
