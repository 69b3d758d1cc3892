//! Fixed-point encoding of reals into Z_2^64.
//!
//! A real `x` is encoded as `round(x * 2^f)` in two's complement. Encoding checks
//! that the result fits in a configurable number of integer bits, so that a value
//! that would wrap is an error, never silent garbage.

use crate::error::{CoreError, Result};
use crate::ring::R;

/// A fixed-point codec: `frac_bits` fractional bits, and values must satisfy
/// `|x| < 2^int_bits` (so `frac_bits + int_bits <= 63`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FixedPoint {
    /// Fractional bits `f`: a real `x` is the ring element `round(x * 2^f)`.
    pub frac_bits: u32,
    /// Integer bits: [`FixedPoint::encode`] accepts only `|x| < 2^int_bits`.
    pub int_bits: u32,
}

impl FixedPoint {
    /// Codec with `frac_bits` fractional bits and the largest integer range the ring allows.
    pub fn new(frac_bits: u32) -> Result<Self> {
        if frac_bits >= 62 {
            return Err(CoreError::FixedPointParams(format!("frac_bits {frac_bits} leaves no integer bits in a 64-bit ring")));
        }
        Ok(Self { frac_bits, int_bits: 63 - frac_bits })
    }

    /// Codec with an explicit integer range `|x| < 2^int_bits`.
    pub fn with_range(frac_bits: u32, int_bits: u32) -> Result<Self> {
        if frac_bits + int_bits > 63 || int_bits == 0 {
            return Err(CoreError::FixedPointParams(format!(
                "frac_bits {frac_bits} + int_bits {int_bits} must be at most 63, int_bits at least 1"
            )));
        }
        Ok(Self { frac_bits, int_bits })
    }

    /// The scale 2^f.
    pub fn scale(&self) -> f64 {
        (self.frac_bits as f64).exp2()
    }

    /// Encode one real; an error if it is not finite or does not fit.
    pub fn encode(&self, x: f64) -> Result<R> {
        let scaled = (x * self.scale()).round();
        let limit = ((self.frac_bits + self.int_bits) as f64).exp2();
        if !scaled.is_finite() || scaled.abs() >= limit {
            return Err(CoreError::FixedPointOverflow { value: x, frac_bits: self.frac_bits, int_bits: self.int_bits });
        }
        Ok(scaled as i64 as u64)
    }

    /// Decode one ring element (two's complement) to a real.
    pub fn decode(&self, x: R) -> f64 {
        (x as i64) as f64 / self.scale()
    }

    /// Encode every real; the first that is not finite or does not fit is the error.
    pub fn encode_slice(&self, xs: &[f64]) -> Result<Vec<R>> {
        xs.iter().map(|&x| self.encode(x)).collect()
    }

    /// Decode every ring element (two's complement) to a real.
    pub fn decode_slice(&self, xs: &[R]) -> Vec<f64> {
        xs.iter().map(|&x| self.decode(x)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip_within_half_ulp(f in 0u32..40, x in -1.0e6f64..1.0e6) {
            let fp = FixedPoint::new(f).unwrap();
            let back = fp.decode(fp.encode(x).unwrap());
            prop_assert!((back - x).abs() <= 0.5 / fp.scale() + x.abs() * 1e-15);
        }

        #[test]
        fn out_of_range_is_an_error(f in 0u32..30, int_bits in 1u32..30, k in 0.0f64..10.0) {
            let fp = FixedPoint::with_range(f, int_bits).unwrap();
            let x = (int_bits as f64).exp2() * (1.0 + k);
            prop_assert!(fp.encode(x).is_err());
            prop_assert!(fp.encode(-x).is_err());
        }
    }

    #[test]
    fn non_finite_is_an_error() {
        let fp = FixedPoint::new(16).unwrap();
        assert!(fp.encode(f64::NAN).is_err());
        assert!(fp.encode(f64::INFINITY).is_err());
        assert!(FixedPoint::new(62).is_err());
        assert!(FixedPoint::with_range(40, 30).is_err());
    }
}
