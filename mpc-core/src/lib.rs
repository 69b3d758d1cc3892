//! PANN core: the ring Z_2^64, fixed-point encoding, two-party additive shares,
//! AES-128-CTR PRGs, and the metered channel that every protocol talks through.
//!
//! Everything here except `channel` (and its transports) is plain synchronous
//! code over slices, testable without a network.

pub mod channel;
pub mod error;
pub mod fixed;
pub mod meter;
pub mod prg;
pub mod ring;
pub mod share;

pub use channel::{Channel, ChannelConfig};
pub use error::{CoreError, Result};
pub use fixed::FixedPoint;
pub use meter::{Meter, Phase};
pub use prg::{Prg, Seed};
pub use share::{Party, ShareVec};
