//! One error type for the core: every failure names what went wrong.

use std::path::PathBuf;
use std::time::Duration;

use crate::abort::AbortCode;
use crate::role::Role;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("value {value} does not fit in fixed point with {frac_bits} fractional bits (|x| must be < 2^{int_bits})")]
    FixedPointOverflow { value: f64, frac_bits: u32, int_bits: u32 },
    #[error("invalid fixed-point parameters: {0}")]
    FixedPointParams(String),
    #[error("share mismatch: {0}")]
    ShareMismatch(String),
    #[error("I/O error while {context}: {source}")]
    Io { context: &'static str, source: std::io::Error },
    #[error("timed out after {after:?} while {context}")]
    Timeout { context: &'static str, after: Duration },
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    /// A frame whose announced length is not what the protocol expects at
    /// this point (refused from its header and tag, before its body is read).
    #[error("a {what} frame with a body of {len} bytes where {expected} bytes were expected")]
    FrameLength { what: String, len: usize, expected: String },
    #[error("peer closed the connection while {context}")]
    PeerClosed { context: &'static str },
    #[error("unexpected message: expected {expected}, got {got}")]
    UnexpectedMessage { expected: String, got: String },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("handshake failed: {field} differs (ours: {ours}, peer's: {theirs})")]
    HandshakeMismatch { field: String, ours: String, theirs: String },
    #[error("peer aborted the session: {0}")]
    PeerAborted(AbortCode),
    #[error("the peer's certificate is the {certified}'s, but its Hello claims the role {claimed}")]
    RoleNotCertified { claimed: Role, certified: Role },
    #[error("TLS error: {0}")]
    Tls(String),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("could not connect to {addr} within {after:?}: {last}")]
    Connect { addr: String, after: Duration, last: String },
    #[error("TLS identity file {}: {reason}", path.display())]
    IdentityFile { path: PathBuf, reason: String },
}

impl CoreError {
    pub fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> CoreError {
        move |source| match source.kind() {
            std::io::ErrorKind::UnexpectedEof => CoreError::PeerClosed { context },
            _ => CoreError::Io { context, source },
        }
    }

    /// What a party tells its peers when this error ends its session.
    pub fn abort_code(&self) -> AbortCode {
        match self {
            CoreError::HandshakeMismatch { .. } => AbortCode::Mismatch,
            CoreError::UnexpectedMessage { .. }
            | CoreError::Malformed(_)
            | CoreError::FrameTooLarge { .. }
            | CoreError::FrameLength { .. } => AbortCode::Malformed,
            CoreError::Timeout { .. } => AbortCode::Timeout,
            CoreError::RoleNotCertified { .. } => AbortCode::Identity,
            CoreError::PeerAborted(_)
            | CoreError::PeerClosed { .. }
            | CoreError::Io { .. }
            | CoreError::Connect { .. }
            | CoreError::Tls(_) => AbortCode::PeerFailed,
            CoreError::FixedPointOverflow { .. }
            | CoreError::FixedPointParams(_)
            | CoreError::ShareMismatch(_)
            | CoreError::Config(_)
            | CoreError::IdentityFile { .. } => AbortCode::Internal,
        }
    }
}
