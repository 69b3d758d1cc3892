//! Plaintext fixed-point reference: the oracle for tests.
//!
//! It interprets the *same* [`Program`] on clear ring values, step by step:
//! same forms, same scales, same order; an opening with shift `s` is the floor
//! division `floor(v / 2^s)` (arithmetic shift). The secure opening returns
//! `floor(v / 2^s) + e`, `e ∈ {0, 1}` (see [`crate::open`]), so the secure
//! result equals the reference up to that documented noise propagated through
//! later forms (exactly equal for shift 0). Linear layers and pooling are
//! exact in the ring: the reference is the kernel itself.
//!
//! ## Range
//! Every form is also evaluated *exactly*, over the integers ([`Exact`]:
//! i128, arbitrary precision past it), with coefficients, inputs and opened
//! values read as signed (two's complement) ring values, as the fixed-point
//! encoding means them. The ring keeps only the low 64 bits of that exact
//! value, so:
//! - an opening whose exact value lies outside `[-2^62, 2^62]` is counted in
//!   [`RefResult::out_of_range`]: the secure opening is exact only inside
//!   that range ([`crate::open::admissible`]); past it the secure result may
//!   be garbage;
//! - an output whose exact value leaves the ring's signed range
//!   `[-2^63, 2^63)` has wrapped: counted in [`RefResult::wrapped`].
//!
//! The reference still continues with the ring values (what the parties
//! hold), so it keeps mirroring the secure run after a violation, but it says
//! so. Reading the wrapped ring value as an i64 (what this module did before)
//! cannot see a wrap: a wrapped value is uniform-looking and lands back inside
//! `[-2^62, 2^62)` about half of the time.

use pann_mpc_core::ring::R;

use crate::error::{check_len, Result};
use crate::kernels::{ConvSpec, LinearSpec, MatmulSpec};
use crate::program::{Form, Program};

/// The secure opening's admissible range is `[-2^OPEN_LIMIT_BITS, 2^OPEN_LIMIT_BITS]`
/// ([`crate::open::admissible`]).
pub const OPEN_LIMIT_BITS: u32 = 62;

/// The reference's result: outputs plus how many values left their range.
#[derive(Clone, Debug)]
pub struct RefResult {
    /// The ring values of the outputs, per output (what the two parties'
    /// shares would reconstruct to, up to the truncation noise).
    pub outputs: Vec<Vec<R>>,
    /// The opened values (after truncation), per opening.
    pub opened: Vec<Vec<R>>,
    /// Openings (elements x openings) whose exact value lies outside the
    /// admissible range `[-2^62, 2^62)` of the secure opening.
    pub out_of_range: usize,
    /// Outputs (elements x outputs) whose exact value leaves `[-2^63, 2^63)`:
    /// the ring value wrapped.
    pub wrapped: usize,
    /// Per element: whether any of its openings or outputs was counted above.
    pub flagged: Vec<bool>,
}

/// An exact integer: i128 while it fits, sign and magnitude (little-endian
/// u64 limbs) past it. Only what the reference needs: sums of products of
/// signed 64-bit values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exact {
    /// A value that fits an i128.
    Small(i128),
    /// A value past i128, as sign and magnitude (results of arithmetic are
    /// normalised back to `Small` when they fit).
    Big {
        /// Whether the value is negative.
        neg: bool,
        /// The magnitude, little-endian u64 limbs.
        mag: Vec<u64>,
    },
}

impl Exact {
    /// A ring value read as signed (two's complement), as fixed point means it.
    pub fn from_ring(v: R) -> Self {
        Exact::Small(v as i64 as i128)
    }

    /// The low 64 bits (the ring value).
    pub fn to_ring(&self) -> R {
        match self {
            Exact::Small(v) => *v as u64,
            Exact::Big { neg, mag } => {
                let lo = mag.first().copied().unwrap_or(0);
                if *neg {
                    lo.wrapping_neg()
                } else {
                    lo
                }
            }
        }
    }

    /// `Some(v)` when the value fits an i128.
    pub fn to_i128(&self) -> Option<i128> {
        match self {
            Exact::Small(v) => Some(*v),
            Exact::Big { neg, mag } => {
                let n = trimmed(mag);
                if n.len() > 2 {
                    return None;
                }
                let m = n.first().copied().unwrap_or(0) as u128 | (n.get(1).copied().unwrap_or(0) as u128) << 64;
                if *neg {
                    if m <= 1u128 << 127 {
                        Some((m as i128).wrapping_neg())
                    } else {
                        None
                    }
                } else {
                    i128::try_from(m).ok()
                }
            }
        }
    }

