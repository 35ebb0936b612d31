//! `native-cli export`: write a trained model as the export directory the web page loads
//! (`model.json` + `weights.bpk`, see `scorediff::export`), f32 or f16; the card carries the
//! weights' SHA-256, which the page keys its cache by.

use crate::model_source::ModelSource;
use anyhow::{Context, Result, bail};
use clap::Args;
use scorediff::burn::tensor::Device;
use scorediff::export::{WEIGHTS_FILE, WeightsDType, write_dir};
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// The model: a training run directory (its EMA weights) or an export directory.
    #[arg(long, value_name = "RUN_DIR")]
    model: PathBuf,
    /// The export directory to write, e.g. www/models/mnist (created).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Store the weights in f16 (half the size; loaded back as f32).
    #[arg(long)]
    f16: bool,
    /// The model's name in model.json [default: the --out directory's name].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The command that trained the model, recorded in model.json [default: the source's own
    /// record, empty for a run directory].
    #[arg(long, value_name = "TEXT")]
    command: Option<String>,
    /// Overwrite an export directory that holds a different model.
    #[arg(long)]
    force: bool,
}

pub fn export(args: &ExportArgs) -> Result<()> {
    let source = ModelSource::open(&args.model)?;
    let Some(stored) = source.stored() else {
        bail!("--model {}: expected a training run or export directory, found a Gaussian-mixture file (nothing to export)", args.model.display());
    };
    let net = source.net(&Device::flex())?;
    let mut card = stored.card.clone();
    card.parameters = net.num_params();
    card.weights = WEIGHTS_FILE.to_string();
    card.dtype = if args.f16 { WeightsDType::F16 } else { WeightsDType::F32 };
    card.name = match &args.name {
        Some(n) => n.clone(),
        None => args.out.file_name().map(|n| n.to_string_lossy().into_owned()).filter(|n| !n.is_empty()).unwrap_or(card.name),
    };
    if let Some(c) = &args.command {
        card.command = c.clone();
    }
    let weights = net.weights_bytes(card.dtype).context("encoding the weights")?;
    let card = write_dir(&args.out, &card, &weights, args.force)?;
    println!(
        "exported {} ({} parameters, {} steps, {} weights, {} bytes, SHA-256 {}) -> {}",
        card.name,
        card.parameters,
        card.steps_trained,
        card.dtype.name(),
        weights.len(),
        card.weights_sha256.as_deref().unwrap_or("?"),
        args.out.display()
    );
    Ok(())
}
