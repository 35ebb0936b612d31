//! `native-cli solve` on an imported diffusers `UNet2DModel` (issue 21): the committed tiny
//! fixture (`tests/data/diffusers-tiny`, 3x16x16 colour images) imported by `import-diffusers`
//! and solved by every method, in the card's shape (RGB in, RGB out). What can fail: projection
//! inpainting keeps the observed pixels exactly, projection colorization's grey levels are the
//! measurement's, every result is finite with one network evaluation per step, and bad
//! combinations give one error line naming the problem.

use std::path::{Path, PathBuf};

mod common;
use common::{TempDir, read_png, run_err_with, run_ok, s, write_png};

const SIDE: usize = 16;
/// Tiles of 16 pixels with 2-pixel gaps, as `solve` writes them.
const GAP: usize = 2;

/// The fixture imported into `dir/tiny` as `native-cli import-diffusers` imports it.
fn imported(dir: &TempDir) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/diffusers-tiny");
    let model = dir.path("tiny");
    run_ok(&["import-diffusers", "--from", s(&fixture), "--out", s(&model)]);
    model
}

/// A colourful 16x16 RGB image, interleaved: red grows to the right, green downwards, blue is a
/// checkerboard.
fn picture() -> Vec<u8> {
    let mut px = Vec::with_capacity(SIDE * SIDE * 3);
    for y in 0..SIDE {
        for x in 0..SIDE {
            px.extend([(x * 255 / (SIDE - 1)) as u8, (y * 255 / (SIDE - 1)) as u8, if (x / 4 + y / 4) % 2 == 0 { 40 } else { 220 }]);
        }
    }
    px
}

/// Pixel `(y, x)` of tile `k` of a row PNG, its `c` channels.
fn tile_pixel(png: &(usize, usize, usize, Vec<u8>), k: usize, y: usize, x: usize) -> &[u8] {
    let (w, _, c, px) = png;
    let (row, col) = (GAP + y, GAP + k * (SIDE + GAP) + x);
    &px[(row * w + col) * c..(row * w + col + 1) * c]
}

/// `solve` on the imported model with `--json`; the summary and the row PNG.
fn solve(model: &Path, out: &Path, args: &[&str]) -> (serde_json::Value, (usize, usize, usize, Vec<u8>)) {
    let base = ["solve", "--model", s(model), "--out", s(out), "--json"];
    let text = run_ok(&[&base[..], args].concat());
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (v, read_png(out))
}

#[test]
fn an_imported_rgb_model_solves_every_method_in_its_shape() {
    let dir = TempDir::new("solve-imported");
    let model = imported(&dir);
    let input = dir.path("picture.png");
    let truth = picture();
    write_png(&input, SIDE, SIDE, 3, &truth);
    for (task, method, extra) in [
        ("inpaint", "projection", vec!["--mask", "box:4,2,8,10", "--noise", "none", "--sampler", "ddim"]),
        ("inpaint", "dps", vec!["--mask", "box:4,2,8,10"]),
        ("colorize", "projection", vec!["--noise", "none", "--sampler", "ddim"]),
        ("colorize", "dps", vec!["--sampler", "ddim"]),
        ("colorize", "sdedit", vec!["--t0", "0.4"]),
        ("super-resolution", "dps", vec!["--factor", "2"]),
        ("deblur", "dps", vec![]),
    ] {
        let out = dir.path(&format!("{task}-{method}.png"));
        let (v, png) = solve(&model, &out, &[&["--task", task, "--method", method, "--input", s(&input), "--steps", "4", "--seed", "3"], &extra[..]].concat());
        // measurement | baseline | result | ground truth, RGB tiles of the card's 16x16.
        let columns = v["columns"].as_array().unwrap().len();
        assert_eq!(columns, 4, "{task} by {method}: {v}");
        assert_eq!((png.0, png.1, png.2), (columns * SIDE + (columns + 1) * GAP, SIDE + 2 * GAP, 3), "{task} by {method}: an RGB row");
        assert_eq!(v["nfe"], 4, "{task} by {method}: one evaluation per step: {v}");
        // A NaN or infinity anywhere in the result makes its PSNR NaN.
        let (psnr, ssim) = (v["psnr"].as_f64().unwrap(), v["ssim"].as_f64().unwrap());
        assert!(psnr.is_finite() && (-1.0..=1.0).contains(&ssim), "{task} by {method}: a finite result: {v}");
        // The ground truth tile is the input, channel by channel.
        for (y, x) in [(0, 0), (7, 9), (15, 15)] {
            assert_eq!(tile_pixel(&png, 3, y, x), &truth[(y * SIDE + x) * 3..(y * SIDE + x + 1) * 3], "{task}: ground truth ({y}, {x})");
        }
        match (task, method) {
            // Noise-free projection inpainting ends with A x = y: the observed pixels (outside
            // rows 4..12, columns 2..12) are the input's in every channel, exactly.
            ("inpaint", "projection") => {
                let mut kept = 0;
                for y in 0..SIDE {
                    for x in 0..SIDE {
                        if !((4..12).contains(&y) && (2..12).contains(&x)) {
                            assert_eq!(tile_pixel(&png, 2, y, x), &truth[(y * SIDE + x) * 3..(y * SIDE + x + 1) * 3], "observed pixel ({y}, {x})");
                            kept += 1;
                        }
                    }
                }
                assert_eq!(kept, SIDE * SIDE - 80);
            }
            // Noise-free projection colorization ends with mean(r, g, b) = y, the grey
            // measurement (drawn as A^+ y: the grey level in every channel). Each channel is
            // rounded to 8 bits (0.5 levels at most, so 0.5 for their mean) and so is the grey,
            // so they agree within 1 level where no channel is clipped to 0 or 255. The random
            // fixture's colours are vivid: where channels are clipped only at 255 (only at 0)
            // clipping lowered (raised) the mean, which bounds it from one side; 48 of the 256
            // pixels are unclipped here.
            ("colorize", "projection") => {
                let mut compared = 0;
                for y in 0..SIDE {
                    for x in 0..SIDE {
                        let (rgb, grey) = (tile_pixel(&png, 2, y, x), tile_pixel(&png, 0, y, x));
                        assert!(grey[0] == grey[1] && grey[1] == grey[2], "the measurement is grey at ({y}, {x}): {grey:?}");
                        let mean = rgb.iter().map(|&p| p as f64).sum::<f64>() / 3.0;
                        let (high, low) = (rgb.contains(&255), rgb.contains(&0));
                        if high || low {
                            let bounded = match (high, low) {
                                (true, false) => mean <= grey[0] as f64 + 1.0,
                                (false, true) => mean >= grey[0] as f64 - 1.0,
                                _ => true,
                            };
                            assert!(bounded, "({y}, {x}): the clipped result {rgb:?} has grey level {mean:.2}, the measurement {}", grey[0]);
                            continue;
                        }
                        assert!((mean - grey[0] as f64).abs() <= 1.0, "({y}, {x}): the result {rgb:?} has grey level {mean:.2}, the measurement {}", grey[0]);
                        compared += 1;
                    }
                }
                assert!(compared >= 32, "only {compared} unclipped pixels to compare");
                // The measured grey is the truth's channel mean.
                let (grey, t) = (tile_pixel(&png, 0, 5, 6)[0] as f64, &truth[(5 * SIDE + 6) * 3..(5 * SIDE + 7) * 3]);
                assert!((grey - t.iter().map(|&p| p as f64).sum::<f64>() / 3.0).abs() <= 1.0, "grey {grey} of {t:?}");
            }
            _ => {}
        }
    }
}

