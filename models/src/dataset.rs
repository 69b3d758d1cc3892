//! Labelled image sets, whatever their source: CIFAR-10 binary batches
//! ([`crate::cifar`], 3x32x32) or IDX files as in MNIST / Fashion-MNIST
//! ([`crate::idx`], 1x28x28). One [`ImageSet`] type carries its shape, so the
//! trainer, the evaluators and the client read every source the same way.

use crate::error::{ModelError, Result};
use crate::network::Shape;
use std::path::{Path, PathBuf};

/// Images (CHW bytes, back to back) and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// Channels, height, width of every image.
    pub shape: Shape,
    /// Every image's CHW bytes (0..=255), back to back: `len() * shape.len()` bytes.
    pub pixels: Vec<u8>,
    /// One class label per image (0..=9 for the formats read here).
    pub labels: Vec<u8>,
}

impl ImageSet {
    /// An empty set of images of `shape`.
    pub fn empty(shape: Shape) -> Self {
        Self { shape, pixels: Vec::new(), labels: Vec::new() }
    }

    /// Bytes per image.
    pub fn image_bytes(&self) -> usize {
        self.shape.len()
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// CHW bytes of image `i` (panics if `i >= len()`).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_bytes();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Append another set of the same shape (panics on another shape).
    pub fn extend(&mut self, other: ImageSet) {
        assert_eq!(self.shape, other.shape, "extending an image set with images of another shape");
        self.pixels.extend(other.pixels);
        self.labels.extend(other.labels);
    }

    /// The first `n` images (all if fewer).
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.pixels.truncate(n * self.image_bytes());
        self
    }

    /// Read one file, by its content: an IDX image file (`*-images-idx3-ubyte`,
    /// gzipped or not, its labels file beside it) or a CIFAR-10 binary batch.
    pub fn read_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = crate::idx::read_maybe_gz(path)?;
        if crate::idx::is_idx(&bytes) {
            crate::idx::read_images_with_labels(path, &bytes)
        } else {
            crate::cifar::parse(&bytes, path)
        }
    }
}

/// The datasets a directory can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    /// CIFAR-10 binary distribution: `data_batch_1..5.bin`, `test_batch.bin`.
    Cifar10,
    /// Fashion-MNIST (or MNIST) IDX files: `train-images-idx3-ubyte[.gz]`,
    /// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`.
    Idx,
}

/// What a data directory must hold, said in errors.
pub const EXPECTED_LAYOUT: &str = "expected the CIFAR-10 binary distribution (data_batch_1.bin .. data_batch_5.bin, \
     test_batch.bin) or Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], \
     t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]; Debian: dataset-fashion-mnist)";

/// A directory of training and test images, its format found from its files.
#[derive(Clone, Debug)]
pub struct DataDir {
    /// The directory.
    pub dir: PathBuf,
    /// The layout found in it.
    pub kind: DatasetKind,
}

impl DataDir {
    /// Recognise the layout of `dir`; an unknown layout is an error that says
    /// what was expected, before any file is parsed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let bad = |reason: String| ModelError::Data { path: dir.clone(), reason: format!("{reason}; {EXPECTED_LAYOUT}") };
        if !dir.is_dir() {
            return Err(bad("not a directory".into()));
        }
        if dir.join("data_batch_1.bin").is_file() || dir.join("test_batch.bin").is_file() {
            for f in ["data_batch_1.bin", "test_batch.bin"] {
                if !dir.join(f).is_file() {
                    return Err(bad(format!("{f} is missing")));
                }
            }
            return Ok(Self { dir, kind: DatasetKind::Cifar10 });
        }
        let stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
        let found: Vec<bool> = stems.iter().map(|s| crate::idx::find(&dir, s).is_some()).collect();
        if found.iter().any(|&f| f) {
            if let Some(i) = found.iter().position(|&f| !f) {
                return Err(bad(format!("{} is missing", stems[i])));
            }
            return Ok(Self { dir, kind: DatasetKind::Idx });
        }
        Err(bad("no dataset files found".into()))
    }

    /// The test set.
    pub fn test(&self) -> Result<ImageSet> {
        match self.kind {
            DatasetKind::Cifar10 => crate::cifar::CifarDir::new(&self.dir).test(),
            DatasetKind::Idx => crate::idx::read_pair(&self.dir, "t10k"),
        }
    }

    /// The first `n` training images.
    pub fn train(&self, n: usize) -> Result<ImageSet> {
        match self.kind {
            DatasetKind::Cifar10 => crate::cifar::CifarDir::new(&self.dir).train(n),
            DatasetKind::Idx => Ok(crate::idx::read_pair(&self.dir, "train")?.truncated(n)),
        }
    }
}
