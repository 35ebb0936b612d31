//! Reading and writing exported models: an export directory (`model.json` + weights) or a
//! training run directory (`config.json` + `checkpoint/ema.bpk`) into a [`StoredModel`], the
//! card's network built with its weights ([`LoadedNet`]), and an export directory written
//! atomically (see the [`export` docs](super)).

#[cfg(not(target_arch = "wasm32"))]
use super::sha256_hex;
use super::{ExportError, MODEL_FILE, ModelCard, WeightsDType, check_sha256, field};
use crate::model::LoadedNet;
use crate::nn::{NnError, load_burnpack_bytes};
use crate::train::Network;
#[cfg(not(target_arch = "wasm32"))]
use crate::train::RunConfig;
use burn::module::Module;
use burn::store::{BurnpackStore, FloatCastAdapter, ModuleSnapshot};
use burn::tensor::Device;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::sync::Arc;

impl ModelCard {
    /// Builds the card's network on `device` and loads `weights` (the bytes of
    /// [`weights`](Self::weights), f32 or f16) into it.
    ///
    /// # Errors
    /// [`ExportError::Weights`] when the bytes are not a Burnpack file or hold another
    /// architecture's tensors; [`ExportError::Field`] when their SHA-256 or parameter count
    /// differs from the card's ([`check_sha256`], checked first, when the card has one).
    pub fn load_net(&self, weights: Vec<u8>, device: &Device) -> Result<LoadedNet, ExportError> {
        self.load_net_named(weights, &self.weights, device)
    }

    /// As [`load_net`](Self::load_net), naming the weights `name` in errors.
    pub fn load_net_named(&self, weights: Vec<u8>, name: &str, device: &Device) -> Result<LoadedNet, ExportError> {
        if let Some(expected) = &self.weights_sha256 {
            check_sha256(MODEL_FILE, expected, &weights, name)?;
        }
        let net = match &self.network {
            Network::Unet(c) => LoadedNet::Image(load_burnpack_bytes(c, weights, name, device)?.with_sde(Arc::from(self.sde()?))),
            Network::Mlp(c) => LoadedNet::Point(load_burnpack_bytes(c, weights, name, device)?),
            Network::DiffusersUnet2d(c) => LoadedNet::Diffusers(load_burnpack_bytes(c, weights, name, device)?),
        };
        if self.parameters != 0 && net.num_params() != self.parameters {
            return Err(field(MODEL_FILE, "parameters", format!("{} (the parameters in {name})", net.num_params()), self.parameters.to_string()));
        }
        Ok(net)
    }
}

impl LoadedNet {
    /// The weights as Burnpack bytes in `dtype`.
    pub fn weights_bytes(&self, dtype: WeightsDType) -> Result<Vec<u8>, ExportError> {
        match self {
            Self::Image(n) => burnpack_bytes_as(n, dtype),
            Self::Point(n) => burnpack_bytes_as(n, dtype),
            Self::Diffusers(n) => burnpack_bytes_as(n, dtype),
        }
    }
}

/// The module's weights as Burnpack bytes, every float tensor cast to `dtype`.
pub fn burnpack_bytes_as<M: Module>(module: &M, dtype: WeightsDType) -> Result<Vec<u8>, ExportError> {
    if dtype == WeightsDType::F32 {
        return Ok(crate::nn::burnpack_bytes(module)?);
    }
    let format_err =
        |e: burn::store::burn_pack::Error| ExportError::Weights(NnError::Format { file: "<memory>".into(), format: "burnpack", message: e.to_string() });
    let mut store = BurnpackStore::from_bytes(None).with_to_adapter(FloatCastAdapter::to(dtype.burn()));
    module.save_into(&mut store).map_err(format_err)?;
    Ok(store.get_bytes().map_err(format_err)?.to_vec())
}

#[cfg(not(target_arch = "wasm32"))]
fn read(path: &Path) -> Result<Vec<u8>, ExportError> {
    Ok(crate::io::read_file(path)?)
}

#[cfg(not(target_arch = "wasm32"))]
fn read_text(path: &Path) -> Result<String, ExportError> {
    Ok(crate::io::read_text(path)?)
}

/// Whether `dir` looks like an export directory (has `model.json`).
#[cfg(not(target_arch = "wasm32"))]
pub fn is_export_dir(dir: &Path) -> bool {
    dir.join(MODEL_FILE).is_file()
}

/// Whether `dir` looks like a training run directory (has `config.json` and a checkpoint).
#[cfg(not(target_arch = "wasm32"))]
pub fn is_run_dir(dir: &Path) -> bool {
    dir.join("config.json").is_file() && crate::train::checkpoint::latest(dir).is_some()
}

/// A model read from disk but not yet built: its card and the bytes of its weights.
#[derive(Debug, Clone)]
pub struct StoredModel {
    /// The card (for a run directory: built from `config.json`, with `parameters = 0` until
    /// the weights are loaded).
    pub card: ModelCard,
    /// The weights file's bytes (Burnpack, f32 or f16).
    pub weights: Vec<u8>,
    /// The weights file's path, for errors.
    pub weights_name: String,
}

