//! Helpers shared by the command-line tests: temporary directories and running the binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("native-cli-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_native-cli")).args(args).output().expect("native-cli runs")
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs and expects success; returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs and expects failure with exactly one stderr line `error: ...` containing every needle.
pub fn run_err(args: &[&str], needles: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{args:?} succeeded; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one stderr line, found {stderr:?}");
    let line = lines[0];
    assert!(line.starts_with("error: "), "{line}");
    assert!(!line.contains("panicked") && !line.contains("internal error"), "{line}");
    for needle in needles {
        assert!(line.contains(needle), "{args:?}: {line:?} does not contain {needle:?}");
    }
    line.to_string()
}

/// [`run_err`] on `base` followed by `extra`.
pub fn run_err_with(base: &[&str], extra: &[&str], needles: &[&str]) -> String {
    run_err(&[base, extra].concat(), needles)
}

/// `(width, height, channels, pixels)` of a PNG file.
pub fn read_png(path: &Path) -> (usize, usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, info.color_type.samples(), buf)
}

/// Writes 8-bit pixels as a PNG (1 channel grey, 3 RGB).
pub fn write_png(path: &Path, w: usize, h: usize, channels: usize, pixels: &[u8]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, w as u32, h as u32);
    encoder.set_color(if channels == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(pixels).unwrap();
}
