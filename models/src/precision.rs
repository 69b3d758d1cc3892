//! Precisions of a secure run, shared by calibration (ring headroom) and the
//! secure engine (`pann-engine`).

use pann_approx::Alpha;
use pann_protocols::ReluConfig;
use serde::{Deserialize, Serialize};

/// Precisions of a secure run (public; both parties and the dealer agree).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecureConfig {
    /// PANN precision 2^-alpha of every ReLU that
    /// `pann_engine::PublicModel::alphas` does not name (a plain integer in
    /// JSON, checked to be in 4..=14 when read).
    pub alpha: Alpha,
    /// Fractional bits of the encoded weights.
    pub weight_bits: u32,
}

impl SecureConfig {
    /// Precision 2^-`alpha` with the default weight encoding (18 fractional bits).
    pub fn new(alpha: Alpha) -> Self {
        Self { alpha, weight_bits: 18 }
    }

    /// Scale of the encoded input (that of a ReLU output at the default alpha).
    pub fn act_bits(&self) -> u32 {
        ReluConfig::new(self.alpha, 0).output_frac()
    }
}