    /// Whether `-2^bits <= self < 2^bits` (`bits <= 126`).
    pub fn within(&self, bits: u32) -> bool {
        self.to_i128().is_some_and(|v| (-(1i128 << bits)..(1i128 << bits)).contains(&v))
    }

    /// Whether an opening of this value is exact ([`crate::open::admissible`]).
    pub fn opens_exactly(&self) -> bool {
        self.to_i128().and_then(|v| i64::try_from(v).ok()).is_some_and(crate::open::admissible)
    }

    /// log2 |self| (approximate; -inf for 0).
    pub fn log2_abs(&self) -> f64 {
        match self {
            Exact::Small(v) => (v.unsigned_abs() as f64).log2(),
            Exact::Big { mag, .. } => {
                let n = trimmed(mag);
                let top = n.len().saturating_sub(2);
                let m: f64 = n[top..].iter().rev().fold(0.0, |a, &l| a * 2f64.powi(64) + l as f64);
                m.log2() + 64.0 * top as f64
            }
        }
    }

    fn parts(&self) -> (bool, Vec<u64>) {
        match self {
            Exact::Small(v) => {
                let m = v.unsigned_abs();
                (*v < 0, vec![m as u64, (m >> 64) as u64])
            }
            Exact::Big { neg, mag } => (*neg, mag.clone()),
        }
    }

    fn from_parts(neg: bool, mag: Vec<u64>) -> Self {
        let e = Exact::Big { neg, mag: trimmed(&mag).to_vec() };
        match e.to_i128() {
            Some(v) => Exact::Small(v),
            None => e,
        }
    }

    /// `self * m`.
    pub fn mul_i64(&self, m: i64) -> Self {
        if let Exact::Small(v) = self {
            if let Some(p) = v.checked_mul(m as i128) {
                return Exact::Small(p);
            }
        }
        let (neg, mag) = self.parts();
        let mu = m.unsigned_abs() as u128;
        let mut out = Vec::with_capacity(mag.len() + 1);
        let mut carry = 0u128;
        for &l in &mag {
            let t = l as u128 * mu + carry;
            out.push(t as u64);
            carry = t >> 64;
        }
        out.push(carry as u64);
        Self::from_parts(neg != (m < 0), out)
    }

    /// `self + o`.
    pub fn add(&self, o: &Exact) -> Self {
        if let (Exact::Small(a), Exact::Small(b)) = (self, o) {
            if let Some(s) = a.checked_add(*b) {
                return Exact::Small(s);
            }
        }
        let ((na, ma), (nb, mb)) = (self.parts(), o.parts());
        if na == nb {
            return Self::from_parts(na, mag_add(&ma, &mb));
        }
        match mag_cmp(&ma, &mb) {
            std::cmp::Ordering::Less => Self::from_parts(nb, mag_sub(&mb, &ma)),
            _ => Self::from_parts(na, mag_sub(&ma, &mb)),
        }
    }
}

fn trimmed(m: &[u64]) -> &[u64] {
    let n = m.iter().rposition(|&l| l != 0).map_or(0, |i| i + 1);
    &m[..n]
}

fn mag_cmp(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let (a, b) = (trimmed(a), trimmed(b));
    a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

fn mag_add(a: &[u64], b: &[u64]) -> Vec<u64> {
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n + 1);
    let mut carry = 0u128;
    for i in 0..n {
        let t = a.get(i).copied().unwrap_or(0) as u128 + b.get(i).copied().unwrap_or(0) as u128 + carry;
        out.push(t as u64);
        carry = t >> 64;
    }
    out.push(carry as u64);
    out
}

