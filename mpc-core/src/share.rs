//! Two-party additive secret sharing over Z_2^64.
//!
//! A `ShareVec` carries the party that holds it and the number of fractional
//! bits of its encoding, so that reconstructing two shares of the same party, or
//! shares at different scales, is an error rather than a wrong number.

use crate::error::{CoreError, Result};
use crate::prg::Prg;
use crate::ring::{self, R};

/// The two computing parties. The server (party 0) holds the model; the client
/// (party 1) holds the input and learns the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Party {
    /// Party 0: holds the model (the weights are its private input).
    Server = 0,
    /// Party 1: holds the input image and learns the logits.
    Client = 1,
}

impl Party {
    /// The party's number, 0 (server) or 1 (client): an index into per-party arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The other computing party.
    pub fn other(self) -> Party {
        match self {
            Party::Server => Party::Client,
            Party::Client => Party::Server,
        }
    }
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Party::Server => "server",
            Party::Client => "client",
        })
    }
}

/// One party's additive shares of a vector of ring elements at a fixed-point scale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareVec {
    /// The party holding these shares.
    pub party: Party,
    /// Fractional bits of the shared values' encoding (both shares must agree).
    pub frac_bits: u32,
    /// The shares, one ring element (mod 2^64) per shared value.
    pub data: Vec<R>,
}

impl ShareVec {
    /// Tag `data` as `party`'s shares at `frac_bits` fractional bits (nothing is checked).
    pub fn new(party: Party, frac_bits: u32, data: Vec<R>) -> Self {
        Self { party, frac_bits, data }
    }

    /// Number of shared values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no value is shared.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Split `secret` into a server share and a client share: the client share is
/// uniformly random, the server share is `secret - client`.
pub fn share(secret: &[R], frac_bits: u32, prg: &mut Prg) -> (ShareVec, ShareVec) {
    let client = prg.gen(secret.len());
    let server = ring::sub(secret, &client);
    (ShareVec::new(Party::Server, frac_bits, server), ShareVec::new(Party::Client, frac_bits, client))
}

/// Add the two parties' shares back together (mod 2^64). An error
/// ([`CoreError::ShareMismatch`]) unless the shares belong to different
/// parties and agree on scale and length.
pub fn reconstruct(a: &ShareVec, b: &ShareVec) -> Result<Vec<R>> {
    if a.party == b.party {
        return Err(CoreError::ShareMismatch(format!("both shares belong to the {}", a.party)));
    }
    if a.frac_bits != b.frac_bits {
        return Err(CoreError::ShareMismatch(format!(
            "shares are at different scales ({} and {} fractional bits)",
            a.frac_bits, b.frac_bits
        )));
    }
    if a.len() != b.len() {
        return Err(CoreError::ShareMismatch(format!("share lengths differ ({} and {})", a.len(), b.len())));
    }
    Ok(ring::add(&a.data, &b.data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn share_then_reconstruct_is_exact(secret in proptest::collection::vec(any::<u64>(), 0..200), seed in any::<[u8; 16]>()) {
            let mut prg = Prg::from_seed(seed);
            let (s, c) = share(&secret, 16, &mut prg);
            prop_assert_eq!(reconstruct(&s, &c).unwrap(), secret.clone());
            prop_assert_eq!(reconstruct(&c, &s).unwrap(), secret);
        }

        #[test]
        fn ring_slice_ops_match_scalar_reference(a in proptest::collection::vec(any::<u64>(), 0..100), c in any::<u64>(), sh in 0u32..63) {
            let b: Vec<u64> = a.iter().map(|x| x.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15).collect();
            let add = ring::add(&a, &b);
            let sub = ring::sub(&a, &b);
            let mul = ring::mul(&a, &b);
            let mut scaled = a.clone();
            ring::scale_assign(&mut scaled, c);
            let mut axpy = a.clone();
            ring::add_scaled_assign(&mut axpy, c, &b);
            let mut neg = a.clone();
            ring::neg_assign(&mut neg);
            let mut shr = a.clone();
            ring::shr_signed_assign(&mut shr, sh);
            for i in 0..a.len() {
                let (x, y) = (a[i] as u128, b[i] as u128);
                let m = 1u128 << 64;
                prop_assert_eq!(add[i] as u128, (x + y) % m);
                prop_assert_eq!(sub[i] as u128, (x + m - y) % m);
                prop_assert_eq!(mul[i] as u128, (x * y) % m);
                prop_assert_eq!(scaled[i] as u128, (x * c as u128) % m);
                prop_assert_eq!(axpy[i] as u128, (x + (c as u128 * y) % m) % m);
                prop_assert_eq!(neg[i] as u128, (m - x) % m);
                prop_assert_eq!(shr[i] as i64, (a[i] as i64).div_euclid(1i64 << sh));
            }
        }
    }

    #[test]
    fn mismatched_shares_are_errors() {
        let mut prg = Prg::from_seed([3; 16]);
        let (s, c) = share(&[1, 2, 3], 16, &mut prg);
        assert!(reconstruct(&s, &s).is_err());
        let c12 = ShareVec::new(Party::Client, 12, c.data.clone());
        assert!(reconstruct(&s, &c12).is_err());
        let short = ShareVec::new(Party::Client, 16, vec![1]);
        assert!(reconstruct(&s, &short).is_err());
    }
}
