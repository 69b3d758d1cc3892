//! Training input: CIFAR-10 binary batches or Fashion-MNIST IDX files, read
//! through `pann_models::dataset` (one parser per format for the whole
//! project), augmentation (random crop with zero padding, horizontal flip)
//! and normalisation into f32 batches.
//!
//! Augmentation happens on the raw bytes, before normalisation, so the
//! padding is black pixels exactly as torchvision's `RandomCrop(size, padding=4)`
//! on a PIL image does, and the normalisation written into the model card is
//! the only transform the deployed model needs.

use crate::error::{Result, TrainerError};
use crate::rng::SplitMix64;
use pann_models::{DataDir, DatasetKind, ImageSet, InputSpec, ModelError, Shape};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Zero padding of the random crop, in pixels (both datasets).
pub const CROP_PADDING: usize = 4;

/// Which input normalisation to train with (it is recorded in the card).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Normalisation {
    /// The statistics of the dataset found in the data directory
    /// (`cifar10` or `fashion_mnist`); resolved when a run starts.
    Auto,
    /// CIFAR-10 training-set channel statistics.
    Cifar10,
    /// ImageNet statistics (what akamaster's models use); 3 channels.
    Imagenet,
    /// Fashion-MNIST training-set statistics (1 channel).
    FashionMnist,
}

impl Normalisation {
    /// The concrete normalisation for `kind` (`Auto` picks the dataset's own).
    pub fn resolve(self, kind: DatasetKind) -> Self {
        match (self, kind) {
            (Normalisation::Auto, DatasetKind::Cifar10) => Normalisation::Cifar10,
            (Normalisation::Auto, DatasetKind::Idx) => Normalisation::FashionMnist,
            (n, _) => n,
        }
    }

    /// Mean and std per channel. `Auto` must be resolved first.
    pub fn spec(self) -> InputSpec {
        match self {
            Normalisation::Cifar10 => InputSpec { mean: vec![0.4914, 0.4822, 0.4465], std: vec![0.2470, 0.2435, 0.2616] },
            Normalisation::Imagenet => InputSpec::imagenet(),
            Normalisation::FashionMnist => InputSpec { mean: vec![0.2860], std: vec![0.3530] },
            Normalisation::Auto => unreachable!("Normalisation::Auto is resolved against the data before use"),
        }
    }
}

/// Training and test images of a data directory.
#[derive(Clone, Debug)]
pub struct TrainData {
    /// The data directory.
    pub dir: PathBuf,
    /// The dataset found there.
    pub kind: DatasetKind,
    /// Training images, at most the limit asked for.
    pub train: ImageSet,
    /// Test images, at most the limit asked for.
    pub test: ImageSet,
}

impl TrainData {
    /// Read at most `train_limit` training and `test_limit` test images.
    /// A directory that holds neither dataset is an error that says what was
    /// expected, before any file is parsed.
    pub fn load(dir: &Path, train_limit: usize, test_limit: usize) -> Result<Self> {
        let dd = open_dir(dir)?;
        let train = dd.train(train_limit)?;
        let test = dd.test()?.truncated(test_limit);
        if train.is_empty() {
            return Err(TrainerError::Data { dir: dir.into(), reason: "no training images".into() });
        }
        Ok(Self { dir: dir.into(), kind: dd.kind, train, test })
    }

    /// Shape of one image.
    pub fn shape(&self) -> Shape {
        self.train.shape
    }
}

/// Recognise the dataset in `dir` (CIFAR-10 binary or IDX), with a clear error.
pub fn open_dir(dir: &Path) -> Result<DataDir> {
    DataDir::open(dir).map_err(|e| match e {
        ModelError::Data { reason, .. } => TrainerError::Data { dir: dir.into(), reason },
        other => other.into(),
    })
}

