//! Online evaluation of programs on shares (the thin async layer).
//!
//! Per round: every opening of the round is evaluated locally as a form,
//! turned into its message (its `64 - s` bits that travel, see
//! [`crate::open`]), and all of them are packed into **one** frame (one
//! round, one frame each way). Output forms are then evaluated locally.
//!
//! Local evaluation runs over chunks of elements in parallel. A chunk
//! evaluates all of a round's forms, drawing the deferred material they use
//! ([`ProgramMaterial`]) into reused buffers once, and multiplies each term's
//! factors in one pass.

use std::cell::RefCell;

use pann_mpc_core::ring::{self, R};
use pann_mpc_core::{Channel, Party};
use rayon::prelude::*;

use crate::error::{check_len, ProtocolError, Result};
use crate::material::{vector_of_atom, vector_of_product, ProgramMaterial, VectorId};
use crate::open::{message, message_width, public_of};
use crate::pack;
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
    let n = mat.n();
    for x in inputs {
        check_len("program input length", n, x.len())?;
    }
    mat.check(program, n)?;
    check_material_shape(program, &mat)?;
    let ctx = Ctx { party, n, inputs, mat: &mat, program };
    let mut opened: Vec<Option<Opened>> = (0..program.n_openings()).map(|_| None).collect();
    for round in program.rounds() {
        let forms: Vec<&CompiledForm> = round.iter().map(|&j| program.compiled_open(j)).collect();
        let masked = ctx.eval(&forms, Some(round), &opened)?;
        // One frame per round: each opening's messages packed to their width.
        let widths: Vec<u32> = round.iter().map(|&j| message_width(program.opens()[j].shift)).collect();
        let mut spans = Vec::with_capacity(widths.len());
        let mut at = 0;
        for &w in &widths {
            let end = at + pack::words(n, w);
            spans.push(at..end);
            at = end;
        }
        let mut sent = vec![0; at];
        for (i, (&w, span)) in widths.iter().zip(&spans).enumerate() {
            pack::pack(&masked[i * n..(i + 1) * n], w, &mut sent[span.clone()]);
        }
        let theirs = chan.exchange_ring(&sent).await?;
        drop(sent);
        for (i, &j) in round.iter().enumerate() {
            let shift = program.opens()[j].shift;
            let peer = &theirs[spans[i].clone()];
            let mine = &masked[i * n..(i + 1) * n];
            let mut pubv = Vec::with_capacity(n);
            let mut sigk = if shift > 0 { Vec::with_capacity(n) } else { Vec::new() };
            for (lo, part) in mine.chunks(CHUNK).enumerate().map(|(c, m)| (c * CHUNK, m)) {
                let mut buf = [0; CHUNK];
                let buf = &mut buf[..part.len()];
                pack::unpack_into(peer, widths[i], lo, buf);
                for (a, b) in part.iter().zip(buf.iter()) {
                    let (p, sk) = public_of(*a, *b, shift);
                    pubv.push(p);
                    if shift > 0 {
                        sigk.push(sk);
                    }
                }
            }
            opened[j] = Some(Opened { pubv, sigk });
        }
    }
    let forms: Vec<&CompiledForm> = (0..program.n_outputs()).map(|i| program.compiled_output(i)).collect();
    let out = ctx.eval(&forms, None, &opened)?;
    Ok(match forms.len() {
        1 => vec![out],
        k if n == 0 => vec![Vec::new(); k],
        _ => out.chunks(n).map(<[R]>::to_vec).collect(),
    })
}

fn check_material_shape(program: &Program, mat: &ProgramMaterial) -> Result<()> {
    // Deferred material is drawn in its own program's layout, which must be
    // this program's (the tag is only a fingerprint); expanded vectors,
    // which a caller may have replaced, must have the program's shape.
    let Some(held) = mat.held() else {
        let own = mat.deferred_program().expect("material is either held or deferred");
        let same = std::ptr::eq(own, program)
            || (own.digest() == program.digest()
                && own.products() == program.products()
                && own.correction_widths() == program.correction_widths()
                && own.opens().len() == program.opens().len()
                && own.opens().iter().zip(program.opens()).all(|(a, b)| a.shift == b.shift && a.round == b.round));
        return if same { Ok(()) } else { Err(ProtocolError::MaterialMismatch("deferred material was made for another program".into())) };
    };
    let n = mat.n();
    check_len("material openings", program.n_openings(), held.opens.len())?;
    check_len("material products", program.products().len(), held.products.len())?;
    for (o, step) in held.opens.iter().zip(program.opens()) {
        check_len("material mask", n, o.r.len())?;
        let want = if step.shift > 0 { n } else { 0 };
        check_len("material truncation atom", want, o.low.len())?;
        check_len("material truncation atom", want, o.msb.len())?;
    }
    for p in &held.products {
        check_len("material product", n, p.len())?;
    }
    Ok(())
}

