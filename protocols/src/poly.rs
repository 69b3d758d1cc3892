//! Polynomial ReLU: `ReLU(x) ~ x (1 + p(x / B)) / 2` with `p` a composite
//! minimax approximation of sign (see [`pann_approx::sign_poly`]), compiled into a
//! [`Program`] of openings and free local forms.
//!
//! ## Scale plan
//! Every opened value is at scale `fp` (default 20); coefficients are encoded
//! at `fc` (default 16); every opened form is built at scale `2 fp + fc` (a
//! product of two opened values times a coefficient) and opened with shift
//! `fp + fc`. The component output (normalized, see
//! [`normalized_components`]) is the next component's input. The last output
//! is opened at scale `fq`; the ReLU output `t (1 + q)` is at `fp + fq`.
//!
//! ## Evaluating one odd component `p = sum a_k T_k` of degree d (Chebyshev)
//! With `L = ceil(log2(d+1))` rounds (the first one opens the input `t`):
//! after round j every polynomial of degree < 2^j that is a quadratic form
//! in the values opened so far is free. The builder works top-down: a
//! polynomial `q` needed after round j (h = 2^(j-1)) is split
//! `q = A + T_h B` via `T_k = 2 T_h T_{k-h} - T_{2h-k}` (k > h), with A and B of
//! degree < h. Round j opens `T_h = 2 T_{h/2}^2 - 1` and either each B that is
//! not a multiple of `t`, or the odd `T_k` (3 <= k < h) when those are fewer;
//! everything opened or split at round j must itself be available after
//! round j-1, and so on down to `t`. For degree 15 this opens
//! t | T2 | T3, T4 | T8, B — 6 openings in 4 rounds, the minimum for
//! quadratic forms (a degree-15 term needs openings of degree 8 and 7 in the
//! last round, which need degrees 4 and 3 before).
//!
//! ## The ReLU
//! `t` = the input scaled into [-1, 1] (opened once, reused by the first
//! component *and* by the final product), components in order, the last
//! output opened (`q`), output `t (1 + q)` at scale `fp + fq`, i.e.
//! `ReLU(x) ~ (B / 2) * output`: fold `B / 2` into the next linear layer.
//! Rounds = composite depth + 1.

use std::sync::Arc;

use pann_mpc_core::ring::R;

use crate::error::{ProtocolError, Result};
use crate::program::{Form, Program, ProgramBuilder};
use pann_approx::{Alpha, SignPoly};

/// Encode a real at scale `bits`, rounding to nearest.
pub fn enc(x: f64, bits: u32) -> R {
    (x * (bits as f64).exp2()).round() as i64 as u64
}

/// How the ReLU's input arrives and at which precisions it is evaluated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReluConfig {
    /// Precision of the sign polynomial.
    pub alpha: Alpha,
    /// Fractional bits `fp` of every opened value inside the polynomial
    /// (intermediates lie in [-1, 1]). Input errors are amplified by the
    /// components' derivatives (up to ~d^2 at the domain edges), so this is
    /// the precision that matters: 20 keeps the fixed-point error below the
    /// approximation error up to alpha 14.
    pub value_bits: u32,
    /// Fractional bits `fc` of the Chebyshev coefficients (their rounding is
    /// not amplified). Forms are at scale `2 fp + fc`, which must stay below
    /// 2^62 with the values' magnitude: `2 fp + fc <= 57`.
    pub coef_bits: u32,
    /// Fractional bits `fq` at which the final `p(t)` is opened; the output
    /// `t (1 + p(t))` is at scale `fp + fq`.
    pub q_bits: u32,
    /// Scale of the input shares (e.g. `3f` after a convolution of a `2f`
    /// activation with `f` weights, or `f`).
    pub input_frac: u32,
    /// `Some(1/B)`: multiply the input by the public `1/B` (encoded at `fc`)
    /// before the first opening (needs `input_frac + fc + log2 |x| < 62`).
    /// `None`: the input already represents `x / B` (1/B folded into the
    /// previous layer).
    pub inv_bound: Option<f64>,
    /// How components are evaluated.
    pub schedule: Schedule,
}

