//! The forward process's posterior `q(x_s | x_t, x_0)` for `s < t`, written from the marginals
//! at the two times (Ho et al. 2020, eq. 6-7, for any SDE): what DDPM ancestral sampling, DDIM,
//! DPS and the variational bound ([`crate::likelihood::vlb`]) share.
//!
//! With `a = m_t / m_s` and `v = s_t^2 - a^2 s_s^2` (the forward transition), the posterior is
//! `N((a s_s^2 / s_t^2) x_t + (m_s v / s_t^2) x0, (v s_s^2 / s_t^2) I)`: DDPM's `mu~_t` and
//! `beta~_t` ("fixed small") for VP; "fixed large" uses `v = beta_t` instead. A learned
//! variance interpolates the two per element (Nichol & Dhariwal 2021, eq. 15; see
//! [`crate::sampler`]'s ancestral sampler for the reference code's conventions). At `s = 0`,
//! where `beta~ = 0`, the log-variance is clipped to the `beta~` of one step of the same length
//! above it, as the reference code's `posterior_log_variance_clipped`.

use super::Sde;
use crate::param::{Coef, Variance};
use burn::tensor::Tensor;

/// The forward process's posterior `q(x_s | x_t, x_0) = N(coef_x x_t + coef_x0 x_0, var_small I)`
/// for `s < t`, and the variances the reverse step may use (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    /// `a s_s^2 / s_t^2`.
    pub coef_x: f64,
    /// `m_s v / s_t^2`.
    pub coef_x0: f64,
    /// `beta~ = v s_s^2 / s_t^2`, the posterior variance ("fixed small").
    pub var_small: f64,
    /// `beta = v`, the forward transition's variance from `s` to `t` ("fixed large").
    pub var_large: f64,
    /// `log beta~`, at `s = 0` clipped to one step above (see the [module docs](self)).
    pub log_var_small_clipped: f64,
}

impl Posterior {
    /// The posterior from `t` to `s < t` under `sde`.
    pub fn new(sde: &dyn Sde, t: f64, s: f64) -> Self {
        let (ms, ss) = sde.marginal(s);
        let (_, st) = sde.marginal(t);
        let (a, std_ts) = sde.transition(s, t);
        let v = std_ts * std_ts;
        let var_small = v * ss * ss / (st * st);
        let log_var_small_clipped = if var_small > 0.0 {
            var_small.ln()
        } else if t < sde.t_max() {
            let up = (2.0 * t - s).min(sde.t_max());
            Self::new(sde, up, t).log_var_small_clipped
        } else {
            // A single step from T to 0: nothing above; the range collapses to beta.
            v.ln()
        };
        Self { coef_x: a * ss * ss / (st * st), coef_x0: ms * v / (st * st), var_small, var_large: v, log_var_small_clipped }
    }

    /// The standard deviation of a fixed-variance step (`Small`: `sqrt(beta~)`, `Large`:
    /// `sqrt(beta)`).
    ///
    /// # Panics
    /// For [`Variance::Learned`], whose variance depends on the model's output (use
    /// [`Posteriors::model_log_variance`]).
    pub fn fixed_std(&self, variance: Variance) -> f64 {
        match variance {
            Variance::Small => self.var_small.sqrt(),
            Variance::Large => self.var_large.sqrt(),
            Variance::Learned => {
                panic!("a learned variance depends on the model output, not on the posterior alone")
            }
        }
    }
}

/// The posteriors of a batch, one shared by all samples or one per sample, applied to tensors
/// by broadcasting (as [`Coef`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Posteriors {
    posteriors: Vec<Posterior>,
    shared: bool,
}

impl Posteriors {
    /// One posterior from `t` to `s` for the whole batch.
    pub fn shared(sde: &dyn Sde, t: f64, s: f64) -> Self {
        Self { posteriors: vec![Posterior::new(sde, t, s)], shared: true }
    }

    /// Sample `i` goes from `ts[i]` to `ss[i]`.
    pub fn per_sample(sde: &dyn Sde, ts: &[f64], ss: &[f64]) -> Self {
        Self { posteriors: ts.iter().zip(ss).map(|(&t, &s)| Posterior::new(sde, t, s)).collect(), shared: false }
    }

    fn coef(&self, f: impl Fn(&Posterior) -> f64) -> Coef {
        if self.shared { Coef::Shared(f(&self.posteriors[0])) } else { Coef::PerSample(self.posteriors.iter().map(f).collect()) }
    }

    /// The posterior mean `coef_x x_t + coef_x0 x_0`.
    ///
    /// # Shapes
    /// - `x_t`, `x0`, output: `[batch, ...]`
    pub fn mean<const D: usize>(&self, x_t: Tensor<D>, x0: Tensor<D>) -> Tensor<D> {
        self.coef(|p| p.coef_x).apply(x_t) + self.coef(|p| p.coef_x0).apply(x0)
    }

    /// `log beta~` per element (clipped at `s = 0`): the true posterior's log-variance.
    pub fn log_var_small<const D: usize>(&self, like: &Tensor<D>) -> Tensor<D> {
        self.coef(|p| p.log_var_small_clipped).apply(like.ones_like())
    }

    /// The reverse step's log-variance per element.
    ///
    /// - `Small`: `log beta~` (clipped at `s = 0`);
    /// - `Large`: `log beta`, except at `s = 0` where, as in the reference code, the clipped
    ///   `log beta~` (a better decoder; it only matters for the bound's last term);
    /// - `Learned`: `f log beta + (1 - f) log beta~` with `f = (v + 1) / 2` (eq. 15).
    ///
    /// # Shapes
    /// - `v`, `like`, output: `[batch, ...]`
    ///
    /// # Panics
    /// For `Learned` without `v`.
    pub fn model_log_variance<const D: usize>(&self, variance: Variance, v: Option<Tensor<D>>, like: &Tensor<D>) -> Tensor<D> {
        match variance {
            Variance::Small => self.log_var_small(like),
            Variance::Large => {
                let c = self.coef(|p| if p.var_small > 0.0 { p.var_large.ln() } else { p.log_var_small_clipped });
                c.apply(like.ones_like())
            }
            Variance::Learned => {
                let v = v.expect("variance = learned needs the model's variance output v (a U-Net with out_channels = 2 in_channels)");
                let frac = v.add_scalar(1.0).mul_scalar(0.5);
                let range = self.coef(|p| p.var_large.ln() - p.log_var_small_clipped);
                self.log_var_small(like) + range.apply(frac)
            }
        }
    }

    /// The standard deviation of a learned-variance step per element, eq. (15) written as
    /// `sqrt(beta~)^(1 - f) sqrt(beta)^f` (`beta~` clipped at `s = 0`): at `v = -1` and `v = 1`
    /// it is bitwise the fixed small and large standard deviations (powers 0 and 1 are exact).
    ///
    /// # Shapes
    /// - `v`, output: `[batch, ...]`
    pub fn learned_std<const D: usize>(&self, v: Tensor<D>) -> Tensor<D> {
        let frac = v.add_scalar(1.0).mul_scalar(0.5);
        let ones = frac.ones_like();
        let small = self.coef(|p| if p.var_small > 0.0 { p.var_small.sqrt() } else { (0.5 * p.log_var_small_clipped).exp() }).apply(ones.clone());
        let large = self.coef(|p| p.var_large.sqrt()).apply(ones);
        small.powf(frac.clone().neg().add_scalar(1.0)) * large.powf(frac)
    }
}

impl From<Posterior> for Posteriors {
    /// One posterior shared by the whole batch.
    fn from(p: Posterior) -> Self {
        Self { posteriors: vec![p], shared: true }
    }
}
