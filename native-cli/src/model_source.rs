//! What `--model` points at, for every command.
//!
//! Three kinds of model, told apart by what is at the path:
//! - a **Gaussian-mixture `.json` file** (an analytic score, `scorediff::mixture`);
//! - a **training run directory** (`native-cli train`): `config.json` and `checkpoint/`, whose
//!   EMA weights (`checkpoint/ema.bpk`) are the model;
//! - an **export directory** (`native-cli export`, what the web page loads): `model.json`
//!   and the weights file it names (`scorediff::export`).
//!
//! # API
//! ```ignore
//! let source = ModelSource::open(path)?;          // reads and checks the files, no network built
//! let sde = source.sde()?;                        // the forward SDE
//! let shape = source.dim_shape();                 // one data point: [1, 28, 28] or [2]
//! let net = source.net(&device)?;                 // LoadedNet::Image(UNet) | LoadedNet::Point(Mlp)
//! let card = source.card();                       // Some(&ModelCard) for run and export dirs
//! ```
//! Errors name the path and say what was expected (every message is ready for `error: ...`).

use anyhow::{Context, Result, anyhow, bail};
use scorediff::burn::tensor::Device;
use scorediff::export::{self, LoadedNet, ModelCard, StoredModel};
use scorediff::mixture::MixtureFile;
use scorediff::model::ScoreModel;
use scorediff::sampler::Variance;
use scorediff::sde::Sde;
use std::path::{Path, PathBuf};

/// What `--model` points at (see the [module docs](self)).
pub enum ModelSource {
    /// A `mixture.json` file.
    Mixture {
        /// The file.
        path: PathBuf,
        /// Its contents.
        file: MixtureFile,
    },
    /// A training run directory (its latest checkpoint's EMA weights).
    Run {
        /// The directory.
        path: PathBuf,
        /// Card (from `config.json`) and weights.
        stored: StoredModel,
    },
    /// An export directory (`model.json` + weights).
    Export {
        /// The directory.
        path: PathBuf,
        /// Card and weights.
        stored: StoredModel,
    },
}

impl ModelSource {
    /// Reads and checks the model at `path`: a directory with `model.json` is an export, one
    /// with `config.json` a training run, a file a mixture `.json`.
    pub fn open(path: &Path) -> Result<Self> {
        let context = || format!("reading model {}", path.display());
        if path.is_dir() {
            if export::is_export_dir(path) {
                let stored = export::read_dir(path).with_context(context)?;
                return Ok(Self::Export { path: path.to_path_buf(), stored });
            }
            if path.join("config.json").is_file() {
                let stored = export::read_run_dir(path).with_context(context)?;
                return Ok(Self::Run { path: path.to_path_buf(), stored });
            }
            return Err(anyhow!(
                "expected a training run directory (config.json + checkpoint/), an export directory (model.json) or a mixture .json file, found a directory with neither config.json nor model.json"
            ))
            .with_context(context);
        }
        let text = std::fs::read_to_string(path).with_context(context)?;
        let file = MixtureFile::from_json(&text).with_context(context)?;
        Ok(Self::Mixture { path: path.to_path_buf(), file })
    }

    /// The path given to [`open`](Self::open).
    pub fn path(&self) -> &Path {
        match self {
            Self::Mixture { path, .. } | Self::Run { path, .. } | Self::Export { path, .. } => path,
        }
    }

    /// The card of a trained network (`None` for a mixture).
    pub fn card(&self) -> Option<&ModelCard> {
        self.stored().map(|s| &s.card)
    }

    /// Card and weights of a trained network (`None` for a mixture).
    pub fn stored(&self) -> Option<&StoredModel> {
        match self {
            Self::Mixture { .. } => None,
            Self::Run { stored, .. } | Self::Export { stored, .. } => Some(stored),
        }
    }

    /// Shape of one data point: `[channels, height, width]` for images, `[dim]` otherwise.
    pub fn dim_shape(&self) -> Vec<usize> {
        match self {
            Self::Mixture { file, .. } => vec![file.mixture.dim()],
            Self::Run { stored, .. } | Self::Export { stored, .. } => stored.card.shape.clone(),
        }
    }

    /// Number of values in one data point.
    pub fn dim(&self) -> usize {
        self.dim_shape().iter().product()
    }

    /// Whether the data points are images (`[channels, height, width]`).
    pub fn is_image(&self) -> bool {
        self.dim_shape().len() == 3
    }

    /// The forward SDE.
    pub fn sde(&self) -> Result<Box<dyn Sde>> {
        let context = || format!("reading model {}", self.path().display());
        match self {
            Self::Mixture { file, .. } => file.sde.build().with_context(context),
            Self::Run { stored, .. } | Self::Export { stored, .. } => stored.card.sde().with_context(context),
        }
    }

    /// The reverse-process variance the model was trained with (its card's `variance`; `small`
    /// for a mixture, whose exact score says nothing about it).
    pub fn variance(&self) -> Variance {
        self.card().map_or(Variance::Small, |c| c.variance)
    }

    /// The range of the model's data (its card's, `[-1, 1]` for images); none for a mixture.
    pub fn data_range(&self) -> Option<[f64; 2]> {
        self.card().and_then(|c| c.data_range())
    }

    /// The trained network on `device` (an autodiff device for likelihoods); an error for a
    /// mixture.
    pub fn net(&self, device: &Device) -> Result<LoadedNet> {
        match self.stored() {
            Some(stored) => stored.load(device).with_context(|| format!("reading model {}", self.path().display())),
            None => bail!("model {}: expected a trained network (run or export directory), found a Gaussian-mixture file", self.path().display()),
        }
    }

    /// The score model of 2-D-shaped data (`[batch, dim]`) on `device`: the mixture's exact
    /// score or the MLP; an error for an image model.
    pub fn score_model_2d(&self, device: &Device) -> Result<Box<dyn ScoreModel<2>>> {
        match self {
            Self::Mixture { file, .. } => {
                let model = file.model(device).with_context(|| format!("reading model {}", self.path().display()))?;
                Ok(Box::new(model))
            }
            _ => match self.net(device)? {
                LoadedNet::Point(mlp) => Ok(Box::new(mlp)),
                LoadedNet::Image(_) | LoadedNet::Diffusers(_) => {
                    bail!("model {}: expected a model of points [batch, dim], found an image U-Net", self.path().display())
                }
            },
        }
    }
}
