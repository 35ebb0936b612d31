//! Tests of the card and of loading and writing export and run directories.

use super::*;
use crate::data::DatasetKind;
use crate::data::Toy;
use crate::nn::{MlpConfig, UNetConfig};
use crate::noise::NoiseSource;
use crate::param::Parameterization;
use crate::sampler::Variance;
use crate::sde::Sde;
use crate::test_util::*;
use crate::train::{Dataset, Network, RunConfig};
use burn::tensor::{DType, Device};
use std::sync::Arc;

fn unet_config() -> UNetConfig {
    UNetConfig::new().with_base_channels(8).with_groups(4).with_num_res_blocks(1).with_channel_mult(vec![1, 2])
}

fn image_card() -> ModelCard {
    let mut c = RunConfig::preset(Dataset::Image(DatasetKind::Mnist));
    c.network = Network::Unet(unet_config());
    ModelCard::from_run(&c, "mnist", 0, 12, "native-cli train --dataset mnist")
}

fn point_card() -> ModelCard {
    let mut c = RunConfig::preset(Dataset::Toy(Toy::TwoMoons));
    c.network = Network::Mlp(MlpConfig::new().with_hidden(16).with_layers(1));
    ModelCard::from_run(&c, "moons", 0, 5, "")
}

#[test]
fn card_json_round_trip() {
    for card in [image_card(), point_card()] {
        let text = card.to_json();
        assert_eq!(ModelCard::from_json(&text).unwrap(), card);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["format"], 1);
        assert_eq!(v["weights"], "weights.bpk");
        assert_eq!(v["dtype"], "f32");
    }
    let v: serde_json::Value = serde_json::from_str(&image_card().to_json()).unwrap();
    assert_eq!(v["dataset"], "mnist");
    assert_eq!(v["shape"], serde_json::json!([1, 28, 28]));
    assert_eq!(v["network"]["kind"], "unet");
}

#[test]
fn wrong_format_or_fields_name_the_field() {
    let mut v: serde_json::Value = serde_json::from_str(&point_card().to_json()).unwrap();
    v["format"] = 2.into();
    let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("model.json") && e.contains("`format`") && e.contains("expected version 1") && e.contains("found 2"), "{e}");
    v.as_object_mut().unwrap().remove("format");
    let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("`format`"), "{e}");
    let mut v: serde_json::Value = serde_json::from_str(&point_card().to_json()).unwrap();
    v["shape"] = serde_json::json!([3]);
    let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("`shape`") && e.contains("[2]") && e.contains("[3]"), "{e}");
    let mut v: serde_json::Value = serde_json::from_str(&point_card().to_json()).unwrap();
    v["weights"] = "../../etc/passwd".into();
    assert!(ModelCard::from_json(&v.to_string()).unwrap_err().to_string().contains("`weights`"));
    let mut v: serde_json::Value = serde_json::from_str(&point_card().to_json()).unwrap();
    v.as_object_mut().unwrap().remove("sde");
    let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("sde"), "{e}");
    let e = ModelCard::from_json("{ not json").unwrap_err().to_string();
    assert!(e.contains("model.json") && e.contains("not valid JSON"), "{e}");
    // `variance`: absent reads as small (cards written before it existed); it must match
    // whether the U-Net outputs a variance.
    let mut v: serde_json::Value = serde_json::from_str(&image_card().to_json()).unwrap();
    v.as_object_mut().unwrap().remove("variance");
    assert_eq!(ModelCard::from_json(&v.to_string()).unwrap().variance, Variance::Small);
    v["variance"] = "learned-range".into();
    let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("`variance`") && e.contains("outputs no variance") && e.contains("found learned"), "{e}");
    v["network"]["out_channels"] = 2.into();
    assert_eq!(ModelCard::from_json(&v.to_string()).unwrap().variance, Variance::Learned);
}

#[test]
fn weights_for_another_architecture_are_an_error() {
    let dev = device();
    let mlp = point_card();
    let Network::Mlp(mcfg) = &mlp.network else { unreachable!() };
    let bytes = crate::nn::burnpack_bytes(&mcfg.init(&dev)).unwrap();
    let e = image_card().load_net(bytes.clone(), &dev).unwrap_err();
    assert!(matches!(e, ExportError::Weights(NnError::Architecture { .. })), "{e}");
    assert!(e.to_string().contains("weights.bpk"), "{e}");
    // The right architecture loads; a wrong parameter count on the card is named.
    let net = mlp.load_net(bytes.clone(), &dev).unwrap();
    assert!(net.takes_shape(&[2]) && !net.takes_shape(&[3]) && !net.takes_shape(&[1, 2, 2]));
    let mut bad = mlp.clone();
    bad.parameters = net.num_params() + 1;
    assert!(bad.load_net(bytes.clone(), &dev).unwrap_err().to_string().contains("`parameters`"));
    let e = mlp.load_net(bytes[..bytes.len() / 2].to_vec(), &dev).unwrap_err();
    assert!(matches!(e, ExportError::Weights(NnError::Format { .. })), "{e}");
}

