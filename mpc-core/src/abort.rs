//! What a party tells its peers when it gives up: a one-byte code with a fixed
//! public text, nothing else.
//!
//! Error messages name values, file paths and parameters that may be secret
//! (a pixel that did not encode, a weight, the client's file names). Those
//! stay in the local log; the wire carries only an [`AbortCode`], and the
//! receiver prints the code's own text, never bytes chosen by the peer.

use std::fmt::Display;

/// Why a session ended, as its peers learn it. Each code has a fixed text
/// ([`AbortCode::text`]); the wire form is the code's byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AbortCode {
    /// A code this version does not know (sent by a newer peer).
    Unknown = 0,
    /// The Hellos disagree: version, role or a session parameter.
    Mismatch = 1,
    /// A message was malformed, too long, or not the one expected.
    Malformed = 2,
    /// A peer stayed silent longer than the timeout.
    Timeout = 3,
    /// A request exceeds a documented limit of the party (batch, sizes, memory).
    Limit = 4,
    /// The client could not load or encode its input.
    Input = 5,
    /// The server could not load, check or encode its model.
    Model = 6,
    /// Another party of the session failed, closed or could not be reached.
    PeerFailed = 7,
    /// A peer's Hello claims a role that its certificate does not hold.
    Identity = 8,
    /// A local failure that is none of the above.
    Internal = 9,
    /// The server or the dealer has no free session slot (or too many
    /// connections waiting for their partner); the peer may retry later.
    Busy = 10,
}

impl AbortCode {
    /// Every code, for tests and documentation.
    pub const ALL: [AbortCode; 11] = [
        AbortCode::Unknown,
        AbortCode::Mismatch,
        AbortCode::Malformed,
        AbortCode::Timeout,
        AbortCode::Limit,
        AbortCode::Input,
        AbortCode::Model,
        AbortCode::PeerFailed,
        AbortCode::Identity,
        AbortCode::Internal,
        AbortCode::Busy,
    ];

    /// The code of a byte from the wire; an unknown byte is [`AbortCode::Unknown`].
    pub fn from_byte(b: u8) -> AbortCode {
        AbortCode::ALL.into_iter().find(|c| *c as u8 == b).unwrap_or(AbortCode::Unknown)
    }

    /// The fixed public text of the code.
    pub fn text(self) -> &'static str {
        match self {
            AbortCode::Unknown => "an abort code this version does not know",
            AbortCode::Mismatch => "the session parameters differ (version, role, precision or model)",
            AbortCode::Malformed => "a malformed, oversized or unexpected message",
            AbortCode::Timeout => "a peer did not answer in time",
            AbortCode::Limit => "the request exceeds a limit of this party (batch size, model size or memory)",
            AbortCode::Input => "the client could not load or encode its input",
            AbortCode::Model => "the server could not load, check or encode its model",
            AbortCode::PeerFailed => "another party of the session failed or could not be reached",
            AbortCode::Identity => "a peer's role does not match the certificate it presented",
            AbortCode::Internal => "an internal error",
            AbortCode::Busy => "the server is serving as many sessions as it allows; try again later",
        }
    }
}

impl Display for AbortCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (abort code {})", self.text(), *self as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_byte() {
        for c in AbortCode::ALL {
            assert_eq!(AbortCode::from_byte(c as u8), c);
        }
        assert_eq!(AbortCode::from_byte(200), AbortCode::Unknown);
    }
}
