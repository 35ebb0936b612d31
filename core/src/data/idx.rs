//! IDX files, the format of MNIST and Fashion-MNIST.
//!
//! LeCun, Cortes & Burges, "The MNIST database of handwritten digits" (1998), section "File
//! formats": a big-endian `u32` magic number `0x0000TTDD` (two zero bytes, the element type
//! `TT`, `0x08` for unsigned bytes, and the number of dimensions `DD`), then `DD` big-endian
//! `u32` sizes, then the elements in row-major order. Images are `0x00000803` (`[n, rows, cols]`
//! of `u8`) and labels `0x00000801` (`[n]` of `u8`). The files are distributed gzip-compressed;
//! a file is decompressed when it starts with the gzip magic `1f 8b` (RFC 1952, section 2.3.1),
//! whatever its name, so both `train-images-idx3-ubyte` and `train-images-idx3-ubyte.gz` read
//! either way. Nothing here panics on malformed input: every failure is a [`DataError`] that
//! names the file and the expected vs found value.

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Magic number of an IDX file of `u8` images `[n, rows, cols]`.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of `u8` labels `[n]`.
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The two bytes that open every gzip stream (RFC 1952).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What to run when a data set is missing.
pub const FETCH_HINT: &str = "run scripts/fetch-data.sh from the repository root to download MNIST and Fashion-MNIST into data/ (or set SCOREDIFF_DATA to a folder with mnist/ and fashion-mnist/ sub-folders holding the IDX files)";

/// A data file was missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file that should exist does not.
    #[error("missing data file {path}: {FETCH_HINT}")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// No searched folder held a data set.
    #[error("cannot find {dataset} (files {files}) in any of: {}; {FETCH_HINT}", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        /// The data set's name (e.g. `mnist`).
        dataset: String,
        /// The file names looked for, comma-separated.
        files: String,
        /// Every folder searched, in order.
        searched: Vec<PathBuf>,
    },
    /// The file exists but could not be read or written.
    #[error("cannot access {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file starts like gzip but does not decompress.
    #[error("{path} starts with the gzip magic 1f 8b but does not decompress: {error} (corrupt or partial download?)")]
    Gzip {
        /// The file.
        path: String,
        /// The decoder's error.
        error: std::io::Error,
    },
    /// The file ends before its header says it should.
    #[error("{path} is truncated: expected {expected} bytes ({what}), found {found}")]
    Truncated {
        /// The file.
        path: String,
        /// What the expected length covers (e.g. `header`, `60000 x 28 x 28 images`).
        what: String,
        /// Bytes the header implies (after decompression).
        expected: u64,
        /// Bytes present (after decompression).
        found: u64,
    },
    /// The file has bytes beyond what its header describes.
    #[error("{path} has trailing bytes: expected {expected} bytes ({what}), found {found}")]
    TrailingBytes {
        /// The file.
        path: String,
        /// What the expected length covers.
        what: String,
        /// Bytes the header implies (after decompression).
        expected: u64,
        /// Bytes present (after decompression).
        found: u64,
    },
    /// The magic number is not the one expected.
    #[error("{path} has magic number {found:#010x}, expected {expected:#010x} ({what}); is it the right file?")]
    BadMagic {
        /// The file.
        path: String,
        /// What the expected magic means.
        what: String,
        /// The expected magic number.
        expected: u32,
        /// The magic number found.
        found: u32,
    },
    /// The header's sizes do not fit in memory on this platform.
    #[error("{path} declares dimensions {dims:?}, too large to address on this platform")]
    TooLarge {
        /// The file.
        path: String,
        /// The declared dimensions.
        dims: Vec<u32>,
    },
    /// An image file and its label file disagree on the number of examples.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels; expected equal counts")]
    CountMismatch {
        /// The image file.
        images: String,
        /// The label file.
        labels: String,
        /// Number of images.
        n_images: usize,
        /// Number of labels.
        n_labels: usize,
    },
    /// A label is not a valid class.
    #[error("{path}: label {index} is {label}, expected a class in 0..{classes}")]
    BadLabel {
        /// The label file.
        path: String,
        /// Index of the offending label.
        index: usize,
        /// Its value.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// A class has fewer examples than asked for.
    #[error("class {class} has {found} examples, expected at least {wanted}")]
    TooFewExamples {
        /// The class.
        class: u8,
        /// Examples asked for.
        wanted: usize,
        /// Examples present.
        found: usize,
    },
}

