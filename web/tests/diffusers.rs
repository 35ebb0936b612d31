//! An imported diffusers `UNet2DModel` in the page (issue 21), on native Flex: the committed tiny
//! fixture (`tests/data/diffusers-tiny`, 3x16x16 colour images) imported as `native-cli
//! import-diffusers` does, written as an export directory and loaded from its `model.json` and
//! weights file as the worker loads them, samples what the command line's path samples (the
//! core's `draw_batches` over the core's `DiffusersUNet`, `native-cli sample`) with the same
//! seed and sampler. Both run the same operations on the same backend in the same order from
//! the same per-sample noise ([`NoiseSource::for_samples`]), so the images are bit-identical: the
//! tolerance is zero, and any difference is a different computation, not rounding. The page's
//! inverse problems (DPS, Chung et al. 2023, Alg. 1, on DDIM steps) solve what `native-cli solve
//! --method dps` solves, bit for bit too. Class labels and guidance need the core's U-Net and
//! refuse the imported model by name.
#![cfg(not(target_arch = "wasm32"))]

use scorediff::burn::tensor::{Device, Tensor, TensorData};
use scorediff::export::diffusers::import_dir;
use scorediff::export::{LoadedNet, ModelCard, write_dir};
use scorediff::inverse::dps::{DEFAULT_SIGMA_Y, DEFAULT_ZETA};
use scorediff::inverse::{MeasurementNoise, Method, Problem, Task, TaskKind};
use scorediff::model::{ImageNet, ScoreFn};
use scorediff::noise::NoiseSource;
use scorediff::sampler::{SamplerKind, SamplerSpec, draw_batches};
use scorediff_web::engine::{ImageModel, Target, parse_image_request, read_sync};
use scorediff_web::inverse::InverseProblem;
use scorediff_web::scorediff;
use std::path::{Path, PathBuf};
use std::rc::Rc;

const NAME: &str = "tiny-import";
const SEED: u64 = 11;
const N: usize = 3;
const STEPS: usize = 10;

/// The fixture imported into a fresh export directory (`model.json` + weights), as
/// `native-cli import-diffusers --from tests/data/diffusers-tiny --out DIR` writes it (one
/// directory per test: they run in parallel).
fn imported(test: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/diffusers-tiny");
    let (card, weights) = import_dir(&from, NAME, None, "web/tests/diffusers.rs", &Device::flex()).unwrap();
    let dir = std::env::temp_dir().join(format!("scorediff-web-diffusers-{test}-{}", std::process::id()));
    write_dir(&dir, &card, &weights, true).unwrap();
    dir
}

/// The export directory's card text and weights bytes, as the worker fetches them.
fn files(dir: &Path) -> (String, Vec<u8>) {
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let card = ModelCard::from_json(&json).unwrap();
    let weights = std::fs::read(dir.join(&card.weights)).unwrap();
    (json, weights)
}

fn page_model(dir: &Path) -> Rc<ImageModel> {
    let (json, weights) = files(dir);
    Rc::new(ImageModel::load(&json, weights, Target::flex()).unwrap())
}

