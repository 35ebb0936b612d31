//! PNG images in and out for `solve`: any PNG a user draws (grey, grey + alpha, RGB, RGBA,
//! palette, 16-bit; decoded with the `png` crate, alpha dropped, 16-bit reduced to 8) as
//! `[channels, height, width]` values in `[-1, 1]`, and rows of grey or RGB tiles written
//! atomically. Pixels map to `[-1, 1]` with the data set's scaling
//! (`scorediff::data::mnist::{pixel_to_signed, signed_to_pixel}`).

use anyhow::{Context, Result, anyhow, bail};
use scorediff::data::mnist::{pixel_to_signed, signed_to_pixel};
use scorediff::io::write_atomic;
use std::path::Path;

/// An image as `[channels, height, width]` values in `[-1, 1]` (channels 1 or 3).
pub struct Image {
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channel-major values.
    pub values: Vec<f32>,
}

/// "grey-level" or "RGB".
pub fn channels_name(c: usize) -> &'static str {
    if c == 1 { "grey-level" } else { "RGB" }
}

/// Reads a PNG file as an [`Image`].
pub fn read_png(path: &Path) -> Result<Image> {
    let context = || format!("reading {}", path.display());
    let file = std::fs::File::open(path).with_context(context)?;
    let mut decoder = ::png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(::png::Transformations::EXPAND | ::png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| anyhow!("{e}")).with_context(|| format!("{}: not a readable PNG file", path.display()))?;
    let size = reader.output_buffer_size().ok_or_else(|| anyhow!("{}: image too large", path.display()))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| anyhow!("{e}")).with_context(|| format!("{}: not a readable PNG file", path.display()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let (stored, kept) = match info.color_type {
        ::png::ColorType::Grayscale => (1, 1),
        ::png::ColorType::GrayscaleAlpha => (2, 1),
        ::png::ColorType::Rgb => (3, 3),
        ::png::ColorType::Rgba => (4, 3),
        ::png::ColorType::Indexed => bail!("{}: unexpected palette image after expansion", path.display()),
    };
    let mut values = vec![0f32; kept * h * w];
    for i in 0..h * w {
        for c in 0..kept {
            values[c * h * w + i] = pixel_to_signed(buf[i * stored + c]);
        }
    }
    Ok(Image { channels: kept, height: h, width: w, values })
}

/// Reads a PNG that must be `[c, h, w]`; the error names the file, what is expected and what
/// was found.
pub fn read_png_shaped(path: &Path, flag: &str, what: &str, [c, h, w]: [usize; 3]) -> Result<Image> {
    let img = read_png(path).with_context(|| flag.to_string())?;
    if (img.channels, img.height, img.width) != (c, h, w) {
        bail!(
            "{flag} {}: expected a {h}x{w} {} PNG ({what}), found a {}x{} {} image",
            path.display(),
            channels_name(c),
            img.height,
            img.width,
            channels_name(img.channels)
        );
    }
    Ok(img)
}

/// Grey level of the gaps between tiles.
const GAP_LEVEL: u8 = 128;
/// Gap between tiles, in pixels.
const GAP: usize = 2;

/// Writes `tiles` (each `[c, h, w]` in `[-1, 1]`) side by side with grey gaps as an 8-bit grey
/// (`c = 1`) or RGB (`c = 3`) PNG, atomically.
pub fn write_row(path: &Path, tiles: &[Vec<f32>], [c, h, w]: [usize; 3]) -> Result<()> {
    let n = tiles.len();
    let (width, height) = (n * w + (n + 1) * GAP, h + 2 * GAP);
    let mut pixels = vec![GAP_LEVEL; width * height * c];
    for (k, tile) in tiles.iter().enumerate() {
        assert_eq!(tile.len(), c * h * w, "tile {k}: expected {c}x{h}x{w} values");
        let x0 = GAP + k * (w + GAP);
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    pixels[((GAP + y) * width + x0 + x) * c + ch] = signed_to_pixel(tile[ch * h * w + y * w + x]);
                }
            }
        }
    }
    let mut bytes = Vec::new();
    {
        let mut encoder = ::png::Encoder::new(&mut bytes, width as u32, height as u32);
        encoder.set_color(if c == 1 { ::png::ColorType::Grayscale } else { ::png::ColorType::Rgb });
        encoder.set_depth(::png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| anyhow!("encoding PNG: {e}"))?;
        writer.write_image_data(&pixels).map_err(|e| anyhow!("encoding PNG: {e}"))?;
    }
    write_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))
}
