//! How close a reconstruction is to the truth: PSNR and SSIM on the data's `[-1, 1]` range
//! ([`crate::metrics`]), for phase retrieval after removing its trivial ambiguities (shift and
//! 180-degree rotation, [`align_phase`]), with whether it counts as recovered
//! ([`RECOVERED_PSNR_DB`]).

use super::{RECOVERED_PSNR_DB, TaskKind, align_phase};
use crate::metrics::{SIGNED_RANGE, psnr, ssim};
use serde::Serialize;

/// PSNR and SSIM of one reconstruction; for phase retrieval after alignment, with whether it
/// counts as recovered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    /// PSNR in dB (data range 2).
    pub psnr: f64,
    /// Mean SSIM.
    pub ssim: f64,
    /// Phase retrieval: PSNR at least [`RECOVERED_PSNR_DB`] after alignment.
    pub recovered: Option<bool>,
}

/// Scores `result` against `truth`, one image `[c, h, w]` each.
pub fn score(kind: TaskKind, result: &[f32], truth: &[f32], shape: [usize; 3]) -> Scores {
    let aligned;
    let result = if kind == TaskKind::PhaseRetrieval {
        aligned = align_phase(result, truth, shape);
        &aligned[..]
    } else {
        result
    };
    let p = psnr(result, truth, SIGNED_RANGE);
    Scores { psnr: p, ssim: ssim(result, truth, shape, SIGNED_RANGE), recovered: (kind == TaskKind::PhaseRetrieval).then_some(p >= RECOVERED_PSNR_DB) }
}

impl Scores {
    /// The scores of every image of a batch (`results` and `truths` of images `[c, h, w]`).
    pub fn of_batch(kind: TaskKind, results: &[f32], truths: &[f32], shape: [usize; 3]) -> Vec<Scores> {
        let len: usize = shape.iter().product();
        results.chunks(len).zip(truths.chunks(len)).map(|(r, t)| score(kind, r, t, shape)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_truth_scores_infinite_and_phase_retrieval_is_aligned() {
        let shape = [1, 12, 12];
        let truth: Vec<f32> = (0..144).map(|i| (i as f32 / 72.0) - 1.0).collect();
        let s = score(TaskKind::Inpaint, &truth, &truth, shape);
        assert!(s.psnr.is_infinite() && (s.ssim - 1.0).abs() < 1e-9 && s.recovered.is_none());
        // The image rotated by 180 degrees is the same up to phase retrieval's ambiguities.
        let rotated: Vec<f32> = truth.iter().rev().copied().collect();
        let s = score(TaskKind::PhaseRetrieval, &rotated, &truth, shape);
        assert_eq!(s.recovered, Some(true), "{s:?}");
        assert!(score(TaskKind::Inpaint, &rotated, &truth, shape).psnr < RECOVERED_PSNR_DB);
        assert_eq!(Scores::of_batch(TaskKind::Inpaint, &[truth.clone(), rotated].concat(), &[truth.clone(), truth].concat(), shape).len(), 2);
    }
}
