//! A custom polynomial on shares, with its cost: f(x) = x - x^3 / 3 (the
//! start of arctan's series) as a two-party program, checked against the
//! plaintext fixed-point reference and against f64, with its online and
//! offline traffic read from the meters.
//!
//! Run: `cargo run --example custom_polynomial`
//!
//! How the program is built (the scales are the part to get right):
//! - the input x is shared at 20 fractional bits;
//! - round 1 opens x with a shift of 6, so the opened value is x at 14 bits;
//! - the form `2^36 x - c x^3` (c = 1/3 at 14 bits) is at 56 bits: the cube of
//!   the opened value is free (products of opened values cost nothing online:
//!   the dealer supplies shares of the products of their masks);
//! - round 2 opens that form with a shift of 36, back to 20 bits: the output.

use pann::arith::{ring, FixedPoint, Prg, R};
use pann::mpc::harness::{run_program_pair, DealerMode};
use pann::mpc::{reference, Form, ProgramBuilder};
use pann::net::Phase;
use std::sync::Arc;

const IN_BITS: u32 = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let program = {
        let mut b = ProgramBuilder::new(1);
        let x = b.open(Form::input(0, 1), 6)?; // x at 14 bits
        let third: R = (1u64 << 14) / 3; // 1/3 at 14 bits
        let mut f = Form::input(0, 1 << 36); // x at 20 + 36 = 56 bits
        f.add_term(third.wrapping_neg(), &[x, x, x]); // - x^3 / 3 at 3 * 14 + 14 = 56 bits
        let y = b.open(f, 36)?; // back to 20 bits
        b.output(Form::mono(1, &[y]))?;
        Arc::new(b.build()?)
    };

    let n = 10_000;
    let mut prg = Prg::from_seed([1; 16]);
    let xs: Vec<f64> = prg.gen(n).iter().map(|&v| (v >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).collect();
    let fp = FixedPoint::new(IN_BITS)?;
    let input = fp.encode_slice(&xs)?;

    let rt = tokio::runtime::Runtime::new()?;
    let run = rt.block_on(run_program_pair(&program, std::slice::from_ref(&input), 7, DealerMode::Channel))?;

    // The plaintext fixed-point reference runs the same program on clear values
    // (truncations as floor divisions): the secure output differs from it by the
    // openings' truncation noise only. Each opening may come out one unit above the
    // floor: one unit of x at 14 bits moves x^3 / 3 by at most x^2 2^-14 (64 units
    // at 20 bits), and the last opening adds one unit of its own.
    let want = reference::run_program(&program, &[&input])?;
    assert_eq!(want.out_of_range, 0);
    let mut max_ref = 0u64;
    let mut max_err = 0f64;
    for ((&x, &got), &reference) in xs.iter().zip(&run.outputs[0]).zip(&want.outputs[0]) {
        max_ref = max_ref.max(ring::to_signed(got.wrapping_sub(reference)).unsigned_abs());
        max_err = max_err.max((fp.decode(got) - (x - x.powi(3) / 3.0)).abs());
    }
    assert!(max_ref <= 65, "secure and reference differ by {max_ref} units");
    assert!(max_err < 1e-3, "error against f64: {max_err}");

    let online = run.meter0.phase_total(Phase::Online);
    let offline = run.dealer_meter1.phase_total(Phase::Offline);
    println!("f(x) = x - x^3/3 on {n} shared values in [-1, 1]");
    println!(
        "  program: {} openings in {} rounds, {} dealer corrections per element",
        program.n_openings(),
        program.n_rounds(),
        program.correction_len_per_element()
    );
    println!("  largest difference from the fixed-point reference: {max_ref} units of 2^-{IN_BITS}; from f64: {max_err:.2e}");
    println!(
        "  online (party 0, both directions): {} bytes in {} rounds = {:.1} bytes per element",
        online.bytes(),
        online.rounds,
        online.bytes() as f64 / n as f64
    );
    println!(
        "  offline (dealer to party 1): {} bytes = {:.1} bytes per element; party 0 gets a 16-byte seed",
        offline.bytes(),
        offline.bytes() as f64 / n as f64
    );
    Ok(())
}

/// `cargo test` builds examples as test harnesses: this runs the example there, so that it is checked, not only compiled.
#[test]
fn example_runs() {
    main().unwrap();
}
