//! One error type for the core: every failure names what went wrong.

use std::path::PathBuf;
use std::time::Duration;

use crate::abort::AbortCode;
use crate::role::Role;

/// The core's result type; the error defaults to [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Every failure of the core: numerics, shares, channels, transports and the
/// handshake. Messages may name local values (a real that did not encode, a
/// file path), so they stay in the local log; a peer learns only
/// [`CoreError::abort_code`].
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A real is not finite, or `round(x * 2^frac_bits)` does not satisfy
    /// `|x| < 2^int_bits` (see [`crate::fixed::FixedPoint::encode`]).
    #[error("value {value} does not fit in fixed point with {frac_bits} fractional bits (|x| must be < 2^{int_bits})")]
    FixedPointOverflow {
        /// The real that was to be encoded.
        value: f64,
        /// Fractional bits of the codec.
        frac_bits: u32,
        /// Integer bits of the codec: the encodable range is `|x| < 2^int_bits`.
        int_bits: u32,
    },
    /// A fixed-point codec was asked for with more than 63 bits in all, or
    /// without an integer bit.
    #[error("invalid fixed-point parameters: {0}")]
    FixedPointParams(String),
    /// Two shares cannot be reconstructed together: same party, different
    /// scales or different lengths.
    #[error("share mismatch: {0}")]
    ShareMismatch(String),
    /// A read or write of the underlying stream failed (other than an early
    /// end of stream, which is [`CoreError::PeerClosed`]).
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the channel was doing, e.g. "writing to the peer".
        context: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A wait for the peer lasted longer than the channel's timeout (for a
    /// receive: the peer was silent that long).
    #[error("timed out after {after:?} while {context}")]
    Timeout {
        /// What the channel was waiting for.
        context: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// A frame longer than the channel's `max_frame` (or the 4 GiB a u32
    /// header can state), refused on send, or on receive from its header.
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// Payload length of the frame, in bytes.
        len: usize,
        /// The largest payload allowed, in bytes.
        max: usize,
    },
    /// A frame whose announced length is not what the protocol expects at
    /// this point (refused from its header and tag, before its body is read).
    #[error("a {what} frame with a body of {len} bytes where {expected} bytes were expected")]
    FrameLength {
        /// The frame's tag, by name.
        what: String,
        /// The announced body length (after the tag byte), in bytes.
        len: usize,
        /// What the receive admitted: "exactly N" or "at most N".
        expected: String,
    },
    /// The stream ended (clean close or reset) in the middle of a wait.
    #[error("peer closed the connection while {context}")]
    PeerClosed {
        /// What the channel was waiting for.
        context: &'static str,
    },
    /// A frame with another tag than the one the protocol expects here.
    #[error("unexpected message: expected {expected}, got {got}")]
    UnexpectedMessage {
        /// The tag expected, by name.
        expected: String,
        /// The tag received, by name (or "unknown tag N").
        got: String,
    },
    /// A message whose contents are inconsistent (a bad Hello, an empty
    /// frame, a ring frame of the wrong length, a peer-supplied size).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The two Hellos disagree on `field` ("version", "role" or a parameter name).
    #[error("handshake failed: {field} differs (ours: {ours}, peer's: {theirs})")]
    HandshakeMismatch {
        /// The first field that differs (version, roles, then parameters in name order).
        field: String,
        /// Our value (at most 100 characters of it).
        ours: String,
        /// The peer's value (at most 100 characters; `<absent>` if it has none).
        theirs: String,
    },
    /// The peer sent an Abort; only its fixed code is kept, never peer-chosen text.
    #[error("peer aborted the session: {0}")]
    PeerAborted(AbortCode),
    /// The peer's Hello claims a role other than the one its TLS certificate
    /// is pinned for.
    #[error("the peer's certificate is the {certified}'s, but its Hello claims the role {claimed}")]
    RoleNotCertified {
        /// The role the Hello claims.
        claimed: Role,
        /// The role whose pinned certificate the peer presented.
        certified: Role,
    },
    /// TLS setup or handshake failed (configuration, certificate, key, or
    /// a peer presenting a certificate that is not pinned).
    #[error("TLS error: {0}")]
    Tls(String),
    /// A local configuration that cannot work (an address that cannot be
    /// bound, an unknown role name, inconsistent pinned certificates).
    #[error("configuration error: {0}")]
    Config(String),
    /// No connection to `addr` could be made within the connect timeout.
    #[error("could not connect to {addr} within {after:?}: {last}")]
    Connect {
        /// The address dialled, as given.
        addr: String,
        /// The connect timeout that expired.
        after: Duration,
        /// The last attempt's error.
        last: String,
    },
    /// A certificate or key file could not be read, parsed, written, or
    /// does not fit its counterpart.
    #[error("TLS identity file {}: {reason}", path.display())]
    IdentityFile {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl CoreError {
    /// An error mapper for `map_err` on stream operations: an early end of
    /// stream becomes [`CoreError::PeerClosed`], anything else
    /// [`CoreError::Io`], both with `context` (what the caller was doing).
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