impl StoredModel {
    /// Builds the network on `device` (an autodiff device for likelihoods) with the weights.
    pub fn load(&self, device: &Device) -> Result<LoadedNet, ExportError> {
        self.card.load_net_named(self.weights.clone(), &self.weights_name, device)
    }
}

/// Reads an export directory: `model.json` and the weights file it names.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_dir(dir: &Path) -> Result<StoredModel, ExportError> {
    let card_path = dir.join(MODEL_FILE);
    if !card_path.is_file() {
        return Err(ExportError::NotAModel {
            path: dir.display().to_string(),
            expected: format!("an export directory with {MODEL_FILE}"),
            found: format!("no {MODEL_FILE}"),
        });
    }
    let card = ModelCard::from_json_named(&read_text(&card_path)?, &card_path.display().to_string())?;
    let weights_path = dir.join(&card.weights);
    let weights = read(&weights_path)?;
    Ok(StoredModel { card, weights, weights_name: weights_path.display().to_string() })
}

/// Reads a training run directory: `config.json` and the EMA weights of its latest checkpoint
/// (`checkpoint/ema.bpk`). The card is named after the directory, with the steps from
/// `checkpoint/state.json`, an empty command and `parameters = 0` (unknown until loaded).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_run_dir(run_dir: &Path) -> Result<StoredModel, ExportError> {
    let config_path = run_dir.join("config.json");
    let Some(ckpt) = crate::train::checkpoint::latest(run_dir).filter(|_| config_path.is_file()) else {
        return Err(ExportError::NotAModel {
            path: run_dir.display().to_string(),
            expected: "a training run directory (config.json and checkpoint/)".into(),
            found: if config_path.is_file() { "no checkpoint/ (has training written one yet?)".into() } else { "no config.json".into() },
        });
    };
    let state_path = ckpt.join(crate::train::STATE_FILE);
    let name = run_dir.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "model".into());
    let (config_text, state_text) = (read_text(&config_path)?, read_text(&state_path)?);
    let card = run_card(&config_text, &config_path.display().to_string(), &state_text, &state_path.display().to_string(), &name)?;
    let ema_path = ckpt.join(crate::train::EMA_FILE);
    let weights = read(&ema_path)?;
    Ok(StoredModel { card, weights, weights_name: ema_path.display().to_string() })
}

/// The card of a training run named `name` from the texts of its `config.json` and of its
/// checkpoint's `state.json` (the files `config_file` and `state_file` in errors): the config's
/// network, SDE and data set, the state's step, `parameters = 0` and an empty command.
#[cfg(not(target_arch = "wasm32"))]
pub fn run_card(config: &str, config_file: &str, state: &str, state_file: &str, name: &str) -> Result<ModelCard, ExportError> {
    let config = RunConfig::from_json(config).map_err(|message| ExportError::Invalid { file: config_file.into(), message })?;
    let state: crate::train::TrainState = serde_json::from_str(state).map_err(|e| ExportError::Invalid { file: state_file.into(), message: e.to_string() })?;
    Ok(ModelCard::from_run(&config, name, 0, state.step, ""))
}

/// [`read_dir`], then the network loaded on `device`.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_dir(dir: &Path, device: &Device) -> Result<(ModelCard, LoadedNet), ExportError> {
    let stored = read_dir(dir)?;
    let net = stored.load(device)?;
    Ok((stored.card, net))
}

/// [`read_run_dir`], then the network loaded on `device`; the card's `parameters` filled in.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_run_dir(run_dir: &Path, device: &Device) -> Result<(ModelCard, LoadedNet), ExportError> {
    let mut stored = read_run_dir(run_dir)?;
    let net = stored.load(device)?;
    stored.card.parameters = net.num_params();
    Ok((stored.card, net))
}

/// Writes an export directory: `card.weights` (the given bytes) then `model.json`, each
/// atomically ([`crate::io::write_atomic`]); creates `dir`. The card is written with the
/// weights' SHA-256 in `weights_sha256` (whatever `card` held there) and returned as written.
/// When `dir` already holds a model whose weights differ from `weights`, refuses unless `force`.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_dir(dir: &Path, card: &ModelCard, weights: &[u8], force: bool) -> Result<ModelCard, ExportError> {
    let card = ModelCard { weights_sha256: Some(sha256_hex(weights)), ..card.clone() };
    card.validate(MODEL_FILE)?;
    let write_err = |path: &Path, error| ExportError::from(crate::io::FileError::write(path, error));
    let (card_path, weights_path) = (dir.join(MODEL_FILE), dir.join(&card.weights));
    if !force {
        if weights_path.exists() {
            let old = read(&weights_path)?;
            if old != weights {
                return Err(ExportError::Exists { path: dir.display().to_string(), found: format!("{} with other weights", card.weights) });
            }
        } else if card_path.exists() {
            return Err(ExportError::Exists { path: dir.display().to_string(), found: format!("a {MODEL_FILE} for other weights") });
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    crate::io::write_atomic(&weights_path, weights).map_err(|e| write_err(&weights_path, e))?;
    crate::io::write_atomic(&card_path, format!("{}\n", card.to_json()).as_bytes()).map_err(|e| write_err(&card_path, e))?;
    Ok(card)
}