/// Evaluation schedule of the components.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Schedule {
    /// Quadratic forms only (any coefficients): depth ceil(log2(d+1)) per
    /// component, 6 openings for degree 15.
    Quadratic,
    /// Components of degree 9..15 use integer-coefficient cubic powers
    /// (T3 = 4t^3 - 3t, T9 = 4 T3^3 - 3 T3, forms at scale 3 fp): 3 rounds and 5
    /// openings for degree 15 (t | T3 | T9, B, V); other degrees quadratic.
    /// Needs 3 fp <= 57 (fp <= 19).
    CubicPowers,
}

impl ReluConfig {
    /// The recommended configuration for `alpha`, input at scale `input_frac`
    /// representing x / B: the cubic-powers schedule (fp 19, but 17 at alpha
    /// 5, below) up to alpha 13, the quadratic schedule (fp 20) at alpha 14,
    /// where fp 19 would cost precision (measured: docs/results/protocols.md).
    ///
    /// Alpha 5 opens its values at fp 17 (and q at fq 18, so the output stays
    /// at scale 35): it is the one alpha where the ring, not the polynomial,
    /// limits how far past its bound an input may go. With fp 19, T9 of the
    /// degree-13 component leaves the opening's range at |x/B| = 1.109 while
    /// the f64 polynomial stays sign-like up to 2.07; fp 17 moves the ring's
    /// limit to 1.458, for a fixed-point error of 0.91 instead of 0.58 units
    /// of B 2^-16 (docs/results/out-of-range.md, section 2).
    pub fn new(alpha: Alpha, input_frac: u32) -> Self {
        match alpha.get() {
            14.. => Self::quadratic(alpha, input_frac),
            5 => Self { value_bits: 17, q_bits: 18, ..Self::cubic(alpha, input_frac) },
            _ => Self::cubic(alpha, input_frac),
        }
    }

    /// Quadratic schedule: fp = 20, fc = 16, fq = 16.
    pub fn quadratic(alpha: Alpha, input_frac: u32) -> Self {
        Self { alpha, value_bits: 20, coef_bits: 16, q_bits: 16, input_frac, inv_bound: None, schedule: Schedule::Quadratic }
    }

    /// The cubic-powers schedule (fewer openings and rounds), fp = 19.
    pub fn cubic(alpha: Alpha, input_frac: u32) -> Self {
        Self { value_bits: 19, schedule: Schedule::CubicPowers, ..Self::quadratic(alpha, input_frac) }
    }

    /// Scale of the output `t (1 + p(t))`.
    pub fn output_frac(&self) -> u32 {
        self.value_bits + self.q_bits
    }
}

/// Summary of a compiled ReLU.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReluInfo {
    /// Precision of the sign polynomial.
    pub alpha: Alpha,
    /// Degrees of the sign polynomial's components, innermost first.
    pub degrees: Vec<usize>,
    /// Sum over components of ceil(log2(d + 1)).
    pub composite_depth: usize,
    /// Openings per element: ring elements each party sends per ReLU.
    pub openings: usize,
    /// Communication rounds of one ReLU (a batch of ReLUs shares them).
    pub rounds: usize,
    /// Distinct products of two or more opened values in the program's forms
    /// (free online; see [`Program::n_nonscalar_products`]).
    pub nonscalar_products: usize,
    /// Derived values per element that party 1 gets from the dealer (offline).
    pub corrections_per_element: usize,
    /// Bits per element that carry them: each derived value packed to the
    /// low bits the online forms see ([`Program::correction_widths`]).
    pub correction_bits_per_element: u64,
}

/// A compiled polynomial ReLU.
#[derive(Clone, Debug)]
pub struct PolyRelu {
    /// The configuration it was compiled for.
    pub config: ReluConfig,
    /// The sign polynomial at `config.alpha`.
    pub poly: SignPoly,
    /// The compiled program: one input (the shares of `x` or `x / B` at
    /// `config.input_frac`), one output `t (1 + p(t))` at `config.output_frac()`.
    pub program: Arc<Program>,
}

