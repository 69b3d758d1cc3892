//! Straight-line programs of openings and local polynomial forms.
//!
//! One engine serves every element-wise non-linear operation (truncation,
//! product, square, product with a reused opening, polynomial ReLU): a
//! [`Program`] is a public list of *openings* (each a [`Form`] of earlier values
//! opened with a shift, see [`crate::open`]) and of output forms. A form is a
//! sum of public-coefficient monomials in opened values, plus linear terms in
//! the program's secret-shared inputs and a constant. Because every opened value
//! is `Pub + M` with `M` linear in dealer values, a monomial of opened values
//! expands into public coefficients times products of dealer values ("atoms");
//! the dealer supplies shares of exactly those products, so **evaluating a form
//! costs no communication, whatever its degree**: the online cost of a program
//! is its openings, `64 - s` bits per element and party each (shift `s`),
//! batched by round.
//!
//! The program is public and fixed (it depends on shapes and public constants
//! only), so the dealer derives the same list of atom products from it and
//! generates matching material ([`crate::material`]). Openings are scheduled
//! as soon as possible: an opening's round is one more than the latest round of
//! the opened values it uses.

use std::collections::BTreeMap;

use pann_mpc_core::ring::R;

use crate::error::{ProtocolError, Result};
use crate::open::{k_of, MAX_SHIFT};

/// One term of an opened value's mask `M`: for shift 0, `M = -r` (atom
/// `Full`); otherwise `M = -Low + sigma K Msb` with `Low = r mod 2^(63-s)`
/// and `Msb` = bit `63 - s` of `r` ([`crate::open`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    /// The whole mask `r` (openings with shift 0).
    Full,
    /// `r mod 2^(63-s)`, the mask's bits below the truncated ring's top bit.
    Low,
    /// Bit `63 - s` of `r`: the top bit of the truncated ring (0 or 1).
    Msb,
}

/// A product of atoms of opened values: sorted `(opening, atom)` pairs, with a
/// repeated `Msb` of the same opening collapsed (`Bm^2 = Bm`, it is a bit).
pub type AtomKey = Vec<(usize, Atom)>;

/// `coef * prod(opened[factors])`; factors may repeat (a square).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    /// Public coefficient, mod 2^64 (a fixed-point constant at the scale the form needs).
    pub coef: R,
    /// Ids of opened values (as returned by [`ProgramBuilder::open`]).
    pub factors: Vec<usize>,
}

/// `constant + sum coef_i * input_i + sum terms`, all in Z_2^64.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    /// Public constant (party 0 adds it to its share).
    pub constant: R,
    /// `(i, coef)`: public coefficient times the program's secret-shared input `i`.
    pub inputs: Vec<(usize, R)>,
    /// Monomials in opened values.
    pub terms: Vec<Term>,
}

impl Form {
    /// The zero form.
    pub fn new() -> Self {
        Self::default()
    }

    /// `coef * input_i`
    pub fn input(i: usize, coef: R) -> Self {
        Form { inputs: vec![(i, coef)], ..Default::default() }
    }

    /// `coef * prod(opened[factors])`
    pub fn mono(coef: R, factors: &[usize]) -> Self {
        Form { terms: vec![Term { coef, factors: factors.to_vec() }], ..Default::default() }
    }

    /// `self += coef * input_i`
    pub fn add_input(&mut self, i: usize, coef: R) -> &mut Self {
        self.inputs.push((i, coef));
        self
    }

    /// `self += coef * prod(opened[factors])`
    pub fn add_term(&mut self, coef: R, factors: &[usize]) -> &mut Self {
        self.terms.push(Term { coef, factors: factors.to_vec() });
        self
    }

    /// `self += c` (wrapping)
    pub fn add_constant(&mut self, c: R) -> &mut Self {
        self.constant = self.constant.wrapping_add(c);
        self
    }

    /// `self += c * other`
    pub fn add_scaled(&mut self, c: R, other: &Form) -> &mut Self {
        self.constant = self.constant.wrapping_add(c.wrapping_mul(other.constant));
        for &(i, k) in &other.inputs {
            self.inputs.push((i, c.wrapping_mul(k)));
        }
        for t in &other.terms {
            self.terms.push(Term { coef: c.wrapping_mul(t.coef), factors: t.factors.clone() });
        }
        self
    }

    /// Largest number of factors in a term.
    pub fn degree(&self) -> usize {
        self.terms.iter().map(|t| t.factors.len()).max().unwrap_or(0)
    }
}

