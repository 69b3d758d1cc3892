//! Typed errors of the protocols crate. Network and core failures are wrapped,
//! never unwrapped: a malformed or mismatched message ends the session with an
//! error that names what was wrong.

use pann_mpc_core::{AbortCode, CoreError};

use pann_approx::SignPolyError;

/// The protocols' result type; the error defaults to [`ProtocolError`].
pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;

/// Every failure of the protocols. Messages name lengths, shapes and request
/// fingerprints (public), never share or mask values.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A failure of the channel, the handshake or the numerics, unchanged.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A malformed sign-polynomial table.
    #[error(transparent)]
    SignPoly(#[from] SignPolyError),
    /// A vector's length is not what the operation's public shape calls for
    /// (inputs, weights, material, the dealer's corrections).
    #[error("length mismatch in {context}: expected {expected}, got {got}")]
    Length {
        /// What was being checked, e.g. "convolution weights".
        context: &'static str,
        /// The length the shape calls for.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// Material made for another request (its fingerprint or kind differs),
    /// none left, or a party given corrections it should not have.
    #[error("material does not match the operation: {0}")]
    MaterialMismatch(String),
    /// A program refers to an input or an opening that does not exist, or
    /// asks for a shift above [`crate::open::MAX_SHIFT`].
    #[error("invalid program: {0}")]
    InvalidProgram(String),
    /// Parameters no protocol can run with: empty or inconsistent shapes,
    /// scales that would leave the ring's range, a missing dealer channel.
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