impl PolyRelu {
    /// Load the table for `config.alpha` and compile the program. Errors:
    /// precisions that would leave the ring's range ([`ProtocolError::Params`], see [`relu_program`]).
    pub fn new(config: ReluConfig) -> Result<Self> {
        let poly = SignPoly::for_alpha(config.alpha);
        let program = Arc::new(relu_program(&poly, &config)?);
        Ok(Self { config, poly, program })
    }

    /// The compiled program's costs and shape, for reports.
    pub fn info(&self) -> ReluInfo {
        ReluInfo {
            alpha: self.config.alpha,
            degrees: self.poly.degrees(),
            composite_depth: self.poly.degrees().iter().map(|&d| depth(d)).sum(),
            openings: self.program.n_openings(),
            rounds: self.program.n_rounds(),
            nonscalar_products: self.program.n_nonscalar_products(),
            corrections_per_element: self.program.correction_len_per_element(),
            correction_bits_per_element: self.program.correction_bits_per_element(),
        }
    }
}

/// ceil(log2(d + 1)).
pub fn depth(d: usize) -> usize {
    (usize::BITS - d.leading_zeros()) as usize
}

/// Build the ReLU program: one input (the shares of x or x/B), one output
/// `t (1 + p(t))` at scale `fp + fq` ([`ReluConfig::output_frac`]). Refused
/// ([`ProtocolError::Params`]): a zero `fp` or `fc`, precisions whose forms
/// could leave `2^62` (needs `2 fp + fc <= 57`, `fp + fq <= 60`, and
/// `3 fp <= 57` for the cubic schedule), an input scale below the opened
/// scale, a `1/B` that is not positive.
pub fn relu_program(poly: &SignPoly, cfg: &ReluConfig) -> Result<Program> {
    sign_program(poly, cfg, None)
}

/// Build the program of `max(a, b) = b + relu(a - b)` for max pooling: two
/// inputs `a`, `b` at scale `cfg.input_frac`, one output `2 max(a, b) / B`
/// at scale `fp + fq`, like a ReLU's. The difference `(a - b) / B` is opened
/// as the ReLU's input (`cfg.inv_bound` is the public multiplier that turns
/// `a - b`, as encoded, into `(a - b) / B`); `b` is opened in the same round
/// and enters the output with the public coefficient `b_coef` (at `fq`
/// bits): `2 / B` in units of `b`'s encoding. Online: one more opening than
/// the ReLU, no more rounds.
pub fn max_program(poly: &SignPoly, cfg: &ReluConfig, b_coef: f64) -> Result<Program> {
    if cfg.inv_bound.is_none() || !(b_coef.is_finite() && b_coef > 0.0) {
        return Err(ProtocolError::Params(format!("max program: needs a 1/B and a positive coefficient for b, got {b_coef}")));
    }
    sign_program(poly, cfg, Some(b_coef))
}