/// f16 storage: half the bytes, f32 modules back, outputs within the rounding of the
/// weights. Each weight is rounded with relative error <= 2^-11 ~ 4.9e-4; through a few
/// layers the outputs move by a small multiple of that, far below 1e-2.
#[test]
fn f16_round_trip() {
    let dev = device();
    let card = image_card();
    let Network::Unet(cfg) = &card.network else { unreachable!() };
    let net = LoadedNet::Image(cfg.init(&dev));
    let b32 = net.weights_bytes(WeightsDType::F32).unwrap();
    let b16 = net.weights_bytes(WeightsDType::F16).unwrap();
    assert!((b16.len() as f64) < 0.6 * b32.len() as f64, "f16 {} vs f32 {} bytes", b16.len(), b32.len());
    let (LoadedNet::Image(a), LoadedNet::Image(b)) = (card.load_net(b32, &dev).unwrap(), card.load_net(b16, &dev).unwrap()) else { unreachable!() };
    let LoadedNet::Image(orig) = &net else { unreachable!() };
    let x = NoiseSource::new(3).normal([2, 1, 28, 28], &dev);
    let t = [0.3, 0.8];
    let y = orig.forward(x.clone(), &t, None);
    assert_eq!(to_vec(a.forward(x.clone(), &t, None)), to_vec(y.clone()), "f32 round trip is bitwise");
    let y16 = b.forward(x, &t, None);
    assert_eq!(y16.dtype(), DType::F32);
    let (p, q) = (to_vec(y16), to_vec(y));
    let max_abs = q.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = p.iter().zip(&q).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err > 0.0, "f16 rounding should change something");
    assert!(err <= 1e-2 * max_abs.max(1.0), "max error {err} vs scale {max_abs}");
}

/// A card of an EDM-preconditioned U-Net loads a network that carries the card's SDE: it
/// evaluates as the trained one does, and the image card carries the data range.
#[test]
fn edm_card_loads_a_network_with_its_sde() {
    let dev = device();
    let mut card = image_card();
    let cfg = unet_config()
        .with_dropout(0.0)
        .with_parameterization(Parameterization::X0)
        .with_preconditioning(Some(crate::precond::Preconditioning::Edm { sigma_data: 0.5 }));
    card.network = Network::Unet(cfg.clone());
    let sde: Arc<dyn Sde> = Arc::from(card.sde().unwrap());
    let orig = cfg.init(&dev).with_sde(sde);
    let bytes = LoadedNet::Image(orig.clone()).weights_bytes(WeightsDType::F32).unwrap();
    let LoadedNet::Image(loaded) = card.load_net(bytes, &dev).unwrap() else { unreachable!() };
    let x = NoiseSource::new(3).normal([2, 1, 28, 28], &dev);
    assert_eq!(to_vec(loaded.forward(x.clone(), &[0.3, 0.8], None)), to_vec(orig.forward(x, &[0.3, 0.8], None)));
    assert_eq!(card.data_range(), Some([-1.0, 1.0]));
    assert_eq!(point_card().data_range(), None);
    let mut bad = card.clone();
    bad.data_range = Some([1.0, -1.0]);
    assert!(bad.validate("model.json").unwrap_err().to_string().contains("data_range"));
}

/// The point card with the parameter count of a fresh MLP, its config and its f32 weights.
fn point_model(dev: &Device) -> (ModelCard, MlpConfig, Vec<u8>) {
    let mut card = point_card();
    let Network::Mlp(cfg) = card.network.clone() else { unreachable!() };
    let net = LoadedNet::Point(cfg.init(dev));
    card.parameters = net.num_params();
    (card, cfg, net.weights_bytes(WeightsDType::F32).unwrap())
}

#[test]
fn export_dir_write_load_and_refuse_overwrite() {
    let dev = device();
    let dir = temp_dir("export").join("moons");
    let (card, cfg, bytes) = point_model(&dev);
    let written = write_dir(&dir, &card, &bytes, false).unwrap();
    assert_eq!(written, ModelCard { weights_sha256: Some(sha256_hex(&bytes)), ..card.clone() });
    assert!(is_export_dir(&dir) && !is_run_dir(&dir));
    let (c2, n2) = load_dir(&dir, &dev).unwrap();
    assert_eq!(c2, written);
    assert_eq!(n2.num_params(), card.parameters);
    // Same weights again: fine. Other weights: refused unless forced.
    write_dir(&dir, &card, &bytes, false).unwrap();
    let other = LoadedNet::Point(cfg.init(&dev)).weights_bytes(WeightsDType::F32).unwrap();
    let e = write_dir(&dir, &card, &other, false).unwrap_err();
    assert!(matches!(e, ExportError::Exists { .. }) && e.to_string().contains("--force"), "{e}");
    write_dir(&dir, &card, &other, true).unwrap();
    let e = load_dir(&dir.join("nope"), &dev).unwrap_err();
    assert!(matches!(e, ExportError::NotAModel { .. }), "{e}");
    let e = load_run_dir(&dir, &dev).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
    std::fs::remove_dir_all(dir.parent().unwrap()).ok();
}

