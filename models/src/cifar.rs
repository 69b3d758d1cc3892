//! Reader for the CIFAR-10 binary format: records of 3073 bytes (1 label
//! byte, then 1024 red, 1024 green, 1024 blue bytes, row-major), files
//! `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`.

use crate::error::{ModelError, Result};
use std::path::{Path, PathBuf};

pub const IMAGE_BYTES: usize = 3 * 32 * 32;
pub const RECORD_BYTES: usize = IMAGE_BYTES + 1;

/// Images and labels, images as CHW bytes back to back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cifar10 {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Cifar10 {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// CHW bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// Parse records from memory; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) {
            return Err(ModelError::Cifar {
                path: path.into(),
                reason: format!("size {} bytes is not a positive multiple of the record size {RECORD_BYTES}", bytes.len()),
            });
        }
        let n = bytes.len() / RECORD_BYTES;
        let mut out = Cifar10 { pixels: Vec::with_capacity(n * IMAGE_BYTES), labels: Vec::with_capacity(n) };
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
    pub fn read_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Append another set.
    pub fn extend(&mut self, other: Cifar10) {
        self.pixels.extend(other.pixels);
        self.labels.extend(other.labels);
    }

    /// The first `n` images (all if fewer).
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.pixels.truncate(n * IMAGE_BYTES);
        self
    }
}

/// The directory layout of the binary distribution.
#[derive(Clone, Debug)]
pub struct CifarDir {
    pub dir: PathBuf,
}

impl CifarDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `test_batch.bin`.
    pub fn test(&self) -> Result<Cifar10> {
        Cifar10::read_file(self.dir.join("test_batch.bin"))
    }

    /// `data_batch_{k}.bin` for k in 1..=5.
    pub fn train_batch(&self, k: usize) -> Result<Cifar10> {
        if !(1..=5).contains(&k) {
            return Err(ModelError::Cifar { path: self.dir.clone(), reason: format!("no training batch {k} (1..5)") });
        }
        Cifar10::read_file(self.dir.join(format!("data_batch_{k}.bin")))
    }

    /// The first `n` training images (reading only the batches needed).
    pub fn train(&self, n: usize) -> Result<Cifar10> {
        let mut out = Cifar10::default();
        for k in 1..=5 {
            if out.len() >= n {
                break;
            }
            out.extend(self.train_batch(k)?);
        }
        Ok(out.truncated(n))
    }
}
