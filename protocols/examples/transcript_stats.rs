//! The transcript tests' figures as a table (docs/results/security-transcripts.md).
//!
//! `cargo run --release -p pann-protocols --example transcript_stats`
//!
//! Same code, seeds and sizes as `tests/security.rs` (the module is shared), so
//! the numbers are the ones the tests assert on. Exits with status 1 if a row
//! is not as expected (real protocol: family p > 1e-6; broken variants:
//! p < 1e-12; outputs correct).

#[path = "../tests/transcript/mod.rs"]
mod transcript;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    print!("{}", transcript::HEADER);
    let mut ok = true;
    for case in transcript::CASES {
        for r in transcript::case_rows(case).await {
            print!("{}", transcript::markdown_line(&r));
            ok &= r.as_expected();
        }
    }
    if !ok {
        eprintln!("some rows are not as expected");
        std::process::exit(1);
    }
}
