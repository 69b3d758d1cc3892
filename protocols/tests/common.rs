//! Shared helpers for the integration tests.
#![allow(dead_code)]

use pann_mpc_core::{FixedPoint, Prg};

pub const B: f64 = 8.0;

/// `n` reals uniform in [-b, b] from a seeded PRG.
pub fn uniform(prg: &mut Prg, n: usize, b: f64) -> Vec<f64> {
    prg.gen(n).iter().map(|&r| (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * b - b).collect()
}

pub fn encode(xs: &[f64], f: u32) -> Vec<u64> {
    FixedPoint::new(f).unwrap().encode_slice(xs).unwrap()
}

pub fn decode(x: u64, f: u32) -> f64 {
    (x as i64) as f64 / (f as f64).exp2()
}