/// An opening: the value of `form`, opened with truncation by `shift`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenStep {
    /// The value opened: a form of the inputs and earlier openings.
    pub form: Form,
    /// Truncation in bits (at most [`MAX_SHIFT`]): the opened value is
    /// `floor(form / 2^shift) + e`, `e` in {0, 1}.
    pub shift: u32,
    /// Round (0-based) in which it is opened.
    pub round: usize,
}

/// Where a compiled contribution's secret factor comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Src {
    /// No secret factor: a public value, added by party 0 only.
    Public,
    /// A single atom of an opening (its share is part of the opening material).
    Atom(usize, Atom),
    /// A dealer-supplied product of atoms (index into `Program::products`).
    Product(usize),
}

/// `coef * prod(Pub[pubs]) * prod(sigmaK[sigk]) * src`, per element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Contribution {
    pub coef: R,
    pub pubs: Vec<usize>,
    pub sigk: Vec<usize>,
    pub src: Src,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompiledForm {
    pub constant: R,
    pub inputs: Vec<(usize, R)>,
    pub contribs: Vec<Contribution>,
}

/// A validated, compiled program. Build with [`ProgramBuilder`].
#[derive(Clone, Debug)]
pub struct Program {
    n_inputs: usize,
    opens: Vec<OpenStep>,
    outputs: Vec<Form>,
    products: Vec<AtomKey>,
    rounds: Vec<Vec<usize>>,
    // The online evaluation's compiled forms (used by `exec`, feature `net`).
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    c_opens: Vec<CompiledForm>,
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    c_outputs: Vec<CompiledForm>,
    share_widths: Vec<u32>,
    widths: Vec<u32>,
    digest: u64,
}

/// Incremental construction of a [`Program`].
#[derive(Clone, Debug, Default)]
pub struct ProgramBuilder {
    n_inputs: usize,
    opens: Vec<OpenStep>,
    outputs: Vec<Form>,
}

impl ProgramBuilder {
    /// An empty program over `n_inputs` secret-shared input vectors.
    pub fn new(n_inputs: usize) -> Self {
        Self { n_inputs, ..Default::default() }
    }

    /// Open `form` with truncation by `shift`; returns the opened value's id.
    /// Its round is one more than the latest opened value it uses.
    pub fn open(&mut self, form: Form, shift: u32) -> Result<usize> {
        if shift > MAX_SHIFT {
            return Err(ProtocolError::InvalidProgram(format!("shift {shift} > {MAX_SHIFT}")));
        }
        let round = self.round_of(&form)?;
        self.opens.push(OpenStep { form, shift, round });
        Ok(self.opens.len() - 1)
    }

    /// Round in which a form's value becomes available (0 = from inputs only).
    pub fn round_of(&self, form: &Form) -> Result<usize> {
        self.check_form(form)?;
        Ok(form.terms.iter().flat_map(|t| t.factors.iter()).map(|&f| self.opens[f].round + 1).max().unwrap_or(0))
    }

    /// Add an output form; returns its index among the outputs. A form that
    /// uses a missing input or opening is [`ProtocolError::InvalidProgram`].
    pub fn output(&mut self, form: Form) -> Result<usize> {
        self.check_form(&form)?;
        self.outputs.push(form);
        Ok(self.outputs.len() - 1)
    }

    /// The shift of opening `id` (panics if there is no such opening).
    pub fn shift_of(&self, id: usize) -> u32 {
        self.opens[id].shift
    }

    fn check_form(&self, form: &Form) -> Result<()> {
        for &(i, _) in &form.inputs {
            if i >= self.n_inputs {
                return Err(ProtocolError::InvalidProgram(format!("input {i} of {}", self.n_inputs)));
            }
        }
        for t in &form.terms {
            for &f in &t.factors {
                if f >= self.opens.len() {
                    return Err(ProtocolError::InvalidProgram(format!("opening {f} used before it exists")));
                }
            }
        }
        Ok(())
    }

    /// Compile: schedule the openings by round, derive the atom products the
    /// dealer must supply, and fingerprint the program.
    pub fn build(self) -> Result<Program> {
        Program::compile(self.n_inputs, self.opens, self.outputs)
    }
}

