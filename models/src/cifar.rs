//! Reader for the CIFAR-10 binary format: records of 3073 bytes (1 label
//! byte, then 1024 red, 1024 green, 1024 blue bytes, row-major), files
//! `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`.

use crate::dataset::ImageSet;
use crate::error::{ModelError, Result};
use crate::network::Shape;
use std::path::{Path, PathBuf};

/// Bytes of one image, 3 x 32 x 32 (CHW).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: the label byte and the image.
pub const RECORD_BYTES: usize = IMAGE_BYTES + 1;

/// The shape of a CIFAR-10 image.
pub fn shape() -> Shape {
    Shape::new(3, 32, 32)
}

/// Parse records from memory; `path` only names the source in errors. An
/// error unless the data is a positive number of whole records with labels 0..=9.
pub fn parse(bytes: &[u8], path: &Path) -> Result<ImageSet> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(ModelError::Cifar {
            path: path.into(),
            reason: format!("size {} bytes is not a positive multiple of the record size {RECORD_BYTES}", bytes.len()),
        });
    }
    let n = bytes.len() / RECORD_BYTES;
    let mut out = ImageSet { shape: shape(), pixels: Vec::with_capacity(n * IMAGE_BYTES), labels: Vec::with_capacity(n) };
    for (i, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        if rec[0] > 9 {
            return Err(ModelError::Cifar { path: path.into(), reason: format!("record {i} has label {} (expected 0..9)", rec[0]) });
        }
        out.labels.push(rec[0]);
        out.pixels.extend_from_slice(&rec[1..]);
    }
    Ok(out)
}

/// Read one binary batch file.
pub fn read_file(path: impl AsRef<Path>) -> Result<ImageSet> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    parse(&bytes, path)
}

/// The directory layout of the binary distribution.
#[derive(Clone, Debug)]
pub struct CifarDir {
    /// The directory holding the `*.bin` files.
    pub dir: PathBuf,
}

impl CifarDir {
    /// The layout at `dir` (nothing is read until asked for).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `test_batch.bin`.
    pub fn test(&self) -> Result<ImageSet> {
        read_file(self.dir.join("test_batch.bin"))
    }

    /// `data_batch_{k}.bin` for k in 1..=5.
    pub fn train_batch(&self, k: usize) -> Result<ImageSet> {
        if !(1..=5).contains(&k) {
            return Err(ModelError::Cifar { path: self.dir.clone(), reason: format!("no training batch {k} (1..5)") });
        }
        read_file(self.dir.join(format!("data_batch_{k}.bin")))
    }

    /// The first `n` training images (reading only the batches needed).
    pub fn train(&self, n: usize) -> Result<ImageSet> {
        let mut out = ImageSet::empty(shape());
        for k in 1..=5 {
            if out.len() >= n {
                break;
            }
            out.extend(self.train_batch(k)?);
        }
        Ok(out.truncated(n))
    }
}
