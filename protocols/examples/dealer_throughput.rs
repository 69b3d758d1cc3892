//! How fast material is made and expanded: the dealer's corrections for
//! ResNet-20's 19 ReLU layers at one alpha and batch, and each party's
//! expansion of its material from its seed (party 1 with the corrections).
//! The online evaluation draws the same vectors chunk by chunk where its
//! forms use them (deferred material); here each is expanded whole
//! (`ProgramMaterial::expanded`) to time the drawing on its own.
//!
//! `cargo run --release -p pann-protocols --example dealer_throughput -- [--alpha 9] [--batch 8] [--repeat 5] [--threads N]`
//!
//! Prints, per stage, the median wall time per image and the rate in MB/s of
//! correction bytes (what the dealer sends to party 1) and of material bytes
//! (what one party holds afterwards: masks, atoms and products).

use std::sync::Arc;
use std::time::Instant;

use pann_approx::Alpha;
use pann_mpc_core::Party;
use pann_protocols::{Dealer, Expander, PolyRelu, ReluConfig, Request};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let alpha = Alpha::new(arg(&args, "--alpha", 9))?;
    let batch: usize = arg(&args, "--batch", 8);
    let repeat: usize = arg(&args, "--repeat", 5);
    let threads: usize = arg(&args, "--threads", 0);
    if threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global()?;
    }
    let relu = PolyRelu::new(ReluConfig::new(alpha, 36))?;
    // ResNet-20's ReLU layers: 7 of 16x32x32, 6 of 32x16x16, 6 of 64x8x8.
    let sizes: Vec<usize> =
        [(7, 16 * 32 * 32), (6, 32 * 16 * 16), (6, 64 * 8 * 8)].iter().flat_map(|&(k, n)| std::iter::repeat_n(n * batch, k)).collect();
    let reqs: Vec<Request> = sizes.iter().map(|&n| Request::program(&Arc::clone(&relu.program), n)).collect();
    let corr_bytes: u64 = reqs.iter().map(|r| 8 * r.correction_len() as u64).sum();
    let mat_bytes: u64 = reqs.iter().map(|r| 8 * r.material_len()).sum();
    let (mut deal, mut exp0, mut exp1) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..repeat {
        let (s0, s1) = ([rep as u8; 16], [rep as u8 ^ 0x55; 16]);
        let mut dealer = Dealer::new(s0, s1);
        let t = Instant::now();
        let corr: Vec<_> = reqs.iter().map(|r| dealer.corrections(r)).collect::<Result<_, _>>()?;
        deal.push(t.elapsed().as_secs_f64());
        let mut e0 = Expander::new(Party::Server, s0);
        let t = Instant::now();
        for r in &reqs {
            std::hint::black_box(e0.expand(r, None)?.into_program()?.expanded());
        }
        exp0.push(t.elapsed().as_secs_f64());
        let mut e1 = Expander::new(Party::Client, s1);
        let t = Instant::now();
        for (r, c) in reqs.iter().zip(corr) {
            std::hint::black_box(e1.expand(r, Some(c))?.into_program()?.expanded());
        }
        exp1.push(t.elapsed().as_secs_f64());
    }
    println!(
        "alpha {}, batch {batch}, {} rayon threads: {:.2} MB corrections and {:.2} MB material per party, per image",
        alpha.get(),
        rayon::current_num_threads(),
        corr_bytes as f64 / 1e6 / batch as f64,
        mat_bytes as f64 / 1e6 / batch as f64
    );
    println!("| stage | ms per image (median of {repeat}) | MB/s |");
    println!("|---|---|---|");
    for (name, times, bytes) in [
        ("dealer: party 1's corrections", deal, corr_bytes),
        ("party 0: expand its material from the seed", exp0, mat_bytes),
        ("party 1: expand with the corrections", exp1, mat_bytes),
    ] {
        let m = median(times);
        println!("| {name} | {:.1} | {:.0} |", 1e3 * m / batch as f64, bytes as f64 / 1e6 / m);
    }
    Ok(())
}
