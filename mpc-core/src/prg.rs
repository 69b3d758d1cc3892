//! AES-128 in counter mode as a PRG over ring elements.
//!
//! The `aes` crate detects AES-NI at run time and uses it when present.
//! Two parties holding the same seed and making the same sequence of calls get
//! the same output: this is how the dealer's correlated randomness is expanded
//! locally from shared seeds, with only corrections sent over the wire.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;

use crate::ring::R;

/// A 128-bit PRG seed.
pub type Seed = [u8; 16];

/// Blocks encrypted per batch: enough for the pipelined AES-NI path.
const BATCH: usize = 64;

/// AES-128-CTR keyed by a seed. Each 16-byte block yields two ring elements.
#[derive(Clone)]
pub struct Prg {
    cipher: Aes128,
    counter: u128,
}

impl Prg {
    /// The PRG keyed by `seed`, counter at 0: equal seeds give equal streams.
    pub fn from_seed(seed: Seed) -> Self {
        Self { cipher: Aes128::new(GenericArray::from_slice(&seed)), counter: 0 }
    }

    /// A fresh seed from the operating system's randomness.
    pub fn random_seed() -> Seed {
        let mut seed = [0u8; 16];
        getrandom::getrandom(&mut seed).expect("the operating system has no randomness source");
        seed
    }

    /// A PRG with a fresh random seed.
    pub fn from_entropy() -> Self {
        Self::from_seed(Self::random_seed())
    }

    /// Fill `out` with pseudo-random ring elements. Always consumes whole blocks:
    /// an odd-length request discards the last half block.
    pub fn fill(&mut self, out: &mut [R]) {
        self.fill_at(self.counter, out);
        self.counter = self.counter.wrapping_add(out.len().div_ceil(2) as u128);
    }

    /// The elements that [`Prg::fill`] would write if the counter stood at
    /// `block` (each block is two elements), without moving the counter: random
    /// access into the stream, so that disjoint pieces of one request can be
    /// expanded in any order or in parallel.
    pub fn fill_at(&self, block: u128, out: &mut [R]) {
        let mut counter = block;
        let mut blocks = [GenericArray::<u8, aes::cipher::consts::U16>::default(); BATCH];
        for chunk in out.chunks_mut(2 * BATCH) {
            let nblocks = chunk.len().div_ceil(2);
            for b in blocks[..nblocks].iter_mut() {
                b.copy_from_slice(&counter.to_le_bytes());
                counter = counter.wrapping_add(1);
            }
            self.cipher.encrypt_blocks(&mut blocks[..nblocks]);
            for (pair, b) in chunk.chunks_mut(2).zip(&blocks[..nblocks]) {
                pair[0] = u64::from_le_bytes(b[..8].try_into().unwrap());
                if let Some(x) = pair.get_mut(1) {
                    *x = u64::from_le_bytes(b[8..].try_into().unwrap());
                }
            }
        }
    }

    /// A vector of `n` pseudo-random ring elements.
    pub fn gen(&mut self, n: usize) -> Vec<R> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }

    /// One pseudo-random ring element (consumes a whole block).
    pub fn next_u64(&mut self) -> R {
        let mut x = [0u64; 1];
        self.fill(&mut x);
        x[0]
    }

    /// Fill a byte buffer.
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(16) {
            let mut b = GenericArray::clone_from_slice(&self.counter.to_le_bytes());
            self.counter = self.counter.wrapping_add(1);
            self.cipher.encrypt_block(&mut b);
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }

    /// A new seed drawn from this PRG.
    pub fn next_seed(&mut self) -> Seed {
        let mut s = [0u8; 16];
        self.fill_bytes(&mut s);
        s
    }

    /// An independent child PRG, seeded from this one's output.
    pub fn fork(&mut self) -> Prg {
        Prg::from_seed(self.next_seed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_chunking_does_not_matter_for_even_requests() {
        let seed = [7u8; 16];
        let a = Prg::from_seed(seed).gen(1000);
        let mut p = Prg::from_seed(seed);
        let mut b = p.gen(200);
        b.extend(p.gen(800));
        assert_eq!(a, b);
        assert_ne!(a, Prg::from_seed([8u8; 16]).gen(1000));
    }

    #[test]
    fn fill_at_is_random_access_into_the_stream() {
        let mut p = Prg::from_seed([3; 16]);
        let whole = p.clone().gen(1001);
        let mut piece = vec![0; 301];
        p.fill_at(350, &mut piece);
        assert_eq!(piece, whole[700..1001]);
        // The counter does not move; fill continues where it stood.
        assert_eq!(p.gen(4), whole[..4]);
        // Negative control: an odd element offset is not a block offset.
        p.fill_at(0, &mut piece[..2]);
        assert_ne!(piece[..2], whole[1..3]);
    }

    #[test]
    fn matches_aes_ctr_known_answer() {
        // FIPS-197 appendix C.1 style check: AES-128 of block 0 under key 00..0f.
        let key: Seed = core::array::from_fn(|i| i as u8);
        let mut p = Prg::from_seed(key);
        let out = p.gen(2);
        let cipher = Aes128::new(GenericArray::from_slice(&key));
        let mut block = GenericArray::clone_from_slice(&0u128.to_le_bytes());
        cipher.encrypt_block(&mut block);
        assert_eq!(out[0], u64::from_le_bytes(block[..8].try_into().unwrap()));
        assert_eq!(out[1], u64::from_le_bytes(block[8..].try_into().unwrap()));
    }

    #[test]
    fn output_looks_uniform() {
        let v = Prg::from_seed([1; 16]).gen(1 << 16);
        let ones: u32 = v.iter().map(|x| x.count_ones()).sum();
        let expected = 32.0 * v.len() as f64;
        // standard deviation is sqrt(64 n)/2 = 1024: allow 6 sigma.
        assert!((ones as f64 - expected).abs() < 6.0 * 1024.0);
        let mut p = Prg::from_seed([1; 16]);
        let mut c1 = p.fork();
        let mut c2 = p.fork();
        assert_ne!(c1.gen(4), c2.gen(4));
    }
}
