//! Score parameterizations and the conversions between them.
//!
//! With the perturbation kernel `x_t = m x_0 + s eps` (m, s from [`Sde::marginal`]):
//! - epsilon prediction (Ho et al. 2020): `score = -eps / s`;
//! - x0 prediction: `eps = (x_t - m x0) / s`;
//! - v prediction (Salimans & Ho 2022, eq. in section 4): `v = m eps - s x0`, inverted for any
//!   `m, s` as `x0 = (m x_t - s v) / (m^2 + s^2)`, `eps = (s x_t + m v) / (m^2 + s^2)`;
//! - the score itself (Song & Ermon 2019), and Tweedie's formula (Efron 2011)
//!   `E[x_0 | x_t] = (x_t + s^2 score) / m`.
//!
//! Coefficients are computed in `f64` on the host, either shared by the whole batch (samplers)
//! or one per sample (training losses), and applied by broadcasting.

use crate::sde::Sde;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// What a network's output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = Parameterization::unknown)]
pub enum Parameterization {
    /// The noise `eps` that was added.
    #[default]
    Eps,
    /// The clean sample `x_0`.
    X0,
    /// The velocity `v = m eps - s x_0`.
    V,
    /// The score `grad log p_t(x)`.
    Score,
}

impl Parameterization {
    /// Every parameterization.
    pub const ALL: [Parameterization; 4] = [Self::Eps, Self::X0, Self::V, Self::Score];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        self.into()
    }

    fn unknown(s: &str) -> String {
        crate::names::unknown("parameterization", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// A scalar coefficient shared by the batch or given per sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Coef {
    /// One value for every sample.
    Shared(f64),
    /// One value per sample along the first (batch) dimension.
    PerSample(Vec<f64>),
}

impl Coef {
    /// Applies `f` elementwise to two coefficients of the same kind.
    pub fn zip(&self, other: &Coef, f: impl Fn(f64, f64) -> f64) -> Coef {
        match (self, other) {
            (Coef::Shared(a), Coef::Shared(b)) => Coef::Shared(f(*a, *b)),
            (Coef::PerSample(a), Coef::PerSample(b)) => Coef::PerSample(a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect()),
            (Coef::Shared(a), Coef::PerSample(b)) => Coef::PerSample(b.iter().map(|&b| f(*a, b)).collect()),
            (Coef::PerSample(a), Coef::Shared(b)) => Coef::PerSample(a.iter().map(|&a| f(a, *b)).collect()),
        }
    }

    /// `x * coef`, broadcasting a per-sample coefficient over all but the first dimension.
    pub fn apply<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Coef::Shared(c) => {
                if *c == 1.0 {
                    x
                } else {
                    x.mul_scalar(*c)
                }
            }
            Coef::PerSample(v) => {
                let mut shape = [1usize; D];
                shape[0] = v.len();
                let data: Vec<f32> = v.iter().map(|&c| c as f32).collect();
                let c = Tensor::<D>::from_data(TensorData::new(data, shape), &x.device());
                x * c
            }
        }
    }
}

/// The perturbation kernel's `(m, s)` at the time(s) of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Marginal {
    /// `m(t)`.
    pub mean: Coef,
    /// `s(t)`.
    pub std: Coef,
}

impl Marginal {
    /// Shared by the batch, at time `t`.
    pub fn at(sde: &dyn Sde, t: f64) -> Self {
        let (m, s) = sde.marginal(t);
        Self { mean: Coef::Shared(m), std: Coef::Shared(s) }
    }

    /// One time per sample.
    pub fn per_sample(sde: &dyn Sde, ts: &[f64]) -> Self {
        let (m, s) = ts.iter().map(|&t| sde.marginal(t)).unzip();
        Self { mean: Coef::PerSample(m), std: Coef::PerSample(s) }
    }

    /// `a(m, s) * x + b(m, s) * y`.
    fn comb<const D: usize>(&self, x: Tensor<D>, a: impl Fn(f64, f64) -> f64, y: Tensor<D>, b: impl Fn(f64, f64) -> f64) -> Tensor<D> {
        self.mean.zip(&self.std, a).apply(x) + self.mean.zip(&self.std, b).apply(y)
    }

    /// `x_t = m x_0 + s eps`.
    pub fn perturb<const D: usize>(&self, x0: Tensor<D>, eps: Tensor<D>) -> Tensor<D> {
        self.mean.apply(x0) + self.std.apply(eps)
    }

