//! Typed errors of the trainer library. Most come from files a person must
//! fix (a data directory, a checkpoint, a card), so every variant names it.

use std::path::PathBuf;

/// Why a trainer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// An error from libtorch (through tch).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// An error from the models crate (a card, weights, data, calibration).
    #[error("models crate: {0}")]
    Model(#[from] pann_models::ModelError),

    /// A file or directory that cannot be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// A data directory without usable images, or with images of another shape.
    #[error("data directory {dir}: {reason}")]
    Data {
        /// The data directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A checkpoint (or a card's tensors file) that cannot be used: another
    /// format, a digest mismatch, a missing or mis-shaped tensor.
    #[error("checkpoint {path} is unusable: {reason}")]
    Checkpoint {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Options or a recipe out of range or inconsistent (the message says which).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The training loss became non-finite.
    #[error("training diverged at epoch {epoch}: loss is {loss}")]
    Diverged {
        /// The epoch (1-based).
        epoch: usize,
        /// The loss of the step that diverged.
        loss: f64,
    },
}

/// The trainer's result type.
pub type Result<T, E = TrainerError> = std::result::Result<T, E>;

impl TrainerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainerError::Io { path: path.into(), source }
    }
}
