//! Typed errors of the protocols crate. Network and core failures are wrapped,
//! never unwrapped: a malformed or mismatched message ends the session with an
//! error that names what was wrong.

use pann_mpc_core::{AbortCode, CoreError};

use crate::sign_poly::SignPolyError;

pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    SignPoly(#[from] SignPolyError),
    #[error("length mismatch in {context}: expected {expected}, got {got}")]
    Length { context: &'static str, expected: usize, got: usize },
    #[error("material does not match the operation: {0}")]
    MaterialMismatch(String),
    #[error("invalid program: {0}")]
    InvalidProgram(String),
    #[error("invalid parameters: {0}")]
    Params(String),
}

impl ProtocolError {
    /// What a party tells its peers when this error ends its session:
    /// lengths and material that do not fit come from the peer or the dealer.
    pub fn abort_code(&self) -> AbortCode {
        match self {
            ProtocolError::Core(c) => c.abort_code(),
            ProtocolError::Length { .. } | ProtocolError::MaterialMismatch(_) => AbortCode::Malformed,
            ProtocolError::SignPoly(_) | ProtocolError::InvalidProgram(_) | ProtocolError::Params(_) => AbortCode::Internal,
        }
    }
}

/// Check a length, naming the context on failure.
pub(crate) fn check_len(context: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(ProtocolError::Length { context, expected, got });
    }
    Ok(())
}