/// [`relu_program`] (`max_b` None) or [`max_program`] (`max_b` the coefficient of `b`).
fn sign_program(poly: &SignPoly, cfg: &ReluConfig, max_b: Option<f64>) -> Result<Program> {
    let (fp, fc, fq) = (cfg.value_bits, cfg.coef_bits, cfg.q_bits);
    if fp == 0 || fc == 0 || 2 * fp + fc > 57 || fq > 2 * fp + fc || fp + fq > 60 {
        return Err(ProtocolError::Params(format!(
            "precisions fp {fp}, fc {fc}, fq {fq}: need 2 fp + fc <= 57 (forms below 2^62) and fp + fq <= 60"
        )));
    }
    let sc = Scales { fp, fc };
    let mut b = ProgramBuilder::new(if max_b.is_some() { 2 } else { 1 });
    let t = match cfg.inv_bound {
        Some(ib) => {
            if !(ib.is_finite() && ib > 0.0) {
                return Err(ProtocolError::Params(format!("1/B = {ib} must be positive")));
            }
            let s = (cfg.input_frac + fc)
                .checked_sub(fp)
                .ok_or_else(|| ProtocolError::Params(format!("input scale {} + {fc} below the opened scale {fp}", cfg.input_frac)))?;
            let mut f = Form::input(0, enc(ib, fc));
            if max_b.is_some() {
                f.add_input(1, enc(-ib, fc));
            }
            b.open(f, s)?
        }
        None => {
            let s = cfg
                .input_frac
                .checked_sub(fp)
                .ok_or_else(|| ProtocolError::Params(format!("input scale {} below the opened scale {fp}", cfg.input_frac)))?;
            b.open(Form::input(0, 1), s)?
        }
    };
    if cfg.schedule == Schedule::CubicPowers && 3 * fp > 57 {
        return Err(ProtocolError::Params(format!("cubic schedule: 3 fp = {} > 57", 3 * fp)));
    }
    let mut u = t;
    let mut p = Form::new();
    let mut p_bits = 0;
    for (i, c) in normalized_components(poly).iter().enumerate() {
        if i > 0 {
            u = b.open(p, p_bits - fp)?;
        }
        (p, p_bits) = if cfg.schedule == Schedule::CubicPowers && (9..=15).contains(&c.degree) {
            (component_form_cubic15(&mut b, u, &c.chebyshev, fp)?, 3 * fp)
        } else {
            (component_form(&mut b, u, &c.chebyshev, sc)?, 2 * fp + fc)
        };
    }
    if fq > p_bits {
        return Err(ProtocolError::Params(format!("fq {fq} above the form scale {p_bits}")));
    }
    let q = b.open(p, p_bits - fq)?;
    let mut out = Form::mono(1u64 << fq, &[t]);
    out.add_term(1, &[t, q]);
    if let Some(coef) = max_b {
        // b at fp bits, opened with t's round (it depends on the input only).
        let s =
            cfg.input_frac.checked_sub(fp).ok_or_else(|| ProtocolError::Params(format!("input scale {} below {fp}", cfg.input_frac)))?;
        let bo = b.open(Form::input(1, 1), s)?;
        out.add_term(enc(coef, fq), &[bo]);
    }
    b.output(out)?;
    b.build()
}

/// Max |f(t)| over a grid of [-1, 1].
fn max_abs_fn(f: impl Fn(f64) -> f64) -> f64 {
    (0..=4000).map(|i| f(-1.0 + i as f64 / 2000.0).abs()).fold(0.0, f64::max)
}

