//! The named inverse problems and their operators, with defaults sized for 28x28 images.
//!
//! | task | operator | default |
//! |---|---|---|
//! | `inpaint` | [`Mask`] | the centred box of half the side missing |
//! | `super-resolution` | [`Bicubic`] or [`AvgPool`] | bicubic x4 |
//! | `deblur` | Gaussian [`Blur`] | 9x9, sigma 1.5 px |
//! | `motion-deblur` | motion [`Blur`] | 9x9, intensity 0.5, seed 0 |
//! | `colorize` | [`Grayscale`] | channel mean (3-channel images only) |
//! | `phase-retrieval` | [`FourierMagnitude`] | oversampling 2 |

use super::{AvgPool, BaselineKind, Bicubic, Blur, FourierMagnitude, Grayscale, LinearOperator, Mask, Operator};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// An inverse problem, by its command-line name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = TaskKind::unknown)]
pub enum TaskKind {
    /// Fill missing pixels.
    Inpaint,
    /// Undo downsampling.
    SuperResolution,
    /// Undo a Gaussian blur.
    Deblur,
    /// Undo a motion blur.
    MotionDeblur,
    /// Colour a grey-level image.
    Colorize,
    /// Recover an image from its Fourier magnitude.
    PhaseRetrieval,
}

impl TaskKind {
    /// Every task.
    pub const ALL: [TaskKind; 6] = [Self::Inpaint, Self::SuperResolution, Self::Deblur, Self::MotionDeblur, Self::Colorize, Self::PhaseRetrieval];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        self.into()
    }

    fn unknown(s: &str) -> String {
        crate::names::unknown("task", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// Which pixels an inpainting task observes.
#[derive(Debug, Clone, PartialEq)]
pub enum MaskSpec {
    /// All but the centred box of half the image's side.
    CenterBox,
    /// All but the box `[top, left, height, width]`.
    Box([usize; 4]),
    /// Each pixel missing with probability `missing`, from `seed`.
    Random {
        /// Probability of a pixel being missing.
        missing: f64,
        /// Seed of the draw.
        seed: u64,
    },
    /// Per-pixel values, row-major `h * w`, `>= 1/2` observed (a hand-drawn mask).
    Pixels(Vec<f32>),
}

impl FromStr for MaskSpec {
    type Err = String;
    /// `box`, `box:TOP,LEFT,HEIGHT,WIDTH` or `random:FRACTION_MISSING[:SEED]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected box, box:TOP,LEFT,HEIGHT,WIDTH, random:FRACTION_MISSING[:SEED] or a PNG file";
        if s == "box" {
            return Ok(Self::CenterBox);
        }
        if let Some(v) = s.strip_prefix("box:") {
            let n: Vec<usize> = v.split(',').map(|p| p.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|_| format!("mask `{s}`: {expected}"))?;
            let b: [usize; 4] = n.try_into().map_err(|_| format!("mask `{s}`: {expected}"))?;
            return Ok(Self::Box(b));
        }
        if let Some(v) = s.strip_prefix("random:") {
            let (p, seed) = v.split_once(':').unwrap_or((v, "0"));
            let missing: f64 = p.parse().map_err(|_| format!("mask `{s}`: {expected}"))?;
            let seed: u64 = seed.parse().map_err(|_| format!("mask `{s}`: {expected}"))?;
            if !(0.0..=1.0).contains(&missing) {
                return Err(format!("mask `{s}`: expected a missing fraction in [0, 1], found {missing}"));
            }
            return Ok(Self::Random { missing, seed });
        }
        Err(format!("unknown mask `{s}`: {expected}"))
    }
}

/// Downsampling kernel of super-resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = Downsample::unknown)]
pub enum Downsample {
    /// Average pooling.
    Pool,
    /// Bicubic (MATLAB `imresize`).
    Bicubic,
}

impl Downsample {
    /// Every kernel.
    pub const ALL: [Downsample; 2] = [Self::Pool, Self::Bicubic];

    fn unknown(s: &str) -> String {
        crate::names::unknown("downsampling", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// Grey-level weights of colorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::Display, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", parse_err_ty = String, parse_err_fn = GrayWeights::unknown)]
pub enum GrayWeights {
    /// The channel mean.
    Mean,
    /// BT.601 luma.
    Luma,
}

impl GrayWeights {
    /// Every choice.
    pub const ALL: [GrayWeights; 2] = [Self::Mean, Self::Luma];

    fn unknown(s: &str) -> String {
        crate::names::unknown("grey weights", s, <Self as strum::VariantNames>::VARIANTS)
    }
}

/// A task with its parameters (see the module docs for the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Which problem.
    pub kind: TaskKind,
    /// Inpainting's mask.
    pub mask: MaskSpec,
    /// Super-resolution's factor.
    pub factor: usize,
    /// Super-resolution's kernel.
    pub downsample: Downsample,
    /// Side of the blur kernels (odd).
    pub blur_size: usize,
    /// Gaussian blur's standard deviation in pixels.
    pub blur_sigma: f64,
    /// Motion blur's intensity.
    pub motion_intensity: f64,
    /// Motion blur's seed.
    pub motion_seed: u64,
    /// Colorization's weights.
    pub gray: GrayWeights,
}

impl Task {
    /// The task with its defaults.
    pub fn new(kind: TaskKind) -> Self {
        Self {
            kind,
            mask: MaskSpec::CenterBox,
            factor: 4,
            downsample: Downsample::Bicubic,
            blur_size: 9,
            blur_sigma: 1.5,
            motion_intensity: 0.5,
            motion_seed: 0,
            gray: GrayWeights::Mean,
        }
    }

    /// The operator for images of `[channels, height, width]`.
    ///
    /// # Errors
    /// When the parameters do not fit the image (a factor that does not divide its side, a mask
    /// of another size, colorization of images without 3 channels, an even blur size).
    pub fn build(&self, [c, h, w]: [usize; 3], device: &Device) -> Result<Box<dyn Operator<4>>, String> {
        Ok(match self.kind {
            TaskKind::Inpaint => Box::new(match &self.mask {
                MaskSpec::CenterBox => Mask::boxed([h, w], [h / 4, w / 4, h / 2, w / 2], device),
                MaskSpec::Box(b) => {
                    if b[0] >= h || b[1] >= w {
                        return Err(format!("mask box: expected a corner inside the {h}x{w} image, found ({}, {})", b[0], b[1]));
                    }
                    Mask::boxed([h, w], *b, device)
                }
                MaskSpec::Random { missing, seed } => Mask::random([h, w], *missing, *seed, device),
                MaskSpec::Pixels(p) => {
                    if p.len() != h * w {
                        return Err(format!("mask: expected {h}x{w} = {} pixels (the image's size), found {}", h * w, p.len()));
                    }
                    Mask::from_pixels(p, [h, w], device)
                }
            }),
            TaskKind::SuperResolution => match self.downsample {
                Downsample::Pool => Box::new(AvgPool::new(self.factor, [h, w])?),
                Downsample::Bicubic => Box::new(Bicubic::new(self.factor, [h, w])?),
            },
            TaskKind::Deblur => Box::new(Blur::gaussian(self.blur_size, self.blur_sigma)?),
            TaskKind::MotionDeblur => Box::new(Blur::motion(self.blur_size, self.motion_intensity, self.motion_seed)?),
            TaskKind::Colorize => {
                if c != 3 {
                    return Err(format!("colorize: expected a model of 3-channel colour images, found {c} channel{}", if c == 1 { "" } else { "s" }));
                }
                Box::new(match self.gray {
                    GrayWeights::Mean => Grayscale::MEAN,
                    GrayWeights::Luma => Grayscale::LUMA,
                })
            }
            TaskKind::PhaseRetrieval => Box::new(FourierMagnitude::new([h, w])),
        })
    }

    /// The baseline the task is compared with (`None` for phase retrieval).
    pub fn baseline_kind(&self) -> Option<BaselineKind> {
        match self.kind {
            TaskKind::Inpaint => Some(BaselineKind::MaskedInput),
            TaskKind::SuperResolution => Some(BaselineKind::Bicubic),
            TaskKind::Deblur | TaskKind::MotionDeblur => Some(BaselineKind::Wiener),
            TaskKind::Colorize => Some(BaselineKind::Gray),
            TaskKind::PhaseRetrieval => None,
        }
    }

    /// Whether the projection method applies: a linear operator with `A^+ = A^T / c`.
    pub fn supports_projection(op: &dyn Operator<4>) -> bool {
        op.linear().and_then(LinearOperator::pinv_scale).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn names_and_specs_parse() {
        crate::names::serde_agrees(&TaskKind::ALL);
        crate::names::serde_agrees(&Downsample::ALL);
        crate::names::serde_agrees(&GrayWeights::ALL);
        let e = "denoise".parse::<TaskKind>().unwrap_err();
        assert!(e.contains("inpaint") && e.contains("phase-retrieval"), "{e}");
        assert_eq!("box".parse::<MaskSpec>().unwrap(), MaskSpec::CenterBox);
        assert_eq!("box:1,2,3,4".parse::<MaskSpec>().unwrap(), MaskSpec::Box([1, 2, 3, 4]));
        assert_eq!("random:0.5:7".parse::<MaskSpec>().unwrap(), MaskSpec::Random { missing: 0.5, seed: 7 });
        assert!("random:2".parse::<MaskSpec>().is_err() && "box:1,2".parse::<MaskSpec>().is_err());
    }

    #[test]
    fn every_task_builds_for_mnist_and_colorize_needs_colour() {
        let dev = device();
        for k in TaskKind::ALL {
            let task = Task::new(k);
            let r = task.build([1, 28, 28], &dev);
            if k == TaskKind::Colorize {
                assert!(r.err().unwrap().contains("3-channel"));
                assert!(task.build([3, 28, 28], &dev).is_ok());
            } else {
                let op = r.unwrap();
                assert_eq!(op.linear().is_some(), k != TaskKind::PhaseRetrieval);
                assert_eq!(Task::supports_projection(op.as_ref()), k == TaskKind::Inpaint);
            }
        }
        let mut sr = Task::new(TaskKind::SuperResolution);
        sr.factor = 3;
        assert!(sr.build([1, 28, 28], &dev).err().unwrap().contains("28x28"));
        sr.downsample = Downsample::Pool;
        sr.factor = 2;
        assert!(Task::supports_projection(sr.build([1, 28, 28], &dev).unwrap().as_ref()));
        let mut inp = Task::new(TaskKind::Inpaint);
        inp.mask = MaskSpec::Pixels(vec![1.0; 10]);
        assert!(inp.build([1, 28, 28], &dev).err().unwrap().contains("28x28"));
    }
}
