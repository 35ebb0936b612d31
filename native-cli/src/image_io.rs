//! PNG images in and out for `solve`: any PNG a user draws (grey, grey + alpha, RGB, RGBA,
//! palette, 16-bit; decoded with the `png` crate, alpha dropped, 16-bit reduced to 8) as
//! `[channels, height, width]` values in `[-1, 1]`, and rows of grey or RGB tiles written
//! atomically (tiled and encoded by [`crate::png`]). Pixels map to `[-1, 1]` with the data set's scaling
//! (`scorediff::data::mnist::{pixel_to_signed, signed_to_pixel}`).

use anyhow::{Context, Result, anyhow, bail};
use scorediff::data::mnist::pixel_to_signed;
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
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    decode_png(&bytes, &path.display().to_string())
}

/// Decodes the bytes of a PNG file (`name` in errors) as an [`Image`]. A header that claims
/// more than `scorediff::limits::MAX_POINT_ELEMENTS` RGBA pixels is refused before the frame is
/// allocated (the fuzz target `png` found headers claiming terabytes).
pub fn decode_png(bytes: &[u8], name: &str) -> Result<Image> {
    let mut decoder = ::png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(::png::Transformations::EXPAND | ::png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| anyhow!("{e}")).with_context(|| format!("{name}: not a readable PNG file"))?;
    let size = reader.output_buffer_size().ok_or_else(|| anyhow!("{name}: image too large"))?;
    // The header's size is checked before the frame is allocated (the crate's limits cover
    // only its own buffers): an RGBA image of at most MAX_POINT_ELEMENTS pixels.
    let max = 4 * scorediff::limits::MAX_POINT_ELEMENTS as usize;
    if size > max {
        let (w, h) = (reader.info().width, reader.info().height);
        bail!("{name}: a {w}x{h} PNG decodes to {size} bytes; expected at most {max} (an image of {} pixels)", scorediff::limits::MAX_POINT_ELEMENTS);
    }
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| anyhow!("{e}")).with_context(|| format!("{name}: not a readable PNG file"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let (stored, kept) = match info.color_type {
        ::png::ColorType::Grayscale => (1, 1),
        ::png::ColorType::GrayscaleAlpha => (2, 1),
        ::png::ColorType::Rgb => (3, 3),
        ::png::ColorType::Rgba => (4, 3),
        ::png::ColorType::Indexed => bail!("{name}: unexpected palette image after expansion"),
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

/// Writes `tiles` (each `[c, h, w]` in `[-1, 1]`) side by side with grey gaps as an 8-bit grey
/// (`c = 1`) or RGB (`c = 3`) PNG, atomically.
pub fn write_row(path: &Path, tiles: &[Vec<f32>], [c, h, w]: [usize; 3]) -> Result<()> {
    let values: Vec<f32> = tiles.concat();
    let row = crate::png::tile(&values, tiles.len(), [c, h, w], tiles.len())?;
    write_atomic(path, &crate::png::encode(&row)?).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every PNG that ever crashed the `png` fuzz target (tests/data/fuzz-regressions/png/) and
    /// its seed corpus (fuzz/corpus/png/) decode to an image or an error, never a panic.
    #[test]
    fn fuzz_regressions_decode_or_fail_cleanly() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut n = 0;
        for dir in [root.join("tests/data/fuzz-regressions/png"), root.join("fuzz/corpus/png")] {
            let Ok(files) = std::fs::read_dir(&dir) else { continue };
            for file in files.map(|f| f.unwrap().path()).filter(|p| p.extension().is_none_or(|e| e != "md")) {
                let decoded = decode_png(&std::fs::read(&file).unwrap(), &file.display().to_string());
                // The inputs found by the fuzzer claim terabytes: refused, not decoded.
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                let found = name.starts_with("crash-") || name.starts_with("oom-");
                assert!(!found || decoded.is_err(), "{} decoded", file.display());
                n += 1;
            }
        }
        assert!(n > 0, "no PNG inputs");
    }
}