/// `a - b` for `a >= b`.
fn mag_sub(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0u64;
    for (i, &x) in a.iter().enumerate() {
        let (d, o1) = x.overflowing_sub(b.get(i).copied().unwrap_or(0));
        let (d, o2) = d.overflowing_sub(borrow);
        out.push(d);
        borrow = u64::from(o1 || o2);
    }
    out
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

/// The exact integer value of `form` at element `e` (coefficients, inputs and
/// opened values read as signed 64-bit integers).
pub fn eval_exact(form: &Form, e: usize, inputs: &[&[R]], opened: &[Vec<R>]) -> Exact {
    let mut acc = Exact::from_ring(form.constant);
    for &(i, c) in &form.inputs {
        acc = acc.add(&Exact::from_ring(c).mul_i64(inputs[i][e] as i64));
    }
    for t in &form.terms {
        let mut v = Exact::from_ring(t.coef);
        for &f in &t.factors {
            v = v.mul_i64(opened[f][e] as i64);
        }
        acc = acc.add(&v);
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
    let (mut out_of_range, mut wrapped) = (0, 0);
    let mut flagged = vec![false; n];
    for step in program.opens() {
        let v: Vec<R> = (0..n)
            .map(|e| {
                let v = eval(&step.form, e, inputs, &opened);
                if !eval_exact(&step.form, e, inputs, &opened).opens_exactly() {
                    out_of_range += 1;
                    flagged[e] = true;
                }
                ((v as i64) >> step.shift) as u64
            })
            .collect();
        opened.push(v);
    }
    let outputs = program
        .outputs()
        .iter()
        .map(|f| {
            (0..n)
                .map(|e| {
                    if !eval_exact(f, e, inputs, &opened).within(63) {
                        wrapped += 1;
                        flagged[e] = true;
                    }
                    eval(f, e, inputs, &opened)
                })
                .collect()
        })
        .collect();
    Ok(RefResult { outputs, opened, out_of_range, wrapped, flagged })
}

/// A linear layer in the ring together with its exact (integer) value: the
/// ring output (equal to [`LinearSpec::apply`]) and, per element, whether
/// the exact value left the ring's signed range `[-2^63, 2^63)` (it wrapped).
pub fn linear_checked(spec: &LinearSpec, weights: &[R], input: &[R]) -> Result<(Vec<R>, Vec<bool>)> {
    spec.validate()?;
    check_len("linear weights", spec.weight_len(), weights.len())?;
    check_len("linear input", spec.input_len(), input.len())?;
    let exact: Vec<Exact> = match spec {
        LinearSpec::Conv(c) => conv_exact(c, weights, input),
        LinearSpec::Matmul(m) => matmul_exact(m, input, weights),
    };
    Ok((exact.iter().map(Exact::to_ring).collect(), exact.iter().map(|v| !v.within(63)).collect()))
}

/// Sum of `terms` (weight, input) pairs, exactly: i128 while it fits.
fn dot_exact(terms: impl Iterator<Item = (R, R)> + Clone) -> Exact {
    let mut acc: i128 = 0;
    for (w, x) in terms.clone() {
        match acc.checked_add(w as i64 as i128 * x as i64 as i128) {
            Some(s) => acc = s,
            None => {
                return terms.fold(Exact::Small(0), |a, (w, x)| a.add(&Exact::from_ring(w).mul_i64(x as i64)));
            }
        }
    }
    Exact::Small(acc)
}

fn conv_exact(s: &ConvSpec, weights: &[R], input: &[R]) -> Vec<Exact> {
    use rayon::prelude::*;
    let (ho, wo) = s.out_hw();
    let (cg, og) = (s.c / s.groups, s.o / s.groups);
    let ksz = cg * s.kh * s.kw;
    (0..s.n * s.o)
        .into_par_iter()
        .flat_map_iter(|idx| {
            let (img, oc) = (idx / s.o, idx % s.o);
            let wrow = &weights[oc * ksz..(oc + 1) * ksz];
            // The input planes of this output channel's group.
            let first = img * s.c + (oc / og) * cg;
            let xin = &input[first * s.h * s.w..(first + cg) * s.h * s.w];
            (0..ho * wo).map(move |p| {
                let (oy, ox) = (p / wo, p % wo);
                let taps = (0..ksz).filter_map(move |k| {
                    let (ci, ky, kx) = (k / (s.kh * s.kw), (k / s.kw) % s.kh, k % s.kw);
                    let (iy, ix) = (s.input_row(oy, ky)?, s.input_col(ox, kx)?);
                    Some((wrow[k], xin[(ci * s.h + iy) * s.w + ix]))
                });
                dot_exact(taps)
            })
        })
        .collect()
}

fn matmul_exact(s: &MatmulSpec, x: &[R], w: &[R]) -> Vec<Exact> {
    (0..s.m * s.n)
        .map(|idx| {
            let (i, j) = (idx / s.n, idx % s.n);
            dot_exact(w[j * s.k..(j + 1) * s.k].iter().copied().zip(x[i * s.k..(i + 1) * s.k].iter().copied()))
        })
        .collect()
}

/// Per element, whether `ca * a + cb * b` (signed) leaves the ring's signed range.
pub fn add_wraps(a: &[R], ca: R, b: &[R], cb: R) -> Vec<bool> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| !Exact::from_ring(ca).mul_i64(x as i64).add(&Exact::from_ring(cb).mul_i64(y as i64)).within(63))
        .collect()
}