    /// The noise `eps` implied by `out`, a network output in parameterization `p` at `x_t`.
    pub fn to_eps<const D: usize>(&self, p: Parameterization, x: Tensor<D>, out: Tensor<D>) -> Tensor<D> {
        match p {
            Parameterization::Eps => out,
            Parameterization::X0 => self.comb(x, |_, s| 1.0 / s, out, |m, s| -m / s),
            Parameterization::Score => self.std.zip(&self.std, |s, _| -s).apply(out),
            Parameterization::V => self.comb(x, |m, s| s / (m * m + s * s), out, |m, s| m / (m * m + s * s)),
        }
    }

    /// The clean sample `x_0` implied by `out` (Tweedie's estimate for the score).
    pub fn to_x0<const D: usize>(&self, p: Parameterization, x: Tensor<D>, out: Tensor<D>) -> Tensor<D> {
        match p {
            Parameterization::Eps => self.comb(x, |m, _| 1.0 / m, out, |m, s| -s / m),
            Parameterization::X0 => out,
            Parameterization::Score => self.comb(x, |m, _| 1.0 / m, out, |m, s| s * s / m),
            Parameterization::V => self.comb(x, |m, s| m / (m * m + s * s), out, |m, s| -s / (m * m + s * s)),
        }
    }

    /// The score `grad log p_t(x_t)` implied by `out`.
    pub fn to_score<const D: usize>(&self, p: Parameterization, x: Tensor<D>, out: Tensor<D>) -> Tensor<D> {
        match p {
            Parameterization::Score => out,
            Parameterization::Eps => self.std.zip(&self.std, |s, _| -1.0 / s).apply(out),
            Parameterization::X0 => self.comb(x, |_, s| -1.0 / (s * s), out, |m, s| m / (s * s)),
            Parameterization::V => self.comb(x, |m, s| -1.0 / (m * m + s * s), out, |m, s| -m / (s * (m * m + s * s))),
        }
    }

    /// The velocity `v = m eps - s x0` implied by `out` (Salimans & Ho 2022).
    pub fn to_v<const D: usize>(&self, p: Parameterization, x: Tensor<D>, out: Tensor<D>) -> Tensor<D> {
        match p {
            Parameterization::V => out,
            _ => self.mean.apply(self.to_eps(p, x.clone(), out.clone())) - self.std.apply(self.to_x0(p, x, out)),
        }
    }

    /// `out`, a network output in parameterization `from` at `x_t`, expressed in `to`.
    pub fn convert<const D: usize>(&self, to: Parameterization, from: Parameterization, x: Tensor<D>, out: Tensor<D>) -> Tensor<D> {
        match to {
            Parameterization::Eps => self.to_eps(from, x, out),
            Parameterization::X0 => self.to_x0(from, x, out),
            Parameterization::V => self.to_v(from, x, out),
            Parameterization::Score => self.to_score(from, x, out),
        }
    }

    /// What a network in parameterization `p` should output for `x_t = m x0 + s eps`:
    /// the regression target of a loss in that parameterization.
    pub fn target<const D: usize>(&self, p: Parameterization, x0: Tensor<D>, eps: Tensor<D>) -> Tensor<D> {
        match p {
            Parameterization::Eps => eps,
            Parameterization::X0 => x0,
            Parameterization::Score => self.std.zip(&self.std, |s, _| -1.0 / s).apply(eps),
            Parameterization::V => self.comb(eps, |m, _| m, x0, |_, s| -s),
        }
    }
}

/// The reverse-process variance of an ancestral step: DDPM's two fixed choices or Nichol &
/// Dhariwal's learned range (see [`crate::sampler`]'s ancestral sampler).
///
/// Named `small`, `large`, `learned`; `fixed-small`, `fixed-large` and `learned-range` are
/// accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = Variance::unknown)]
pub enum Variance {
    /// The posterior variance `beta~_t` (optimal for deterministic `x_0`).
    #[default]
    #[serde(alias = "fixed-small")]
    #[strum(to_string = "small", serialize = "fixed-small")]
    Small,
    /// The forward variance `beta_t` (optimal for `x_0 ~ N(0, I)`).
    #[serde(alias = "fixed-large")]
    #[strum(to_string = "large", serialize = "fixed-large")]
    Large,
    /// Learned per element between the two (Nichol & Dhariwal eq. 15); needs a model whose
    /// [`ScoreModel::forward_with_variance`](crate::model::ScoreModel::forward_with_variance)
    /// returns `v`.
    #[serde(alias = "learned-range")]
    #[strum(to_string = "learned", serialize = "learned-range")]
    Learned,
}

impl Variance {
    /// Every variance.
    pub const ALL: [Variance; 3] = [Self::Small, Self::Large, Self::Learned];

    fn unknown(s: &str) -> String {
        crate::names::unknown("variance", s, <Self as strum::VariantNames>::VARIANTS)
    }

