//! Typed errors of the protocols crate. Network and core failures are wrapped,
//! never unwrapped: a malformed or mismatched message ends the session with an
//! error that names what was wrong.

use pann_mpc_core::CoreError;

use crate::sign_poly::SignPolyError;

pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    SignPoly(#[from] SignPolyError),
    #[error("length mismatch in {context}: expected {expected}, got {got}")]
    Length {
        context: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("material does not match the operation: {0}")]
    MaterialMismatch(String),
    #[error("invalid program: {0}")]
    InvalidProgram(String),
    #[error("invalid parameters: {0}")]
    Params(String),
}

/// Check a length, naming the context on failure.
pub(crate) fn check_len(context: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(ProtocolError::Length {
            context,
            expected,
            got,
        });
    }
    Ok(())
}
