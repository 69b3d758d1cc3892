//! Vectors packed to the bits that matter: the dealer's corrections and the
//! openings' messages (`64 - s` bits each, [`crate::open`]).
//!
//! A derived value that every form multiplies by a multiple of `2^(64-w)`
//! only matters mod `2^w` ([`crate::program::Program::share_widths`]; what
//! is sent: [`crate::program::Program::correction_widths`]): the dealer sends
//! its `w` low bits, back to back in little-endian bit
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
    assert_eq!(out.len(), words(values.len(), w), "packed length");
    if w == 64 {
        out.copy_from_slice(values);
        return;
    }
    out.fill(0);
    if w == 0 {
        return;
    }
    let mask = (1u64 << w) - 1;
    // Every 64 values fill exactly `w` words: groups are independent, and
    // within a group each value lands at a bit offset known in advance.
    for (group, o) in values.chunks(64).zip(out.chunks_mut(w as usize)) {
        for (i, &v) in group.iter().enumerate() {
            let off = i * w as usize;
            let (k, sh) = (off / 64, (off % 64) as u32);
            let v = v & mask;
            o[k] |= v << sh;
            // The bits that spill into the next word (none when they fit).
            if sh + w > 64 {
                o[k + 1] |= v >> (64 - sh);
            }
        }
    }
}

/// `n` values packed by [`pack`], each mod `2^w`, as a new vector (written
/// once, not zeroed first). A short `packed` reads as zeros.
pub fn unpacked(packed: &[R], w: u32, n: usize) -> Vec<R> {
    let mut out = Vec::with_capacity(n);
    if w == 0 {
        out.resize(n, 0);
        return out;
    }
    out.extend((0..n).map(|i| value_at(packed, w, i)));
    out
}

/// Values `first..first + out.len()` of a vector packed by [`pack`], each
/// mod `2^w`, into `out`. A short `packed` reads as zeros.
pub fn unpack_into(packed: &[R], w: u32, first: usize, out: &mut [R]) {
    if w == 0 {
        out.fill(0);
        return;
    }
    out.iter_mut().enumerate().for_each(|(i, o)| *o = value_at(packed, w, first + i));
}

/// Value `i` of width `w` (1 to 64): it starts at bit `i w`, the low part in
/// word `k`, the rest in word `k + 1`. `(x << 1) << (63 - sh)` is
/// `x << (64 - sh)` without the overflowing shift at `sh = 0`, and bits
/// beyond `w` are masked off, so there is no branch on the bit position.
#[inline(always)]
fn value_at(packed: &[R], w: u32, i: usize) -> R {
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let word = |k: usize| packed.get(k).copied().unwrap_or(0);
    let off = i * w as usize;
    let (k, sh) = (off / 64, (off % 64) as u32);
    ((word(k) >> sh) | ((word(k + 1) << 1) << (63 - sh))) & mask
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
            // Any window reads the same values as the whole vector.
            let first = n / 3;
            let mut window = vec![u64::MAX; n - first];
            unpack_into(&packed, w, first, &mut window);
            prop_assert_eq!(&window[..], &back[first..]);
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