/// Elements per chunk of a round's evaluation: the material vectors a chunk
/// draws (a few dozen of 16 KiB) stay in cache while its forms use them.
const CHUNK: usize = 2048;

/// Factors of a term gathered without allocating (longer terms are collected).
const MAX_FACTORS: usize = 8;

/// `out += coef * prod(factors)`, element by element, in one pass: no
/// intermediate vector is written and read back per factor.
fn accumulate(out: &mut [R], coef: R, factors: &[&[R]]) {
    let n = out.len();
    let f = |i: usize| &factors[i][..n];
    match factors.len() {
        0 => out.iter_mut().for_each(|o| *o = o.wrapping_add(coef)),
        1 => out.iter_mut().zip(f(0)).for_each(|(o, a)| *o = o.wrapping_add(coef.wrapping_mul(*a))),
        2 => {
            for ((o, a), b) in out.iter_mut().zip(f(0)).zip(f(1)) {
                *o = o.wrapping_add(coef.wrapping_mul(*a).wrapping_mul(*b));
            }
        }
        3 => {
            for (((o, a), b), c) in out.iter_mut().zip(f(0)).zip(f(1)).zip(f(2)) {
                *o = o.wrapping_add(coef.wrapping_mul(*a).wrapping_mul(*b).wrapping_mul(*c));
            }
        }
        _ => {
            for i in 0..n {
                let p = factors.iter().fold(coef, |p, v| p.wrapping_mul(v[i]));
                out[i] = out[i].wrapping_add(p);
            }
        }
    }
}

/// A secret factor: a slice of expanded material, or a deferred vector drawn
/// chunk by chunk.
#[derive(Clone, Copy)]
enum Secret<'a> {
    Held(&'a [R]),
    Drawn(VectorId),
}

/// `coef * prod(pubs) * prod(sigk) * src` of one contribution, resolved.
struct Term<'a> {
    coef: R,
    pubs: Vec<&'a [R]>,
    sigk: Vec<&'a [R]>,
    src: Option<Secret<'a>>,
}

/// What every form evaluation of one run shares.
struct Ctx<'a> {
    party: Party,
    n: usize,
    inputs: &'a [&'a [R]],
    mat: &'a ProgramMaterial,
    program: &'a Program,
}

thread_local! {
    /// Chunk buffers (`CHUNK` elements each) kept by each thread between
    /// chunks and rounds, so that drawing into them needs no allocation or
    /// zeroing; at most `SPARE_MAX` are kept.
    static SPARE: RefCell<Vec<Vec<R>>> = const { RefCell::new(Vec::new()) };
}
const SPARE_MAX: usize = 96;

fn take_buffer() -> Vec<R> {
    SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_else(|| vec![0; CHUNK])
}

fn keep_buffers(bufs: impl IntoIterator<Item = Vec<R>>) {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        for b in bufs {
            if s.len() < SPARE_MAX {
                s.push(b);
            }
        }
    });
}

/// The deferred vectors one chunk has drawn so far (a round's forms share
/// atoms: each is drawn once per chunk).
struct Drawn {
    lo: usize,
    len: usize,
    ids: Vec<VectorId>,
    bufs: Vec<Vec<R>>,
}

impl Drawn {
    fn get(&mut self, mat: &ProgramMaterial, v: VectorId) -> &[R] {
        let i = match self.ids.iter().position(|&x| x == v) {
            Some(i) => i,
            None => {
                let mut buf = take_buffer();
                mat.draw(v, self.lo, &mut buf[..self.len]);
                self.ids.push(v);
                self.bufs.push(buf);
                self.bufs.len() - 1
            }
        };
        &self.bufs[i][..self.len]
    }
}