/// Random crop (zero padding `pad`, offset `dx`, `dy`) and horizontal flip of
/// one CHW byte image of `shape` into `out`.
pub fn augment_into(img: &[u8], shape: Shape, pad: usize, flip: bool, dx: isize, dy: isize, out: &mut [u8]) {
    let (h, w) = (shape.h as isize, shape.w as isize);
    let plane = shape.h * shape.w;
    debug_assert!(dx.unsigned_abs() <= pad && dy.unsigned_abs() <= pad);
    for ch in 0..shape.c {
        let (src, dst) = (&img[ch * plane..(ch + 1) * plane], &mut out[ch * plane..(ch + 1) * plane]);
        for y in 0..h {
            let sy = y + dy;
            for x in 0..w {
                let xx = if flip { w - 1 - x } else { x };
                let sx = xx + dx;
                let v = if (0..h).contains(&sy) && (0..w).contains(&sx) { src[(sy * w + sx) as usize] } else { 0 };
                dst[(y * w + x) as usize] = v;
            }
        }
    }
}

/// Normalise CHW bytes into f32 with `spec` (same formula as `InputSpec::normalise`).
pub fn normalise_into(pixels: &[u8], spec: &InputSpec, out: &mut Vec<f32>) {
    out.extend(spec.normalise(pixels).into_iter().map(|v| v as f32));
}

/// A batch of images `[n, c, h, w]` (f32, normalised) and labels `[n]` (i64).
pub fn make_batch(set: &ImageSet, idx: &[usize], spec: &InputSpec, augment: Option<&mut SplitMix64>, device: Device) -> (Tensor, Tensor) {
    let shape = set.shape;
    let mut buf = Vec::with_capacity(idx.len() * shape.len());
    let mut scratch = vec![0u8; shape.len()];
    let mut rng = augment;
    let span = 2 * CROP_PADDING + 1;
    for &i in idx {
        let img = set.image(i);
        match rng.as_deref_mut() {
            Some(g) => {
                let dx = g.below(span) as isize - CROP_PADDING as isize;
                let dy = g.below(span) as isize - CROP_PADDING as isize;
                let flip = g.below(2) == 1;
                augment_into(img, shape, CROP_PADDING, flip, dx, dy, &mut scratch);
                normalise_into(&scratch, spec, &mut buf);
            }
            None => normalise_into(img, spec, &mut buf),
        }
    }
    let x = Tensor::from_slice(&buf).view([idx.len() as i64, shape.c as i64, shape.h as i64, shape.w as i64]).to_device(device);
    let labels: Vec<i64> = idx.iter().map(|&i| set.labels[i] as i64).collect();
    let y = Tensor::from_slice(&labels).to_kind(Kind::Int64).to_device(device);
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augment_identity_and_flip() {
        for shape in [Shape::new(3, 32, 32), Shape::new(1, 28, 28)] {
            let img: Vec<u8> = (0..shape.len()).map(|i| (i % 251) as u8).collect();
            let mut out = vec![0u8; shape.len()];
            augment_into(&img, shape, 4, false, 0, 0, &mut out);
            assert_eq!(out, img);
            augment_into(&img, shape, 4, true, 0, 0, &mut out);
            assert_eq!(out[0], img[shape.w - 1]);
            augment_into(&img, shape, 4, false, 2, 0, &mut out);
            assert_eq!(out[0], img[2]);
            assert_eq!(out[shape.w - 1], 0, "shifted-in column is zero padding");
            let last_plane = (shape.c - 1) * shape.h * shape.w;
            assert_eq!(out[last_plane], img[last_plane + 2], "every channel is cropped alike");
        }
    }

    #[test]
    fn wrong_directory_is_a_clear_error() {
        let e = open_dir(Path::new("/nonexistent/cifar")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/cifar") && e.contains("data_batch_1.bin") && e.contains("idx3"), "{e}");
    }

    #[test]
    fn auto_normalisation_follows_the_data() {
        assert_eq!(Normalisation::Auto.resolve(DatasetKind::Idx).spec().mean.len(), 1);
        assert_eq!(Normalisation::Auto.resolve(DatasetKind::Cifar10), Normalisation::Cifar10);
        assert_eq!(Normalisation::Imagenet.resolve(DatasetKind::Cifar10), Normalisation::Imagenet);
    }
}