/// A degree-9..15 odd component with integer-coefficient cubic powers; forms
/// at scale 3 fp (cubic monomials: integer coefficients; quadratic: fp
/// fractional bits; linear: 2 fp; constants: 3 fp). With
/// `p = sum a_k T_k`, `T_{9+j} = 2 T9 T_j - T_{9-j}` gives
/// `p = A + T9 B` (B even, degree <= 6, a quadratic form in t and T3), and
/// `A = a1' t + a3' T3 + T3 V` with `V = (4 A5 - 4 A7) t^2 + 4 A7 t T3`
/// (from `T5 = 4 t^2 T3 - 2 T3 - t`, `T7 = 4 t T3^2 - 4 t^2 T3 + 2 T3 - t`).
/// Openings: t (given) | T3 | T9, B, V.
fn component_form_cubic15(b: &mut ProgramBuilder, t: usize, cheb: &[f64], fp: u32) -> Result<Form> {
    let a = |k: usize| cheb.get(k).copied().unwrap_or(0.0);
    if cheb.len() > 16 {
        return Err(ProtocolError::Params(format!("cubic schedule handles degree <= 15, got {}", cheb.len() - 1)));
    }
    let (c2, c1, c0) = (2 * fp, fp, 0); // coefficient scales of linear, quadratic, cubic terms
    let _ = c0;
    let shift = 2 * fp;
    // T3 = 4 t^3 - 3 t
    let t3 = {
        let mut f = Form::mono(4, &[t, t, t]);
        f.add_term(enc(-3.0, c2), &[t]);
        b.open(f, shift)?
    };
    // B = B0 + B2 T2 + B4 T4 + B6 T6 with T2 = 2t^2 - 1, T4 = 2 t T3 - 2 t^2 + 1, T6 = 2 T3^2 - 1.
    let (b0, b2, b4, b6) = (a(9), 2.0 * a(11), 2.0 * a(13), 2.0 * a(15));
    // A_k after the T9 split: A3 -= a15, A5 -= a13, A7 -= a11.
    let (a1, a3, a5, a7) = (a(1), a(3) - a(15), a(5) - a(13), a(7) - a(11));
    let bt = |x: f64| -> f64 {
        let t3 = 4.0 * x * x * x - 3.0 * x;
        b0 + b2 * (2.0 * x * x - 1.0) + b4 * (2.0 * x * t3 - 2.0 * x * x + 1.0) + b6 * (2.0 * t3 * t3 - 1.0)
    };
    let vt = |x: f64| -> f64 { (4.0 * a5 - 4.0 * a7) * x * x + 4.0 * a7 * x * (4.0 * x * x * x - 3.0 * x) };
    for (name, m) in [("B", max_abs_fn(bt)), ("V", max_abs_fn(vt))] {
        if (3 * fp) as f64 + m.log2() >= 61.0 {
            return Err(ProtocolError::Params(format!("cubic schedule: |{name}| reaches {m:.1}, too large at scale {}", 3 * fp)));
        }
    }
    // T9 = 4 T3^3 - 3 T3
    let t9 = {
        let mut f = Form::mono(4, &[t3, t3, t3]);
        f.add_term(enc(-3.0, c2), &[t3]);
        b.open(f, shift)?
    };
    let bo = {
        let mut f = Form::new();
        f.add_constant(enc(b0 - b2 + b4 - b6, 3 * fp));
        f.add_term(enc(2.0 * b2 - 2.0 * b4, c1), &[t, t]);
        f.add_term(enc(2.0 * b4, c1), &[t, t3]);
        f.add_term(enc(2.0 * b6, c1), &[t3, t3]);
        b.open(f, shift)?
    };
    let vo = {
        let mut f = Form::new();
        f.add_term(enc(4.0 * a5 - 4.0 * a7, c1), &[t, t]);
        f.add_term(enc(4.0 * a7, c1), &[t, t3]);
        b.open(f, shift)?
    };
    let mut p = Form::new();
    p.add_term(enc(a1 - a5 - a7, c2), &[t]);
    p.add_term(enc(a3 - 2.0 * a5 + 2.0 * a7, c2), &[t3]);
    p.add_term(1u64 << c1, &[t3, vo]);
    p.add_term(1u64 << c1, &[t9, bo]);
    Ok(p)
}

/// Fixed-point scales of a component's evaluation.
#[derive(Clone, Copy, Debug)]
struct Scales {
    fp: u32,
    fc: u32,
}

/// Max |q| over [-1, 1] of an odd Chebyshev series (grid estimate).
fn max_abs(q: &[f64]) -> f64 {
    (0..=2000)
        .map(|i| {
            let y = i as f64 / 2000.0;
            let th = y.acos();
            q.iter().enumerate().map(|(k, &a)| a * (k as f64 * th).cos()).sum::<f64>().abs()
        })
        .fold(0.0, f64::max)
}

/// Margin on each intermediate domain, so that fixed-point noise at the edge
/// of a domain stays inside it.
pub const DOMAIN_MARGIN: f64 = 1.0 + 1.0 / 1024.0;

/// A component re-expressed on a normalized domain.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizedComponent {
    /// Degree of the published component (odd).
    pub degree: usize,
    /// Input domain [-m_in, m_in] of the published component.
    pub m_in: f64,
    /// Output normalization (the next component's `m_in`; 1 for the last).
    pub m_out: f64,
    /// Chebyshev coefficients of `y -> p(m_in y) / m_out` on [-1, 1].
    pub chebyshev: Vec<f64>,
}

impl NormalizedComponent {
    /// Clenshaw evaluation of the normalized form.
    pub fn eval(&self, y: f64) -> f64 {
        pann_approx::sign_poly::clenshaw(&self.chebyshev, y)
    }
}

