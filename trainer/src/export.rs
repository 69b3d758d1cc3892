//! Export: the var store as safetensors with PyTorch names (f32) plus a model
//! card that `pann_models::LoadedModel::load` reads without conversion, with
//! per-site bounds calibrated by the models crate itself (exact ReLU, f64,
//! BN folded: the same executor the parties' reference uses), so the bounds
//! in the card are exactly what inference will see. A polynomial-in-the-loop
//! (`finetune`) run exports the bounds it was trained with instead, and its
//! alpha as the card's default.
//!
//! Training facts (recipe, seed, history, data, accuracies) go into an extra
//! `trainer` object in the card JSON; the models crate ignores it.

use crate::error::{Result, TrainerError};
use crate::train::Trained;
use pann_approx::Alpha;
use pann_models::card::CalibrationInfo;
use pann_models::model::write_safetensors;
use pann_models::{
    calibrate::{max_abs_per_site, per_site_bounds},
    fold_batch_norm, sha256_hex, Architecture, LoadedModel, Model, ModelCard, Params, Provenance, Tensor as PTensor,
};
use std::path::{Path, PathBuf};

/// How to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// File stem: `<name>.safetensors`, `<name>.card.json`.
    pub name: String,
    /// Directory for both files (created if missing).
    pub out_dir: PathBuf,
    /// Training images used to calibrate the bounds.
    pub calib_images: usize,
    /// Bound margin: B = margin x the calibrated max |input| of each site.
    pub margin: f64,
    /// The card's default alpha.
    pub default_alpha: Alpha,
}

/// The var store's tensors as models-crate parameters (f64).
pub fn params_of(vs: &tch::nn::VarStore) -> Result<Params> {
    let mut p = Params::new();
    for (name, t) in vs.variables() {
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let flat = t.detach().to_device(tch::Device::Cpu).to_kind(tch::Kind::Double).flatten(0, -1);
        let data = Vec::<f64>::try_from(&flat)?;
        p.insert(name, PTensor::new(shape, data));
    }
    Ok(p)
}

/// Write weights and card; returns the card path after re-loading it through
/// `LoadedModel::load` as a check.
pub fn export(t: &Trained, o: &ExportOptions) -> Result<PathBuf> {
    std::fs::create_dir_all(&o.out_dir).map_err(|e| TrainerError::io(&o.out_dir, e))?;
    let arch = Architecture::Resnet(t.meta.architecture.clone());
    let params = params_of(&t.vs)?;
    let bytes = write_safetensors(&params, false)?;
    let wfile = format!("{}.safetensors", o.name);
    let wpath = o.out_dir.join(&wfile);
    // Bounds from the f32 weights as written, folded, f64: what inference runs.
    let model = fold_batch_norm(&Model::from_safetensors(arch.build()?, &bytes)?)?;
    let spec = t.input_spec();
    let n = o.calib_images.min(t.data.train.len());
    let train = &t.data.train;
    // A polynomial-in-the-loop run learned its weights for the bounds it was
    // trained with: those go into the card (recalibrating would change every
    // t = x / B the network adapted to). Other runs: calibrate now.
    let (bounds, calibration) = match (&t.meta.pann_bounds, &t.meta.recipe.finetune) {
        (Some(b), Some(ft)) => (
            t.net.sites().iter().cloned().zip(b.iter().copied()).collect(),
            CalibrationInfo {
                margin: ft.margin,
                images: ft.calib_images.min(train.len()),
                data: format!("bounds of the polynomial-in-the-loop training (alpha {}), calibrated on the first {} training images of {} before fine-tuning", ft.alpha, ft.calib_images.min(train.len()), t.meta.data_dir.display()),
            },
        ),
        _ => {
            let max = max_abs_per_site(&model, n, |i| spec.normalise(train.image(i)), None)?;
            let info = CalibrationInfo {
                margin: o.margin,
                images: n,
                data: format!("first {n} training images of {} (exact ReLU, f64, BN folded)", t.meta.data_dir.display()),
            };
            (per_site_bounds(&max, o.margin), info)
        }
    };
    let default_alpha = t.meta.recipe.finetune.as_ref().map_or(o.default_alpha, |ft| ft.alpha);
    // A run fine-tuned at per-layer alphas deploys them.
    let relu_alphas = match &t.meta.recipe.finetune {
        Some(ft) if !ft.site_alphas.is_empty() => t.net.sites().iter().cloned().zip(ft.site_alphas.iter().copied()).collect(),
        _ => Default::default(),
    };
    // Weights fine-tuned with the polynomial in the loop are made for its alphas.
    let mut trained_alphas: Vec<Alpha> = match &t.meta.recipe.finetune {
        Some(ft) if ft.site_alphas.is_empty() => vec![ft.alpha],
        Some(ft) => ft.site_alphas.clone(),
        None => Vec::new(),
    };
    trained_alphas.sort();
    trained_alphas.dedup();
    std::fs::write(&wpath, &bytes).map_err(|e| TrainerError::io(&wpath, e))?;
    let last = t.meta.history.last();
    let card = ModelCard {
        name: o.name.clone(),
        architecture: arch,
        input: spec,
        weights: wfile,
        weights_sha256: sha256_hex(&bytes),
        default_alpha,
        relu_bounds: bounds,
        relu_alphas,
        trained_alphas,
        calibration: Some(calibration),
        logit_range: None,
        provenance: Provenance {
            source: format!("pann-train, recipe {:?}, {} epochs, seed {}", t.meta.recipe.preset, t.meta.epochs_done, t.meta.seed),
            license: "MIT OR Apache-2.0".into(),
            notes: format!(
                "Trained on {} ({} training images); exact-ReLU test accuracy {} on {} test images.",
                t.meta.data_dir.display(),
                t.meta.train_images,
                last.map(|l| format!("{:.4}", l.test_accuracy)).unwrap_or_else(|| "n/a".into()),
                t.meta.test_images
            ),
            onnx_sha256: None,
        },
    };
    let mut json = serde_json::to_value(&card).map_err(|e| TrainerError::Config(e.to_string()))?;
    let trainer = serde_json::json!({
        "recipe": t.meta.recipe,
        "seed": t.meta.seed,
        "epochs_done": t.meta.epochs_done,
        "init": t.meta.init,
        "normalisation": t.meta.normalisation,
        "data": { "dir": t.meta.data_dir, "train_images": t.meta.train_images, "test_images": t.meta.test_images },
        "accuracies": { "test_exact_relu_tch_f32": last.map(|l| l.test_accuracy), "test_pann_tch_f32": last.and_then(|l| l.test_accuracy_pann) },
        "history": t.meta.history,
        "finetune_bounds": t.meta.pann_bounds,
    });
    if let serde_json::Value::Object(m) = &mut json {
        m.insert("trainer".into(), trainer);
    }
    let cpath = o.out_dir.join(format!("{}.card.json", o.name));
    let text = serde_json::to_string_pretty(&json).map_err(|e| TrainerError::Config(e.to_string()))?;
    std::fs::write(&cpath, text).map_err(|e| TrainerError::io(&cpath, e))?;
    LoadedModel::load(&cpath)?;
    Ok(cpath)
}

/// Convenience for callers holding only a path.
pub fn card_dir(card: &Path) -> &Path {
    card.parent().unwrap_or(Path::new("."))
}
