//! Openings with fused, exact truncation.
//!
//! Every non-linear operand is *opened*: the parties add a dealer mask `r`
//! (uniform in Z_2^64) to their shares of `x`, party 0 adds the offset 2^62,
//! and both exchange the result, learning `c = x + 2^62 + r` (uniform, so it
//! perfectly hides `x`). With a shift `s` the opened value *is* the truncated
//! value `x_t ≈ x / 2^s`, written as a public part plus a secret mask:
//!
//! ```text
//! c' = c mod 2^63, c_msb = c >> 63, K = 2^(63-s), sigma = 1 - 2 c_msb
//! x_t = Pub + M,  Pub = (c' >> s) + c_msb K - 2^(62-s)   (public)
//!                 M   = -R + sigma K Bm                   (shared, linear in dealer values)
//! R = (r mod 2^63) >> s,  Bm = r >> 63   (dealer supplies shares of both)
//! ```
//!
//! Derivation (as integers, not only mod 2^64): let x' = x + 2^62, which lies
//! in [0, 2^63) whenever -2^62 <= x < 2^62, and r' = r mod 2^63. Then
//! x' + r' < 2^64, so c' = (x' + r') mod 2^63 with carry b = c_msb XOR r_msb =
//! c_msb + sigma Bm, and x' = c' - r' + b 2^63. Dividing by 2^s,
//! (c' >> s) - (r' >> s) equals floor((c' - r') / 2^s) or that plus one (the
//! low bits of c' and r' are not subtracted), so
//!
//! **x_t = floor(x / 2^s) + e, e ∈ {0, +1}, with probability 1 (no failure
//! event) whenever |x| < 2^62.** `e = 1` exactly when (c' mod 2^s) <
//! (r' mod 2^s), i.e. with probability (x mod 2^s) / 2^s for a uniform mask:
//! the truncation is an *unbiased stochastic rounding*, E(x_t) = x / 2^s.
//! (The error is +1, not -1: `(c' >> s) - (r' >> s)` drops the borrow of the
//! low bits.) For s = 0 the mask reduces to M = -r (a Beaver opening).
//!
//! Compare local SecureML truncation, which fails (a catastrophic error of
//! about 2^(64-s)) with probability about 2^(lx+1-64) per element; here the
//! only requirement is the bound |x| < 2^62, a property of the value that the
//! fixed-point scales guarantee, not a probabilistic event.

use pann_mpc_core::ring::R;

/// The offset that makes every admissible value non-negative: x + 2^62 ∈ [0, 2^63).
pub const OFFSET: R = 1 << 62;

/// Largest admissible |x| (exclusive) for an opening: 2^62.
pub const MAX_ABS_LOG2: u32 = 62;

/// Largest supported shift.
pub const MAX_SHIFT: u32 = 62;

/// The dealer's derived values of one mask element for shift `s`:
/// `(R, Bm) = ((r mod 2^63) >> s, r >> 63)`.
#[inline]
pub fn mask_atoms(r: R, s: u32) -> (R, R) {
    ((r & (u64::MAX >> 1)) >> s, r >> 63)
}

/// `K = 2^(63-s)`: the weight of the mask's msb after the shift.
#[inline]
pub fn k_of(s: u32) -> R {
    1u64 << (63 - s)
}

/// From the opened `c` and the shift, the public part `Pub` and the public
/// coefficient `sigma K` of the msb atom.
#[inline]
pub fn public_part(c: R, s: u32) -> (R, R) {
    let cp = c & (u64::MAX >> 1);
    let cm = c >> 63;
    let k = k_of(s);
    let p = (cp >> s).wrapping_add(cm.wrapping_mul(k)).wrapping_sub(1u64 << (62 - s));
    let sigk = if cm == 0 { k } else { k.wrapping_neg() };
    (p, sigk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pann_mpc_core::Prg;

    /// The derivation in the module docs, checked on the clear values
    /// (no sharing involved: shares only add linearly around this identity).
    #[test]
    fn truncated_opening_is_floor_plus_zero_or_one() {
        let mut prg = Prg::from_seed([5; 16]);
        let mut hits = [0u64; 2];
        for &s in &[0u32, 1, 16, 32, 48, 62] {
            for i in 0..200_000u64 {
                let raw = prg.next_u64();
                // Mix of full-range and small values, including the extremes.
                let x: i64 = match i % 4 {
                    0 => (raw as i64) >> 2,  // anywhere in [-2^62, 2^62)
                    1 => (raw as i64) >> 30, // moderate
                    2 => [-(1i64 << 62), (1i64 << 62) - 1, 0, -1][(raw % 4) as usize],
                    _ => ((raw as i64) >> 50) | 1, // tiny
                };
                let r = prg.next_u64();
                let c = (x as u64).wrapping_add(OFFSET).wrapping_add(r);
                let (p, sigk) = public_part(c, s);
                let (rr, bm) = mask_atoms(r, s);
                let m = sigk.wrapping_mul(bm).wrapping_sub(rr);
                let xt = p.wrapping_add(m) as i64;
                let e = xt.wrapping_sub(x >> s);
                assert!(e == 0 || e == 1, "s {s} x {x} r {r}: x_t {xt} vs floor {}", x >> s);
                if s > 0 {
                    hits[e as usize] += 1;
                }
                if s == 0 {
                    assert_eq!(m, r.wrapping_neg(), "s = 0 is a plain Beaver opening");
                    assert_eq!(e, 0);
                }
            }
        }
        assert!(hits[0] > 0 && hits[1] > 0);
    }

    /// Stochastic rounding: the mean error over masks is x mod 2^s / 2^s.
    #[test]
    fn truncation_is_unbiased() {
        let mut prg = Prg::from_seed([6; 16]);
        let s = 16;
        let x: i64 = (123 << 16) + (1 << 14); // fraction 1/4
        let n = 200_000;
        let mut ones = 0u64;
        for _ in 0..n {
            let r = prg.next_u64();
            let c = (x as u64).wrapping_add(OFFSET).wrapping_add(r);
            let (p, sigk) = public_part(c, s);
            let (rr, bm) = mask_atoms(r, s);
            let xt = p.wrapping_add(sigk.wrapping_mul(bm)).wrapping_sub(rr) as i64;
            ones += (xt - (x >> s)) as u64;
        }
        let mean = ones as f64 / n as f64;
        assert!((mean - 0.25).abs() < 0.01, "mean rounding {mean}");
    }
}
