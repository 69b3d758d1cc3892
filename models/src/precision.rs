//! Precisions of a secure run, shared by calibration (ring headroom) and the
//! secure engine (`pann-engine`).

use pann_protocols::ReluConfig;
use serde::{Deserialize, Serialize};

/// Precisions of a secure run (public; both parties and the dealer agree).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecureConfig {
    /// PANN precision 2^-alpha (4..=14) of every ReLU that
    /// `pann_engine::PublicModel::alphas` does not name.
    pub alpha: u32,
    /// Fractional bits of the encoded weights.
    pub weight_bits: u32,
}

impl SecureConfig {
    /// Precision 2^-`alpha` with the default weight encoding (18 fractional bits).
    pub fn new(alpha: u32) -> Self {
        Self { alpha, weight_bits: 18 }
    }

    /// Scale of the encoded input (that of a ReLU output at the default alpha).
    pub fn act_bits(&self) -> u32 {
        ReluConfig::new(self.alpha, 0).output_frac()
    }
}
