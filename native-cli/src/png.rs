//! Grids of images as 8-bit grey-level PNG files (PNG specification, ISO/IEC 15948:2003).
//!
//! A minimal encoder: signature, `IHDR` (bit depth 8, colour type 0), one zlib-compressed
//! `IDAT` with filter type 0 on every scanline, `IEND`; each chunk closed by its CRC-32.
//! Images in `[-1, 1]` map to grey levels with the data set's own scaling
//! (`scorediff::data::mnist::signed_to_pixel`, the inverse of how the training data was scaled).

use flate2::write::ZlibEncoder;
use flate2::{Compression, Crc};
use scorediff::data::mnist::signed_to_pixel;
use std::io::Write;

/// A grey-level image, row-major.
pub struct Gray {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` grey levels.
    pub pixels: Vec<u8>,
}

/// Grey level of the gaps between tiles.
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

/// Tiles `[n, h, w]` single-channel images in `[-1, 1]` (row-major) into a grid of `cols`
/// columns, row after row, with grey gaps between tiles.
pub fn tile(images: &[f32], n: usize, [h, w]: [usize; 2], cols: usize) -> Gray {
    assert_eq!(images.len(), n * h * w, "expected {n} images of {h}x{w}");
    let rows = n.div_ceil(cols).max(1);
    let (width, height) = (cols * w + (cols + 1) * GAP, rows * h + (rows + 1) * GAP);
    let mut pixels = vec![GAP_LEVEL; width * height];
    for i in 0..n {
        let (r, c) = (i / cols, i % cols);
        let (y0, x0) = (GAP + r * (h + GAP), GAP + c * (w + GAP));
        for y in 0..h {
            for x in 0..w {
                pixels[(y0 + y) * width + x0 + x] = signed_to_pixel(images[i * h * w + y * w + x]);
            }
        }
    }
    Gray { width, height, pixels }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// The PNG file of an 8-bit grey-level image.
pub fn encode(img: &Gray) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(img.width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(img.height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // bit depth 8, grey, deflate, filter 0, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    let mut raw = Vec::with_capacity(img.height * (img.width + 1));
    for row in img.pixels.chunks_exact(img.width) {
        raw.push(0); // filter type None
        raw.extend_from_slice(row);
    }
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&raw).expect("writing to memory");
    chunk(&mut out, b"IDAT", &z.finish().expect("writing to memory"));
    chunk(&mut out, b"IEND", &[]);
    out
}
