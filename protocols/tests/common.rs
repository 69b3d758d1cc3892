//! Shared helpers for the integration tests.
#![allow(dead_code)]

use pann_mpc_core::{Channel, ChannelConfig, FixedPoint, Party, Prg};
use pann_protocols::harness::share_clear;
use pann_protocols::material::ProgramMaterial;
use pann_protocols::{run_program, Program};

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

/// Runs `program` on the clear inputs `x` (shared with a fixed seed) with the
/// given material; each party's output shares.
pub async fn run_with(program: &Program, x: &[Vec<u64>], m0: ProgramMaterial, m1: ProgramMaterial) -> (Vec<Vec<u64>>, Vec<Vec<u64>>) {
    let mut prg = Prg::from_seed([9; 16]);
    let (in0, in1): (Vec<Vec<u64>>, Vec<Vec<u64>>) = x.iter().map(|v| share_clear(v, &mut prg)).unzip();
    let r0: Vec<&[u64]> = in0.iter().map(|v| v.as_slice()).collect();
    let r1: Vec<&[u64]> = in1.iter().map(|v| v.as_slice()).collect();
    let (mut c0, mut c1) = Channel::mem_pair(ChannelConfig::default());
    let (o0, o1) =
        tokio::join!(run_program(&mut c0, Party::Server, program, &r0, m0), run_program(&mut c1, Party::Client, program, &r1, m1));
    (o0.unwrap(), o1.unwrap())
}

/// A party's derived vectors (each truncating opening's low and msb atoms,
/// then the atom products), in the order of `Program::share_widths`.
pub fn derived_mut<'a>(program: &Program, m: &'a mut ProgramMaterial) -> Vec<&'a mut Vec<u64>> {
    let m = m.expanded();
    let mut v: Vec<&mut Vec<u64>> = Vec::new();
    for (o, st) in m.opens.iter_mut().zip(program.opens()) {
        if st.shift > 0 {
            v.push(&mut o.low);
            v.push(&mut o.msb);
        }
    }
    v.extend(m.products.iter_mut());
    v
}