/// Per output element, whether a sum over windows (a pooling kernel `f`, a
/// linear map with coefficients 0 and 1 of at most 2^31 terms) leaves the
/// ring's signed range. Exact through a split `x = hi 2^32 + lo`: the sums of
/// `lo < 2^32` and of `hi` (|hi| < 2^31) cannot wrap, and recombine exactly.
pub fn sum_wraps(x: &[R], f: impl Fn(&[R]) -> Result<Vec<R>>) -> Result<Vec<bool>> {
    let hi: Vec<R> = x.iter().map(|&v| ((v as i64) >> 32) as u64).collect();
    let lo: Vec<R> = x.iter().map(|&v| v & 0xffff_ffff).collect();
    let (sh, sl) = (f(&hi)?, f(&lo)?);
    Ok(sh.iter().zip(&sl).map(|(&h, &l)| !Exact::Small(((h as i64 as i128) << 32) + l as i128).within(63)).collect())
}

/// How far past its bound a compiled ReLU stays inside the ring.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Headroom {
    /// Largest t > 0 such that every input in [1, t] keeps every opening in
    /// [-2^62, 2^62) and the output in the ring's signed range.
    pub positive: f64,
    /// The same for inputs in [-t, -1].
    pub negative: f64,
    /// What fails first just past the smaller side: `"an opening"` or `"the output"`.
    pub first_failure: &'static str,
}

impl Headroom {
    /// The smaller side: |x / B| up to this stays inside the ring.
    pub fn t_max(&self) -> f64 {
        self.positive.min(self.negative)
    }
}

fn relu_in_range(program: &Program, v: R) -> std::result::Result<(), &'static str> {
    match run_program(program, &[&[v]]) {
        Ok(r) if r.out_of_range > 0 => Err("an opening"),
        Ok(r) if r.wrapped > 0 => Err("the output"),
        Ok(_) => Ok(()),
        Err(_) => Err("the program"),
    }
}

