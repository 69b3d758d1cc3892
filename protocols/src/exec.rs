//! Online evaluation of programs on shares (the thin async layer).
//!
//! Per round: every opening of the round is evaluated locally as a form,
//! masked, and all of them are exchanged in **one** `exchange_ring` (one
//! round, one frame each way). Output forms are then evaluated locally.

use pann_mpc_core::ring::{self, R};
use pann_mpc_core::{Channel, Party};
use rayon::prelude::*;

use crate::error::{check_len, ProtocolError, Result};
use crate::material::ProgramMaterial;
use crate::open::{public_part, OFFSET};
use crate::program::{Atom, CompiledForm, Program, Src};

/// An opened value: public part and, for a non-zero shift, the public
/// coefficient `sigma K` of the mask's msb atom (see [`crate::open`]).
pub(crate) struct Opened {
    pub pubv: Vec<R>,
    pub sigk: Vec<R>,
}

/// Evaluate `program` on this party's shares of its inputs (each of length
/// `n`), consuming `mat`. Returns this party's shares of the outputs.
pub async fn run_program(
    chan: &mut Channel,
    party: Party,
    program: &Program,
    inputs: &[&[R]],
    mat: ProgramMaterial,
) -> Result<Vec<Vec<R>>> {
    check_len("program inputs", program.n_inputs(), inputs.len())?;
    let n = mat.n;
    for x in inputs {
        check_len("program input length", n, x.len())?;
    }
    mat.check(program, n)?;
    check_material_shape(program, &mat)?;
    let mut opened: Vec<Option<Opened>> = (0..program.n_openings()).map(|_| None).collect();
    for round in program.rounds() {
        let mut masked = Vec::with_capacity(n * round.len());
        for &j in round {
            let mut v = eval_form(program.compiled_open(j), party, n, inputs, &opened, &mat)?;
            ring::add_assign(&mut v, &mat.opens[j].r);
            if party == Party::Server {
                v.iter_mut().for_each(|x| *x = x.wrapping_add(OFFSET));
            }
            masked.extend_from_slice(&v);
        }
        let theirs = chan.exchange_ring(&masked).await?;
        for (i, &j) in round.iter().enumerate() {
            let shift = program.opens()[j].shift;
            let range = i * n..(i + 1) * n;
            let mut pubv = Vec::with_capacity(n);
            let mut sigk = if shift > 0 { Vec::with_capacity(n) } else { Vec::new() };
            for (a, b) in masked[range.clone()].iter().zip(&theirs[range]) {
                let (p, sk) = public_part(a.wrapping_add(*b), shift);
                pubv.push(p);
                if shift > 0 {
                    sigk.push(sk);
                }
            }
            opened[j] = Some(Opened { pubv, sigk });
        }
    }
    (0..program.n_outputs()).map(|i| eval_form(program.compiled_output(i), party, n, inputs, &opened, &mat)).collect()
}

fn check_material_shape(program: &Program, mat: &ProgramMaterial) -> Result<()> {
    let n = mat.n;
    check_len("material openings", program.n_openings(), mat.opens.len())?;
    check_len("material products", program.products().len(), mat.products.len())?;
    for (o, step) in mat.opens.iter().zip(program.opens()) {
        check_len("material mask", n, o.r.len())?;
        let want = if step.shift > 0 { n } else { 0 };
        check_len("material truncation atom", want, o.low.len())?;
        check_len("material truncation atom", want, o.msb.len())?;
    }
    for p in &mat.products {
        check_len("material product", n, p.len())?;
    }
    Ok(())
}

/// Elements per parallel chunk of a form evaluation.
const PAR_CHUNK: usize = 1 << 13;

/// Evaluate a compiled form: no communication. Parallel (rayon) over chunks
/// of elements.
pub(crate) fn eval_form(
    cf: &CompiledForm,
    party: Party,
    n: usize,
    inputs: &[&[R]],
    opened: &[Option<Opened>],
    mat: &ProgramMaterial,
) -> Result<Vec<R>> {
    // Resolve every slice once (errors here, not inside the parallel loop).
    let get = |j: usize| -> Result<&Opened> {
        opened.get(j).and_then(|o| o.as_ref()).ok_or_else(|| ProtocolError::InvalidProgram(format!("opening {j} used before it is open")))
    };
    struct Plan<'a> {
        coef: R,
        pubs: Vec<&'a [R]>,
        sigk: Vec<&'a [R]>,
        src: Option<&'a [R]>,
    }
    let mut plans = Vec::with_capacity(cf.contribs.len());
    for con in &cf.contribs {
        let src: Option<&[R]> = match con.src {
            Src::Public if party == Party::Client => continue,
            Src::Public => None,
            Src::Atom(j, Atom::Full) => Some(&mat.opens[j].r),
            Src::Atom(j, Atom::Low) => Some(&mat.opens[j].low),
            Src::Atom(j, Atom::Msb) => Some(&mat.opens[j].msb),
            Src::Product(k) => Some(&mat.products[k]),
        };
        let pubs = con.pubs.iter().map(|&p| get(p).map(|o| o.pubv.as_slice())).collect::<Result<Vec<_>>>()?;
        let sigk = con.sigk.iter().map(|&q| get(q).map(|o| o.sigk.as_slice())).collect::<Result<Vec<_>>>()?;
        for v in pubs.iter().chain(&sigk).chain(src.iter()) {
            check_len("opened value or material", n, v.len())?;
        }
        plans.push(Plan { coef: con.coef, pubs, sigk, src });
    }
    let mut out = vec![0u64; n];
    out.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(ci, oc)| {
        let lo = ci * PAR_CHUNK;
        let hi = lo + oc.len();
        if party == Party::Server && cf.constant != 0 {
            oc.iter_mut().for_each(|x| *x = cf.constant);
        }
        for &(i, c) in &cf.inputs {
            ring::add_scaled_assign(oc, c, &inputs[i][lo..hi]);
        }
        let mut tmp = vec![0u64; oc.len()];
        for p in &plans {
            // tmp = coef * prod(pub) * prod(sigmaK) * src, then out += tmp.
            match p.pubs.first() {
                Some(p0) => {
                    tmp.iter_mut().zip(&p0[lo..hi]).for_each(|(t, v)| *t = p.coef.wrapping_mul(*v));
                    for v in &p.pubs[1..] {
                        ring::mul_assign(&mut tmp, &v[lo..hi]);
                    }
                }
                None => tmp.iter_mut().for_each(|t| *t = p.coef),
            }
            for v in &p.sigk {
                ring::mul_assign(&mut tmp, &v[lo..hi]);
            }
            if let Some(v) = p.src {
                ring::mul_assign(&mut tmp, &v[lo..hi]);
            }
            ring::add_assign(oc, &tmp);
        }
    });
    Ok(out)
}
