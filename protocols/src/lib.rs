//! PANN protocols: two-party computation on additive shares over Z_2^64 with
//! correlated randomness from a dealer.
//!
//! * [`open`]: openings with fused exact truncation (no failure event for
//!   |x| < 2^62; error in {0, +1} ulp, unbiased).
//! * [`program`]: element-wise programs — openings plus free local forms
//!   (products of opened values cost nothing online); [`program::ops`] has
//!   truncation, product, square, product with a reused opening.
//! * [`poly`]: polynomial ReLU at any alpha in 4..14 (Chebyshev, depth-optimal).
//! * [`kernels`], [`linear`]: ring convolution / matrix product; secure linear
//!   layers with server-held weights masked once per model.
//! * [`material`], [`dealer`]: requests, material, the dealer (in process or
//!   over a channel), material sources.
//! * [`exec`]: online evaluation; [`ops`]: local ops, input sharing, reveal.
//! * [`reference`]: the plaintext fixed-point oracle.

pub mod dealer;
pub mod error;
pub mod exec;
pub mod harness;
pub mod kernels;
pub mod linear;
pub mod material;
pub mod open;
pub mod ops;
pub mod poly;
pub mod program;
pub mod reference;
pub mod session;
pub mod sign_poly;

pub use dealer::{deal_all, Dealer, DealerLink, MaterialSource, Prepared};
pub use error::{ProtocolError, Result};
pub use exec::run_program;
pub use kernels::{ConvSpec, LinearSpec, MatmulSpec};
pub use linear::{linear_forward, LinearKey, LinearLayer};
pub use material::{Expander, LinearMaterial, Material, ProgramMaterial, Request};
pub use poly::{PolyRelu, ReluConfig, ReluInfo, Schedule};
pub use program::{Form, Program, ProgramBuilder};
pub use session::{prefetch, Session};
