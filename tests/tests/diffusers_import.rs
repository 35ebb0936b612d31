//! diffusers' `UNet2DModel` checkpoints in the core (issue 21): the committed tiny fixtures
//! (written by `bench/diffusers-fixture.py` with diffusers 0.30.3's `save_pretrained`) load
//! under diffusers' tensor names and give diffusers' outputs, within 1e-4 relative, at every
//! stored timestep; unknown keys, block types and mismatched tensors are errors naming them.

use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::nn::NnError;
use scorediff::nn::diffusers::{DiffusersUNet, UNet2DConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

fn read(name: &str, file: &str) -> String {
    read_in(&fixture(name), file)
}

fn read_in(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

fn load(dir: &Path, dev: &Device) -> DiffusersUNet {
    let config = UNet2DConfig::from_json(&read_in(dir, "config.json")).unwrap();
    let bytes = std::fs::read(dir.join("diffusion_pytorch_model.safetensors")).unwrap();
    config.init(dev).unwrap().load_safetensors(bytes, "diffusion_pytorch_model.safetensors").unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn shape4(v: &Value) -> [usize; 4] {
    let s: Vec<usize> = v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    s.try_into().unwrap()
}

/// `max |a - b| / max |b|`.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max);
    num / b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max)
}

/// Our output against diffusers' on every case of `reference.json` in `dir`; the largest
/// relative error.
fn parity(dir: &Path) -> f64 {
    let dev = Device::flex();
    let net = load(dir, &dev);
    let name = dir.display();
    println!("{name}: {} parameters", net.num_params());
    let reference: Value = serde_json::from_str(&read_in(dir, "reference.json")).unwrap();
    assert_eq!(net.num_params() as u64, reference["parameters"].as_u64().unwrap(), "{name}: parameter count");
    let mut worst = 0.0f64;
    for case in reference["cases"].as_array().unwrap() {
        let x = Tensor::<4>::from_data(TensorData::new(floats(&case["x"]), shape4(&case["x_shape"])), &dev);
        let ts: Vec<f64> = case["timesteps"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
        let out = net.forward_timesteps(x, &ts);
        assert_eq!(out.dims(), shape4(&case["out_shape"]));
        let e = rel_err(&out.into_data().try_to_vec::<f32>().unwrap(), &floats(&case["out"]));
        println!("{name}: timesteps {ts:?}: relative error {e:.2e}");
        worst = worst.max(e);
    }
    worst
}

#[test]
fn tiny_cifar_layout_matches_diffusers() {
    let e = parity(&fixture("diffusers-tiny"));
    assert!(e < 1e-4, "relative error {e:.2e}");
}

#[test]
fn tiny_variant_matches_diffusers() {
    // Attention at the full resolution, center_input_sample, mid_block_scale_factor 1.414,
    // downsample padding 1, flip_sin_to_cos, freq_shift 0, one head, 1 channel in and 2 out, 8x12.
    let e = parity(&fixture("diffusers-tiny-variant"));
    assert!(e < 1e-4, "relative error {e:.2e}");
}

/// google/ddpm-cifar10-32's architecture (35.7 M parameters) with random weights, written by
/// `bench/diffusers-parity-cifar.sh` into `SCOREDIFF_DIFFUSERS_DIR`.
#[test]
#[ignore = "needs bench/diffusers-parity-cifar.sh's checkpoint (SCOREDIFF_DIFFUSERS_DIR)"]
fn cifar_parity() {
    let dir = std::env::var("SCOREDIFF_DIFFUSERS_DIR").expect("SCOREDIFF_DIFFUSERS_DIR: a checkpoint of bench/diffusers-parity-cifar.py");
    let e = parity(Path::new(&dir));
    println!("max relative error {e:.2e}");
    assert!(e < 1e-4, "relative error {e:.2e}");
}

/// One network evaluation (a sampling step's cost) of the CIFAR-size checkpoint at batch 16 on
/// the CPU (Flex), timed three times after a warm-up: `bench/diffusers-parity-cifar.sh`'s
/// checkpoint in `SCOREDIFF_DIFFUSERS_DIR`.
#[test]
#[ignore = "a timing: needs bench/diffusers-parity-cifar.sh's checkpoint (SCOREDIFF_DIFFUSERS_DIR)"]
fn cifar_step_time() {
    let dir = std::env::var("SCOREDIFF_DIFFUSERS_DIR").expect("SCOREDIFF_DIFFUSERS_DIR: a checkpoint of bench/diffusers-parity-cifar.py");
    let dev = Device::flex();
    let net = load(Path::new(&dir), &dev);
    let x = Tensor::<4>::from_data(TensorData::new(vec![0.1f32; 16 * 3 * 32 * 32], [16, 3, 32, 32]), &dev);
    let ts = vec![500.0; 16];
    net.forward_timesteps(x.clone(), &ts).into_data();
    let times: Vec<f64> = (0..3)
        .map(|_| {
            let start = std::time::Instant::now();
            net.forward_timesteps(x.clone(), &ts).into_data();
            start.elapsed().as_secs_f64()
        })
        .collect();
    println!("batch 16 forward: {times:.3?} s");
}

#[test]
fn unknown_keys_block_types_and_options_are_named() {
    let mut config: Value = serde_json::from_str(&read("diffusers-tiny", "config.json")).unwrap();
    let with = |key: &str, value: Value| {
        let mut c = config.clone();
        c[key] = value;
        UNet2DConfig::from_json(&c.to_string()).unwrap_err().to_string()
    };
    let e = with("cross_attention_dim", 64.into());
    assert!(e.contains("unknown field `cross_attention_dim`"), "{e}");
    let e = with("down_block_types", serde_json::json!(["DownBlock2D", "SkipDownBlock2D", "DownBlock2D", "DownBlock2D"]));
    assert!(e.contains("unknown variant `SkipDownBlock2D`") && e.contains("AttnDownBlock2D"), "{e}");
    let e = with("up_block_types", serde_json::json!(["UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"]));
    assert!(e.contains("CrossAttnUpBlock2D"), "{e}");
    let e = with("resnet_time_scale_shift", "scale_shift".into());
    assert!(e.contains("resnet_time_scale_shift") && e.contains("scale_shift"), "{e}");
    let e = with("time_embedding_type", "fourier".into());
    assert!(e.contains("time_embedding_type") && e.contains("fourier"), "{e}");
    let e = with("class_embed_type", "timestep".into());
    assert!(e.contains("class_embed_type"), "{e}");
    let e = with("_class_name", "UNet2DConditionModel".into());
    assert!(e.contains("_class_name") && e.contains("UNet2DConditionModel"), "{e}");
    // Metadata keys are accepted.
    config["_name_or_path"] = "google/ddpm-cifar10-32".into();
    UNet2DConfig::from_json(&config.to_string()).unwrap();
}

#[test]
fn weights_of_another_config_are_named() {
    let dev = Device::flex();
    let bytes = std::fs::read(fixture("diffusers-tiny").join("diffusion_pytorch_model.safetensors")).unwrap();
    // One more layer per block: tensors missing from the file.
    let mut c = UNet2DConfig::from_json(&read("diffusers-tiny", "config.json")).unwrap();
    c.layers_per_block = 2;
    let e = c.init(&dev).unwrap().load_safetensors(bytes.clone(), "w.safetensors").unwrap_err();
    assert!(matches!(e, NnError::Architecture { .. }) && e.to_string().contains("missing") && e.to_string().contains("w.safetensors"), "{e}");
    // Wider levels: shape mismatches naming the tensor.
    let mut c = UNet2DConfig::from_json(&read("diffusers-tiny", "config.json")).unwrap();
    c.block_out_channels = vec![16, 16, 16, 16];
    let e = c.init(&dev).unwrap().load_safetensors(bytes.clone(), "w.safetensors").unwrap_err();
    assert!(e.to_string().contains("expected shape") && e.to_string().contains("conv_in.weight"), "{e}");
    // Not safetensors.
    let e =
        UNet2DConfig::from_json(&read("diffusers-tiny", "config.json")).unwrap().init(&dev).unwrap().load_safetensors(b"junk".to_vec(), "junk").unwrap_err();
    assert!(matches!(e, NnError::Format { .. }), "{e}");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scorediff-diffusers-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

/// `import-diffusers`'s core: the checkpoint becomes a model card and Burnpack weights that load
/// back through the export path, predict diffusers' eps at the grid times `t = (k + 1) / N` of its
/// timesteps `k`, and sample with every sampler.
#[test]
fn import_writes_a_card_every_sampler_runs() {
    use scorediff::export::diffusers::import_dir;
    use scorediff::export::{LoadedNet, load_dir, write_dir};
    use scorediff::model::{ScoreFn, ScoreModel};
    use scorediff::noise::NoiseSource;
    use scorediff::sampler::{SamplerConfig, SamplerKind, Variance, sample};
    use scorediff::sde::{ScheduleKind, SdeConfig};
    let dev = Device::flex();
    let (card, weights) = import_dir(&fixture("diffusers-tiny"), "tiny", None, "test", &dev).unwrap();
    assert_eq!(card.sde, SdeConfig::ddpm(ScheduleKind::Linear, 1000));
    assert_eq!((card.variance, card.data_range, card.shape.clone()), (Variance::Large, Some([-1.0, 1.0]), vec![3, 16, 16]));
    let dir = tmp("import");
    write_dir(&dir, &card, &weights, false).unwrap();
    let (card, net) = load_dir(&dir, &dev).unwrap();
    let LoadedNet::Diffusers(net) = net else { panic!("expected a diffusers net") };
    assert_eq!(card.parameters, net.num_params());

    let reference: Value = serde_json::from_str(&read("diffusers-tiny", "reference.json")).unwrap();
    let case = &reference["cases"][1];
    let x = Tensor::<4>::from_data(TensorData::new(floats(&case["x"]), shape4(&case["x_shape"])), &dev);
    let t: Vec<f64> = case["timesteps"].as_array().unwrap().iter().map(|k| (k.as_f64().unwrap() + 1.0) / 1000.0).collect();
    let out = ScoreModel::forward(&net, x, &t).into_data().try_to_vec::<f32>().unwrap();
    let e = rel_err(&out, &floats(&case["out"]));
    assert!(e < 1e-4, "relative error {e:.2e}");

    let sde = card.sde().unwrap();
    let f = ScoreFn::new(&net, sde.as_ref());
    for kind in SamplerKind::all() {
        let config = SamplerConfig::new(kind, 4);
        let mut noise = NoiseSource::new(7);
        let x = sample(&config, &f, [2, 3, 16, 16], &mut noise, &dev, |_, _, _| {});
        let v = x.into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|v| v.is_finite()), "{kind}: non-finite samples");
        println!("{kind}: ok");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn scheduler_options_are_named() {
    use scorediff::export::diffusers::SchedulerConfig;
    use scorediff::sde::{ScheduleKind, SdeConfig};
    let base: Value = serde_json::from_str(&read("diffusers-tiny", "scheduler_config.json")).unwrap();
    let with = |key: &str, value: Value| {
        let mut c = base.clone();
        c[key] = value;
        SchedulerConfig::from_json(&c.to_string(), "scheduler_config.json").unwrap_err().to_string()
    };
    let e = with("beta_schedule", "sigmoid".into());
    assert!(e.contains("unknown variant `sigmoid`") && e.contains("squaredcos_cap_v2"), "{e}");
    let e = with("variance_type", "learned_range".into());
    assert!(e.contains("learned_range") && e.contains("fixed_large"), "{e}");
    let e = with("prediction_type", "flow".into());
    assert!(e.contains("unknown variant `flow`"), "{e}");
    let e = with("thresholding", true.into());
    assert!(e.contains("thresholding"), "{e}");
    let e = with("karras_sigmas", true.into());
    assert!(e.contains("unknown field `karras_sigmas`"), "{e}");
    // scaled_linear is latent diffusion's 8.5e-4 .. 0.012; other values are named.
    let e = with("beta_schedule", "scaled_linear".into());
    assert!(e.contains("scaled_linear") && e.contains("beta_start") && e.contains("0.00085"), "{e}");
    let mut c = base.clone();
    c["beta_schedule"] = "scaled_linear".into();
    c["beta_start"] = 0.00085.into();
    c["beta_end"] = 0.012.into();
    let sde = SchedulerConfig::from_json(&c.to_string(), "s").unwrap().sde().unwrap();
    assert_eq!(sde, SdeConfig::ddpm(ScheduleKind::ScaledLinear, 1000));
    // Zero terminal SNR: refused for eps prediction, the rescaled schedule for v prediction.
    let e = with("rescale_betas_zero_snr", true.into());
    assert!(e.contains("rescale_betas_zero_snr") && e.contains("epsilon"), "{e}");
    let mut c = base.clone();
    c["rescale_betas_zero_snr"] = true.into();
    c["prediction_type"] = "v_prediction".into();
    let sde = SchedulerConfig::from_json(&c.to_string(), "s").unwrap().sde().unwrap();
    assert_eq!(sde, SdeConfig::Ddpm { schedule: ScheduleKind::Linear, levels: 1000, zero_terminal_snr: true });
    let e = with("beta_end", 0.03.into());
    assert!(e.contains("beta_start") && e.contains("0.03"), "{e}");
    // squaredcos_cap_v2 is the core's cosine schedule: diffusers' alphas_cumprod at N = 50.
    let golden = &serde_json::from_str::<Value>(&read("diffusers-tiny", "reference.json")).unwrap()["schedules"]["squaredcos_cap_v2"];
    let mut c = base.clone();
    c["beta_schedule"] = "squaredcos_cap_v2".into();
    c["num_train_timesteps"] = 50.into();
    let sde = SchedulerConfig::from_json(&c.to_string(), "s").unwrap().sde().unwrap().build().unwrap();
    for (k, ab) in golden["index"].as_array().unwrap().iter().zip(golden["alphas_cumprod"].as_array().unwrap()) {
        let (m, _) = sde.marginal((k.as_f64().unwrap() + 1.0) / 50.0);
        let ab = ab.as_f64().unwrap();
        assert!((m * m - ab).abs() <= 1e-6 * ab.max(1e-3), "k = {k}: {} vs diffusers' {ab}", m * m);
    }
}

/// The image size a checkpoint claims (`sample_size`, or `--shape`) is bounded before the
/// network is built or a weight is read: 10^9-pixel sides are refused by name even with no
/// weights at all; the real size with no weights fails on the weights (issue 22).
#[test]
fn huge_sample_sizes_are_refused_before_the_weights() {
    use scorediff::export::diffusers::{Checkpoint, import};
    let dev = Device::flex();
    let mut config: Value = serde_json::from_str(&read("diffusers-tiny", "config.json")).unwrap();
    let scheduler = read("diffusers-tiny", "scheduler_config.json");
    let attempt = |config: &str, shape: Option<[usize; 2]>| {
        let checkpoint = Checkpoint {
            config,
            config_file: "config.json",
            scheduler: &scheduler,
            scheduler_file: "scheduler_config.json",
            weights: Vec::new(),
            weights_file: "w.safetensors",
        };
        import(checkpoint, "huge", shape, "test", &dev).unwrap_err().to_string()
    };
    let e = attempt(&config.to_string(), None);
    assert!(e.contains("w.safetensors"), "the real size gets as far as the weights: {e}");
    let e = attempt(&config.to_string(), Some([1_000_000_000, 16]));
    assert!(e.contains("`shape`") && e.contains("image sides") && !e.contains("w.safetensors"), "{e}");
    config["sample_size"] = 1_000_000_000.into();
    let e = attempt(&config.to_string(), None);
    assert!(e.contains("config.json") && e.contains("`sample_size`") && e.contains("image sides"), "{e}");
}
