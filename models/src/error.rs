//! Typed errors of the models crate. Every variant names the tensor, file or
//! layer at fault, because these errors mostly come from data files that a
//! person has to go and fix.

use std::path::PathBuf;

use pann_mpc_core::AbortCode;

/// Errors from building, loading, checking or running a network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An architecture, a network description, a plan or a parameter that
    /// does not make sense (the text says what and where).
    #[error("invalid architecture: {0}")]
    Config(String),

    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// Weights that are not valid safetensors data (or could not be written as such).
    #[error("malformed safetensors data: {0}")]
    Safetensors(String),

    /// A parameter the architecture needs is not in the weights.
    #[error("tensor {name:?} is missing from the weights")]
    MissingTensor {
        /// The parameter's PyTorch name (`<node>.<param>`).
        name: String,
    },

    /// The weights hold a tensor the architecture does not use (import is strict).
    #[error("unexpected tensor {name:?} in the weights (not used by the architecture)")]
    ExtraTensor {
        /// The tensor's name.
        name: String,
    },

    /// A parameter whose shape is not the one the architecture needs.
    #[error("tensor {name:?} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The parameter's name.
        name: String,
        /// The shape the architecture needs.
        expected: Vec<usize>,
        /// The shape in the weights.
        found: Vec<usize>,
    },

    /// A tensor stored in a dtype other than F32 or F64.
    #[error("tensor {name:?} has dtype {found}, expected F32 or F64")]
    WrongDtype {
        /// The tensor's name.
        name: String,
        /// The dtype found, as safetensors names it.
        found: String,
    },

    /// A tensor holding a NaN or an infinity.
    #[error("tensor {name:?} contains a non-finite value at flat index {index}")]
    NonFinite {
        /// The tensor's name.
        name: String,
        /// Row-major index of the first non-finite value.
        index: usize,
    },

    /// A tensor that is inconsistent in itself (e.g. its data length does not match its shape).
    #[error("tensor {name:?}: {reason}")]
    BadTensor {
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A model card that is inconsistent with its architecture or its limits.
    #[error("model card {path}: {reason}")]
    Card {
        /// The card file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A weights file that is not the one its card names (SHA-256 differs).
    #[error("weights file {path} has SHA-256 {found}, but its model card expects {expected}")]
    DigestMismatch {
        /// The weights file.
        path: PathBuf,
        /// The digest the card records (hex).
        expected: String,
        /// The digest of the file (lower-case hex).
        found: String,
    },

    /// An input whose size does not match what the network (or plan) takes.
    #[error("input of shape {found:?} does not match the network input {expected:?}")]
    InputShape {
        /// The expected shape (`[c, h, w]`, or `[batch, c, h, w]` for a plan).
        expected: Vec<usize>,
        /// What was given (its length, as a one-element shape).
        found: Vec<usize>,
    },

    /// A ReLU site without a bound where PANN needs one.
    #[error("no bound for ReLU site {site:?}")]
    MissingBound {
        /// The ReLU site (node name).
        site: String,
    },

    /// A ReLU bound that is zero, negative or not finite.
    #[error("ReLU site {site:?}: bound {bound} is not a positive finite number")]
    BadBound {
        /// The ReLU site (node name).
        site: String,
        /// The bound given.
        bound: f64,
    },

    /// A size or count above its documented limit (see [`crate::limits`]).
    #[error("{what} is {value}, above the limit of {max}")]
    TooLarge {
        /// The quantity (public sizes only).
        what: String,
        /// Its value (`u64::MAX` when the computation overflowed).
        value: u64,
        /// The limit.
        max: u64,
    },

    /// A numeric parameter outside its documented range (see [`crate::limits`]).
    #[error("{what} is {value}, outside the supported range [{min}, {max}]")]
    OutOfRange {
        /// The parameter.
        what: String,
        /// Its value.
        value: f64,
        /// Smallest value allowed.
        min: f64,
        /// Largest value allowed.
        max: f64,
    },

    /// A batch above what this role accepts: `who` is "server", "dealer" or
    /// "client"; the text is public (sizes only) and is sent to the peers.
    #[error("batch {batch} exceeds this {who}'s limit of {limit} ({detail})")]
    BatchLimit {
        /// The refusing role: "server", "dealer" or "client".
        who: &'static str,
        /// The batch asked for.
        batch: usize,
        /// The largest batch this role accepts for this model.
        limit: usize,
        /// The figures behind the limit (memory needed and allowed).
        detail: String,
    },

    /// A site without an alpha, or a polynomial ReLU that does not compile.
    #[error("sign polynomial: {0}")]
    SignPoly(String),

    /// A failure of the secure computation without a code of its own (peers are
    /// told the caller's default code).
    #[error("secure computation: {0}")]
    Secure(String),

    /// A failure of a secure session together with what its peers are told
    /// (the message stays in the local log).
    #[error("{message}")]
    Session {
        /// What the peers are told (a fixed public text).
        code: AbortCode,
        /// The local message (may name secret values or paths: never sent).
        message: String,
    },

    /// A malformed CIFAR-10 binary batch.
    #[error("CIFAR-10 file {path}: {reason}")]
    Cifar {
        /// The file (or directory, for a missing batch).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A malformed IDX file, or an images file without its labels beside it.
    #[error("IDX file {path}: {reason}")]
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A data directory that holds no recognised dataset layout.
    #[error("data directory {path}: {reason}")]
    Data {
        /// The directory.
        path: PathBuf,
        /// What is missing, and the layouts expected.
        reason: String,
    },

    /// A PNG that cannot be decoded (or encoded), or whose size or channels do
    /// not fit the network's input.
    #[error("image {path}: {reason}")]
    Image {
        /// The file (`<memory>` when encoding).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A JSON file (a model card) that does not parse.
    #[error("JSON {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
}

/// The result of this crate's fallible functions (and of `pann-engine`'s).
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
