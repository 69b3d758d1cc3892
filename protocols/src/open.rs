//! Openings with fused, exact truncation.
//!
//! Every non-linear operand is *opened*: each party adds its share of a
//! dealer mask `r` to its share of `x` and sends the sum; the two sums add up
//! to a value that is uniform whatever `x` is (perfectly hiding). With a
//! shift `s` the opened value *is* the truncated value `x_t ≈ x / 2^s`,
//! written as a public part plus a secret mask, and each party sends only the
//! `64 - s` bits that the truncated value needs.
//!
//! Party `i` holds `x_i` and `r_i` (uniform in Z_2^64); party 0 adds the
//! offset `o = 2^62 + 2^s - 1`. Each sends, mod `2^(64-s)`,
//!
//! ```text
//! h_i = ((x_i + [i = 0] o) >> s) + r_i            (64 - s bits, uniform: r_i hides it)
//! c   = (h_0 + h_1) mod 2^(64-s),  L = (r_0 + r_1) mod 2^(64-s)
//! c'  = c mod K, c_msb = c >> (63-s), K = 2^(63-s), sigma = 1 - 2 c_msb
//! x_t = Pub + M,  Pub = c' + c_msb K - 2^(62-s)    (public)
//!                 M   = -R + sigma K Bm            (shared, linear in dealer values)
//! R = L mod K,  Bm = L >> (63-s)                   (dealer supplies shares of both)
//! ```
//!
//! Derivation (as integers). Let y_i be the party's summand before the shift
//! (an integer in [0, 2^64)); y_0 + y_1 = x + o + j 2^64 with x + o in
//! [0, 2^64). Shifting each summand drops the carry of their low bits, b in
//! {0, 1}, so c = V + L mod 2^(64-s) with V = floor((x + o) / 2^s) - b =
//! 2^(62-s) + ceil(x / 2^s) - b. Whenever V lies in [0, K], the msb argument
//! gives exactly V = c' + c_msb K - R + sigma K Bm: with Bm = 0, L = R and
//! c = V + R (< 2K, no wrap); with Bm = 1, L = R + K and c = V + R + K
//! mod 2K, which wraps exactly when c_msb = 0. So
//!
//! **x_t = ceil(x / 2^s) - b = floor(x / 2^s) + e, e ∈ {0, +1}, with
//! probability 1 (no failure event) whenever -2^62 <= x <= 2^62**
//! ([`admissible`]). (When 2^s divides x the low bits are 2^s - 1 in all and
//! cannot carry: e = 0.) The carry is b = 1 exactly when party 0's low bits
//! exceed those of x + 2^s - 1, so for a share x_0 uniform mod 2^s, e = 1
//! with probability (x mod 2^s) / 2^s: the truncation is an *unbiased
//! stochastic rounding*, E(x_t) = x / 2^s. For s = 0 the message is the full
//! `x_i + r_i (+ 2^62)` and the mask reduces to M = -r (a Beaver opening).
//!
//! The low `s` bits never travel: an opening with shift `s` costs `64 - s`
//! bits per element and direction (26 instead of 64 for the ReLU's usual
//! shift of 38). Compare local SecureML truncation, which fails (a
//! catastrophic error of about 2^(64-s)) with probability about 2^(lx+1-64)
//! per element: here the shares are truncated only after masking, inside a
//! ring of 64 - s bits whose wrap the msb atom accounts for, and the only
//! requirement is the bound on x, a property of the value that the
//! fixed-point scales guarantee, not a probabilistic event.

use pann_mpc_core::ring::R;

/// Party 0's offset for shift 0: x + 2^62 ∈ [0, 2^63] for every admissible x.
pub const OFFSET: R = 1 << 62;

/// Largest admissible |x| for an opening: 2^62, inclusive (see [`admissible`]).
pub const MAX_ABS_LOG2: u32 = 62;

/// Largest supported shift.
pub const MAX_SHIFT: u32 = 62;

/// Whether an opening (any shift) is exact for the value `x`:
/// `-2^62 <= x <= 2^62`.
#[inline]
pub fn admissible(x: i64) -> bool {
    (-(1i64 << 62)..=(1i64 << 62)).contains(&x)
}

/// Bits per element of an opening's message with shift `s`.
#[inline]
pub fn message_width(s: u32) -> u32 {
    64 - s
}

/// Party 0's offset for shift `s`: `2^62 + 2^s - 1` (so that the shifted
/// sum rounds up, and the dropped carry down).
#[inline]
pub fn offset(s: u32) -> R {
    OFFSET + ((1u64 << s) - 1)
}

