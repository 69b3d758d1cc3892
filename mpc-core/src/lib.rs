//! PANN core: the ring Z_2^64, fixed-point encoding, two-party additive shares,
//! AES-128-CTR PRGs, and the metered channel that every protocol talks through,
//! with its transports (in-memory, TCP, mutually authenticated TLS with pinned
//! certificates) and the session handshake that checks both sides agree on
//! version, roles and parameters before any protocol traffic.
//!
//! Everything here except `channel`, `transport` and `handshake` is plain synchronous
//! code over slices, testable without a network.
//!
//! The networking half (`channel`, `transport`, `handshake`: tokio, rustls)
//! is the default feature `net`; without it the crate is plain arithmetic
//! (what `pann-models` needs).

#![deny(missing_docs)]

pub mod abort;
#[cfg(feature = "net")]
pub mod channel;
pub mod error;
pub mod fixed;
#[cfg(feature = "net")]
pub mod handshake;
pub mod meter;
pub mod prg;
pub mod ring;
pub mod role;
pub mod share;
#[cfg(feature = "net")]
pub mod transport;

pub use abort::AbortCode;
#[cfg(feature = "net")]
pub use channel::{Channel, ChannelConfig};
pub use error::{CoreError, Result};
pub use fixed::FixedPoint;
#[cfg(feature = "net")]
pub use handshake::{sha256_hex, SessionParams, PROTOCOL_VERSION};
pub use meter::{Meter, Phase};
pub use prg::{Prg, Seed};
pub use role::Role;
pub use share::{Party, ShareVec};
#[cfg(feature = "net")]
pub use transport::{tcp_connect, tcp_listen_accept, tls_connect, tls_listen_accept, Listener, TlsIdentity, TlsPeers};
