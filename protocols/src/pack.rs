//! Correction vectors packed to the bits that matter.
//!
//! A derived value that every form multiplies by a multiple of `2^(64-w)`
//! only matters mod `2^w` ([`crate::program::Program::correction_widths`]):
//! the dealer sends its `w` low bits, back to back in little-endian bit
//! order, and party 1 zero-extends them. A vector of `n` values of width
//! `w` takes `ceil(n w / 64)` words; 1024 values always fill whole words.

use pann_mpc_core::ring::R;

/// Words that `n` values of width `w` take.
pub fn words(n: usize, w: u32) -> usize {
    (n as u128 * w as u128).div_ceil(64) as usize
}

/// Write the low `w` bits of each value into `out` (`words(values.len(), w)`
/// long; the unused bits of the last word are zero).
pub fn pack(values: &[R], w: u32, out: &mut [R]) {
    debug_assert_eq!(out.len(), words(values.len(), w));
    if w == 64 {
        out.copy_from_slice(values);
        return;
    }
    let mask = (1u64 << w) - 1;
    let (mut acc, mut bits, mut o) = (0u128, 0u32, 0usize);
    for &v in values {
        acc |= ((v & mask) as u128) << bits;
        bits += w;
        if bits >= 64 {
            out[o] = acc as u64;
            o += 1;
            acc >>= 64;
            bits -= 64;
        }
    }
    if bits > 0 {
        out[o] = acc as u64;
    }
}

/// `n` values packed by [`pack`], each mod `2^w`, as a new vector (written
/// once, not zeroed first). A short `packed` reads as zeros.
pub fn unpacked(packed: &[R], w: u32, n: usize) -> Vec<R> {
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let mut words = packed.iter().copied();
    let (mut acc, mut bits) = (0u128, 0u32);
    (0..n)
        .map(|_| {
            if bits < w {
                acc |= (words.next().unwrap_or(0) as u128) << bits;
                bits += 64;
            }
            let x = acc as u64 & mask;
            acc >>= w;
            bits -= w;
            x
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pann_mpc_core::Prg;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn unpack_inverts_pack_mod_two_to_the_width(n in 0usize..300, w in 0u32..=64, seed in any::<u8>()) {
            let v = Prg::from_seed([seed; 16]).gen(n);
            let mut packed = vec![0; words(n, w)];
            pack(&v, w, &mut packed);
            let back = unpacked(&packed, w, n);
            let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
            for (a, b) in v.iter().zip(&back) {
                prop_assert_eq!(a & mask, *b);
            }
        }
    }

    #[test]
    fn a_block_of_1024_fills_whole_words_and_short_input_reads_as_zero() {
        for w in 0..=64 {
            assert_eq!(words(1024, w) * 64, 1024 * w as usize);
        }
        assert_eq!(unpacked(&[u64::MAX], 40, 3), [(1 << 40) - 1, (1 << 24) - 1, 0]);
        assert_eq!(unpacked(&[], 0, 2), [0, 0]);
    }
}
