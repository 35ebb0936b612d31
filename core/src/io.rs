//! NumPy `.npy` files (format version 1.0/2.0, little-endian `f4`/`f8`, C order): what
//! `native-cli sample` writes and `native-cli likelihood` reads.

use std::path::Path;

/// A file could not be read or written: the error every loader and writer here reports, with
/// the path and the OS error.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
}

impl FileError {
    /// A failed read of `path`.
    pub fn read(path: &Path, error: std::io::Error) -> Self {
        Self::Read { path: path.display().to_string(), error }
    }

    /// A failed write of `path`.
    pub fn write(path: &Path, error: std::io::Error) -> Self {
        Self::Write { path: path.display().to_string(), error }
    }
}

/// The bytes of `path`.
pub fn read_file(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|e| FileError::read(path, e))
}

/// The text of `path`.
pub fn read_text(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|e| FileError::read(path, e))
}

/// A `.npy` file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be opened or read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The bytes were not a supported `.npy`.
    #[error("{path} is not a readable .npy: {message}")]
    Format {
        /// The file.
        path: String,
        /// Expected vs found.
        message: String,
    },
}

/// A 2-D array of `f64` read from `.npy`.
#[derive(Debug, Clone, PartialEq)]
pub struct Array2 {
    /// `[rows, cols]`.
    pub shape: [usize; 2],
    /// Row-major values.
    pub data: Vec<f64>,
}

/// Encodes a `[rows, cols]` `f32` array as `.npy` bytes.
pub fn npy_bytes_f32(data: &[f32], shape: [usize; 2]) -> Vec<u8> {
    npy_bytes_f32_nd(data, &shape)
}

/// Encodes an `f32` array of any rank (C order) as `.npy` bytes, e.g. images `[n, 1, 28, 28]`.
pub fn npy_bytes_f32_nd(data: &[f32], shape: &[usize]) -> Vec<u8> {
    assert_eq!(data.len(), shape.iter().product::<usize>(), "data length must match the shape");
    let dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
    let dims = if shape.len() == 1 { dims } else { dims.trim_end_matches(", ").to_string() };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    // Pad so that magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `bytes` to `path` atomically: to `path.tmp` beside it, synced, then renamed over
/// `path`, so a crash leaves either the old file or the new one, never a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Writes `.npy` atomically ([`write_atomic`]).
pub fn write_npy_f32(path: &Path, data: &[f32], shape: [usize; 2]) -> std::io::Result<()> {
    write_atomic(path, &npy_bytes_f32(data, shape))
}

/// Writes an `f32` array of any rank as `.npy`, atomically ([`write_atomic`]).
pub fn write_npy_f32_nd(path: &Path, data: &[f32], shape: &[usize]) -> std::io::Result<()> {
    write_atomic(path, &npy_bytes_f32_nd(data, shape))
}

/// Parses `.npy` bytes holding a little-endian `f4`/`f8` C-order array of rank 1 or more
/// (a 1-D array of length `n` reads as `[n, 1]`; a higher-rank one `[n, a, b, ...]` as
/// `[n, a * b * ...]`, one flattened row per data point, e.g. images `[n, 1, 28, 28]`).
pub fn parse_npy(bytes: &[u8], path: &str) -> Result<Array2, NpyError> {
    let err = |message: String| NpyError::Format { path: path.to_string(), message };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("expected the magic string \\x93NUMPY at the start".into()));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(err(format!("expected format version 1, 2 or 3, found {v}"))),
    };
    let header = bytes.get(start..start + hlen).and_then(|h| std::str::from_utf8(h).ok()).ok_or_else(|| err("truncated or non-text header".into()))?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        let rest = header[i + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or_else(|| err("header has no 'descr'".into()))?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(err(format!("expected dtype '<f4' or '<f8', found {}", descr.split(',').next().unwrap_or(""))));
    };
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(err("expected C order, found fortran_order: True".into()));
    }
    let shape_txt = field("shape").ok_or_else(|| err("header has no 'shape'".into()))?;
    let inner = shape_txt.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or_else(|| err("malformed shape".into()))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err(format!("malformed shape entry `{s}`"))))
        .collect::<Result<_, _>>()?;
    // The declared size is checked against the bytes present before anything is allocated; a
    // product that overflows is larger than any file.
    let product = |d: &[usize]| d.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x));
    let too_large = || err(format!("shape {dims:?} declares more data bytes than can be addressed; found {}", bytes.len() - start - hlen));
    let shape = match dims[..] {
        [n] => [n, 1],
        [n, d] => [n, d],
        [n, ref rest @ ..] if !rest.is_empty() => [n, product(rest).ok_or_else(too_large)?],
        _ => return Err(err(format!("expected an array of rank 1 or more, found shape {dims:?}"))),
    };
    let body = &bytes[start + hlen..];
    let expected = product(&shape).and_then(|count| count.checked_mul(width)).ok_or_else(too_large)?;
    if body.len() != expected {
        return Err(err(format!("expected {expected} data bytes for shape {shape:?}, found {}", body.len())));
    }
    let data = if width == 4 {
        body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect()
    } else {
        body.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
    };
    Ok(Array2 { shape, data })
}

