//! What each fuzz target feeds its input to: the readers of model cards and weights, run
//! directories, training configs, `.npy`, IDX (plain or gzip), mixture files and diffusers
//! checkpoints, called as the command line and the page call them. None may panic, abort or allocate without bound on any
//! input; every failure must be an `Err`.
//!
//! Two-file inputs (a card and its weights, a config and its checkpoint state) are the first
//! file, a NUL byte, then the second (JSON holds no raw NUL); a diffusers checkpoint is its two
//! JSON files and its weights, split by the first two NUL bytes.

use scorediff::burn::tensor::Device;
use scorediff::export::ModelCard;
use scorediff::train::{RunConfig, TrainState};

/// The input before and after its first NUL byte (all of it and nothing without one).
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// An exported model as the page reads it: `model.json`'s text, then the weights' bytes loaded
/// into the card's network on Flex.
pub fn model_bytes(data: &[u8]) {
    let (card, weights) = split(data);
    let Ok(text) = std::str::from_utf8(card) else { return };
    let Ok(card) = ModelCard::from_json(text) else { return };
    let _ = card.load_net(weights.to_vec(), &Device::flex());
}

/// A training run directory: `config.json`, then the checkpoint's `state.json`, read into a
/// model card as `native-cli sample --model RUN_DIR` reads them.
pub fn run_dir(data: &[u8]) {
    let (config, state) = split(data);
    let (Ok(config), Ok(state)) = (std::str::from_utf8(config), std::str::from_utf8(state)) else { return };
    let _ = scorediff::export::run_card(config, "config.json", state, "state.json", "run");
    if let Ok(state) = serde_json::from_str::<TrainState>(state) {
        let _ = scorediff::noise::NoiseSource::from_state(&state.data_noise);
    }
}

/// A training config (`native-cli train --config FILE`).
pub fn train_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = RunConfig::from_json(text) {
        let _ = ModelCard::from_run(&config, "run", 0, 0, "").validate("config.json");
    }
}

/// A `.npy` file (`native-cli likelihood --data FILE`).
pub fn npy(data: &[u8]) {
    let _ = scorediff::io::parse_npy(data, "fuzz.npy");
}

/// An IDX file, plain or gzip, as images and as labels.
pub fn idx(data: &[u8]) {
    use scorediff::data::idx;
    let Ok(bytes) = idx::maybe_gunzip(data.to_vec(), "fuzz-idx") else { return };
    let _ = idx::parse_images(&bytes, "fuzz-idx");
    let _ = idx::parse_labels(&bytes, "fuzz-idx");
}

/// A mixture file (`native-cli sample --model mixture.json`, the page's 2-D lab): parsed,
/// built into its exact score, which is evaluated at one point.
pub fn mixture(data: &[u8]) {
    use scorediff::burn::tensor::{Tensor, TensorData};
    use scorediff::model::ScoreModel;
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = scorediff::mixture::MixtureFile::from_json(text) else { return };
    let device = Device::flex();
    let Ok(model) = file.model(&device) else { return };
    let dim = file.mixture.dim();
    let x = Tensor::<2>::from_data(TensorData::new(vec![0.5f32; dim], [1, dim]), &device);
    let _ = model.forward(x, &[0.5]);
    let _ = scorediff::eval::target(&file);
}

/// A diffusers checkpoint (`native-cli import-diffusers --from DIR`): `config.json`, NUL,
/// `scheduler_config.json`, NUL, then the safetensors bytes, imported into a model card whose
/// weights are then loaded as the page loads an export.
pub fn diffusers(data: &[u8]) {
    use scorediff::export::diffusers::{Checkpoint, import};
    let (config, rest) = split(data);
    let (scheduler, weights) = split(rest);
    let (Ok(config), Ok(scheduler)) = (std::str::from_utf8(config), std::str::from_utf8(scheduler)) else { return };
    let checkpoint = Checkpoint {
        config,
        config_file: "config.json",
        scheduler,
        scheduler_file: "scheduler_config.json",
        weights: weights.to_vec(),
        weights_file: "diffusion_pytorch_model.safetensors",
    };
    let device = Device::flex();
    if let Ok((card, weights)) = import(checkpoint, "fuzz", None, "fuzz", &device) {
        let _ = card.load_net(weights, &device);
    }
}