/// What party `party0`/1 sends for one element with shift `s`: its share
/// plus (party 0) the offset, shifted, plus its mask share. Only the low
/// [`message_width`] bits are sent; the rest is ignored by the receiver.
#[inline]
pub fn message(x_share: R, r_share: R, s: u32, party0: bool) -> R {
    let y = if party0 { x_share.wrapping_add(offset(s)) } else { x_share };
    (y >> s).wrapping_add(r_share)
}

/// The dealer's derived values of one mask element for shift `s`, from the
/// whole mask `r = r_0 + r_1`: `(R, Bm) = (L mod K, L >> (63-s))` with
/// `L = r mod 2^(64-s)` and `K = 2^(63-s)`.
#[inline]
pub fn mask_atoms(r: R, s: u32) -> (R, R) {
    let l = r << s; // L in the top 64 - s bits
    ((l & (u64::MAX >> 1)) >> s, l >> 63)
}

/// The low atom travels as a multiple of `K`: party `i`'s share of `R` is
/// `r_i + K z_i` (its mask share plus `K` times `z_i`), and the two `z_i`
/// add up to [`low_z`] (`Program::correction_widths`).
#[inline]
pub fn low_share(r_share: R, z: R, s: u32) -> R {
    r_share.wrapping_add(k_of(s).wrapping_mul(z))
}

/// `z_0 + z_1` for the whole mask `r`: `-(r >> (63-s))`, since
/// `R = r mod K = r - K (r >> (63-s))`.
#[inline]
pub fn low_z(r: R, s: u32) -> R {
    (r >> (63 - s)).wrapping_neg()
}

/// `K = 2^(63-s)`: the weight of the mask's msb after the shift.
#[inline]
pub fn k_of(s: u32) -> R {
    1u64 << (63 - s)
}

/// From the two messages of an element (any bits above [`message_width`]
/// ignored) and the shift, the public part `Pub` and the public coefficient
/// `sigma K` of the msb atom.
#[inline]
pub fn public_of(mine: R, theirs: R, s: u32) -> (R, R) {
    public_part(mine.wrapping_add(theirs) << s, s)
}

