//! Grids of images as 8-bit grey-level or RGB PNG files (PNG specification, ISO/IEC
//! 15948:2003, colour types 0 and 2), encoded with the `png` crate.
//!
//! Images are `[n, c, h, w]` values in `[-1, 1]` (channel-major per image, `c` 1 or 3), mapped
//! to 8-bit levels with the data set's own scaling (`scorediff::data::mnist::signed_to_pixel`,
//! the inverse of how the training data was scaled), tiled row after row with grey gaps.

use anyhow::{Result, anyhow, bail};
use scorediff::data::mnist::signed_to_pixel;

/// An 8-bit raster, row-major with interleaved channels.
#[derive(Debug)]
pub struct Raster {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// `width * height * channels` levels.
    pub pixels: Vec<u8>,
}

/// Level of the gaps between tiles (every channel).
const GAP_LEVEL: u8 = 128;
/// Gap between tiles, in pixels.
const GAP: usize = 2;

/// Columns of a near-square grid of `n` tiles: `ceil(sqrt(n))`.
pub fn grid_columns(n: usize) -> usize {
    let mut c = (n as f64).sqrt().ceil() as usize;
    while c * c < n {
        c += 1;
    }
    c.max(1)
}

/// Tiles `n` images of `[c, h, w]` values in `[-1, 1]` (`images`: `[n, c, h, w]` row-major)
/// into a grid of `cols` columns, row after row, with grey gaps between tiles.
///
/// # Errors
/// `c` other than 1 or 3, or `images` not `n c h w` long.
pub fn tile(images: &[f32], n: usize, [c, h, w]: [usize; 3], cols: usize) -> Result<Raster> {
    if c != 1 && c != 3 {
        bail!("PNG images: expected 1 (grey) or 3 (RGB) channels, found {c}");
    }
    if images.len() != n * c * h * w {
        bail!("PNG images: expected {n} images of {c}x{h}x{w} = {} values, found {}", n * c * h * w, images.len());
    }
    let cols = cols.max(1);
    let rows = n.div_ceil(cols).max(1);
    let (width, height) = (cols * w + (cols + 1) * GAP, rows * h + (rows + 1) * GAP);
    let mut pixels = vec![GAP_LEVEL; width * height * c];
    for i in 0..n {
        let (r, col) = (i / cols, i % cols);
        let (y0, x0) = (GAP + r * (h + GAP), GAP + col * (w + GAP));
        let image = &images[i * c * h * w..(i + 1) * c * h * w];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    pixels[((y0 + y) * width + x0 + x) * c + ch] = signed_to_pixel(image[(ch * h + y) * w + x]);
                }
            }
        }
    }
    Ok(Raster { width, height, channels: c, pixels })
}

/// The PNG file of a raster (colour type 0 for grey, 2 for RGB; bit depth 8).
pub fn encode(img: &Raster) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    {
        let mut encoder = ::png::Encoder::new(&mut bytes, img.width as u32, img.height as u32);
        encoder.set_color(if img.channels == 1 { ::png::ColorType::Grayscale } else { ::png::ColorType::Rgb });
        encoder.set_depth(::png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| anyhow!("encoding PNG: {e}"))?;
        writer.write_image_data(&img.pixels).map_err(|e| anyhow!("encoding PNG: {e}"))?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_io::decode_png;

    /// Round trip: two RGB tiles and two grey ones, decoded back (the `png` crate's decoder)
    /// to the levels `signed_to_pixel` gives, each channel in its place, gaps grey.
    #[test]
    fn grey_and_rgb_grids_round_trip() {
        for c in [1, 3] {
            let (h, w) = (3, 4);
            let values: Vec<f32> = (0..2 * c * h * w).map(|i| (i as f32 / (2 * c * h * w) as f32) * 2.0 - 1.0).collect();
            let grid = tile(&values, 2, [c, h, w], 2).unwrap();
            let back = decode_png(&encode(&grid).unwrap(), "grid").unwrap();
            assert_eq!((back.channels, back.height, back.width), (c, h + 2 * GAP, 2 * w + 3 * GAP));
            let pixel = |ch: usize, y: usize, x: usize| signed_to_pixel(back.values[(ch * back.height + y) * back.width + x]);
            for i in 0..2 {
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let want = signed_to_pixel(values[((i * c + ch) * h + y) * w + x]);
                            assert_eq!(pixel(ch, GAP + y, GAP + i * (w + GAP) + x), want, "c {c}, image {i}, channel {ch}, ({y}, {x})");
                        }
                    }
                }
            }
            assert_eq!(pixel(c - 1, 0, 0), GAP_LEVEL);
        }
        assert!(tile(&[0.0; 8], 2, [2, 2, 1], 2).unwrap_err().to_string().contains("found 2"));
        assert!(tile(&[0.0; 7], 2, [1, 2, 2], 2).unwrap_err().to_string().contains("found 7"));
    }
}