impl Program {
    fn compile(n_inputs: usize, opens: Vec<OpenStep>, outputs: Vec<Form>) -> Result<Program> {
        let nr = opens.iter().map(|o| o.round + 1).max().unwrap_or(0);
        let mut rounds = vec![Vec::new(); nr];
        for (j, o) in opens.iter().enumerate() {
            rounds[o.round].push(j);
        }
        let mut keys: BTreeMap<AtomKey, usize> = BTreeMap::new();
        let shifts: Vec<u32> = opens.iter().map(|o| o.shift).collect();
        let c_opens: Vec<CompiledForm> = opens.iter().map(|o| compile_form(&o.form, &shifts, &mut keys)).collect();
        let c_outputs: Vec<CompiledForm> = outputs.iter().map(|f| compile_form(f, &shifts, &mut keys)).collect();
        // Products in key order, indices remapped.
        let products: Vec<AtomKey> = keys.keys().cloned().collect();
        let remap: BTreeMap<usize, usize> = keys.values().enumerate().map(|(new, &old)| (old, new)).collect();
        let fix = |cf: CompiledForm| CompiledForm {
            contribs: cf
                .contribs
                .into_iter()
                .map(|mut c| {
                    if let Src::Product(i) = c.src {
                        c.src = Src::Product(remap[&i]);
                    }
                    c
                })
                .collect(),
            ..cf
        };
        let c_opens: Vec<CompiledForm> = c_opens.into_iter().map(fix).collect();
        let c_outputs: Vec<CompiledForm> = c_outputs.into_iter().map(fix).collect();
        let share_widths = share_widths(&shifts, products.len(), c_opens.iter().chain(&c_outputs));
        let widths = sent_widths(&shifts, &share_widths);
        let digest = fingerprint(n_inputs, &opens, &outputs);
        Ok(Program { n_inputs, opens, outputs, products, rounds, c_opens, c_outputs, share_widths, widths, digest })
    }

    /// Number of secret-shared input vectors (all of one length `n`).
    pub fn n_inputs(&self) -> usize {
        self.n_inputs
    }

    /// Number of output vectors.
    pub fn n_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// The openings, indexed by opened-value id.
    pub fn opens(&self) -> &[OpenStep] {
        &self.opens
    }

    /// The output forms, in output order.
    pub fn outputs(&self) -> &[Form] {
        &self.outputs
    }

    /// The atom products the dealer must supply, per element.
    pub fn products(&self) -> &[AtomKey] {
        &self.products
    }

    /// Number of openings.
    pub fn n_openings(&self) -> usize {
        self.opens.len()
    }

    /// Ring words each party sends over a run on `n` elements (round frames
    /// excluded): each opening's messages packed to their width.
    pub fn message_words(&self, n: usize) -> usize {
        self.opens.iter().map(|o| crate::pack::words(n, crate::open::message_width(o.shift))).sum()
    }

    /// Number of communication rounds.
    pub fn n_rounds(&self) -> usize {
        self.rounds.len()
    }

    /// Opening ids per round.
    pub fn rounds(&self) -> &[Vec<usize>] {
        &self.rounds
    }

    /// Non-scalar products: terms of degree >= 2 across all forms (distinct
    /// factor multisets).
    pub fn n_nonscalar_products(&self) -> usize {
        let mut set = std::collections::BTreeSet::new();
        for f in self.opens.iter().map(|o| &o.form).chain(self.outputs.iter()) {
            for t in &f.terms {
                if t.factors.len() >= 2 {
                    let mut k = t.factors.clone();
                    k.sort_unstable();
                    set.insert(k);
                }
            }
        }
        set.len()
    }

    /// Number of openings with a non-zero shift (their material carries two
    /// extra derived values).
    pub fn n_truncating(&self) -> usize {
        self.opens.iter().filter(|o| o.shift > 0).count()
    }

    /// Derived values per element that party 1 gets from the dealer (its
    /// shares of each truncating opening's two atoms, then of each atom
    /// product): the vectors of its material that are not drawn from its seed.
    pub fn correction_len_per_element(&self) -> usize {
        2 * self.n_truncating() + self.products.len()
    }

    /// Per derived vector (in [`Program::correction_len_per_element`] order),
    /// how many low bits of a share the program's forms can see: every use
    /// multiplies it by a public factor divisible by `2^(64 - width)` (the
    /// mask's msb always comes with `K = 2^(63-s)`), so the higher bits of a
    /// share do not change any output. 0: the value is never used alone
    /// (only inside products).
    pub fn share_widths(&self) -> &[u32] {
        &self.share_widths
    }

