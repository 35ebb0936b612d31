//! Min-SNR-gamma loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
//! Weighting Strategy", section 3.4 and eq. 9-11).
//!
//! With `SNR(t) = m(t)^2 / s(t)^2`, an error `d` in the predicted `x0` is an error of norm
//! `||d_eps||^2 = SNR ||d||^2` in `eps`, `||d_v||^2 = ((m^2 + s^2) / s)^2 ||d||^2` in
//! `v = m eps - s x0`, and `||d_score||^2 = (SNR / s^2) ||d||^2` in the score. Min-SNR weights the
//! loss *in `x0`* by `min(SNR, gamma)`, so measured in another parameterization the weight is
//! `min(SNR, gamma)` divided by that factor:
//!
//! - `eps`: `min(SNR, gamma) / SNR = min(1, gamma / SNR)` (the paper's eq. for eps-prediction),
//! - `v`: `min(SNR, gamma) s^2 / (m^2 + s^2)^2`, which on a VP SDE (`m^2 + s^2 = 1`) is the
//!   paper's `min(SNR, gamma) / (SNR + 1)`,
//! - `x0`: `min(SNR, gamma)`,
//! - score: `min(1, gamma / SNR) s^2`.
//!
//! Every form is finite at `SNR = 0` (`m = 0`, a zero-terminal-SNR schedule): 1 for `eps`, 0 for
//! `v` and `x0`. Hang et al. use `gamma = 5`.

use crate::param::Parameterization;
use crate::sde::Sde;

/// Hang et al.'s `gamma`.
pub const DEFAULT_GAMMA: f64 = 5.0;

/// The per-sample weights of a loss measured in `target` at the times `ts`: Min-SNR-`gamma`
/// where `gamma` is given, else 1.
pub fn min_snr_weights(sde: &dyn Sde, ts: &[f64], target: Parameterization, gamma: Option<f64>) -> Vec<f64> {
    ts.iter()
        .map(|&t| match gamma {
            None => 1.0,
            Some(gamma) => {
                let (m, s) = sde.marginal(t);
                min_snr_weight(target, m, s, gamma)
            }
        })
        .collect()
}

/// The Min-SNR-`gamma` weight of a loss measured in `target` at the marginal `(m, s)`.
pub fn min_snr_weight(target: Parameterization, mean: f64, std: f64, gamma: f64) -> f64 {
    let (m2, s2) = (mean * mean, std * std);
    // min(1, gamma / SNR) = min(1, gamma s^2 / m^2), finite as m -> 0.
    let eps_weight = if gamma * s2 >= m2 { 1.0 } else { gamma * s2 / m2 };
    match target {
        Parameterization::Eps => eps_weight,
        Parameterization::X0 => (m2 / s2).min(gamma),
        Parameterization::V => (m2 / s2).min(gamma) * s2 / (m2 + s2).powi(2),
        Parameterization::Score => eps_weight * s2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a VP marginal with SNR `r`: `m^2 = r / (1 + r)`, `s^2 = 1 / (1 + r)`.
    fn vp(snr: f64) -> (f64, f64) {
        ((snr / (1.0 + snr)).sqrt(), (1.0 / (1.0 + snr)).sqrt())
    }

    /// The paper's forms at known SNRs, SNR = 0 included.
    #[test]
    fn weights_at_known_snrs() {
        let g = 5.0;
        for (snr, eps, v) in [(0.0, 1.0, 0.0), (0.5, 1.0, 0.5 / 1.5), (5.0, 1.0, 5.0 / 6.0), (20.0, 0.25, 5.0 / 21.0), (1e4, 5e-4, 5.0 / 10001.0)] {
            let (m, s) = vp(snr);
            let got_eps = min_snr_weight(Parameterization::Eps, m, s, g);
            let got_v = min_snr_weight(Parameterization::V, m, s, g);
            assert!((got_eps - eps).abs() < 1e-12, "eps at SNR {snr}: {got_eps} vs {eps}");
            assert!((got_v - v).abs() < 1e-12, "v at SNR {snr}: {got_v} vs {v}");
            assert!((min_snr_weight(Parameterization::X0, m, s, g) - snr.min(g)).abs() < 1e-9);
        }
        assert_eq!(min_snr_weight(Parameterization::Eps, 0.0, 1.0, g), 1.0);
        assert_eq!(min_snr_weight(Parameterization::V, 0.0, 1.0, g), 0.0);
        assert!(min_snr_weight(Parameterization::Score, 0.0, 1.0, g).is_finite());
    }

    /// Weight times the factor that turns an x0 error into one in `target` is `min(SNR, gamma)`
    /// for every target, also off the VP family (a VE marginal, `m = 1`).
    #[test]
    fn every_target_weights_the_x0_error_by_min_snr() {
        for (m, s) in [vp(0.3), vp(7.0), (1.0, 0.2), (1.0, 3.0), (0.6, 0.4)] {
            let snr = m * m / (s * s);
            let factor = |p| match p {
                Parameterization::Eps => snr,
                Parameterization::X0 => 1.0,
                Parameterization::V => ((m * m + s * s) / s).powi(2),
                Parameterization::Score => snr / (s * s),
            };
            for p in [Parameterization::Eps, Parameterization::X0, Parameterization::V, Parameterization::Score] {
                let w = min_snr_weight(p, m, s, 5.0) * factor(p);
                assert!((w - snr.min(5.0)).abs() < 1e-9 * snr.max(1.0), "{p:?} at (m, s) = ({m}, {s}): {w}");
            }
        }
    }
}
