//! An imported diffusers `UNet2DModel` in the page (issue 21), on native Flex: the committed tiny
//! fixture (`tests/data/diffusers-tiny`, 3x16x16 colour images) imported as `native-cli
//! import-diffusers` does, written as an export directory and loaded from its `model.json` and
//! weights file as the worker loads them, samples what the command line's path samples (the
//! core's `draw_batches` over the core's `DiffusersUNet`, `native-cli sample`) with the same
//! seed and sampler. Both run the same operations on the same backend in the same order from
//! the same per-sample noise ([`NoiseSource::for_samples`]), so the images are bit-identical: the
//! tolerance is zero, and any difference is a different computation, not rounding. Class
//! labels, guidance and DPS need the core's U-Net and refuse the imported model by name.
#![cfg(not(target_arch = "wasm32"))]

use scorediff::burn::tensor::Device;
use scorediff::export::diffusers::import_dir;
use scorediff::export::{LoadedNet, ModelCard, write_dir};
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
fn guidance_labels_and_dps_refuse_an_imported_model_by_name() {
    let dir = imported("refuse");
    let model = page_model(&dir);
    for (request, feature) in [(r#""label": 1"#, "label"), (r#""label": null, "guidance": 2"#, "guidance")] {
        let r = parse_image_request(&format!(r#"{{"sampler": {{"kind": "ddim", "steps": 4}}, "batch": 2, {request}}}"#)).unwrap();
        let e = model.sample(&r).err().expect("refused");
        assert!(e.starts_with(feature) && e.contains(NAME) && e.contains("imported diffusers-unet2d"), "{e}");
        let e = model.interpolate(&r, 1, 2, &[0.0, 1.0]).err().expect("refused");
        assert!(e.starts_with(feature) && e.contains(NAME), "{e}");
    }
    let e = model.check_dps().unwrap_err();
    assert!(e.starts_with("DPS") && e.contains(NAME), "{e}");
    // The inverse panel's path: measuring works on any image model; DPS itself is refused.
    let image: Vec<f32> = (0..3 * 16 * 16).map(|i| ((i % 7) as f32 / 3.0) - 1.0).collect();
    let mut problem = InverseProblem::new(&model, r#"{"task": "super-resolution", "factor": 2, "sampler": "ddim", "steps": 4}"#, &image).unwrap();
    let e = problem.start().err().expect("DPS refused");
    assert!(e.starts_with("DPS") && e.contains(NAME) && e.contains("imported diffusers-unet2d"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