impl<'a> Ctx<'a> {
    /// The secret factor of `src`, or `None` for a public contribution.
    fn secret(&self, src: Src) -> Option<Secret<'a>> {
        let held = self.mat.held();
        Some(match (src, held) {
            (Src::Public, _) => return None,
            (Src::Atom(j, Atom::Full), Some(h)) => Secret::Held(&h.opens[j].r),
            (Src::Atom(j, Atom::Low), Some(h)) => Secret::Held(&h.opens[j].low),
            (Src::Atom(j, Atom::Msb), Some(h)) => Secret::Held(&h.opens[j].msb),
            (Src::Product(k), Some(h)) => Secret::Held(&h.products[k]),
            (Src::Atom(j, a), None) => Secret::Drawn(vector_of_atom(self.program, j, a)),
            (Src::Product(k), None) => Secret::Drawn(vector_of_product(self.program, k)),
        })
    }

    /// Resolve every slice of a compiled form once (errors here, not inside
    /// the parallel loop).
    fn terms(&self, cf: &CompiledForm, opened: &'a [Option<Opened>]) -> Result<Vec<Term<'a>>> {
        let get = |j: usize| -> Result<&'a Opened> {
            opened
                .get(j)
                .and_then(|o| o.as_ref())
                .ok_or_else(|| ProtocolError::InvalidProgram(format!("opening {j} used before it is open")))
        };
        let mut terms = Vec::with_capacity(cf.contribs.len());
        for con in &cf.contribs {
            if con.src == Src::Public && self.party == Party::Client {
                continue;
            }
            let src = self.secret(con.src);
            let pubs = con.pubs.iter().map(|&p| get(p).map(|o| o.pubv.as_slice())).collect::<Result<Vec<_>>>()?;
            let sigk = con.sigk.iter().map(|&q| get(q).map(|o| o.sigk.as_slice())).collect::<Result<Vec<_>>>()?;
            let held = match src {
                Some(Secret::Held(s)) => Some(s),
                _ => None,
            };
            for v in pubs.iter().chain(&sigk).chain(held.iter()) {
                check_len("opened value or material", self.n, v.len())?;
            }
            terms.push(Term { coef: con.coef, pubs, sigk, src });
        }
        Ok(terms)
    }

    /// Evaluate `forms` (no communication) into one vector, form after form
    /// (`forms.len() * n` elements). With `masks`, the forms are openings:
    /// each becomes its opening's message ([`crate::open::message`]: the
    /// share, shifted, plus the mask share; party 0 adds the offset first).
    /// Parallel (rayon) over chunks of elements; a chunk evaluates all the
    /// forms, so a vector drawn for one is reused by the others.
    fn eval(&self, forms: &[&CompiledForm], masks: Option<&[usize]>, opened: &'a [Option<Opened>]) -> Result<Vec<R>> {
        let n = self.n;
        let terms = forms.iter().map(|cf| self.terms(cf, opened)).collect::<Result<Vec<_>>>()?;
        let masks: Option<(Vec<Secret<'a>>, Vec<u32>)> = masks.map(|js| {
            let secrets = js.iter().map(|&j| self.secret(Src::Atom(j, Atom::Full)).expect("a mask is secret")).collect();
            (secrets, js.iter().map(|&j| self.program.opens()[j].shift).collect())
        });
        if let Some((ms, _)) = &masks {
            for m in ms {
                if let Secret::Held(s) = m {
                    check_len("material mask", n, s.len())?;
                }
            }
        }
        let mut out = vec![0u64; forms.len() * n];
        // Chunk ci of every form's output, gathered per chunk.
        let mut chunks: Vec<Vec<&mut [R]>> = (0..n.div_ceil(CHUNK)).map(|_| Vec::with_capacity(forms.len())).collect();
        for form_out in out.chunks_mut(n.max(1)) {
            for (ci, c) in form_out.chunks_mut(CHUNK).enumerate() {
                chunks[ci].push(c);
            }
        }
        chunks.into_par_iter().enumerate().for_each(|(ci, outs)| {
            let lo = ci * CHUNK;
            let len = outs.first().map_or(0, |o| o.len());
            let hi = lo + len;
            let mut drawn = Drawn { lo, len, ids: Vec::new(), bufs: Vec::new() };
            for (f, oc) in outs.into_iter().enumerate() {
                let cf = forms[f];
                if self.party == Party::Server && cf.constant != 0 {
                    oc.fill(cf.constant);
                }
                for &(i, c) in &cf.inputs {
                    ring::add_scaled_assign(oc, c, &self.inputs[i][lo..hi]);
                }
                for t in &terms[f] {
                    let src: Option<&[R]> = match t.src {
                        Some(Secret::Held(v)) => Some(&v[lo..hi]),
                        Some(Secret::Drawn(v)) => Some(drawn.get(self.mat, v)),
                        None => None,
                    };
                    let all = t.pubs.iter().chain(&t.sigk).map(|v| &v[lo..hi]).chain(src);
                    if t.pubs.len() + t.sigk.len() < MAX_FACTORS {
                        let mut factors: [&[R]; MAX_FACTORS] = [&[]; MAX_FACTORS];
                        let mut k = 0;
                        for v in all {
                            factors[k] = v;
                            k += 1;
                        }
                        accumulate(oc, t.coef, &factors[..k]);
                    } else {
                        accumulate(oc, t.coef, &all.collect::<Vec<_>>());
                    }
                }
                if let Some((ms, shifts)) = &masks {
                    let r = match ms[f] {
                        Secret::Held(v) => &v[lo..hi],
                        Secret::Drawn(v) => drawn.get(self.mat, v),
                    };
                    let (s, party0) = (shifts[f], self.party == Party::Server);
                    oc.iter_mut().zip(r).for_each(|(x, r)| *x = message(*x, *r, s, party0));
                }
            }
            keep_buffers(drawn.bufs);
        });
        Ok(out)
    }
}