    /// The variance to sample a model with: the one `requested`, else the model's `own`
    /// (`learned` for a model trained with a learned variance).
    ///
    /// # Errors
    /// A learned variance requested of a model that has none (field `variance`).
    pub fn resolve(requested: Option<Variance>, own: Variance) -> Result<Variance, crate::error::ConfigError> {
        match requested {
            Some(Variance::Learned) if own != Variance::Learned => Err(crate::error::ConfigError::new(
                "variance",
                format!("small or large, as the model has no learned variance (its variance is {own})"),
                Variance::Learned,
            )),
            Some(v) => Ok(v),
            None => Ok(own),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{noise::NoiseSource, sde::VpSde, test_util::*};

    /// For a known (x0, eps), every parameterization's target converts back to the same
    /// x0, eps and score `-eps / s`: a round trip through each formula.
    #[test]
    fn conversions_round_trip() {
        let dev = device();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let mut noise = NoiseSource::new(0);
        let x0 = noise.normal([4, 3], &dev);
        let eps = noise.normal([4, 3], &dev);
        for marg in [Marginal::at(&sde, 0.37), Marginal::per_sample(&sde, &[0.01, 0.2, 0.6, 0.99])] {
            let x = marg.perturb(x0.clone(), eps.clone());
            let score = marg.std.zip(&marg.std, |s, _| -1.0 / s).apply(eps.clone());
            for p in [Parameterization::Eps, Parameterization::X0, Parameterization::V, Parameterization::Score] {
                let out = marg.target(p, x0.clone(), eps.clone());
                assert_close(&marg.to_eps(p, x.clone(), out.clone()), &eps, 2e-4);
                assert_close(&marg.to_x0(p, x.clone(), out.clone()), &x0, 2e-3);
                assert_close(&marg.to_score(p, x.clone(), out.clone()), &score, 2e-2);
                for q in [Parameterization::Eps, Parameterization::X0, Parameterization::V] {
                    let tol = if q == Parameterization::X0 { 2e-3 } else { 2e-4 };
                    assert_close(&marg.convert(q, p, x.clone(), out.clone()), &marg.target(q, x0.clone(), eps.clone()), tol);
                }
            }
        }
    }

    #[test]
    fn names_are_serde_names() {
        crate::names::serde_agrees(&Parameterization::ALL);
        crate::names::serde_agrees(&Variance::ALL);
        for (alias, v) in [("fixed-small", Variance::Small), ("fixed-large", Variance::Large), ("learned-range", Variance::Learned)] {
            assert_eq!(alias.parse::<Variance>().unwrap(), v);
            assert_eq!(serde_json::from_value::<Variance>(serde_json::json!(alias)).unwrap(), v);
        }
        assert!("medium".parse::<Variance>().unwrap_err().contains("small, large, learned"));
    }

    #[test]
    fn a_requested_variance_wins_but_learned_needs_a_model_that_learned_one() {
        assert_eq!(Variance::resolve(None, Variance::Learned), Ok(Variance::Learned));
        assert_eq!(Variance::resolve(Some(Variance::Large), Variance::Learned), Ok(Variance::Large));
        assert_eq!(Variance::resolve(Some(Variance::Learned), Variance::Learned), Ok(Variance::Learned));
        let e = Variance::resolve(Some(Variance::Learned), Variance::Small).unwrap_err();
        assert_eq!(e.field, "variance");
        assert!(e.to_string().contains("no learned variance") && e.to_string().contains("small"), "{e}");
        assert_eq!(Parameterization::ALL.map(Parameterization::name), ["eps", "x0", "v", "score"]);
        let e = "noise".parse::<Parameterization>().unwrap_err();
        assert_eq!(e, "unknown parameterization `noise`: expected one of eps, x0, v, score");
    }

    #[test]
    fn v_matches_salimans_ho_for_vp() {
        // For VP, m^2 + s^2 = 1 and v = m eps - s x0 (Salimans & Ho 2022).
        let dev = device();
        let sde = VpSde::new(0.1, 20.0).unwrap();
        let marg = Marginal::at(&sde, 0.5);
        let (m, s) = sde.marginal(0.5);
        assert!((m * m + s * s - 1.0).abs() < 1e-12);
        let x0 = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -2.0], [1, 2]), &dev);
        let eps = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, 0.25], [1, 2]), &dev);
        let v = marg.target(Parameterization::V, x0, eps);
        let expect = [m * 0.5 - s * 1.0, m * 0.25 + s * 2.0];
        let got = to_vec(v);
        for (g, e) in got.iter().zip(expect) {
            assert!((*g as f64 - e).abs() < 1e-6);
        }
    }
}