/// Images read from an IDX file: `n` images of `rows x cols` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Row-major pixels `[n, rows, cols]` (0 is background for MNIST).
    pub pixels: Vec<u8>,
}

/// Decompresses `bytes` if they start with the gzip magic, else returns them unchanged.
/// `name` names the source in errors.
/// The output is cut at [`crate::limits::MAX_DECOMPRESSED_BYTES`]: a stream that inflates
/// beyond it (a "gzip bomb") is an error, not an allocation of its full size.
pub fn maybe_gunzip(bytes: Vec<u8>, name: &str) -> Result<Vec<u8>, DataError> {
    gunzip_at_most(bytes, name, crate::limits::MAX_DECOMPRESSED_BYTES)
}

/// [`maybe_gunzip`] with the output cut at `limit` bytes.
pub fn gunzip_at_most(bytes: Vec<u8>, name: &str, limit: u64) -> Result<Vec<u8>, DataError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    let gzip = |error| DataError::Gzip { path: name.to_string(), error };
    MultiGzDecoder::new(&bytes[..]).take(limit.saturating_add(1)).read_to_end(&mut out).map_err(gzip)?;
    if out.len() as u64 > limit {
        return Err(gzip(std::io::Error::other(format!("it inflates to more than {limit} bytes, the most a data file may hold"))));
    }
    Ok(out)
}

/// Reads a file, decompressing it if it is gzip.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing { path: path.to_path_buf() },
        _ => DataError::Io { path: path.display().to_string(), error },
    })?;
    maybe_gunzip(bytes, &path.display().to_string())
}

/// Parses the header of an IDX `u8` array with magic `magic`, returning its dimensions and body.
fn parse_u8_array<'a>(bytes: &'a [u8], name: &str, magic: u32, what: &str) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let truncated = |what: String, expected: u64| DataError::Truncated { path: name.to_string(), what, expected, found: bytes.len() as u64 };
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < 4 {
        return Err(truncated("magic number".into(), 4));
    }
    let word = |i: usize| u32::from_be_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    let found = word(0);
    if found != magic {
        return Err(DataError::BadMagic { path: name.to_string(), what: what.to_string(), expected: magic, found });
    }
    if bytes.len() < header {
        return Err(truncated(format!("header of {ndim} dimensions"), header as u64));
    }
    let raw: Vec<u32> = (1..=ndim).map(word).collect();
    let too_large = || DataError::TooLarge { path: name.to_string(), dims: raw.clone() };
    let dims: Vec<usize> = raw.iter().map(|&d| usize::try_from(d).map_err(|_| too_large())).collect::<Result<_, _>>()?;
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(too_large)?;
    let shape = dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" x ");
    let expected = (header as u64).checked_add(count as u64).ok_or_else(too_large)?;
    let found = bytes.len() as u64;
    let described = format!("{header}-byte header + {shape} bytes");
    if found < expected {
        return Err(truncated(described, expected));
    }
    if found > expected {
        return Err(DataError::TrailingBytes { path: name.to_string(), what: described, expected, found });
    }
    Ok((dims, &bytes[header..]))
}

/// Parses (already decompressed) IDX image bytes, magic [`IMAGES_MAGIC`].
pub fn parse_images(bytes: &[u8], name: &str) -> Result<IdxImages, DataError> {
    let (dims, body) = parse_u8_array(bytes, name, IMAGES_MAGIC, "u8 images [n, rows, cols]")?;
    Ok(IdxImages { n: dims[0], rows: dims[1], cols: dims[2], pixels: body.to_vec() })
}

