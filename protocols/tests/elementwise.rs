//! Element-wise programs over the in-memory channel against the fixed-point
//! reference: truncation, product, square, reused openings.

mod common;

use std::sync::Arc;

use pann_mpc_core::{Phase, Prg};
use pann_protocols::harness::{run_program_pair, DealerMode};
use pann_protocols::program::ops;
use pann_protocols::reference;

fn signed_vals(prg: &mut Prg, n: usize, bits: u32) -> Vec<u64> {
    prg.gen(n).iter().map(|&r| ((r as i64) >> (64 - bits)) as u64).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_is_floor_plus_zero_or_one() {
    let mut prg = Prg::from_seed([1; 16]);
    for &(s, bits) in &[(0u32, 62u32), (16, 48), (32, 62), (40, 50), (61, 62)] {
        let x = signed_vals(&mut prg, 4096, bits);
        let p = Arc::new(ops::truncate(s));
        for mode in [DealerMode::InProcess, DealerMode::Channel] {
            let run = run_program_pair(&p, std::slice::from_ref(&x), s as u64, mode).await.unwrap();
            let want = reference::run_program(&p, &[&x]).unwrap();
            assert_eq!(want.out_of_range, 0);
            for (a, b) in run.outputs[0].iter().zip(&want.outputs[0]) {
                let e = a.wrapping_sub(*b) as i64;
                assert!(e == 0 || e == 1, "s {s}: secure {a} reference {b}");
                if s == 0 {
                    assert_eq!(e, 0);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_squares_and_reuse_match_the_reference() {
    let mut prg = Prg::from_seed([2; 16]);
    let n = 4096;
    // Fixed-point operands at scale 32 (|x| < 2^20 reals) truncated to 16, and raw scale-16 operands.
    for &(sx, sy, bits) in &[(0u32, 0u32, 30u32), (16, 16, 50), (16, 0, 40), (32, 32, 60)] {
        let x = signed_vals(&mut prg, n, bits);
        let y = signed_vals(&mut prg, n, bits);
        let progs = [
            (Arc::new(ops::product(sx, sy)), vec![x.clone(), y.clone()]),
            (Arc::new(ops::square(sx)), vec![x.clone()]),
            (Arc::new(ops::product_many(3, sx, sy)), vec![x.clone(), y.clone(), x.clone(), y.clone()]),
        ];
        for (p, inputs) in progs {
            let run = run_program_pair(&p, &inputs, 7, DealerMode::InProcess).await.unwrap();
            let refs: Vec<&[u64]> = inputs.iter().map(|v| v.as_slice()).collect();
            let want = reference::run_program(&p, &refs).unwrap();
            for (o, (got, exp)) in run.outputs.iter().zip(&want.outputs).enumerate() {
                for e in 0..n {
                    // (x + ex)(y + ey) - xy with ex, ey in {0, 1}: at most |x| + |y| + 1.
                    let xo = (want.opened[0][e] as i64).unsigned_abs();
                    let yo = (want.opened[o + 1.min(p.n_openings() - 1)][e] as i64).unsigned_abs();
                    let d = (got[e].wrapping_sub(exp[e]) as i64).unsigned_abs();
                    let tol = if sx == 0 && sy == 0 { 0 } else { xo + yo + 1 };
                    assert!(d <= tol, "shifts ({sx},{sy}) output {o} element {e}: diff {d} > {tol}");
                }
            }
            // Online cost: one round, 64 - s bits per opening, element, party and direction.
            let c = run.meter0.phase_total(Phase::Online);
            assert_eq!(c.rounds, 1);
            assert_eq!(c.bytes_sent, (5 + 8 * p.message_words(n)) as u64);
            let bits: u64 = p.opens().iter().map(|o| 64 - o.shift as u64).sum();
            assert_eq!(c.bytes_sent, 5 + bits * n as u64 / 8);
        }
    }
}