#[test]
fn bad_combinations_on_an_imported_model_name_the_problem() {
    let dir = TempDir::new("solve-imported-errors");
    let model = imported(&dir);
    let out = dir.path("x.png");
    let (rgb, grey, mnist_sized) = (dir.path("rgb.png"), dir.path("grey.png"), dir.path("big.png"));
    write_png(&rgb, SIDE, SIDE, 3, &picture());
    write_png(&grey, SIDE, SIDE, 1, &[128u8; SIDE * SIDE]);
    write_png(&mnist_sized, 28, 28, 3, &[0u8; 3 * 784]);
    let base = |task: &'static str, method: &'static str| -> Vec<String> {
        ["solve", "--model", s(&model), "--task", task, "--method", method, "--out", s(&out), "--steps", "2"].map(String::from).to_vec()
    };
    let check = |base: Vec<String>, extra: &[&str], needles: &[&str]| {
        let base: Vec<&str> = base.iter().map(String::as_str).collect();
        run_err_with(&base, extra, needles);
    };
    check(base("inpaint", "dps"), &["--input", s(&grey)], &["grey.png", "expected a 16x16 RGB PNG", "found a 16x16 grey-level"]);
    check(base("inpaint", "dps"), &["--input", s(&mnist_sized)], &["big.png", "expected a 16x16 RGB PNG", "found a 28x28"]);
    check(base("inpaint", "dps"), &["--test-index", "0"], &["expected a model trained on an image data set"]);
    check(base("inpaint", "dps"), &["--input", s(&rgb), "--sampler", "ode-euler"], &["dps", "ancestral or ddim"]);
    check(base("deblur", "projection"), &["--input", s(&rgb)], &["projection", "pseudo-inverse"]);
    check(base("phase-retrieval", "sdedit"), &["--input", s(&rgb)], &["sdedit", "phase-retrieval"]);
    check(base("super-resolution", "dps"), &["--input", s(&rgb), "--factor", "3"], &["factor", "16x16"]);
    check(base("colorize", "dps"), &["--input", s(&rgb), "--measured"], &["expected a 16x16 grey-level PNG", "found a 16x16 RGB"]);
    check(base("inpaint", "projection"), &["--input", s(&rgb), "--mask", s(&rgb)], &["--mask", "grey-level", "RGB"]);
    // solve-eval draws the model's data set's test images: an imported model has none.
    run_err_with(&["solve-eval", "--model", s(&model), "--n", "1", "--steps", "2"], &[], &["--model", "expected a model trained on an image data set"]);
}