    /// Per derived vector, the bits of party 1's correction that the dealer
    /// sends: the [share width](Program::share_widths), except for a
    /// truncating opening's low atom `R = L mod K`. Its shares are
    /// `R_i = r_i + K z_i`, with `r_i` the party's mask share (from its seed)
    /// and `z_i` drawn (party 0) or sent (party 1, `z_1 = -(r >> (63-s)) - z_0`
    /// mod `2^(s+1)`), so only `share width - (63 - s)` bits of `z_1` matter
    /// ([`crate::material`]).
    pub fn correction_widths(&self) -> &[u32] {
        &self.widths
    }

    /// Correction bits per element: the sum of [`Program::correction_widths`].
    pub fn correction_bits_per_element(&self) -> u64 {
        self.widths.iter().map(|&w| w as u64).sum()
    }

    /// Words party 1 receives for `n` elements: each derived vector packed
    /// to its width ([`crate::pack`]), one after another.
    pub fn correction_words(&self, n: usize) -> usize {
        self.widths.iter().map(|&w| crate::pack::words(n, w)).fold(0usize, usize::saturating_add)
    }

    /// A fingerprint of the program's structure (material is tagged with it).
    pub fn digest(&self) -> u64 {
        self.digest
    }
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    pub(crate) fn compiled_open(&self, j: usize) -> &CompiledForm {
        &self.c_opens[j]
    }
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    pub(crate) fn compiled_output(&self, i: usize) -> &CompiledForm {
        &self.c_outputs[i]
    }
}

fn atoms_of(shift: u32) -> &'static [Atom] {
    if shift == 0 {
        &[Atom::Full]
    } else {
        &[Atom::Low, Atom::Msb]
    }
}

/// Expand every term over subsets of its factors and atom choices; merge equal
/// contributions; drop those whose public coefficient is identically zero
/// (products of `K`s that vanish mod 2^64).
fn compile_form(form: &Form, shifts: &[u32], keys: &mut BTreeMap<AtomKey, usize>) -> CompiledForm {
    let mut merged: BTreeMap<(Vec<usize>, Vec<usize>, Src), R> = BTreeMap::new();
    for t in &form.terms {
        let k = t.factors.len();
        for subset in 0u32..(1 << k) {
            let pubs: Vec<usize> = (0..k).filter(|i| subset & (1 << i) == 0).map(|i| t.factors[i]).collect();
            let secret: Vec<usize> = (0..k).filter(|i| subset & (1 << i) != 0).map(|i| t.factors[i]).collect();
            // Enumerate atom choices for the secret factors.
            let mut choices: Vec<Vec<(usize, Atom)>> = vec![Vec::new()];
            for &f in &secret {
                let mut next = Vec::new();
                for c in &choices {
                    for &a in atoms_of(shifts[f]) {
                        let mut c2 = c.clone();
                        c2.push((f, a));
                        next.push(c2);
                    }
                }
                choices = next;
            }
            for choice in choices {
                // Static coefficient: -1 per Full/Low; Msb contributes sigma K (per element).
                let mut coef = t.coef;
                let mut kprod: R = 1;
                let mut sigk = Vec::new();
                for &(f, a) in &choice {
                    match a {
                        Atom::Full | Atom::Low => coef = coef.wrapping_neg(),
                        Atom::Msb => {
                            kprod = kprod.wrapping_mul(k_of(shifts[f]));
                            sigk.push(f);
                        }
                    }
                }
                if coef.wrapping_mul(kprod) == 0 {
                    continue;
                }
                let mut key: AtomKey = choice.clone();
                key.sort_unstable();
                key.dedup_by(|a, b| a == b && a.1 == Atom::Msb);
                let src = match key.len() {
                    0 => Src::Public,
                    1 => Src::Atom(key[0].0, key[0].1),
                    _ => {
                        let n = keys.len();
                        Src::Product(*keys.entry(key).or_insert(n))
                    }
                };
                let mut pubs = pubs.clone();
                pubs.sort_unstable();
                sigk.sort_unstable();
                let e = merged.entry((pubs, sigk, src)).or_insert(0);
                *e = e.wrapping_add(coef);
            }
        }
    }
    let contribs =
        merged.into_iter().filter(|(_, c)| *c != 0).map(|((pubs, sigk, src), coef)| Contribution { coef, pubs, sigk, src }).collect();
    CompiledForm { constant: form.constant, inputs: form.inputs.clone(), contribs }
}

