//! What a client holds: images from PNG files, records of a CIFAR-10 binary
//! file, or images of an IDX file (Fashion-MNIST; its labels file beside it).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use pann_models::image::read_png;
use pann_models::{ImageSet, Shape};

/// Raw CHW images with their true labels when the source has them.
#[derive(Clone, Debug, Default)]
pub struct Images {
    /// One CHW byte image per entry (0..=255, not normalised).
    pub pixels: Vec<Vec<u8>>,
    /// The true label of each image (`None` for a PNG).
    pub labels: Vec<Option<u8>>,
    /// Class names, when a CIFAR `batches.meta.txt` lies beside the input.
    pub class_names: Vec<String>,
}

/// Load images: each path is a `.png` (one image of `png_shape`), or a
/// CIFAR-10 binary file or IDX images file, of which records
/// `first .. first + count` are used.
pub fn load(paths: &[PathBuf], first: usize, count: usize, png_shape: Shape) -> Result<Images> {
    if paths.is_empty() {
        bail!("no input given (--input FILE.png, --input data_batch.bin or --input t10k-images-idx3-ubyte.gz)");
    }
    let mut out = Images::default();
    for p in paths {
        let is_png = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if is_png {
            // The errors name the file.
            out.pixels.push(read_png(p, png_shape)?);
            out.labels.push(None);
        } else {
            let data = ImageSet::read_file(p)?;
            if first >= data.len() || count == 0 {
                bail!("{} has {} records; --first {first} --count {count} selects none", p.display(), data.len());
            }
            let end = (first + count).min(data.len());
            for i in first..end {
                out.pixels.push(data.image(i).to_vec());
                out.labels.push(Some(data.labels[i]));
            }
            if out.class_names.is_empty() {
                out.class_names = class_names_beside(p);
            }
        }
    }
    Ok(out)
}

/// CIFAR-10 class names from `batches.meta.txt` in the same directory, if any.
fn class_names_beside(p: &Path) -> Vec<String> {
    let meta = p.parent().unwrap_or(Path::new(".")).join("batches.meta.txt");
    std::fs::read_to_string(meta)
        .map(|t| t.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}
