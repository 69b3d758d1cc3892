//! Typed errors of the trainer library. Most come from files a person must
//! fix (a data directory, a checkpoint, a card), so every variant names it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    #[error("models crate: {0}")]
    Model(#[from] pann_models::ModelError),

    #[error("cannot access {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("data directory {dir}: {reason}")]
    Data { dir: PathBuf, reason: String },

    #[error("checkpoint {path} is unusable: {reason}")]
    Checkpoint { path: PathBuf, reason: String },

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("training diverged at epoch {epoch}: loss is {loss}")]
    Diverged { epoch: usize, loss: f64 },
}

pub type Result<T, E = TrainerError> = std::result::Result<T, E>;

impl TrainerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainerError::Io { path: path.into(), source }
    }
}