/// The components re-expressed so that every intermediate value lies in
/// [-1, 1].
///
/// Why: the published components do *not* keep intermediates in [-1, 1]:
/// p_1 maps [-1, 1] onto about [-1.97, 1.97] (alpha 14), the domain p_2 was
/// designed for. Chebyshev polynomials explode outside [-1, 1]
/// (T_27(1.97) ~ 1e15), so evaluating the published Chebyshev forms there
/// overflows the ring. Component i is therefore rewritten as
/// `q_i(y) = p_i(m_i y) / m_{i+1}`, with `m_i` the range of the composite so
/// far (times [`DOMAIN_MARGIN`]), so that `p = m_{k+1} q_k ∘ ... ∘ q_1` and every
/// intermediate `y` lies in [-1, 1]. The coefficients come from interpolation
/// at d+1 Chebyshev nodes (exact for degree d), evaluating the published
/// monomial form in f64; its worst cancellation (alpha 14, second component,
/// sum |c_k| m^k ~ 7e9) leaves an error below 2^-20, under the 2^-16 ulp.
pub fn normalized_components(poly: &SignPoly) -> Vec<NormalizedComponent> {
    let grid: Vec<f64> = (0..=100_000).map(|i| i as f64 / 100_000.0).collect();
    let mut ranges = vec![1.0f64];
    let mut vals = grid.clone();
    for c in &poly.components {
        vals = vals.iter().map(|&x| c.eval_monomial(x)).collect();
        ranges.push(vals.iter().fold(0.0f64, |m, v| m.max(v.abs())) * DOMAIN_MARGIN);
    }
    let k = poly.components.len();
    poly.components
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (m_in, m_out) = (ranges[i], if i + 1 == k { 1.0 } else { ranges[i + 1] });
            let n = c.degree + 1;
            let nodes: Vec<f64> = (0..n).map(|j| (std::f64::consts::PI * (j as f64 + 0.5) / n as f64).cos()).collect();
            let g: Vec<f64> = nodes.iter().map(|&y| c.eval_monomial(m_in * y) / m_out).collect();
            let chebyshev: Vec<f64> = (0..n)
                .map(|kk| {
                    if kk % 2 == 0 {
                        return 0.0;
                    }
                    let s: f64 = (0..n).map(|j| g[j] * (kk as f64 * std::f64::consts::PI * (j as f64 + 0.5) / n as f64).cos()).sum();
                    2.0 * s / n as f64
                })
                .collect();
            NormalizedComponent { degree: c.degree, m_in, m_out, chebyshev }
        })
        .collect()
}

#[derive(Clone, Debug)]
enum BRep {
    /// `sum b_k T_k`, with T_1 = t and T_k (k >= 3) opened at this level.
    Combo(Vec<(usize, f64)>),
    /// B is opened at this level; its form is `need[j-1][idx]`.
    Opened(usize),
}

#[derive(Clone, Debug)]
struct Node {
    a: usize,
    b: BRep,
}

const TINY: f64 = 1e-300;

/// Split q (deg < 2h) into A + T_h B, A and B of degree < h.
fn split(q: &[f64], h: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = vec![0.0; h];
    let mut bb = vec![0.0; h];
    for (k, &c) in q.iter().enumerate() {
        if c == 0.0 {
            continue;
        }
        if k < h {
            a[k] += c;
        } else if k == h {
            // Only odd polynomials reach here with h even; kept for completeness.
            bb[0] += c;
        } else {
            bb[k - h] += 2.0 * c;
            a[2 * h - k] -= c;
        }
    }
    (a, bb)
}

