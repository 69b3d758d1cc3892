//! CIFAR-10 input for training: the binary batches read through
//! `pann_models::cifar` (one parser for the whole project), augmentation
//! (random crop with zero padding, horizontal flip) and normalisation into
//! f32 batches.
//!
//! Augmentation happens on the raw bytes, before normalisation, so the
//! padding is black pixels exactly as torchvision's `RandomCrop(32, padding=4)`
//! on a PIL image does, and the normalisation written into the model card is
//! the only transform the deployed model needs.

use crate::error::{Result, TrainerError};
use crate::rng::SplitMix64;
use pann_models::cifar::IMAGE_BYTES;
use pann_models::{Cifar10, CifarDir, InputSpec};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Which input normalisation to train with (it is recorded in the card).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Normalisation {
    /// CIFAR-10 training-set channel statistics.
    Cifar10,
    /// ImageNet statistics (what akamaster's models use).
    Imagenet,
}

impl Normalisation {
    pub fn spec(self) -> InputSpec {
        match self {
            Normalisation::Cifar10 => InputSpec { mean: vec![0.4914, 0.4822, 0.4465], std: vec![0.2470, 0.2435, 0.2616] },
            Normalisation::Imagenet => InputSpec::imagenet(),
        }
    }
}

/// Training and test images of a CIFAR-10 binary directory.
#[derive(Clone, Debug)]
pub struct CifarData {
    pub dir: PathBuf,
    pub train: Cifar10,
    pub test: Cifar10,
}

impl CifarData {
    /// Read at most `train_limit` training and `test_limit` test images.
    /// A directory that is not a CIFAR-10 binary distribution is an error that
    /// says what was expected, before any file is parsed.
    pub fn load(dir: &Path, train_limit: usize, test_limit: usize) -> Result<Self> {
        check_dir(dir)?;
        let cd = CifarDir::new(dir);
        let train = cd.train(train_limit)?;
        let test = cd.test()?.truncated(test_limit);
        if train.is_empty() {
            return Err(TrainerError::Data { dir: dir.into(), reason: "no training images".into() });
        }
        Ok(Self { dir: dir.into(), train, test })
    }
}

/// Check that `dir` looks like the CIFAR-10 binary distribution.
pub fn check_dir(dir: &Path) -> Result<()> {
    let expected = "expected the CIFAR-10 binary distribution (data_batch_1.bin .. data_batch_5.bin, test_batch.bin)";
    if !dir.is_dir() {
        return Err(TrainerError::Data { dir: dir.into(), reason: format!("not a directory; {expected}") });
    }
    for f in ["data_batch_1.bin", "test_batch.bin"] {
        if !dir.join(f).is_file() {
            return Err(TrainerError::Data { dir: dir.into(), reason: format!("{f} is missing; {expected}") });
        }
    }
    Ok(())
}

/// Random crop (zero padding `pad`) and horizontal flip of one 3x32x32 CHW
/// byte image into `out`.
pub fn augment_into(img: &[u8], pad: usize, flip: bool, dx: isize, dy: isize, out: &mut [u8]) {
    let (c, s) = (3usize, 32isize);
    debug_assert!(dx.unsigned_abs() <= pad && dy.unsigned_abs() <= pad);
    for ch in 0..c {
        for y in 0..s {
            let sy = y + dy;
            for x in 0..s {
                let xx = if flip { s - 1 - x } else { x };
                let sx = xx + dx;
                let v = if (0..s).contains(&sy) && (0..s).contains(&sx) { img[ch * 1024 + (sy * s + sx) as usize] } else { 0 };
                out[ch * 1024 + (y * s + x) as usize] = v;
            }
        }
    }
}

/// Normalise CHW bytes into f32 with `spec` (same formula as `InputSpec::normalise`).
pub fn normalise_into(pixels: &[u8], spec: &InputSpec, out: &mut Vec<f32>) {
    let plane = pixels.len() / 3;
    for (i, &p) in pixels.iter().enumerate() {
        let ch = (i / plane).min(2);
        out.push(((p as f64 / 255.0 - spec.mean[ch]) / spec.std[ch]) as f32);
    }
}

/// A batch of images `[n, 3, 32, 32]` (f32, normalised) and labels `[n]` (i64).
pub fn make_batch(
    set: &Cifar10,
    idx: &[usize],
    spec: &InputSpec,
    augment: Option<&mut SplitMix64>,
    device: Device,
) -> (Tensor, Tensor) {
    let mut buf = Vec::with_capacity(idx.len() * IMAGE_BYTES);
    let mut scratch = vec![0u8; IMAGE_BYTES];
    let mut rng = augment;
    for &i in idx {
        let img = set.image(i);
        match rng.as_deref_mut() {
            Some(g) => {
                let dx = g.below(9) as isize - 4;
                let dy = g.below(9) as isize - 4;
                let flip = g.below(2) == 1;
                augment_into(img, 4, flip, dx, dy, &mut scratch);
                normalise_into(&scratch, spec, &mut buf);
            }
            None => normalise_into(img, spec, &mut buf),
        }
    }
    let x = Tensor::from_slice(&buf).view([idx.len() as i64, 3, 32, 32]).to_device(device);
    let labels: Vec<i64> = idx.iter().map(|&i| set.labels[i] as i64).collect();
    let y = Tensor::from_slice(&labels).to_kind(Kind::Int64).to_device(device);
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augment_identity_and_flip() {
        let img: Vec<u8> = (0..IMAGE_BYTES).map(|i| (i % 251) as u8).collect();
        let mut out = vec![0u8; IMAGE_BYTES];
        augment_into(&img, 4, false, 0, 0, &mut out);
        assert_eq!(out, img);
        augment_into(&img, 4, true, 0, 0, &mut out);
        assert_eq!(out[0], img[31]);
        augment_into(&img, 4, false, 2, 0, &mut out);
        assert_eq!(out[0], img[2]);
        assert_eq!(out[31], 0, "shifted-in column is zero padding");
    }

    #[test]
    fn wrong_directory_is_a_clear_error() {
        let e = check_dir(Path::new("/nonexistent/cifar")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/cifar") && e.contains("data_batch_1.bin"), "{e}");
    }
}