/// From `c << s` (the opened value in the top 64 - s bits), `Pub` and `sigma K`.
#[inline]
fn public_part(c: R, s: u32) -> (R, R) {
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

    /// Both parties' messages for `x` split as `(x0, x - x0)` with masks
    /// `(r0, r1)`, cut to their width as on the wire; returns `x_t` and the
    /// messages.
    fn open_clear(x: i64, x0: R, r0: R, r1: R, s: u32, off: R) -> (i64, R, R) {
        let w = message_width(s);
        let cut = |v: R| if w == 64 { v } else { v & ((1u64 << w) - 1) };
        let x1 = (x as u64).wrapping_sub(x0);
        let h0 = cut((x0.wrapping_add(off) >> s).wrapping_add(r0));
        let h1 = cut(message(x1, r1, s, false));
        let (p, sigk) = public_of(h0, h1, s);
        assert_eq!(public_of(h1, h0, s), (p, sigk), "both parties compute the same public part");
        let (rr, bm) = mask_atoms(r0.wrapping_add(r1), s);
        (p.wrapping_add(sigk.wrapping_mul(bm)).wrapping_sub(rr) as i64, h0, h1)
    }

    /// The derivation in the module docs, on clear shares: every admissible
    /// value, extremes included, opens to floor(x / 2^s) + {0, 1}; the
    /// messages fit their width.
    #[test]
    fn truncated_opening_is_floor_plus_zero_or_one() {
        let mut prg = Prg::from_seed([5; 16]);
        for &s in &[0u32, 1, 16, 29, 38, 48, 62] {
            let mut hits = [0u64; 2];
            let top = 1i64 << 62;
            for i in 0..200_000u64 {
                let raw = prg.next_u64();
                // Mix of full-range and small values, including the extremes.
                let x: i64 = match i % 4 {
                    0 => (raw as i64) >> 2,
                    1 => (raw as i64) >> 30,
                    2 => [-(1i64 << 62), top, 0, -1][(raw % 4) as usize],
                    _ => ((raw as i64) >> 50) | 1,
                }
                .min(top);
                assert!(admissible(x));
                let (x0, r0, r1) = (prg.next_u64(), prg.next_u64(), prg.next_u64());
                let m0 = message(x0, r0, s, true);
                let (xt, h0, h1) = open_clear(x, x0, r0, r1, s, offset(s));
                assert_eq!(h0, if s == 0 { m0 } else { m0 & ((1u64 << (64 - s)) - 1) });
                assert!(s == 0 || (h0 | h1) >> (64 - s) == 0);
                let e = xt.wrapping_sub(x >> s);
                assert!(e == 0 || e == 1, "s {s} x {x}: x_t {xt} vs floor {}", x >> s);
                hits[e as usize] += 1;
                if s == 0 || x.trailing_zeros() >= s {
                    assert_eq!(e, 0, "s = 0 is a plain Beaver opening; 2^s | x has no low bits to carry");
                }
            }
            assert!(s == 0 || (hits[0] > 0 && hits[1] > 0), "s {s}: {hits:?}");
        }
    }

    /// Negative controls for the two choices the identity depends on: without
    /// the rounding offset 2^s - 1 the dropped carry makes e = -1, and just
    /// above the admissible range the msb lift fails by 2^(64-s).
    #[test]
    fn rounding_offset_and_range_are_needed() {
        let mut prg = Prg::from_seed([7; 16]);
        let s = 38;
        let (mut below, mut far) = (0, 0);
        for _ in 0..10_000 {
            let x = ((prg.next_u64() as i64) >> 20) | 1;
            let (x0, r0, r1) = (prg.next_u64(), prg.next_u64(), prg.next_u64());
            let (xt, _, _) = open_clear(x, x0, r0, r1, s, OFFSET);
            below += (xt - (x >> s) == -1) as u32;
            let over = (1i64 << 62) + 1 + (prg.next_u64() >> 3) as i64;
            assert!(!admissible(over));
            let (xt, _, _) = open_clear(over, x0, r0, r1, s, offset(s));
            far += (xt.wrapping_sub(over >> s).unsigned_abs() > 1) as u32;
        }
        assert!(below > 1000, "without the offset the carry rounds down: {below}");
        assert!(far > 500, "past the range the lift breaks: {far}");
    }

    /// Exactly unbiased: over every value of party 0's low bits (the rest of
    /// the shares and masks random), e = 1 for exactly x mod 2^s of the 2^s
    /// values, for every fraction. An offset one off (2^s instead of 2^s - 1)
    /// would be off by one count.
    #[test]
    fn rounding_is_exactly_unbiased_over_party_0s_low_bits() {
        let mut prg = Prg::from_seed([8; 16]);
        let s = 6;
        for frac in 0..1i64 << s {
            let x = (((prg.next_u64() as i64) >> 20) << s) + frac;
            let high = prg.next_u64() << s;
            let ones: i64 = (0..1u64 << s)
                .map(|low| {
                    let (r0, r1) = (prg.next_u64(), prg.next_u64());
                    open_clear(x, high | low, r0, r1, s, offset(s)).0 - (x >> s)
                })
                .sum();
            assert_eq!(ones, frac, "x {x}");
            let off_by_one: i64 = (0..1u64 << s).map(|low| open_clear(x, high | low, 3, 5, s, offset(s) + 1).0 - (x >> s)).sum();
            assert_ne!(off_by_one, frac, "the negative control: offset 2^62 + 2^s");
        }
    }

    /// The low atom's shares `r_i + K z_i` add up to `R` when the `z_i` add up
    /// to `low_z(r)`; negative control: `z` one off misses by `K`.
    #[test]
    fn low_shares_add_up_to_the_low_atom() {
        let mut prg = Prg::from_seed([9; 16]);
        for &s in &[1u32, 29, 38, 62] {
            for _ in 0..10_000 {
                let (r0, r1, z0) = (prg.next_u64(), prg.next_u64(), prg.next_u64());
                let r = r0.wrapping_add(r1);
                let z1 = low_z(r, s).wrapping_sub(z0);
                let sum = low_share(r0, z0, s).wrapping_add(low_share(r1, z1, s));
                assert_eq!(sum, mask_atoms(r, s).0);
                assert_ne!(low_share(r0, z0, s).wrapping_add(low_share(r1, z1.wrapping_add(1), s)), mask_atoms(r, s).0);
            }
        }
    }

    /// Stochastic rounding: over uniform shares, the mean error is x mod 2^s / 2^s.
    #[test]
    fn truncation_is_unbiased() {
        let mut prg = Prg::from_seed([6; 16]);
        let s = 16;
        let x: i64 = (123 << 16) + (1 << 14); // fraction 1/4
        let n = 200_000;
        let mut ones = 0i64;
        for _ in 0..n {
            let (x0, r0, r1) = (prg.next_u64(), prg.next_u64(), prg.next_u64());
            ones += open_clear(x, x0, r0, r1, s, offset(s)).0 - (x >> s);
        }
        let mean = ones as f64 / n as f64;
        assert!((mean - 0.25).abs() < 0.01, "mean rounding {mean}");
    }
}