/// Emit the openings of one component on opened input `t`; return the form
/// (scale `2 fp + fc`) of `sum a_k T_k(t)`.
fn component_form(b: &mut ProgramBuilder, t: usize, cheb: &[f64], sc: Scales) -> Result<Form> {
    let Scales { fp, fc } = sc;
    let form_bits = 2 * fp + fc;
    let d = cheb.len().saturating_sub(1);
    if cheb.iter().enumerate().any(|(k, &c)| k % 2 == 0 && c != 0.0) {
        return Err(ProtocolError::Params("sign components must be odd".into()));
    }
    let l = depth(d).max(1);
    // need[j]: polynomials needed after (relative) round j, j = 1..=l.
    let mut need: Vec<Vec<Vec<f64>>> = vec![Vec::new(); l + 1];
    let mut nodes: Vec<Vec<Node>> = vec![Vec::new(); l + 1];
    let mut tk_idx: Vec<Vec<(usize, usize)>> = vec![Vec::new(); l + 1]; // (k, idx in need[j-1])
    let mut top = cheb.to_vec();
    top.resize(1 << l, 0.0);
    need[l].push(top);
    for j in (2..=l).rev() {
        let h = 1usize << (j - 1);
        let splits: Vec<(Vec<f64>, Vec<f64>)> = need[j].iter().map(|q| split(q, h)).collect();
        let nontrivial = splits.iter().filter(|(_, bb)| bb.iter().skip(2).any(|c| c.abs() > TINY)).count();
        let n_tk = h / 2 - 1;
        let use_tk = nontrivial > n_tk;
        let mut next: Vec<Vec<f64>> = Vec::new();
        let mut lvl = Vec::new();
        if use_tk {
            for k in (3..h).step_by(2) {
                let mut e = vec![0.0; h];
                e[k] = 1.0;
                tk_idx[j].push((k, next.len()));
                next.push(e);
            }
        }
        for (a, bb) in splits {
            let ai = next.len();
            next.push(a);
            let rep = if use_tk || !bb.iter().skip(2).any(|c| c.abs() > TINY) {
                BRep::Combo(bb.iter().enumerate().filter(|(_, c)| c.abs() > TINY).map(|(k, &c)| (k, c)).collect())
            } else {
                let bi = next.len();
                next.push(bb);
                BRep::Opened(bi)
            };
            lvl.push(Node { a: ai, b: rep });
        }
        nodes[j] = lvl;
        need[j - 1] = next;
    }
    // Bottom-up emission.
    let mut forms: Vec<Vec<Form>> = vec![Vec::new(); l + 1];
    forms[1] = need[1].iter().map(|q| Form::mono(enc(q.get(1).copied().unwrap_or(0.0), fp + fc), &[t])).collect();
    let mut pow = t; // T_{2^(j-2)} opened, starting from T_1 = t
    for j in 2..=l {
        let ph = {
            let mut fm = Form::mono(2u64 << fc, &[pow, pow]);
            fm.add_constant(enc(-1.0, form_bits));
            b.open(fm, fp + fc)?
        };
        let tks: Vec<(usize, usize)> =
            tk_idx[j].iter().map(|&(k, idx)| Ok((k, b.open(forms[j - 1][idx].clone(), fp + fc)?))).collect::<Result<_>>()?;
        let mut level_forms = Vec::new();
        for node in &nodes[j] {
            let mut fm = forms[j - 1][node.a].clone();
            match &node.b {
                BRep::Combo(cs) => {
                    for &(k, c) in cs {
                        let other = if k == 1 {
                            t
                        } else {
                            tks.iter()
                                .find(|(kk, _)| *kk == k)
                                .map(|(_, id)| *id)
                                .ok_or_else(|| ProtocolError::InvalidProgram(format!("T_{k} not opened at level {j}")))?
                        };
                        fm.add_term(enc(c, fc), &[ph, other]);
                    }
                }
                BRep::Opened(idx) => {
                    let bound = max_abs(&need[j - 1][*idx]);
                    if (form_bits as f64) + bound.log2() >= 61.0 {
                        return Err(ProtocolError::Params(format!(
                            "an opened partial polynomial reaches {bound:.1}: too large for forms at scale {form_bits}"
                        )));
                    }
                    let bid = b.open(forms[j - 1][*idx].clone(), fp + fc)?;
                    fm.add_term(1u64 << fc, &[ph, bid]);
                }
            }
            level_forms.push(fm);
        }
        forms[j] = level_forms;
        pow = ph;
    }
    Ok(forms[l].swap_remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The max program on clear values (the fixed-point reference): `2 max(a, b) / B`
    /// within the polynomial's error, with `a`, `b` encoded with a factor `f`
    /// (as after a ReLU) at 36 bits. Negative control: without `b`'s term
    /// the output is the ReLU of the difference, not the maximum.
    #[test]
    fn max_program_computes_the_maximum() {
        let (alpha, bound, f, s) = (Alpha::new(9).unwrap(), 3.0, 0.5, 36u32);
        let poly = SignPoly::for_alpha(alpha);
        let cfg = ReluConfig { inv_bound: Some(1.0 / (bound * f)), ..ReluConfig::new(alpha, s) };
        let max = max_program(&poly, &cfg, 2.0 / (bound * f)).unwrap();
        let relu_of_diff = sign_program(&poly, &cfg, None).unwrap();
        let pairs = [(1.0, -2.0), (-0.5, 0.25), (2.5, 2.4), (-1.0, -1.0), (0.0, 2.9)];
        let code = |v: f64| (v * f * (s as f64).exp2()).round() as i64 as R;
        let (a, b): (Vec<R>, Vec<R>) = pairs.iter().map(|&(x, y)| (code(x), code(y))).unzip();
        let out = crate::reference::run_program(&max, &[&a, &b]).unwrap();
        let decode = |v: R| (v as i64) as f64 / (cfg.output_frac() as f64).exp2() * bound / 2.0;
        for (&(x, y), &o) in pairs.iter().zip(&out.outputs[0]) {
            assert!((decode(o) - x.max(y)).abs() < bound * 2f64.powi(-(alpha.get() as i32)), "max({x}, {y}) = {}", decode(o));
        }
        assert_eq!(max.n_rounds(), relu_of_diff.n_rounds(), "b is opened with the first round");
        // Negative control: the ReLU program on a alone (no b term, one input) misses b.
        let diff: Vec<R> = a.iter().zip(&b).map(|(x, y)| x.wrapping_sub(*y)).collect();
        let relu = crate::reference::run_program(&relu_of_diff, &[&diff]).unwrap();
        assert!(pairs.iter().zip(&relu.outputs[0]).any(|(&(x, y), &o)| (decode(o) - x.max(y)).abs() > 0.1));
    }

    #[test]
    fn normalized_components_equal_the_published_composite() {
        for alpha in Alpha::all() {
            let p = SignPoly::for_alpha(alpha);
            let comps = normalized_components(&p);
            for i in 0..=20_000 {
                let x = -1.0 + i as f64 / 10_000.0;
                let mut y = x;
                for c in &comps {
                    assert!(y.abs() <= 1.0, "alpha {alpha}: intermediate {y} outside [-1, 1]");
                    y = c.eval(y);
                }
                let want = p.eval_monomial(x);
                assert!((y - want).abs() < 1e-7, "alpha {alpha} x {x}: {y} vs {want}");
            }
            for c in &comps {
                let s: f64 = c.chebyshev.iter().map(|a| a.abs()).sum();
                assert!(s < 8.0, "alpha {alpha}: sum |a_k| = {s}");
            }
        }
    }

    #[test]
    fn cubic_schedule_counts() {
        let r = PolyRelu::new(ReluConfig::cubic(Alpha::new(9).unwrap(), 19)).unwrap();
        let i = r.info();
        assert_eq!((i.openings, i.rounds), (11, 7), "{i:?}");
        assert!(PolyRelu::new(ReluConfig { value_bits: 20, ..ReluConfig::cubic(Alpha::new(9).unwrap(), 20) }).is_err());
    }

    #[test]
    fn split_reconstructs() {
        // T_7 = 2 T_4 T_3 - T_1
        let mut q = vec![0.0; 8];
        q[7] = 1.0;
        let (a, bb) = split(&q, 4);
        assert_eq!(a[1], -1.0);
        assert_eq!(bb[3], 2.0);
    }

    #[test]
    fn opening_counts_and_rounds() {
        let expect: [(u32, usize, usize); 5] = [(7, 9, 7), (9, 13, 9), (10, 15, 11), (12, 20, 13), (14, 25, 15)];
        for (alpha, openings, rounds) in expect {
            let r = PolyRelu::new(ReluConfig::quadratic(Alpha::new(alpha).unwrap(), 20)).unwrap();
            let i = r.info();
            assert_eq!(i.rounds, i.composite_depth + 1, "alpha {alpha}: {i:?}");
            assert_eq!((i.openings, i.rounds), (openings, rounds), "alpha {alpha}: {i:?}");
        }
    }
}