/// The width of each derived vector's shares (see [`Program::share_widths`]):
/// 64 minus the smallest 2-adic valuation of a public factor it is
/// multiplied by, over all compiled contributions that use it.
fn share_widths<'a>(shifts: &[u32], n_products: usize, forms: impl Iterator<Item = &'a CompiledForm>) -> Vec<u32> {
    let mut slot = vec![usize::MAX; shifts.len()];
    let mut n_atoms = 0;
    for (j, &s) in shifts.iter().enumerate() {
        if s > 0 {
            slot[j] = n_atoms;
            n_atoms += 2;
        }
    }
    let mut widths = vec![0u32; n_atoms + n_products];
    for c in forms.flat_map(|f| &f.contribs) {
        let index = match c.src {
            Src::Atom(j, Atom::Low) => slot[j],
            Src::Atom(j, Atom::Msb) => slot[j] + 1,
            Src::Product(k) => n_atoms + k,
            Src::Atom(_, Atom::Full) | Src::Public => continue,
        };
        let zeros = c.coef.trailing_zeros() + c.sigk.iter().map(|&f| 63 - shifts[f]).sum::<u32>();
        widths[index] = widths[index].max(64u32.saturating_sub(zeros));
    }
    widths
}

/// The bits sent per derived vector ([`Program::correction_widths`]): a low
/// atom's `z_1` is multiplied by `K = 2^(63-s)` on top of its share's factors.
fn sent_widths(shifts: &[u32], share_widths: &[u32]) -> Vec<u32> {
    let mut widths = share_widths.to_vec();
    for (t, &s) in shifts.iter().filter(|&&s| s > 0).enumerate() {
        widths[2 * t] = widths[2 * t].saturating_sub(63 - s);
    }
    widths
}

/// FNV-1a over a canonical description of the program.
fn fingerprint(n_inputs: usize, opens: &[OpenStep], outputs: &[Form]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut put = |x: u64| {
        for b in x.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let form = |f: &Form, put: &mut dyn FnMut(u64)| {
        put(f.constant);
        put(f.inputs.len() as u64);
        for &(i, c) in &f.inputs {
            put(i as u64);
            put(c);
        }
        put(f.terms.len() as u64);
        for t in &f.terms {
            put(t.coef);
            put(t.factors.len() as u64);
            for &x in &t.factors {
                put(x as u64);
            }
        }
    };
    put(n_inputs as u64);
    put(opens.len() as u64);
    for o in opens {
        put(o.shift as u64);
        form(&o.form, &mut put);
    }
    put(outputs.len() as u64);
    for f in outputs {
        form(f, &mut put);
    }
    h
}

/// Common element-wise programs.
pub mod ops {
    use super::*;

    /// Truncation: shares of `floor(x / 2^s) + {0, 1}` (one opening).
    pub fn truncate(s: u32) -> Program {
        let mut b = ProgramBuilder::new(1);
        let x = b.open(Form::input(0, 1), s).expect("valid");
        b.output(Form::mono(1, &[x])).expect("valid");
        b.build().expect("valid")
    }

    /// Element-wise product `x * y`, each operand opened with its own shift
    /// (truncation fused): two openings, one round.
    pub fn product(sx: u32, sy: u32) -> Program {
        let mut b = ProgramBuilder::new(2);
        let x = b.open(Form::input(0, 1), sx).expect("valid");
        let y = b.open(Form::input(1, 1), sy).expect("valid");
        b.output(Form::mono(1, &[x, y])).expect("valid");
        b.build().expect("valid")
    }

    /// Square `x^2`: one opening.
    pub fn square(s: u32) -> Program {
        let mut b = ProgramBuilder::new(1);
        let x = b.open(Form::input(0, 1), s).expect("valid");
        b.output(Form::mono(1, &[x, x])).expect("valid");
        b.build().expect("valid")
    }

    /// `x * y_1, ..., x * y_k`: x is opened once and reused with every partner
    /// (k + 1 openings, one round).
    pub fn product_many(k: usize, sx: u32, sy: u32) -> Program {
        let mut b = ProgramBuilder::new(k + 1);
        let x = b.open(Form::input(0, 1), sx).expect("valid");
        let ys: Vec<usize> = (0..k).map(|i| b.open(Form::input(i + 1, 1), sy).expect("valid")).collect();
        for y in ys {
            b.output(Form::mono(1, &[x, y])).expect("valid");
        }
        b.build().expect("valid")
    }
}