/// `weights_sha256`: the FIPS 180-4 test vectors; written by `write_dir`; weights changed
/// behind the card's back are refused, naming the card, the field, both hashes and the
/// weights file; a card without the field (written before it existed) loads unchecked; a
/// malformed hash is a field error.
#[test]
fn weights_sha256_is_written_and_checked() {
    assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let dev = device();
    let dir = temp_dir("export-sha256").join("moons");
    let (card, cfg, bytes) = point_model(&dev);
    let hash = sha256_hex(&bytes);
    write_dir(&dir, &card, &bytes, false).unwrap();
    let text = std::fs::read_to_string(dir.join(MODEL_FILE)).unwrap();
    assert!(text.contains(&format!("\"weights_sha256\": \"{hash}\"")), "{text}");
    // Retrained weights without a re-exported card.
    let other = LoadedNet::Point(cfg.init(&dev)).weights_bytes(WeightsDType::F32).unwrap();
    let weights_path = dir.join(WEIGHTS_FILE);
    std::fs::write(&weights_path, &other).unwrap();
    let e = load_dir(&dir, &dev).unwrap_err();
    assert!(matches!(&e, ExportError::Field { field, .. } if field == SHA256_FIELD), "{e}");
    let message = e.to_string();
    let named = [MODEL_FILE.to_string(), format!("`{SHA256_FIELD}`"), hash.clone(), sha256_hex(&other), weights_path.display().to_string()];
    assert!(named.iter().all(|s| message.contains(s.as_str())), "{message}");
    // The same through the bytes API the page uses.
    let stored = ModelCard::from_json(&text).unwrap();
    assert!(matches!(stored.load_net(other.clone(), &dev), Err(ExportError::Field { .. })));
    assert_eq!(stored.load_net(bytes, &dev).unwrap().num_params(), card.parameters);
    // Without the field: loads whatever weights are there.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove(SHA256_FIELD);
    std::fs::write(dir.join(MODEL_FILE), v.to_string()).unwrap();
    let (old, _) = load_dir(&dir, &dev).unwrap();
    assert_eq!(old.weights_sha256, None);
    v[SHA256_FIELD] = hash.to_uppercase().into();
    let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains(&format!("`{SHA256_FIELD}`")) && e.contains("lower-case hex"), "{e}");
    std::fs::remove_dir_all(dir.parent().unwrap()).ok();
}

/// Fields that size an allocation are refused before it (issue 22): before, `levels` of 10^12
/// aborted in the DDPM schedule's allocation and a 10^12-class U-Net in its embedding's.
#[test]
fn cards_claiming_huge_sizes_are_refused_before_allocating() {
    let text = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&image_card().to_json()).unwrap();
        edit(&mut v);
        v.to_string()
    };
    let levels = text(&|v| v["sde"] = serde_json::json!({"kind": "ddpm", "schedule": "linear", "levels": 1_000_000_000_000u64}));
    let e = ModelCard::from_json(&levels).unwrap_err().to_string();
    assert!(e.contains("model.json") && e.contains("sde.levels") && e.contains("at most 1000000") && e.contains("found 1000000000000"), "{e}");
    let classes = text(&|v| v["network"]["num_classes"] = 1_000_000_000_000u64.into());
    let e = ModelCard::from_json(&classes).unwrap_err().to_string();
    assert!(e.contains("num_classes") && e.contains("at most 65536"), "{e}");
    let mult = text(&|v| v["network"]["channel_mult"] = serde_json::json!([1, u64::MAX]));
    let e = ModelCard::from_json(&mult).unwrap_err().to_string();
    assert!(e.contains("channel_mult[1]"), "{e}");
    let shape = text(&|v| v["shape"] = serde_json::json!([1, 1u64 << 40, 1u64 << 40]));
    let e = ModelCard::from_json(&shape).unwrap_err().to_string();
    assert!(e.contains("`shape`") && e.contains("at most 16384"), "{e}");
    let mut v: serde_json::Value = serde_json::from_str(&point_card().to_json()).unwrap();
    v["network"]["hidden"] = (1u64 << 40).into();
    let e = ModelCard::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("hidden") && e.contains("at most 16384"), "{e}");
}

/// A run's card from the texts of its config and state, errors naming the file.
#[test]
fn run_card_reads_config_and_state_texts() {
    let config = RunConfig::preset(Dataset::Toy(Toy::TwoMoons)).to_json();
    let noise = NoiseSource::new(1).state();
    let state = crate::train::TrainState { step: 7, ema_loss: None, data_noise: noise.clone(), loss_noise: noise, loss_history: None };
    let state = serde_json::to_string(&state).unwrap();
    let card = run_card(&config, "c.json", &state, "s.json", "moons").unwrap();
    assert_eq!((card.steps_trained, card.name.as_str()), (7, "moons"));
    let state = state.as_str();
    assert!(run_card(&config, "c.json", "{", "s.json", "m").unwrap_err().to_string().contains("s.json"));
    assert!(run_card("{}", "c.json", state, "s.json", "m").unwrap_err().to_string().contains("c.json"));
}
