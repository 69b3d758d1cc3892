//! Telling a wrapped result from a real one.
//!
//! Inside MPC an out-of-range value cannot be detected: an input far beyond
//! its ReLU bound makes the composite polynomial leave the ring, the ring
//! value wraps, and the logits the client decodes are garbage, typically
//! hundreds or more where real logits are tens. The client alone sees the
//! logits, so it judges them: the model card carries the range of logits the
//! deployed PANN produced on the calibration images (`logit_range`, written by
//! `pann calibrate`), it travels in the public model description (inside its
//! digest), and a result with a logit beyond [`LOGIT_MARGIN`] times the
//! calibrated largest |logit| is reported as unreliable instead of as a
//! prediction.
//!
//! This is a plausibility check, not a proof: a wrap that happens to decode
//! to small logits passes it. The fixed-point reference
//! (`pann_engine::ClearBackend`) is what counts every wrap exactly.

use serde::{Deserialize, Serialize};

/// A logit is implausible beyond this many times the largest |logit| seen in
/// calibration. Measured on the 10,000 CIFAR-10 (JPEG-derived) test images
/// whose ReLU inputs stay within the ring headroom, the largest |logit| is
/// 1.21x the calibrated one (alpha-4 card) and 1.06x (akamaster card at
/// alpha 9): no false alarm at 4x (docs/results/out-of-range.md). A wrapped
/// logit decodes to a value spread over about ±2^(63 - 53) = ±1024 at the
/// output's scale, so most wraps land beyond the limit (~150-165 on the
/// shipped cards), but not all.
pub const LOGIT_MARGIN: f64 = 4.0;

/// A `[min, max]` logit range must be finite and ordered.
pub fn check_range(r: [f64; 2]) -> Result<(), String> {
    if !(r[0].is_finite() && r[1].is_finite() && r[0] <= r[1]) {
        return Err(format!("logit_range {r:?} must be two finite numbers, min <= max"));
    }
    Ok(())
}

/// The verdict on one image's logits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogitCheck {
    /// The model carries no logit range: nothing to judge against.
    Unchecked,
    /// Every logit within the limit.
    Plausible,
    /// A logit beyond the limit (or not finite): the result is not a prediction.
    Unreliable {
        /// The largest |logit| (infinite if a logit is NaN).
        max_abs: f64,
        /// The limit it exceeds ([`logit_limit`]).
        limit: f64,
    },
}

impl LogitCheck {
    /// Whether the verdict is [`LogitCheck::Unreliable`].
    pub fn is_unreliable(&self) -> bool {
        matches!(self, LogitCheck::Unreliable { .. })
    }

    /// A sentence for the user (`None` when plausible or unchecked).
    pub fn reason(&self) -> Option<String> {
        match self {
            LogitCheck::Unreliable { max_abs, limit } => Some(format!(
                "a logit reaches {max_abs:.1} in magnitude, beyond {limit:.1} ({LOGIT_MARGIN}x the largest |logit| seen in calibration): the secure computation most likely left the ring (a ReLU input too far beyond its bound), so this is not a prediction"
            )),
            _ => None,
        }
    }
}

/// The largest admissible |logit| for a calibrated range.
pub fn logit_limit(range: [f64; 2]) -> f64 {
    LOGIT_MARGIN * range[0].abs().max(range[1].abs())
}

/// Judge `logits` against the calibrated `range` (if any).
pub fn check_logits(range: Option<[f64; 2]>, logits: &[f64]) -> LogitCheck {
    let Some(range) = range else { return LogitCheck::Unchecked };
    let limit = logit_limit(range);
    let max_abs = logits.iter().map(|v| v.abs()).fold(0.0, |m: f64, v| if v.is_nan() { f64::INFINITY } else { m.max(v) });
    if max_abs > limit {
        LogitCheck::Unreliable { max_abs, limit }
    } else {
        LogitCheck::Plausible
    }
}

/// `[min, max]` over every logit of the images in `logits`.
pub fn range_of<'a>(logits: impl IntoIterator<Item = &'a [f64]>) -> Option<[f64; 2]> {
    logits.into_iter().flatten().filter(|v| v.is_finite()).fold(None, |r, &v| match r {
        None => Some([v, v]),
        Some([a, b]) => Some([a.min(v), b.max(v)]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_result_is_flagged_and_a_normal_one_is_not() {
        let range = Some([-12.0, 20.0]);
        assert_eq!(check_logits(range, &[3.0, -11.0, 19.5, 0.0]), LogitCheck::Plausible);
        assert_eq!(check_logits(range, &[3.0, -79.9]), LogitCheck::Plausible, "within 4 x 20");
        let c = check_logits(range, &[945.2, 3.0]);
        assert!(c.is_unreliable() && c.reason().is_some(), "{c:?}");
        assert!(check_logits(range, &[f64::NAN, 1.0]).is_unreliable());
        assert!(check_logits(range, &[f64::NEG_INFINITY]).is_unreliable());
        assert_eq!(check_logits(None, &[945.2]), LogitCheck::Unchecked, "no range, no verdict");
    }

    #[test]
    fn ranges() {
        assert_eq!(range_of([&[1.0, -2.0][..], &[5.0, f64::NAN][..]]), Some([-2.0, 5.0]));
        assert_eq!(range_of(std::iter::empty::<&[f64]>()), None);
        assert!(check_range([1.0, 0.0]).is_err() && check_range([f64::NAN, 1.0]).is_err() && check_range([-1.0, 1.0]).is_ok());
    }
}
