//! Plaintext fixed-point reference: the oracle for tests.
//!
//! It interprets the *same* [`Program`] on clear ring values, step by step:
//! same forms, same scales, same order; an opening with shift `s` is the floor
//! division `floor(v / 2^s)` (arithmetic shift). The secure opening returns
//! `floor(v / 2^s) + e`, `e ∈ {0, 1}` (see [`crate::open`]), so the secure
//! result equals the reference up to that documented noise propagated through
//! later forms (exactly equal for shift 0). Linear layers and pooling are
//! exact in the ring: the reference is the kernel itself.

use pann_mpc_core::ring::R;

use crate::error::{check_len, Result};
use crate::program::{Form, Program};

/// The reference's result: outputs plus how many opened values violated the
/// admissible range |v| < 2^62 (which the secure opening requires).
#[derive(Clone, Debug)]
pub struct RefResult {
    pub outputs: Vec<Vec<R>>,
    /// The opened values (after truncation), per opening.
    pub opened: Vec<Vec<R>>,
    pub out_of_range: usize,
}

fn eval(form: &Form, e: usize, inputs: &[&[R]], opened: &[Vec<R>]) -> R {
    let mut acc = form.constant;
    for &(i, c) in &form.inputs {
        acc = acc.wrapping_add(c.wrapping_mul(inputs[i][e]));
    }
    for t in &form.terms {
        let mut v = t.coef;
        for &f in &t.factors {
            v = v.wrapping_mul(opened[f][e]);
        }
        acc = acc.wrapping_add(v);
    }
    acc
}

/// Evaluate `program` on clear inputs (each of length `n`).
pub fn run_program(program: &Program, inputs: &[&[R]]) -> Result<RefResult> {
    check_len("reference inputs", program.n_inputs(), inputs.len())?;
    let n = inputs.first().map_or(0, |x| x.len());
    for x in inputs {
        check_len("reference input length", n, x.len())?;
    }
    let mut opened: Vec<Vec<R>> = Vec::with_capacity(program.n_openings());
    let mut out_of_range = 0;
    for step in program.opens() {
        let v: Vec<R> = (0..n)
            .map(|e| {
                let v = eval(&step.form, e, inputs, &opened) as i64;
                if !(-(1i64 << 62)..(1i64 << 62)).contains(&v) {
                    out_of_range += 1;
                }
                (v >> step.shift) as u64
            })
            .collect();
        opened.push(v);
    }
    let outputs = program
        .outputs()
        .iter()
        .map(|f| (0..n).map(|e| eval(f, e, inputs, &opened)).collect())
        .collect();
    Ok(RefResult {
        outputs,
        opened,
        out_of_range,
    })
}
