//! Typed errors of the models crate. Every variant names the tensor, file or
//! layer at fault, because these errors mostly come from data files that a
//! person has to go and fix.

use std::path::PathBuf;

use pann_mpc_core::AbortCode;

/// Errors from building, loading, checking or running a network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid architecture: {0}")]
    Config(String),

    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("malformed safetensors data: {0}")]
    Safetensors(String),

    #[error("tensor {name:?} is missing from the weights")]
    MissingTensor { name: String },

    #[error("unexpected tensor {name:?} in the weights (not used by the architecture)")]
    ExtraTensor { name: String },

    #[error("tensor {name:?} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize> },

    #[error("tensor {name:?} has dtype {found}, expected F32 or F64")]
    WrongDtype { name: String, found: String },

    #[error("tensor {name:?} contains a non-finite value at flat index {index}")]
    NonFinite { name: String, index: usize },

    #[error("tensor {name:?}: {reason}")]
    BadTensor { name: String, reason: String },

    #[error("model card {path}: {reason}")]
    Card { path: PathBuf, reason: String },

    #[error("weights file {path} has SHA-256 {found}, but its model card expects {expected}")]
    DigestMismatch { path: PathBuf, expected: String, found: String },

    #[error("input of shape {found:?} does not match the network input {expected:?}")]
    InputShape { expected: Vec<usize>, found: Vec<usize> },

    #[error("no bound for ReLU site {site:?}")]
    MissingBound { site: String },

    #[error("ReLU site {site:?}: bound {bound} is not a positive finite number")]
    BadBound { site: String, bound: f64 },

    /// A size or count above its documented limit (see [`crate::limits`]).
    #[error("{what} is {value}, above the limit of {max}")]
    TooLarge { what: String, value: u64, max: u64 },

    /// A numeric parameter outside its documented range (see [`crate::limits`]).
    #[error("{what} is {value}, outside the supported range [{min}, {max}]")]
    OutOfRange { what: String, value: f64, min: f64, max: f64 },

    /// A batch above what this role accepts: `who` is "server", "dealer" or
    /// "client"; the text is public (sizes only) and is sent to the peers.
    #[error("batch {batch} exceeds this {who}'s limit of {limit} ({detail})")]
    BatchLimit { who: &'static str, batch: usize, limit: usize, detail: String },

    #[error("sign polynomial: {0}")]
    SignPoly(String),

    #[error("secure computation: {0}")]
    Secure(String),

    /// A failure of a secure session together with what its peers are told
    /// (the message stays in the local log).
    #[error("{message}")]
    Session { code: AbortCode, message: String },

    #[error("CIFAR-10 file {path}: {reason}")]
    Cifar { path: PathBuf, reason: String },

    #[error("IDX file {path}: {reason}")]
    Idx { path: PathBuf, reason: String },

    #[error("data directory {path}: {reason}")]
    Data { path: PathBuf, reason: String },

    #[error("image {path}: {reason}")]
    Image { path: PathBuf, reason: String },

    #[error("JSON {path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    /// The code peers are told when this error ends a session, if the error
    /// carries one (see [`ModelError::Session`]).
    pub fn abort_code(&self) -> Option<AbortCode> {
        match self {
            ModelError::Session { code, .. } => Some(*code),
            ModelError::BatchLimit { .. } | ModelError::TooLarge { .. } => Some(AbortCode::Limit),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io { path: path.into(), source }
    }
}
