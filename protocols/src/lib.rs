//! PANN protocols: two-party computation on additive shares over Z_2^64 with
//! correlated randomness from a dealer.
//!
//! * [`open`]: openings with fused exact truncation (no failure event for
//!   |x| < 2^62; error in {0, +1} ulp, unbiased).
//! * [`program`]: element-wise programs — openings plus free local forms
//!   (products of opened values cost nothing online); [`program::ops`] has
//!   truncation, product, square, product with a reused opening.
//! * [`poly`]: polynomial ReLU at any alpha in 4..=14 (the sign polynomials
//!   and the `Alpha` type are in `pann-approx`): components normalized
//!   to keep intermediates in [-1, 1], Chebyshev evaluation with a quadratic
//!   (depth-optimal) or cubic-powers (fewer openings and rounds) schedule.
//! * [`kernels`], [`linear`]: ring convolution / matrix product; secure linear
//!   layers with server-held weights masked once per model.
//! * [`material`], [`dealer`]: requests, material, the dealer (in process or
//!   over a channel), material sources.
//! * [`exec`]: online evaluation; [`ops`]: local ops, input sharing, reveal.
//! * [`mod@reference`]: the plaintext fixed-point oracle.
//! * [`session`]: the executor-facing surface (one call per layer kind);
//!   [`harness`]: both parties in one process (tests, examples, benches).
//!
//! Online cost model: an opening with shift `s` is `64 - s` bits per element,
//! party and direction; all openings of a round travel in one frame. Forms of opened
//! values (products of any degree) cost nothing online. Material is consumed by
//! value (it is not `Clone`), so reusing it does not compile.

#![deny(missing_docs)]

#[cfg(feature = "net")]
pub mod dealer;
pub mod error;
#[cfg(feature = "net")]
pub mod exec;
#[cfg(feature = "net")]
pub mod harness;
pub mod kernels;
#[cfg(feature = "net")]
pub mod linear;
pub mod material;
pub mod open;
#[cfg(feature = "net")]
pub mod ops;
pub mod pack;
pub mod poly;
pub mod program;
pub mod reference;
#[cfg(feature = "net")]
pub mod session;

#[cfg(feature = "net")]
pub use dealer::{deal_all, Dealer, DealerLink, MaterialSource, Prepared};
pub use error::{ProtocolError, Result};
#[cfg(feature = "net")]
pub use exec::run_program;
pub use kernels::{ConvSpec, LinearSpec, MatmulSpec};
#[cfg(feature = "net")]
pub use linear::{linear_forward, LinearKey, LinearLayer};
pub use material::{Expander, LinearMaterial, Material, ProgramMaterial, Request};
pub use poly::{PolyRelu, ReluConfig, ReluInfo, Schedule};
pub use program::{Form, Program, ProgramBuilder};
#[cfg(feature = "net")]
pub use session::{prefetch, Session};