/// Parses (already decompressed) IDX label bytes, magic [`LABELS_MAGIC`].
pub fn parse_labels(bytes: &[u8], name: &str) -> Result<Vec<u8>, DataError> {
    let (_, body) = parse_u8_array(bytes, name, LABELS_MAGIC, "u8 labels [n]")?;
    Ok(body.to_vec())
}

/// Reads an IDX image file, plain or gzip.
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    parse_images(&read_bytes(path)?, &path.display().to_string())
}

/// Reads an IDX label file, plain or gzip.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    parse_labels(&read_bytes(path)?, &path.display().to_string())
}

fn header(magic: u32, dims: &[usize]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for &d in dims {
        let d = u32::try_from(d).expect("IDX dimensions must fit in a u32");
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

/// Encodes images as IDX bytes.
///
/// # Panics
/// If `images.pixels.len() != n * rows * cols` or a dimension exceeds `u32::MAX` (a
/// programming error, not bad input).
pub fn images_bytes(images: &IdxImages) -> Vec<u8> {
    assert_eq!(images.pixels.len(), images.n * images.rows * images.cols, "pixels must hold n * rows * cols bytes");
    let mut out = header(IMAGES_MAGIC, &[images.n, images.rows, images.cols]);
    out.extend_from_slice(&images.pixels);
    out
}

/// Encodes labels as IDX bytes.
pub fn labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut out = header(LABELS_MAGIC, &[labels.len()]);
    out.extend_from_slice(labels);
    out
}

/// Gzip-compresses `bytes` at the best compression level, with no time stamp (so the output
/// depends only on the input).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Writes `bytes` to `path`, gzip-compressed if `compress`, through a temporary file renamed
/// into place.
pub fn write_file(path: &Path, bytes: &[u8], compress: bool) -> Result<(), DataError> {
    let body = if compress { gzip(bytes) } else { bytes.to_vec() };
    crate::io::write_atomic(path, &body).map_err(|error| DataError::Io { path: path.display().to_string(), error })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> IdxImages {
        IdxImages { n: 3, rows: 2, cols: 4, pixels: (0..24).map(|i| (i * 11) as u8).collect() }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scorediff-idx-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn header_layout_is_big_endian() {
        let b = images_bytes(&tiny());
        assert_eq!(&b[..16], &[0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4]);
        assert_eq!(b.len(), 16 + 24);
        assert_eq!(&labels_bytes(&[7, 1])[..], &[0, 0, 8, 1, 0, 0, 0, 2, 7, 1]);
    }

    #[test]
    fn round_trip_plain_and_gzip_files() {
        let dir = temp_dir("round-trip");
        let labels = [3u8, 0, 9];
        for (compress, suffix) in [(false, ""), (true, ".gz")] {
            // The name does not decide decompression: also write gzip without `.gz` and vice versa.
            for name_suffix in [suffix, if compress { "" } else { ".gz" }] {
                let ip = dir.join(format!("images-{compress}{name_suffix}"));
                let lp = dir.join(format!("labels-{compress}{name_suffix}"));
                write_file(&ip, &images_bytes(&tiny()), compress).unwrap();
                write_file(&lp, &labels_bytes(&labels), compress).unwrap();
                let raw = std::fs::read(&ip).unwrap();
                assert_eq!(raw.starts_with(&GZIP_MAGIC), compress);
                assert_eq!(read_images(&ip).unwrap(), tiny());
                assert_eq!(read_labels(&lp).unwrap(), labels);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gzip_is_deterministic_and_empty_arrays_parse() {
        let b = images_bytes(&IdxImages { n: 0, rows: 28, cols: 28, pixels: vec![] });
        assert_eq!(gzip(&b), gzip(&b));
        let im = parse_images(&maybe_gunzip(gzip(&b), "e").unwrap(), "e").unwrap();
        assert_eq!((im.n, im.rows, im.cols, im.pixels.len()), (0, 28, 28, 0));
        assert!(parse_labels(&labels_bytes(&[]), "l").unwrap().is_empty());
    }

    #[test]
    fn missing_file_names_the_path_and_the_fetch_script() {
        let p = std::env::temp_dir().join("scorediff-idx-definitely-missing/train-images-idx3-ubyte");
        let e = read_images(&p).unwrap_err();
        assert!(matches!(e, DataError::Missing { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("definitely-missing") && msg.contains("scripts/fetch-data.sh"), "{msg}");
    }

    #[test]
    fn truncated_files_say_expected_and_found_bytes() {
        let mut b = images_bytes(&tiny());
        b.pop();
        let e = parse_images(&b, "t").unwrap_err();
        assert!(matches!(e, DataError::Truncated { expected: 40, found: 39, .. }), "{e:?}");
        assert!(e.to_string().contains("expected 40 bytes"), "{e}");
        // Cut inside the header, and inside the magic number.
        let e = parse_images(&b[..10], "t").unwrap_err();
        assert!(matches!(e, DataError::Truncated { expected: 16, found: 10, .. }), "{e:?}");
        let e = parse_labels(&[0, 0], "t").unwrap_err();
        assert!(matches!(e, DataError::Truncated { expected: 4, found: 2, .. }), "{e:?}");
        // A truncated gzip stream fails in the decoder.
        let gz = gzip(&images_bytes(&tiny()));
        let e = maybe_gunzip(gz[..gz.len() / 2].to_vec(), "g.gz").unwrap_err();
        assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
        assert!(e.to_string().contains("g.gz"));
        // Extra bytes are an error too.
        let mut long = labels_bytes(&[1, 2]);
        long.push(0);
        let e = parse_labels(&long, "l").unwrap_err();
        assert!(matches!(e, DataError::TrailingBytes { expected: 10, found: 11, .. }), "{e:?}");
    }

    #[test]
    fn swapped_files_fail_on_the_magic_number() {
        let e = parse_images(&labels_bytes(&[1, 2, 3]), "labels").unwrap_err();
        assert!(matches!(e, DataError::BadMagic { expected: IMAGES_MAGIC, found: LABELS_MAGIC, .. }), "{e:?}");
        assert!(e.to_string().contains("0x00000801") && e.to_string().contains("0x00000803"), "{e}");
        let e = parse_labels(&images_bytes(&tiny()), "images").unwrap_err();
        assert!(matches!(e, DataError::BadMagic { expected: LABELS_MAGIC, found: IMAGES_MAGIC, .. }), "{e:?}");
        let e = parse_labels(b"hello world", "text").unwrap_err();
        assert!(matches!(e, DataError::BadMagic { .. }), "{e:?}");
    }

    /// A stream that inflates beyond the limit is refused after `limit + 1` bytes.
    #[test]
    fn gzip_bombs_are_cut_at_the_limit() {
        let gz = gzip(&[0u8; 100_000]);
        assert_eq!(gunzip_at_most(gz.clone(), "ok.gz", 100_000).unwrap().len(), 100_000);
        let e = gunzip_at_most(gz, "bomb.gz", 1000).unwrap_err();
        assert!(matches!(e, DataError::Gzip { .. }) && e.to_string().contains("bomb.gz") && e.to_string().contains("more than 1000 bytes"), "{e}");
    }

    #[test]
    fn huge_declared_sizes_are_errors_not_allocations() {
        let mut b = header(IMAGES_MAGIC, &[0xffff_ffff, 0xffff_ffff, 0xffff_ffff]);
        b.extend_from_slice(&[0; 8]);
        let e = parse_images(&b, "huge").unwrap_err();
        assert!(matches!(e, DataError::TooLarge { .. } | DataError::Truncated { .. }), "{e:?}");
    }
}
