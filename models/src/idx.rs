//! Reader for the IDX format of MNIST and Fashion-MNIST: a big-endian header
//! (two zero bytes, type code 0x08 = unsigned byte, the number of
//! dimensions, then each dimension as a u32) and the raw bytes. Image files
//! are `[n, rows, cols]`, label files `[n]`. Files may be gzipped (as Debian's
//! `dataset-fashion-mnist` ships them); the gzip magic decides, not the name.

use crate::dataset::ImageSet;
use crate::error::{ModelError, Result};
use crate::network::Shape;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Number of classes the labels may name (0..=9).
pub const CLASSES: u8 = 10;

/// Read a file, gunzipping it if it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    maybe_gunzip(raw, path)
}

/// As [`read_maybe_gz`], from memory; `path` only names the source in errors.
pub fn maybe_gunzip(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| ModelError::Idx { path: path.into(), reason: format!("gzip data is corrupt: {e}") })?;
    Ok(out)
}

/// Whether `bytes` start like an IDX file of unsigned bytes with 1 to 3 dimensions.
pub fn is_idx(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 0x08 && (1..=3).contains(&bytes[3])
}

/// Parse an IDX file of unsigned bytes: its dimensions and its data.
pub fn parse(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let (dims, data) = split(bytes, path)?;
    Ok((dims, data.to_vec()))
}

/// [`parse`] without copying the data.
fn split<'a>(bytes: &'a [u8], path: &Path) -> Result<(Vec<usize>, &'a [u8])> {
    let bad = |reason: String| ModelError::Idx { path: path.into(), reason };
    if !is_idx(bytes) {
        return Err(bad("not an IDX file of unsigned bytes (magic 00 00 08 0n)".into()));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad(format!("header needs {header} bytes, the file has {}", bytes.len())));
    }
    let dims: Vec<usize> = bytes[4..header].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let expected = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(bad(format!("dimensions {dims:?} need {expected} data bytes, the file has {}", data.len())));
    }
    Ok((dims, data))
}

/// `dir/stem` or `dir/stem.gz`, whichever exists.
pub fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))].into_iter().find(|p| p.is_file())
}

/// `dir/{prefix}-images-idx3-ubyte[.gz]` with its labels file beside it.
pub fn read_pair(dir: &Path, prefix: &str) -> Result<ImageSet> {
    let stem = format!("{prefix}-images-idx3-ubyte");
    let images = find(dir, &stem).ok_or_else(|| ModelError::Data {
        path: dir.into(),
        reason: format!("{stem}[.gz] is missing; {}", crate::dataset::EXPECTED_LAYOUT),
    })?;
    read_images_with_labels(&images, &read_maybe_gz(&images)?)
}

/// An images file already read into `bytes`, with the labels file beside it:
/// the name with `images-idx3` replaced by `labels-idx1` (`.gz` or not).
pub fn read_images_with_labels(images_path: &Path, bytes: &[u8]) -> Result<ImageSet> {
    let bad = |path: &Path, reason: String| ModelError::Idx { path: path.into(), reason };
    split(bytes, images_path)?;
    let name = images_path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    let labels_stem = stem.replace("images-idx3", "labels-idx1");
    if labels_stem == stem {
        let why = "cannot find the labels: the file name must contain `images-idx3` (its labels file then `labels-idx1`)";
        return Err(bad(images_path, why.into()));
    }
    let dir = images_path.parent().unwrap_or(Path::new("."));
    let labels_path =
        find(dir, &labels_stem).ok_or_else(|| bad(images_path, format!("its labels file {labels_stem}[.gz] is not beside it")))?;
    images_and_labels(images_path, bytes, &labels_path, &read_maybe_gz(&labels_path)?)
}

/// An images file and its labels file, both already in memory (gunzipped);
/// the paths only name them in errors.
pub fn images_and_labels(images_path: &Path, images: &[u8], labels_path: &Path, labels: &[u8]) -> Result<ImageSet> {
    let bad = |path: &Path, reason: String| ModelError::Idx { path: path.into(), reason };
    let (idims, pixels) = parse(images, images_path)?;
    let (ldims, labels) = parse(labels, labels_path)?;
    if idims.len() != 3 {
        return Err(bad(images_path, format!("images must have 3 dimensions [n, rows, cols], found {idims:?}")));
    }
    if ldims.len() != 1 || ldims[0] != idims[0] {
        let why = format!("labels have dimensions {ldims:?}; the images file {} holds {} images", images_path.display(), idims[0]);
        return Err(bad(labels_path, why));
    }
    if let Some(i) = labels.iter().position(|&l| l >= CLASSES) {
        return Err(bad(labels_path, format!("label {i} is {} (expected 0..9)", labels[i])));
    }
    Ok(ImageSet { shape: Shape::new(1, idims[1], idims[2]), pixels, labels })
}

/// Serialise images `[n, rows, cols]` or labels `[n]` as IDX (for tests and
/// for cutting small subsets).
pub fn to_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trip_and_errors() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let bytes = to_idx(&[2, 3, 4], &data);
        let (dims, back) = parse(&bytes, Path::new("x")).unwrap();
        assert_eq!(dims, vec![2, 3, 4]);
        assert_eq!(back, data);
        assert!(parse(&bytes[..bytes.len() - 1], Path::new("x")).unwrap_err().to_string().contains("need 24 data bytes"));
        assert!(parse(b"\x00\x00\x0d\x01abcd", Path::new("x")).is_err(), "floats are not images");
        assert!(parse(&bytes[..6], Path::new("x")).unwrap_err().to_string().contains("header"));
    }
}
