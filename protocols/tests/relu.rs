//! Polynomial ReLU: secure evaluation against the exact ReLU (approximation
//! bound plus the documented fixed-point error) and against the fixed-point
//! reference; 10^6 inputs at alpha 9 and 12.

mod common;

use std::sync::Arc;

use common::{decode, encode, uniform, B};
use pann_approx::Alpha;
use pann_mpc_core::{Phase, Prg};
use pann_protocols::harness::{run_program_pair, DealerMode};
use pann_protocols::{reference, PolyRelu, ReluConfig};

/// Documented fixed-point error budget of the ReLU with the default
/// precisions (fp = 20, fc = 16, fq = 16): B * 2^-14 on top of B * 2^-alpha.
/// Measured (docs/results/protocols.md): below B * 2^-16 for every alpha.
const FP_BUDGET_LOG2: i32 = -14;

struct Stats {
    max_err: f64,
    max_ref_diff: f64,
}

async fn check_alpha(base: ReluConfig, n: usize, chunk: usize, seed: u8) -> Stats {
    let f = base.input_frac;
    let alpha = base.alpha.get();
    let cfg = ReluConfig { inv_bound: Some(1.0 / B), ..base };
    let relu = PolyRelu::new(cfg).unwrap();
    let prog = Arc::clone(&relu.program);
    let mut prg = Prg::from_seed([seed; 16]);
    let bound = B * (-(alpha as f64)).exp2() + B * (FP_BUDGET_LOG2 as f64).exp2();
    let mut st = Stats { max_err: 0.0, max_ref_diff: 0.0 };
    let mut done = 0;
    while done < n {
        let m = chunk.min(n - done);
        let mut xs = uniform(&mut prg, m, B);
        if done == 0 {
            xs[..5].copy_from_slice(&[-B, B, 0.0, B * 1e-6, -B * 1e-6]);
        }
        let x = encode(&xs, f);
        let run =
            run_program_pair(&prog, std::slice::from_ref(&x), done as u64 ^ (alpha as u64) << 40, DealerMode::InProcess).await.unwrap();
        let want = reference::run_program(&prog, &[&x]).unwrap();
        assert_eq!(want.out_of_range, 0, "alpha {alpha}: an opened value left |v| < 2^62");
        for (i, &xi) in xs.iter().enumerate().take(m) {
            let y = decode(run.outputs[0][i], cfg.output_frac()) * B / 2.0;
            let yr = decode(want.outputs[0][i], cfg.output_frac()) * B / 2.0;
            let err = (y - xi.max(0.0)).abs();
            assert!(err <= bound, "alpha {alpha}: x = {}: secure {y}, relu {}, error {err} > {bound}", xi, xi.max(0.0));
            st.max_err = st.max_err.max(err);
            st.max_ref_diff = st.max_ref_diff.max((y - yr).abs());
        }
        done += m;
    }
    st
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relu_alpha_7_to_14_within_bound() {
    for alpha in 7..=14 {
        let a = Alpha::new(alpha).unwrap();
        for cfg in [ReluConfig::new(a, 16), ReluConfig::quadratic(a, 16), ReluConfig::cubic(a, 16)] {
            let st = check_alpha(cfg, 1 << 14, 1 << 14, alpha as u8).await;
            // Secure vs reference: only the {0, +1} truncation noise, propagated.
            assert!(st.max_ref_diff <= B * (-13f64).exp2(), "{cfg:?}: secure vs reference {}", st.max_ref_diff);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relu_million_inputs_alpha_9_and_12() {
    for alpha in [9, 12] {
        let a = Alpha::new(alpha).unwrap();
        for cfg in [ReluConfig::new(a, 16), ReluConfig::quadratic(a, 16)] {
            let st = check_alpha(cfg, 1_000_000, 1 << 16, 100 + alpha as u8).await;
            eprintln!("alpha {alpha} {:?}: max |secure - ReLU| = B * 2^{:.2}", cfg.schedule, (st.max_err / B).log2());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relu_costs_alpha_9() {
    let a9 = Alpha::new(9).unwrap();
    for cfg in [ReluConfig::new(a9, 20), ReluConfig::quadratic(a9, 20)] {
        let relu = PolyRelu::new(cfg).unwrap();
        let info = relu.info();
        assert_eq!(info.degrees, vec![15, 15]);
        assert!(info.rounds <= info.composite_depth + 1);
        let n = 1 << 12;
        let mut prg = Prg::from_seed([3; 16]);
        let x = encode(&uniform(&mut prg, n, 1.0), 20);
        let run = run_program_pair(&relu.program, &[x], 1, DealerMode::Channel).await.unwrap();
        let c = run.meter0.phase_total(Phase::Online);
        assert_eq!(c.rounds as usize, info.rounds);
        // 8 bytes per opening and direction, plus 5 bytes of frame header per round and direction.
        assert_eq!(c.bytes(), (2 * (8 * n * info.openings + 5 * info.rounds)) as u64);
        let off = run.dealer_meter1.phase_total(Phase::Offline);
        assert_eq!(off.bytes_recv as usize, 8 * (1 + n * info.corrections_per_element) + 5 * off.msgs_recv as usize);
        assert_eq!(run.meter0.phase_total(Phase::Offline).bytes(), 0);
    }
}
