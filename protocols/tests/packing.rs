//! Party 1's derived values travel packed to their widths
//! (`Program::correction_widths`, `pann_protocols::pack`; a low atom as the
//! `z_1` of its share `r_1 + K z_1`). Over random
//! programs (shifts 0..62, repeated factors, terms up to degree 3, odd, even
//! and 2^63 coefficients) and lengths across the dealer's 1024-element
//! blocks: the dealer's corrections are exactly the plain shares packed, and
//! a run with packed material gives the same output shares as one with full
//! 64-bit shares. Negative control: one bit fewer in one vector changes some
//! output. (Written from an independent review's experiments.)

mod common;

use std::sync::Arc;

use common::{derived_mut, run_with};

use pann_mpc_core::ring::{self, R};
use pann_mpc_core::{Party, Prg};
use pann_protocols::material::ProgramMaterial;
use pann_protocols::open::mask_atoms;
use pann_protocols::program::Atom;
use pann_protocols::{pack, Dealer, Expander, Form, Program, ProgramBuilder, Request};

/// A public coefficient of one of several 2-adic shapes.
fn coef(p: &mut Prg) -> R {
    let x = p.gen(2);
    match x[0] % 8 {
        0 => 1,
        1 => x[1] | 1,
        2 => x[1],
        3 => 1u64 << (x[1] % 64),
        4 => 1u64 << 63,
        5 => 3u64 << (x[1] % 62),
        6 => (x[1] | 1).wrapping_neg() << (x[1] % 40),
        _ => u64::MAX,
    }
}

const SHIFTS: [u32; 11] = [0, 0, 1, 5, 16, 31, 40, 55, 60, 61, 62];

/// A random straight-line program over two inputs.
fn random_program(seed: u64) -> Program {
    let mut p = Prg::from_seed({
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        s
    });
    let n_inputs = 2;
    let mut b = ProgramBuilder::new(n_inputs);
    let n_open = 1 + (p.gen(1)[0] % 5) as usize;
    let mut ids: Vec<usize> = Vec::new();
    let form = |p: &mut Prg, ids: &[usize]| {
        let mut f = Form::new();
        f.add_constant(coef(p));
        for i in 0..n_inputs {
            if p.gen(1)[0].is_multiple_of(2) || ids.is_empty() {
                f.add_input(i, coef(p));
            }
        }
        if !ids.is_empty() {
            let nt = (p.gen(1)[0] % 4) as usize;
            for _ in 0..nt {
                let deg = 1 + (p.gen(1)[0] % 3) as usize;
                let factors: Vec<usize> = (0..deg).map(|_| ids[(p.gen(1)[0] % ids.len() as u64) as usize]).collect();
                f.add_term(coef(p), &factors);
            }
        }
        f
    };
    for _ in 0..n_open {
        let f = form(&mut p, &ids);
        let s = SHIFTS[(p.gen(1)[0] % SHIFTS.len() as u64) as usize];
        ids.push(b.open(f, s).unwrap());
    }
    let n_out = 1 + (p.gen(1)[0] % 3) as usize;
    for _ in 0..n_out {
        let f = form(&mut p, &ids);
        b.output(f).unwrap();
    }
    b.build().unwrap()
}

/// Party 1's derived vectors replaced by its *full* 64-bit shares
/// (value - party 0's share), as before packing.
fn full_shares(program: &Program, m0: &mut ProgramMaterial, m1: &mut ProgramMaterial) {
    let n = m0.n();
    let (m0, m1) = (m0.expanded(), m1.expanded());
    let rs: Vec<Vec<R>> = m0.opens.iter().zip(&m1.opens).map(|(a, b)| ring::add(&a.r, &b.r)).collect();
    let atoms: Vec<(Vec<R>, Vec<R>)> = rs
        .iter()
        .zip(program.opens())
        .map(|(r, st)| r.iter().map(|&x| if st.shift > 0 { mask_atoms(x, st.shift) } else { (0, 0) }).unzip())
        .collect();
    for (j, st) in program.opens().iter().enumerate() {
        if st.shift > 0 {
            m1.opens[j].low = ring::sub(&atoms[j].0, &m0.opens[j].low);
            m1.opens[j].msb = ring::sub(&atoms[j].1, &m0.opens[j].msb);
        }
    }
    for (k, key) in program.products().iter().enumerate() {
        let mut v = vec![1u64; n];
        for &(j, a) in key {
            let s: &[R] = match a {
                Atom::Full => &rs[j],
                Atom::Low => &atoms[j].0,
                Atom::Msb => &atoms[j].1,
            };
            ring::mul_assign(&mut v, s);
        }
        m1.products[k] = ring::sub(&v, &m0.products[k]);
    }
}

