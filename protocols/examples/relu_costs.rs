//! Cost and accuracy table of the polynomial ReLU for every alpha.
//!
//! `cargo run --release -p pann-protocols --example relu_costs -- [N] [--quadratic|--cubic] [--json PATH]`
//! (default: `ReluConfig::new`, the recommended schedule per alpha).
//!
//! For each alpha 4..14: component degrees, composite depth, non-scalar
//! products, openings, rounds, metered online bytes per ReLU (party 0's
//! channel, both directions; frame headers included), offline bytes per ReLU
//! (dealer -> party 1 corrections, metered on the dealer channel), and the
//! accuracy of the secure evaluation on N inputs uniform in [-B, B] (B = 8,
//! f = 16): max |secure - ReLU| against the bound B 2^-alpha, and the
//! fixed-point part max |secure - PANN_f64|.

use std::sync::Arc;

use pann_approx::Alpha;
use pann_mpc_core::{FixedPoint, Phase, Prg};
use pann_protocols::harness::{run_program_pair, DealerMode};
use pann_protocols::{PolyRelu, ReluConfig};

const B: f64 = 8.0;
const F: u32 = 16;
const CHUNK: usize = 1 << 16;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let json_path = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1)).cloned();
    let cubic = args.iter().any(|a| a == "--cubic");
    let quadratic = args.iter().any(|a| a == "--quadratic");
    let fp = FixedPoint::new(F)?;
    let mut rows = Vec::new();
    println!("| alpha | degrees | schedule | depth | non-scalar products | openings | rounds | online B/ReLU | offline B/ReLU | max err / (B 2^-alpha) | max fixed-point err (units of 2^-f B) | inputs |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for a in Alpha::all() {
        let alpha = a.get();
        let base = if cubic {
            ReluConfig::cubic(a, F)
        } else if quadratic {
            ReluConfig::quadratic(a, F)
        } else {
            ReluConfig::new(a, F)
        };
        let cfg = ReluConfig { inv_bound: Some(1.0 / B), ..base };
        let relu = PolyRelu::new(cfg)?;
        let info = relu.info();
        let prog = Arc::clone(&relu.program);
        let mut prg = Prg::from_seed([alpha as u8; 16]);
        let (mut max_err, mut max_fp) = (0.0f64, 0.0f64);
        let (mut online, mut offline, mut done) = (0u64, 0u64, 0usize);
        let mut worst_x = 0.0;
        while done < n {
            let m = CHUNK.min(n - done);
            let xs: Vec<f64> = prg.gen(m).iter().map(|&r| (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * B - B).collect();
            let enc = fp.encode_slice(&xs)?;
            let run = run_program_pair(&prog, &[enc], done as u64 + alpha as u64 * 1_000_003, DealerMode::Channel).await?;
            online += run.meter0.phase_total(Phase::Online).bytes();
            offline += run.dealer_meter1.phase_total(Phase::Offline).bytes();
            for (x, &o) in xs.iter().zip(&run.outputs[0]) {
                let y = (o as i64) as f64 / (cfg.output_frac() as f64).exp2() * B / 2.0;
                let e = (y - x.max(0.0)).abs();
                if e > max_err {
                    max_err = e;
                    worst_x = *x;
                }
                max_fp = max_fp.max((y - relu.poly.relu(*x, B)).abs());
            }
            done += m;
        }
        let bound = B * (-(alpha as f64)).exp2();
        let row = serde_json::json!({
            "alpha": alpha, "degrees": info.degrees, "composite_depth": info.composite_depth,
            "nonscalar_products": info.nonscalar_products, "openings": info.openings, "rounds": info.rounds,
            "online_bytes_per_relu": online as f64 / n as f64, "offline_bytes_per_relu": offline as f64 / n as f64,
            "max_abs_err": max_err, "worst_input": worst_x, "bound_B_2^-alpha": bound,
            "max_fixed_point_err": max_fp, "inputs": n, "B": B, "input_frac": F,
            "value_bits": cfg.value_bits, "coef_bits": cfg.coef_bits, "q_bits": cfg.q_bits, "schedule": cfg.schedule,
        });
        println!(
            "| {alpha} | {:?} | {:?} | {} | {} | {} | {} | {:.1} | {:.1} | {:.3} | {:.2} | {n} |",
            info.degrees,
            cfg.schedule,
            info.composite_depth,
            info.nonscalar_products,
            info.openings,
            info.rounds,
            online as f64 / n as f64,
            offline as f64 / n as f64,
            max_err / bound,
            max_fp / (B * (-(F as f64)).exp2())
        );
        rows.push(row);
    }
    if let Some(p) = json_path {
        std::fs::write(&p, serde_json::to_string_pretty(&rows)?)?;
        eprintln!("wrote {p}");
    }
    Ok(())
}