/// The page's images: a request stepped to the end, the final state read back.
fn page_images(model: &Rc<ImageModel>, kind: SamplerKind) -> Vec<f32> {
    let r = parse_image_request(&format!(r#"{{"sampler": {{"kind": "{kind}", "steps": {STEPS}}}, "seed": {SEED}, "batch": {N}}}"#)).unwrap();
    let mut run = model.sample(&r).unwrap();
    while run.step().unwrap() {}
    assert_eq!(run.nfe(), STEPS, "{kind}: one evaluation per step");
    read_sync(run.state_tensor()).unwrap()
}

/// `native-cli sample --model DIR --sampler KIND --steps 10 --n 3 --seed 11`'s images: the
/// card's network and config (`build_for` with the card's variance and data range) through the
/// core's batched loop.
fn cli_images(dir: &Path, kind: SamplerKind) -> Vec<f32> {
    let (json, weights) = files(dir);
    let card = ModelCard::from_json(&json).unwrap();
    let device = Device::flex();
    let LoadedNet::Diffusers(net) = card.load_net(weights, &device).unwrap() else { panic!("expected an imported diffusers-unet2d") };
    let config = SamplerSpec { steps: Some(STEPS), ..SamplerSpec::new(kind) }.build_for(card.variance, card.data_range()).unwrap();
    let sde = card.sde().unwrap();
    let [c, h, w] = [card.shape[0], card.shape[1], card.shape[2]];
    let model_for = |_: usize, _: usize| -> Result<_, scorediff::sampler::ReadBackError> { Ok(net.clone()) };
    let drawn = draw_batches(&config, sde.as_ref(), N, N, |r| [r, c, h, w], model_for, &NoiseSource::new(SEED), &device, |_| Ok(())).unwrap();
    drawn.values
}

#[test]
fn imported_model_samples_what_the_command_line_samples() {
    let dir = imported("sample");
    let model = page_model(&dir);
    assert_eq!(model.image_shape(), [3, 16, 16], "the card's shape: colour 16x16");
    let info = model.info();
    assert_eq!((info["network"].as_str(), info["num_classes"].is_null()), (Some("diffusers-unet2d"), true), "{info}");
    for kind in [SamplerKind::Ddim, SamplerKind::DpmSolver2m] {
        let page = page_images(&model, kind);
        let cli = cli_images(&dir, kind);
        assert_eq!(page.len(), N * 3 * 16 * 16, "{kind}");
        assert!(page.iter().all(|v| v.is_finite()), "{kind}: finite images");
        let spread = page.iter().map(|&v| v as f64).fold(f64::NEG_INFINITY, f64::max) - page.iter().map(|&v| v as f64).fold(f64::INFINITY, f64::min);
        assert!(spread > 0.1, "{kind}: the images vary (range {spread})");
        let worst = page.iter().zip(&cli).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!("{kind}: largest difference page - command line {worst:e} over {} values", page.len());
        assert_eq!(worst, 0.0, "{kind}: same backend, operations and noise: bit-identical images expected");
    }
    // A slice of the run (a pool worker's `first`) draws those images of the whole run.
    let r = parse_image_request(&format!(r#"{{"sampler": {{"kind": "ddim", "steps": {STEPS}}}, "seed": {SEED}, "first": 1, "batch": 2}}"#)).unwrap();
    let mut run = model.sample(&r).unwrap();
    while run.step().unwrap() {}
    assert_eq!(read_sync(run.state_tensor()).unwrap(), cli_images(&dir, SamplerKind::Ddim)[3 * 16 * 16..], "images 1 and 2 of the run");
    // Interpolation and previews run it too.
    let r = parse_image_request(&format!(r#"{{"sampler": {{"kind": "ddim", "steps": 4}}, "seed": {SEED}, "batch": 2}}"#)).unwrap();
    let mut run = model.interpolate(&r, 1, 2, &[0.0, 0.5, 1.0]).unwrap();
    run.step().unwrap();
    assert_eq!(read_sync(run.denoised_tensor().unwrap()).unwrap().len(), 3 * 3 * 16 * 16, "a preview of the three latents");
    while run.step().unwrap() {}
    assert_eq!(run.shape(), [3, 3, 16, 16]);
    // Inpainting takes the model's shape: colour images, every channel of a pixel erased.
    let y: Vec<f32> = (0..3 * 16 * 16).map(|i| ((i % 5) as f32 / 2.0) - 1.0).collect();
    let mask: Vec<f32> = (0..3 * 16 * 16).map(|i| if (i % 256) < 128 { 1.0 } else { 0.0 }).collect();
    let mut run = model.inpaint(&r, &y, &mask).unwrap();
    while run.step().unwrap() {}
    let out = read_sync(run.state_tensor()).unwrap();
    assert_eq!(out.len(), 2 * 3 * 16 * 16);
    assert!(out.iter().all(|v| v.is_finite()), "finite inpainted images");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn guidance_and_labels_refuse_an_imported_model_by_name() {
    let dir = imported("refuse");
    let model = page_model(&dir);
    for (request, feature) in [(r#""label": 1"#, "label"), (r#""label": null, "guidance": 2"#, "guidance")] {
        let r = parse_image_request(&format!(r#"{{"sampler": {{"kind": "ddim", "steps": 4}}, "batch": 2, {request}}}"#)).unwrap();
        let e = model.sample(&r).err().expect("refused");
        assert!(e.starts_with(feature) && e.contains(NAME) && e.contains("imported diffusers-unet2d"), "{e}");
        let e = model.interpolate(&r, 1, 2, &[0.0, 1.0]).err().expect("refused");
        assert!(e.starts_with(feature) && e.contains(NAME), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// DPS's settings in the page's request and on the command line: ddim at [`DPS_STEPS`] steps,
/// the default `zeta'` and `sigma_y`, super-resolution x2 by bicubic downsampling (the page's
/// and `solve`'s default downsampling).
const DPS_STEPS: usize = 6;
const DPS_FACTOR: usize = 2;

/// A colour 3x16x16 image of 8-bit levels `p / 127.5 - 1` (what `solve --input IMG.png` reads).
fn colour_image() -> Vec<f32> {
    (0..3 * 16 * 16).map(|i| ((i * 37 + (i / 256) * 80) % 256) as f32 / 127.5 - 1.0).collect()
}

/// The page's DPS (web/src/inverse.rs, what the worker's `inverse` request runs) on `image`:
/// `(measurement picture, result)`.
fn page_dps(model: &Rc<ImageModel>, image: &[f32], zeta: f64, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let request = format!(r#"{{"task": "super-resolution", "factor": {DPS_FACTOR}, "sampler": "ddim", "steps": {DPS_STEPS}, "zeta": {zeta}, "seed": {seed}}}"#);
    let mut problem = InverseProblem::new(model, &request, image).unwrap();
    let mut run = problem.start().unwrap();
    while run.step().unwrap() {}
    assert_eq!(run.nfe(), DPS_STEPS, "one evaluation (and one backward pass) per step");
    (problem.measurement().to_vec(), read_sync(run.state_tensor()).unwrap())
}

/// `native-cli solve --model DIR --task super-resolution --factor 2 --method dps --sampler ddim
/// --steps 6 --seed SEED --input IMG.png`'s path (native-cli/src/solve.rs): the card's network
/// as the core's `ImageNet`, the measurement `y = A x + n` drawn first from the seed's noise,
/// then the core's `Method::solve`. Returns `(y, result)`.
fn cli_dps(dir: &Path, image: &[f32], seed: u64) -> (Tensor<4>, Vec<f32>) {
    let (json, weights) = files(dir);
    let card = ModelCard::from_json(&json).unwrap();
    let device = Device::flex();
    let net = ImageNet::new(card.load_net(weights, &device).unwrap()).unwrap();
    assert!(net.is_imported());
    let sde = card.sde().unwrap();
    let shape = [card.shape[0], card.shape[1], card.shape[2]];
    let config = SamplerSpec { steps: Some(DPS_STEPS), ..SamplerSpec::new(SamplerKind::Ddim) }.build_for(card.variance, card.data_range()).unwrap();
    let mut task = Task::new(TaskKind::SuperResolution);
    task.factor = DPS_FACTOR;
    let op = task.build(shape, &device).unwrap();
    let noise_model = MeasurementNoise::Gaussian { sigma: DEFAULT_SIGMA_Y };
    let mut noise = NoiseSource::new(seed);
    let x = Tensor::<4>::from_data(TensorData::new(image.to_vec(), [1, shape[0], shape[1], shape[2]]), &device);
    let y = noise_model.apply(op.forward(x), &mut noise);
    let f = ScoreFn::new(&net, sde.as_ref());
    let method = Method::Dps { zeta: DEFAULT_ZETA };
    let out = method.solve(&f, &config, Problem { task: &task, op, y: y.clone(), noise: noise_model, image: shape }, &mut noise, &device, |_, _| {}).unwrap();
    assert_eq!(f.nfe(), DPS_STEPS);
    (y, read_sync(out.reshape([3 * 16 * 16])).unwrap())
}

/// `sum (y - A(x))^2` of a result `x` (`[3, 16, 16]`) against the measurement.
fn residual(y: &Tensor<4>, x: &[f32]) -> f64 {
    let device = Device::flex();
    let mut task = Task::new(TaskKind::SuperResolution);
    task.factor = DPS_FACTOR;
    let op = task.build([3, 16, 16], &device).unwrap();
    let ax = op.forward(Tensor::<4>::from_data(TensorData::new(x.to_vec(), [1, 3, 16, 16]), &device));
    read_sync((y.clone() - ax).reshape([3 * 8 * 8])).unwrap().iter().map(|&r| (r as f64).powi(2)).sum()
}

/// The page's DPS on the imported colour model (issue 21) gives the command line's result for
/// the same seed, bit for bit: the same core DPS over the same `ImageNet` on the same backend
/// (Flex, where the page runs DPS) from the same noise stream, so the tolerance is zero. The
/// guidance acts: the result fits the measurement better than the same run with `zeta' = 0`
/// (plain DDIM from the same noise).
#[test]
fn imported_model_solves_by_dps_what_the_command_line_solves() {
    let dir = imported("dps");
    let model = page_model(&dir);
    let image = colour_image();
    let (measurement, page) = page_dps(&model, &image, DEFAULT_ZETA, SEED);
    assert_eq!(measurement.len(), 3 * 16 * 16, "the measurement drawn at the card's colour 16x16");
    assert_eq!(page.len(), 3 * 16 * 16);
    assert!(page.iter().all(|v| v.is_finite()), "a finite result");
    let (y, cli) = cli_dps(&dir, &image, SEED);
    let worst = page.iter().zip(&cli).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("dps: largest difference page - command line {worst:e} over {} values", page.len());
    assert_eq!(worst, 0.0, "same backend, operations and noise: a bit-identical result expected");
    let (_, other) = page_dps(&model, &image, DEFAULT_ZETA, SEED + 1);
    assert_ne!(page, other, "another seed, another result");
    let (_, unguided) = page_dps(&model, &image, 0.0, SEED);
    let (guided, plain) = (residual(&y, &page), residual(&y, &unguided));
    println!("dps: residual {guided:.3} with zeta' = {DEFAULT_ZETA}, {plain:.3} with zeta' = 0");
    assert!(guided < plain, "DPS's correction moves the result towards the measurement: {guided} vs {plain} unguided");
    std::fs::remove_dir_all(&dir).unwrap();
}