fn deal(req: &Request) -> (ProgramMaterial, ProgramMaterial) {
    let (m0, m1) = Dealer::new([1; 16], [2; 16]).deal(req).unwrap();
    (m0.into_program().unwrap(), m1.into_program().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_material_gives_the_outputs_of_full_shares() {
    let mut caught = 0;
    for seed in 0..200u64 {
        let program = Arc::new(random_program(seed));
        for n in [0usize, 1, 3, 1025] {
            if seed % 20 != 0 && n > 3 {
                continue;
            }
            let x: Vec<Vec<R>> = (0..2).map(|i| Prg::from_seed([seed as u8, i, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).gen(n)).collect();
            let req = Request::program(&program, n);
            let (m0, m1) = deal(&req);
            let packed = run_with(&program, &x, m0, m1).await;
            let (mut m0, mut m1) = deal(&req);
            full_shares(&program, &mut m0, &mut m1);
            assert_eq!(run_with(&program, &x, m0, m1).await, packed, "seed {seed} n {n} widths {:?}", program.correction_widths());
            // Negative control: the bit below a narrow vector's width matters.
            if let Some(c) = program.share_widths().iter().position(|&w| w > 0 && w < 64) {
                if n > 0 {
                    let w = program.share_widths()[c];
                    let (m0, mut m1) = deal(&req);
                    derived_mut(&program, &mut m1)[c].iter_mut().for_each(|v| *v ^= 1 << (w - 1));
                    caught += usize::from(run_with(&program, &x, m0, m1).await != packed);
                }
            }
        }
    }
    assert!(caught > 50, "one bit below a width changed the outputs in only {caught} runs");
}

/// Corrections computed by the dealer vs value - party-0 share, packed.
#[test]
fn dealer_corrections_match_plain_packed_for_random_programs() {
    for seed in 0..200u64 {
        let program = Arc::new(random_program(seed));
        for n in [0usize, 1, 2, 3, 1023, 1024, 1025, 2049, 5000] {
            let req = Request::program(&program, n);
            let corr = Dealer::new([3; 16], [4; 16]).corrections(&req).unwrap();
            let (m0, m1) = Dealer::new([3; 16], [4; 16]).deal(&req).unwrap();
            let (mut m0, mut m1) = (m0.into_program().unwrap(), m1.into_program().unwrap());
            // party 0's material from its own expander must equal the dealt one
            let mut e0 = Expander::new(Party::Server, [3; 16]).expand(&req, None).unwrap().into_program().unwrap();
            assert_eq!(e0.expanded(), m0.expanded());
            full_shares(&program, &mut m0, &mut m1);
            let m1 = m1.expanded();
            // A low atom travels as z_1 = (R_1 - r_1) / K (its share is r_1 + K z_1).
            let mut derived: Vec<Vec<R>> = Vec::new();
            for (o, st) in m1.opens.iter().zip(program.opens()) {
                if st.shift > 0 {
                    derived.push(ring::sub(&o.low, &o.r).iter().map(|v| v >> (63 - st.shift)).collect());
                    derived.push(o.msb.clone());
                }
            }
            derived.extend(m1.products.iter().cloned());
            let mut want = Vec::new();
            for (v, &w) in derived.iter().zip(program.correction_widths()) {
                let mut p = vec![0; pack::words(n, w)];
                pack::pack(v, w, &mut p);
                want.extend(p);
            }
            assert_eq!(corr, want, "seed {seed} n {n}");
        }
    }
}

/// Material comes deferred (drawn chunk by chunk where the forms use it);
/// expanding it first must not change a bit of the outputs, across the
/// evaluation's 2048-element chunks, odd lengths and either party expanded.
/// Negative control: one changed element of an expanded mask changes the
/// ReLU's outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_material_gives_the_outputs_of_expanded_material() {
    let relu = pann_protocols::PolyRelu::new(pann_protocols::ReluConfig::new(pann_approx::Alpha::new(9).unwrap(), 36)).unwrap();
    let programs: Vec<Arc<Program>> =
        std::iter::once(Arc::clone(&relu.program)).chain((0..40).map(|s| Arc::new(random_program(s)))).collect();
    for (i, program) in programs.iter().enumerate() {
        for n in [1usize, 2, 2047, 2048, 2049, 5001] {
            if i > 0 && n > 2047 && i % 8 != 0 {
                continue;
            }
            let x: Vec<Vec<R>> = (0..program.n_inputs())
                .map(|k| Prg::from_seed([i as u8, k as u8, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]).gen(n))
                .collect();
            let req = Request::program(program, n);
            let (m0, m1) = deal(&req);
            assert!(m0.is_deferred() && m1.is_deferred(), "material comes deferred");
            let deferred = run_with(program, &x, m0, m1).await;
            for expand in [[true, true], [true, false], [false, true]] {
                let (mut m0, mut m1) = deal(&req);
                if expand[0] {
                    m0.expanded();
                }
                if expand[1] {
                    m1.expanded();
                }
                assert_eq!(run_with(program, &x, m0, m1).await, deferred, "program {i} n {n} expanded {expand:?}");
            }
            if i > 0 {
                continue; // a random program's first opening may not reach its outputs
            }
            let (m0, mut m1) = deal(&req);
            let r = &mut m1.expanded().opens[0].r[n - 1];
            *r = r.wrapping_add(0x9e37_79b9_7f4a_7c15);
            assert_ne!(run_with(program, &x, m0, m1).await, deferred, "program {i} n {n}: a changed mask went unnoticed");
        }
    }
}
