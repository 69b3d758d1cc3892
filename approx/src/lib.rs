//! PANN approximations: the maths of the polynomial ReLU that every executor
//! and the trainer share, with no networking (no tokio, no TLS).
//!
//! * [`sign_poly`]: the composite minimax approximations of sign(x) (Lee et
//!   al.), one table per precision alpha, embedded at compile time and
//!   converted to the Chebyshev basis (evaluated by Clenshaw's recurrence).
//! * [`precision`]: [`Alpha`], a precision 2^-alpha that has a table (only
//!   [`MIN_ALPHA`]`..=`[`MAX_ALPHA`] can be constructed), and [`Precision`],
//!   one alpha for every activation site or one per site, whose text form is
//!   what the parties agree on in the session handshake (`"9"`,
//!   `"per-layer:4,4,5,..."`).
//!
//! ```
//! use pann_approx::{Alpha, Precision, SignPoly};
//!
//! let alpha: Alpha = "9".parse()?;
//! let poly = SignPoly::for_alpha(alpha);
//! assert_eq!(poly.degrees(), [15, 15]);
//! assert!((poly.relu(0.5, 1.0) - 0.5).abs() <= 2f64.powi(-9));
//! assert!("15".parse::<Alpha>().is_err());
//!
//! let p: Precision = "per-layer:4,5,9".parse()?;
//! assert_eq!(p.to_string(), "per-layer:4,5,9");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod precision;
pub mod sign_poly;

pub use precision::{Alpha, AlphaError, Precision, PrecisionError, MAX_ALPHA, MIN_ALPHA, PER_LAYER_PREFIX};
pub use sign_poly::{Component, SignPoly, SignPolyError};
