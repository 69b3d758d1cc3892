//! The transcript tests' figures as a table (docs/results/security-transcripts.md).
//!
//! `cargo run --release -p pann-protocols --example transcript_stats [-- --calibrate K]`
//!
//! Same code, seeds and sizes as `tests/security.rs` (the module is shared), so
//! the numbers are the ones the tests assert on. Exits with status 1 if a row
//! is not as expected (real protocol: family p > 1e-6; broken variants:
//! p < 1e-12; outputs correct).
//!
//! `--calibrate K` also reruns the real protocol with K other sets of seeds
//! and counts how often its family p-value falls below 0.05, 0.01 and 1e-6
//! (under no leak, at most 5 %, 1 % and 1e-6 of the runs, the Bonferroni bound
//! being conservative), and which fraction of the individual tests falls below
//! 0.01 and 0.001 (under no leak, 1 % and 0.1 %: a check of the p-values).

#[path = "../tests/transcript/mod.rs"]
mod transcript;

use pann_mpc_core::Party;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let calibrate: u64 =
        args.iter().position(|a| a == "--calibrate").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    print!("{}", transcript::HEADER);
    let mut ok = true;
    for case in transcript::CASES {
        for r in transcript::case_rows(case).await {
            print!("{}", transcript::markdown_line(&r));
            ok &= r.as_expected();
        }
    }
    if calibrate > 0 {
        println!("\n| test | view | runs (seed sets 1..={calibrate}) | family p < 0.05 | family p < 0.01 | family p < 1e-6 | smallest family p | single tests | single p < 0.01 | single p < 0.001 | outputs correct |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for case in transcript::CASES {
            for viewer in [Party::Client, Party::Server] {
                let mut ps = Vec::new();
                let mut correct = true;
                let mut single = Vec::new();
                for salt in 1..=calibrate {
                    let r = transcript::row_salted(case, viewer, transcript::Variant::Real, salt).await;
                    correct &= r.correct;
                    ps.push(r.all.log10_p);
                    single.extend(r.log10_ps);
                }
                let below = |t: f64| ps.iter().filter(|&&p| p < t.log10()).count();
                let min = ps.iter().cloned().fold(0.0, f64::min);
                let frac = |t: f64| 100.0 * single.iter().filter(|&&p| p < t.log10()).count() as f64 / single.len() as f64;
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} % | {:.3} % | {} |",
                    case.name(),
                    transcript::viewer_name(viewer),
                    ps.len(),
                    below(0.05),
                    below(0.01),
                    below(1e-6),
                    transcript::fmt_p(min),
                    single.len(),
                    frac(0.01),
                    frac(0.001),
                    if correct { "yes" } else { "no" }
                );
                ok &= correct && below(1e-6) == 0;
            }
        }
    }
    if !ok {
        eprintln!("some rows are not as expected");
        std::process::exit(1);
    }
}
