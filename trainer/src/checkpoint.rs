//! Checkpoints: one directory per run holding `checkpoint.safetensors`
//! (model variables as `model.<name>`, SGD momentum buffers as
//! `momentum.<name>`) and `checkpoint.json` (epochs done, seed, recipe,
//! architecture, history, NGNV running maxima, fine-tuning bounds, and the
//! SHA-256 of the tensors file).
//!
//! Both files are written to a temporary name and renamed, tensors first, so
//! an interruption leaves the previous checkpoint intact; the digest in the
//! JSON catches a tensors file that was truncated or replaced. Per-epoch
//! randomness is derived from (seed, epoch) (see [`crate::rng`]), so no
//! generator state needs saving for a resumed run to draw the same batches.

use crate::data::Normalisation;
use crate::error::{Result, TrainerError};
use crate::optim::Sgd;
use crate::recipe::Recipe;
use pann_models::{sha256_hex, ResNetConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Tensor};

/// The `format` of the checkpoints this trainer writes and reads.
pub const FORMAT: &str = "pann-trainer-checkpoint/1";
/// The metadata file of a run directory ([`CheckpointMeta`] as JSON).
pub const META_FILE: &str = "checkpoint.json";
/// The tensors file of a run directory.
pub const TENSORS_FILE: &str = "checkpoint.safetensors";

/// One epoch's log line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// The epoch (1-based).
    pub epoch: usize,
    /// Learning rate of the epoch's last step.
    pub lr_end: f64,
    /// Mean training loss per image over the epoch (under Mixup, the mixed loss).
    pub train_loss: f64,
    /// Against the un-mixed labels (under Mixup this underestimates).
    pub train_accuracy: f64,
    /// Exact-ReLU accuracy on the test images (tch, f32).
    pub test_accuracy: f64,
    /// With the PANN ReLU in the tch forward (finetune only).
    #[serde(default)]
    pub test_accuracy_pann: Option<f64>,
    /// Wall time of the epoch's training steps (the test evaluation excluded).
    pub seconds: f64,
    /// Training images per second over those steps.
    pub images_per_second: f64,
}

/// Everything about a run except tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`FORMAT`].
    pub format: String,
    /// Epochs completed.
    pub epochs_done: usize,
    /// The run's seed: the initial weights and each epoch's shuffle and
    /// augmentation derive from it.
    pub seed: u64,
    /// The network, with the data's channels and image size.
    pub architecture: ResNetConfig,
    /// The input normalisation (resolved: never `Auto`).
    pub normalisation: Normalisation,
    /// The resolved recipe; a resumed run keeps it.
    pub recipe: Recipe,
    /// The data directory the run started with.
    pub data_dir: PathBuf,
    /// Training images used (a resumed run reads as many).
    pub train_images: usize,
    /// Test images of the per-epoch accuracy.
    pub test_images: usize,
    /// Where the initial weights came from (finetune), if not random.
    #[serde(default)]
    pub init: Option<String>,
    /// One entry per epoch done.
    #[serde(default)]
    pub history: Vec<EpochLog>,
    /// NGNV's running max |input| per site (`paper` recipe), restored on resume.
    #[serde(default)]
    pub ngnv_running_max: Option<Vec<f64>>,
    /// Per-site bounds of the polynomial in the loop (finetune), site order.
    #[serde(default)]
    pub pann_bounds: Option<Vec<f64>>,
    /// SHA-256 (hex) of [`TENSORS_FILE`], checked when the checkpoint is read.
    pub tensors_sha256: String,
}

fn ck_err(path: &Path, reason: impl Into<String>) -> TrainerError {
    TrainerError::Checkpoint { path: path.into(), reason: reason.into() }
}

/// Whether `dir` holds a checkpoint.
pub fn exists(dir: &Path) -> bool {
    dir.join(META_FILE).is_file()
}