/// The headroom of a one-input ReLU program whose input holds `t = x / B` at
/// `input_frac` fractional bits: scan t = ±(1 + step)^k from 1 until the
/// exact reference sees a value out of range, then bisect on the encoded
/// input for the exact first failure. Inputs in [-1, 1] are the program's
/// domain and are not scanned here.
pub fn headroom(program: &Program, input_frac: u32, step: f64) -> Headroom {
    let scale = (input_frac as f64).exp2();
    let limit = 2f64.powi(63 - input_frac as i32);
    let enc = |t: f64| (t * scale).round() as i64 as u64;
    let side = |sign: i64| -> (f64, &'static str) {
        let signed = |m: u64| if sign > 0 { m } else { (m as i64).wrapping_neg() as u64 };
        let mut good = enc(1.0).min(i64::MAX as u64);
        let mut t = 1.0f64;
        loop {
            t *= 1.0 + step;
            if t >= limit {
                return (good as f64 / scale, "nothing below the ring's limit");
            }
            let v = enc(t);
            if let Err(mut fail) = relu_in_range(program, signed(v)) {
                let (mut lo, mut hi) = (good, v);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    match relu_in_range(program, signed(mid)) {
                        Ok(()) => lo = mid,
                        Err(w) => {
                            hi = mid;
                            fail = w;
                        }
                    }
                }
                return (lo as f64 / scale, fail);
            }
            good = v;
        }
    };
    let ((positive, fp), (negative, fneg)) = (side(1), side(-1));
    Headroom { positive, negative, first_failure: if positive <= negative { fp } else { fneg } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::ProgramBuilder;

    /// What this module did before: read the wrapped ring value as an i64.
    fn old_count(program: &Program, x: &[R]) -> usize {
        let mut opened: Vec<Vec<R>> = Vec::new();
        let mut count = 0;
        for step in program.opens() {
            let v: Vec<R> = (0..x.len())
                .map(|e| {
                    let v = eval(&step.form, e, &[x], &opened) as i64;
                    if !(-(1i64 << 62)..(1i64 << 62)).contains(&v) {
                        count += 1;
                    }
                    (v >> step.shift) as u64
                })
                .collect();
            opened.push(v);
        }
        count
    }

    fn open_times(c: R, shift: u32) -> Program {
        let mut b = ProgramBuilder::new(1);
        let t = b.open(Form::input(0, c), shift).unwrap();
        b.output(Form::mono(1, &[t])).unwrap();
        b.build().unwrap()
    }

    #[test]
    fn an_opening_just_past_the_range_is_counted_and_one_just_inside_is_not() {
        let p = open_times(1, 0);
        let lim = 1i64 << 62;
        for (v, bad) in [(lim, false), (lim + 1, true), (-lim, false), (-lim - 1, true), (0, false), (i64::MIN, true), (i64::MAX, true)] {
            let r = run_program(&p, &[&[v as u64]]).unwrap();
            assert_eq!(r.out_of_range == 1, bad, "value {v}");
            assert_eq!(r.flagged, vec![bad]);
        }
    }

    #[test]
    fn a_wrapped_opening_is_counted_where_the_i64_cast_missed_it() {
        // 4 * 2^62 = 2^64 wraps to 0 in the ring: the old check saw 0, in range.
        let p = open_times(4, 0);
        let x = [1u64 << 62, (1u64 << 62) + 5, 3];
        assert_eq!(old_count(&p, &x), 0, "the old check misses both wraps");
        let r = run_program(&p, &[&x]).unwrap();
        assert_eq!(r.out_of_range, 2);
        assert_eq!(r.flagged, vec![true, true, false]);
        // Negative control: just inside (4 * (2^60 - 1) < 2^62) is not counted.
        let r = run_program(&p, &[&[(1u64 << 60) - 1]]).unwrap();
        assert_eq!((r.out_of_range, r.wrapped), (0, 0));
        // Many wraps are missed by the old check: 3 * x for x spread over [2^62, 2^63).
        let p3 = open_times(3, 0);
        let xs: Vec<R> = (0..1000u64).map(|i| (1u64 << 62) + i * (1u64 << 52)).collect();
        let new = run_program(&p3, &[&xs]).unwrap().out_of_range;
        let old = old_count(&p3, &xs);
        assert_eq!(new, 1000);
        // 3 x wraps to 2^62 + 3 i 2^52 - 2^64, back inside [-2^62, 2^62) for i <= 682.
        assert_eq!(old, 317, "the old check misses 683 of the 1000 wraps");
    }

    #[test]
    fn a_wrapped_output_is_counted() {
        let mut b = ProgramBuilder::new(1);
        let t = b.open(Form::input(0, 1), 0).unwrap();
        b.output(Form::mono(1, &[t, t])).unwrap();
        let p = b.build().unwrap();
        // (2^32)^2 = 2^64 wraps to 0; (2^31)^2 = 2^62 does not.
        let r = run_program(&p, &[&[1u64 << 32, 1u64 << 31, 3_037_000_499, 3_037_000_500]]).unwrap();
        assert_eq!(r.wrapped, 2);
        assert_eq!(r.flagged, vec![true, false, false, true], "floor(sqrt(2^63)) = 3037000499");
        assert_eq!(r.outputs[0][0], 0);
    }

    #[test]
    fn exact_arithmetic_past_i128_cancels_exactly() {
        // x^3 - x^3 with x = 2^60: terms of 2^180, sum 0 (in range); one term alone is not.
        let mut b = ProgramBuilder::new(1);
        let t = b.open(Form::input(0, 1), 0).unwrap();
        let mut f = Form::mono(1, &[t, t, t]);
        f.add_term(1u64.wrapping_neg(), &[t, t, t]);
        f.add_constant(7);
        let q = b.open(f, 0).unwrap();
        b.output(Form::mono(1, &[q])).unwrap();
        let r = run_program(&b.build().unwrap(), &[&[1u64 << 60]]).unwrap();
        assert_eq!((r.out_of_range, r.wrapped), (0, 0));
        assert_eq!(r.outputs[0][0], 7);
        let big = Exact::from_ring(1 << 60).mul_i64(1 << 60).mul_i64(-(1 << 60));
        assert!(matches!(big, Exact::Big { neg: true, .. }));
        assert!((big.log2_abs() - 180.0).abs() < 1e-9);
        assert_eq!(big.to_ring(), 0);
        assert!(!big.within(62));
        let back = big.add(&Exact::from_ring(1 << 60).mul_i64(1 << 60).mul_i64(1 << 60)).add(&Exact::Small(-3));
        assert_eq!(back, Exact::Small(-3));
        assert_eq!(Exact::Small(i128::MAX).add(&Exact::Small(1)).to_i128(), None);
        assert_eq!(Exact::Small(i128::MIN).add(&Exact::Small(0)).to_i128(), Some(i128::MIN));
        assert_eq!(Exact::Small(i128::MIN + 1).add(&Exact::Small(-1)).to_i128(), Some(i128::MIN));
    }

    #[test]
    fn linear_checked_is_the_ring_kernel_and_flags_wraps() {
        let c = ConvSpec::dense(2, 2, 5, 4, 3, 3, 2, 1);
        let spec = LinearSpec::Conv(c);
        let w: Vec<R> = (0..c.weight_len()).map(|i| ((i as i64 * 7919 % 101) - 50) as u64).collect();
        let mut x: Vec<R> = (0..c.input_len()).map(|i| ((i as i64 * 104_729 % 2001) - 1000) as u64).collect();
        let (y, wraps) = linear_checked(&spec, &w, &x).unwrap();
        assert_eq!(y, spec.apply(&w, &x).unwrap());
        assert!(wraps.iter().all(|b| !b), "negative control: small values do not wrap");
        x[7] = 1u64 << 62;
        let (y, wraps) = linear_checked(&spec, &w, &x).unwrap();
        assert_eq!(y, spec.apply(&w, &x).unwrap());
        assert!(wraps.iter().any(|&b| b));
        // Grouped and dilated: the exact evaluation reads the same taps as the ring kernel.
        let g = ConvSpec { dilation: 2, groups: 2, ..ConvSpec::dense(1, 4, 7, 6, 6, 3, 1, 2) };
        let w: Vec<R> = (0..g.weight_len()).map(|i| ((i as i64 * 7919 % 101) - 50) as u64).collect();
        let x: Vec<R> = (0..g.input_len()).map(|i| ((i as i64 * 104_729 % 2001) - 1000) as u64).collect();
        assert_eq!(linear_checked(&LinearSpec::Conv(g), &w, &x).unwrap().0, crate::kernels::conv2d_naive(&g, &w, &x));
        let m = MatmulSpec { m: 2, k: 3, n: 2 };
        let (y, wraps) = linear_checked(&LinearSpec::Matmul(m), &[1, 2, 3, 4, 5, 6], &[1u64 << 62, 1, 1, 1, 1, 1]).unwrap();
        assert_eq!(y, LinearSpec::Matmul(m).apply(&[1, 2, 3, 4, 5, 6], &[1u64 << 62, 1, 1, 1, 1, 1]).unwrap());
        assert_eq!(wraps, vec![false, true, false, false], "2^62 fits, 4 * 2^62 wraps");
    }

    #[test]
    fn add_and_sum_wraps() {
        let h = 1u64 << 62;
        assert_eq!(add_wraps(&[h, h, 5], 1, &[h - 1, h, 7], 1), vec![false, true, false]);
        let pool = |v: &[R]| -> Result<Vec<R>> { Ok(vec![v[0].wrapping_add(v[1]), v[2].wrapping_add(v[3])]) };
        let minus = (-(1i64 << 62)) as u64;
        assert_eq!(sum_wraps(&[h, h - 1, h, h, minus, minus, 1, 2][..4], pool).unwrap(), vec![false, true]);
        assert_eq!(sum_wraps(&[minus, minus, 1, 2], pool).unwrap(), vec![false, false], "-2^63 is inside the signed range");
    }
}
