//! `native-cli import-diffusers`: a diffusers `UNet2DModel` checkpoint on disk (`config.json`,
//! `diffusion_pytorch_model.safetensors`, `scheduler_config.json`; see
//! `scorediff::export::diffusers`) as an export directory (`model.json` + `weights.bpk`) that
//! every sampler of `sample` runs. Hub downloads are not made: the checkpoint is a local folder.

use anyhow::{Context, Result};
use clap::Args;
use scorediff::burn::tensor::Device;
use scorediff::export::diffusers::import_dir;
use scorediff::export::write_dir;
use std::path::PathBuf;

#[derive(Args)]
pub struct ImportDiffusersArgs {
    /// The checkpoint directory (its files at the top, or a pipeline's unet/ and scheduler/).
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The export directory to write, e.g. www/models/ddpm-cifar10-32 (created).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The model's name in model.json [default: the --out directory's name].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The image size HEIGHTxWIDTH the model is sampled at [default: config.json's sample_size].
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    size: Option<[usize; 2]>,
    /// Overwrite an export directory that holds a different model.
    #[arg(long)]
    force: bool,
}

fn parse_size(s: &str) -> Result<[usize; 2], String> {
    let parse = |v: &str| v.trim().parse::<usize>().map_err(|_| format!("expected HEIGHTxWIDTH such as 32x32, found {s:?}"));
    match s.split_once('x') {
        Some((h, w)) => Ok([parse(h)?, parse(w)?]),
        None => Err(format!("expected HEIGHTxWIDTH such as 32x32, found {s:?}")),
    }
}

pub fn import_diffusers(args: &ImportDiffusersArgs) -> Result<()> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args.out.file_name().map(|n| n.to_string_lossy().into_owned()).filter(|n| !n.is_empty()).unwrap_or_else(|| "diffusers".into()),
    };
    let command = crate::train_classifier::command_line();
    let (card, weights) = import_dir(&args.from, &name, args.size, &command, &Device::flex()).with_context(|| format!("--from {}", args.from.display()))?;
    let card = write_dir(&args.out, &card, &weights, args.force)?;
    println!(
        "imported {} ({} parameters, shape {:?}, {} weights, {} bytes, SHA-256 {}) -> {}",
        card.name,
        card.parameters,
        card.shape,
        card.dtype.name(),
        weights.len(),
        card.weights_sha256.as_deref().unwrap_or(""),
        args.out.display()
    );
    Ok(())
}