/// Write the checkpoint of `vs` and `opt` into `dir` (atomically per file).
pub fn save(dir: &Path, vs: &VarStore, opt: &Sgd, meta: &mut CheckpointMeta) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainerError::io(dir, e))?;
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (format!("model.{n}"), t.detach())).collect();
    named.extend(opt.params.iter().map(|(n, _, b)| (format!("momentum.{n}"), b.detach())));
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let named: Vec<(String, Tensor)> = named.into_iter().map(|(n, t)| (n, t.to_device(tch::Device::Cpu).contiguous())).collect();
    let tmp = dir.join(format!("{TENSORS_FILE}.tmp"));
    Tensor::write_safetensors(&named, &tmp)?;
    let bytes = std::fs::read(&tmp).map_err(|e| TrainerError::io(&tmp, e))?;
    meta.tensors_sha256 = sha256_hex(&bytes);
    let dst = dir.join(TENSORS_FILE);
    std::fs::rename(&tmp, &dst).map_err(|e| TrainerError::io(&dst, e))?;
    let json = serde_json::to_string_pretty(meta).map_err(|e| ck_err(dir, e.to_string()))?;
    let tmp = dir.join(format!("{META_FILE}.tmp"));
    std::fs::write(&tmp, json).map_err(|e| TrainerError::io(&tmp, e))?;
    let dst = dir.join(META_FILE);
    std::fs::rename(&tmp, &dst).map_err(|e| TrainerError::io(&dst, e))?;
    Ok(())
}

/// Read and verify a checkpoint's metadata and tensors (not yet applied).
pub fn read(dir: &Path) -> Result<(CheckpointMeta, HashMap<String, Tensor>)> {
    let meta_path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&meta_path).map_err(|e| TrainerError::io(&meta_path, e))?;
    let meta: CheckpointMeta =
        serde_json::from_str(&text).map_err(|e| ck_err(&meta_path, format!("not a valid checkpoint description ({e})")))?;
    if meta.format != FORMAT {
        return Err(ck_err(&meta_path, format!("format {:?}, this trainer reads {FORMAT:?}", meta.format)));
    }
    let tpath = dir.join(TENSORS_FILE);
    let bytes = std::fs::read(&tpath).map_err(|e| TrainerError::io(&tpath, e))?;
    let found = sha256_hex(&bytes);
    if found != meta.tensors_sha256 {
        return Err(ck_err(
            &tpath,
            format!("SHA-256 {found} differs from {} recorded in {META_FILE} (truncated or corrupt)", meta.tensors_sha256),
        ));
    }
    let tensors = Tensor::read_safetensors(&tpath).map_err(|e| ck_err(&tpath, e.to_string()))?;
    Ok((meta, tensors.into_iter().collect()))
}

/// Copy `prefix<name>` tensors into every variable of `vs`; a missing or
/// mis-shaped tensor is an error naming it.
pub fn load_into(vs: &VarStore, tensors: &HashMap<String, Tensor>, prefix: &str, source: &Path) -> Result<()> {
    for (name, mut var) in vs.variables() {
        let key = format!("{prefix}{name}");
        let src = tensors.get(&key).ok_or_else(|| ck_err(source, format!("tensor {key:?} is missing")))?;
        if src.size() != var.size() {
            return Err(ck_err(source, format!("tensor {key:?} has shape {:?}, the model needs {:?}", src.size(), var.size())));
        }
        tch::no_grad(|| var.copy_(&src.to_kind(var.kind()).to_device(var.device())));
    }
    Ok(())
}

/// Restore the optimizer's momentum buffers.
pub fn load_momentum(opt: &mut Sgd, tensors: &HashMap<String, Tensor>, source: &Path) -> Result<()> {
    for (name, _, buf) in &mut opt.params {
        let key = format!("momentum.{name}");
        let src = tensors.get(&key).ok_or_else(|| ck_err(source, format!("tensor {key:?} is missing")))?;
        if src.size() != buf.size() {
            return Err(ck_err(source, format!("tensor {key:?} has the wrong shape")));
        }
        tch::no_grad(|| buf.copy_(&src.to_kind(buf.kind()).to_device(buf.device())));
    }
    Ok(())
}

/// Initial weights for fine-tuning: a checkpoint directory or an exported
/// model card (its safetensors, PyTorch names).
pub fn load_init(vs: &VarStore, path: &Path) -> Result<String> {
    if path.is_dir() {
        let (_, tensors) = read(path)?;
        load_into(vs, &tensors, "model.", path)?;
        return Ok(format!("checkpoint {}", path.display()));
    }
    let card = pann_models::ModelCard::from_file(path)?;
    let wpath: PathBuf = path.parent().unwrap_or(Path::new(".")).join(&card.weights);
    let tensors = Tensor::read_safetensors(&wpath).map_err(|e| ck_err(&wpath, e.to_string()))?;
    load_into(vs, &tensors.into_iter().collect(), "", &wpath)?;
    Ok(format!("model card {}", path.display()))
}