/// Reads a `.npy` file (see [`parse_npy`]).
pub fn read_npy(path: &Path) -> Result<Array2, NpyError> {
    let bytes = read_file(path)?;
    parse_npy(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_header_alignment() {
        let data = [1.0f32, -2.5, 3.25, 0.0, 1e-8, 7.0];
        let bytes = npy_bytes_f32(&data, [3, 2]);
        let header_end = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!(header_end % 64, 0);
        let a = parse_npy(&bytes, "x.npy").unwrap();
        assert_eq!(a.shape, [3, 2]);
        assert_eq!(a.data, data.iter().map(|&v| v as f64).collect::<Vec<_>>());
    }

    #[test]
    fn higher_rank_arrays_read_as_flattened_rows() {
        let data: Vec<f32> = (0..2 * 3 * 2).map(|i| i as f32).collect();
        let bytes = npy_bytes_f32_nd(&data, &[2, 1, 3, 2]);
        // The header: its length is the little-endian u16 at bytes 8..10 (NPY format 1.0).
        let header = |b: &[u8]| String::from_utf8(b[10..10 + u16::from_le_bytes([b[8], b[9]]) as usize].to_vec()).unwrap();
        assert!(header(&bytes).contains("'shape': (2, 1, 3, 2)"));
        let a = parse_npy(&bytes, "x.npy").unwrap();
        assert_eq!(a.shape, [2, 6]);
        assert_eq!(a.data[7], 7.0);
        let b = npy_bytes_f32_nd(&[1.0, 2.0], &[2]);
        assert!(header(&b).contains("'shape': (2, )"));
        assert_eq!(parse_npy(&b, "v.npy").unwrap().shape, [2, 1]);
    }

    #[test]
    fn rejects_truncated_and_wrong_dtype() {
        let mut bytes = npy_bytes_f32(&[1.0, 2.0], [2, 1]);
        bytes.pop();
        assert!(parse_npy(&bytes, "t.npy").unwrap_err().to_string().contains("expected 8 data bytes"));
        let mut bad = npy_bytes_f32(&[1.0], [1, 1]);
        let at = bad.windows(3).position(|w| w == b"<f4").unwrap();
        bad[at + 1] = b'i';
        let e = parse_npy(&bad, "i.npy").unwrap_err().to_string();
        assert!(e.contains("'<i4'"), "{e}");
        assert!(parse_npy(b"hello world!", "h.npy").unwrap_err().to_string().contains("magic"));
    }

    /// A shape whose product overflows is an error, not a panic (before: "attempt to multiply
    /// with overflow"); one that claims 10^12 rows is refused against the bytes present.
    #[test]
    fn huge_shapes_are_refused_before_allocating() {
        for dims in ["18446744073709551615, 4", "4, 4611686018427387904, 4", "1000000000000, 2"] {
            let header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({dims}), }}\n");
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend_from_slice(&[0; 32]);
            let e = parse_npy(&bytes, "huge.npy").unwrap_err().to_string();
            assert!(e.contains("huge.npy") && e.contains("data bytes"), "{e}");
        }
    }
}
