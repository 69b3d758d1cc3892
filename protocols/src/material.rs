//! Correlated randomness: what each online operation needs, declared from
//! public shapes only, and how one party's material is expanded from a seed.
//!
//! Every operation states a [`Request`]; the dealer (or a future dealer-free
//! source) answers the same sequence of requests, so both sides agree on what
//! each piece of randomness is. Material is handed to the online code *by
//! value*: it is consumed exactly once (ownership forbids reuse), and it carries
//! the fingerprint of the request so that material for another operation is an
//! error, not a wrong result.
//!
//! Seed expansion (the CrypTen trusted-first-party idea): the dealer shares a
//! seed with each party. Party 0 expands *all* of its shares locally; party 1
//! expands its shares of the masks `r` locally and receives only its shares of
//! derived values (the truncation atoms, atom products, conv(A, r)) as
//! *corrections* — the only offline traffic. The order of PRG draws is fixed
//! here and used by both the dealer and the parties.

use std::sync::Arc;

use pann_mpc_core::ring::R;
use pann_mpc_core::{Party, Prg, Seed};

use crate::error::{ProtocolError, Result};
use crate::kernels::LinearSpec;
use crate::open::low_share;
use crate::pack;
use crate::program::Program;
use rayon::prelude::*;

/// What one online operation needs.
#[derive(Clone, Debug)]
pub enum Request {
    /// A program evaluated element-wise on vectors of `n` elements.
    Program {
        /// The (public) program.
        program: Arc<Program>,
        /// Elements per input vector.
        n: usize,
    },
    /// One inference through linear layer `layer` (registered at model setup).
    Linear {
        /// Registration index of the layer (`Dealer::register_linear`, in model order).
        layer: usize,
        /// The layer's shape, batch included (must match its registration).
        spec: LinearSpec,
    },
}

impl Request {
    /// The request for `program` on vectors of `n` elements (shares the `Arc`).
    pub fn program(program: &Arc<Program>, n: usize) -> Self {
        Request::Program { program: Arc::clone(program), n }
    }

    /// Words that party 1 receives from the dealer for this request (its
    /// shares of the derived values, each vector packed to the bits the
    /// online forms use: [`crate::pack`]).
    pub fn correction_len(&self) -> usize {
        match self {
            Request::Program { program, n } => program.correction_words(*n),
            Request::Linear { spec, .. } => spec.output_len(),
        }
    }

    /// Ring elements of one party's material for this request (mask shares,
    /// truncation atoms and products, or the linear layer's `r` and `z`), in
    /// u64 with saturating arithmetic: a saturated count exceeds any memory
    /// cap a caller compares it with. This is what a party holds once the
    /// material is expanded (party 1 receives `correction_len` of it), and
    /// the most it holds: program material is deferred, so in the online
    /// evaluation party 0 holds only its stream and party 1 its corrections.
    /// Memory limits per session are computed from it.
    pub fn material_len(&self) -> u64 {
        match self {
            Request::Program { program, n } => {
                let per = program.n_openings() as u64 + program.correction_len_per_element() as u64;
                per.saturating_mul(*n as u64)
            }
            Request::Linear { spec, .. } => (spec.input_len() as u64).saturating_add(spec.output_len() as u64),
        }
    }

    pub(crate) fn tag(&self) -> u64 {
        match self {
            Request::Program { program, n } => program_tag(program, *n),
            Request::Linear { layer, spec } => linear_tag(*layer, spec),
        }
    }
}

/// One party's shares for one opening.
#[derive(Debug, PartialEq, Eq)]
pub struct OpenShares {
    /// Share of the mask `r`.
    pub r: Vec<R>,
    /// Share of the low atom `r mod 2^(63-s)` of the whole mask `r`: the
    /// mask share plus `K` times what was drawn or sent (empty when the shift
    /// is 0; see [`Program::correction_widths`]).
    pub low: Vec<R>,
    /// Share of the msb atom, bit `63 - s` of `r` (empty when the shift is 0).
    pub msb: Vec<R>,
}

/// One party's material for a program.
///
/// As it comes from an [`Expander`] (or a dealer) it is *deferred*: only
/// the request's PRG stream and, for party 1, the dealer's packed
/// corrections are held, and the online evaluation draws each vector a
/// chunk at a time where a form uses it, so the vectors are never written
/// out whole. [`ProgramMaterial::expanded`] materialises every vector, for
/// tools and tests that inspect or alter them; the values are the same
/// either way.
#[derive(Debug)]
pub struct ProgramMaterial {
    pub(crate) tag: u64,
    n: usize,
    store: Store,
}

/// One party's material for a program, every vector expanded.
#[derive(Debug, PartialEq, Eq)]
pub struct ExpandedShares {
    /// Per opening, in the program's order.
    pub opens: Vec<OpenShares>,
    /// Shares of the atom products, in `Program::products()` order.
    pub products: Vec<Vec<R>>,
}

enum Store {
    Expanded(ExpandedShares),
    // Boxed: the PRG's key schedule is large, expanded vectors are not.
    Deferred(Box<Deferred>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Expanded(e) => f.debug_tuple("Expanded").field(e).finish(),
            Store::Deferred(d) => f.debug_struct("Deferred").field("corrections", &d.corr.as_ref().map(Vec::len)).finish(),
        }
    }
}

/// Where deferred vectors come from: the request's stream, and for party 1
/// the packed corrections (its derived values). (The evaluation that draws
/// them, `exec`, needs feature `net`.)
#[cfg_attr(not(feature = "net"), allow(dead_code))]
struct Deferred {
    program: Arc<Program>,
    prg: Prg,
    corr: Option<Vec<R>>,
    /// Word offset of each derived vector in `corr`.
    offsets: Vec<usize>,
}

/// A vector of a program request, in the stream's layout: `0..m` the
/// openings' mask shares, `m + c` derived vector `c` (in
/// [`Program::correction_widths`] order).
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub(crate) type VectorId = usize;

/// The vector that holds `atom` of opening `j`.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub(crate) fn vector_of_atom(program: &Program, j: usize, atom: crate::program::Atom) -> VectorId {
    use crate::program::Atom;
    let m = program.n_openings();
    let before = program.opens()[..j].iter().filter(|o| o.shift > 0).count();
    match atom {
        Atom::Full => j,
        Atom::Low => m + 2 * before,
        Atom::Msb => m + 2 * before + 1,
    }
}

/// For derived vector `c`, the opening and shift whose low atom it holds, if
/// it is one: that vector is stored as `z_i`, and a party's share of the atom
/// is `r_i + K z_i` ([`Program::correction_widths`]).
pub(crate) fn low_atom(program: &Program, c: usize) -> Option<(usize, u32)> {
    if c % 2 == 1 || c >= 2 * program.n_truncating() {
        return None;
    }
    program.opens().iter().enumerate().filter(|(_, o)| o.shift > 0).nth(c / 2).map(|(j, o)| (j, o.shift))
}

/// The vector that holds atom product `k`.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub(crate) fn vector_of_product(program: &Program, k: usize) -> VectorId {
    program.n_openings() + 2 * program.n_truncating() + k
}

impl ProgramMaterial {
    fn deferred(program: &Arc<Program>, n: usize, tag: u64, prg: Prg, corr: Option<Vec<R>>) -> Self {
        // Only party 1 reads corrections; its length was checked against
        // `correction_words`, which the offsets cannot then exceed.
        let offsets = if corr.is_some() { correction_offsets(program, n) } else { Vec::new() };
        let store = Store::Deferred(Box::new(Deferred { program: Arc::clone(program), prg, corr, offsets }));
        ProgramMaterial { tag, n, store }
    }

    /// Elements per vector: every share vector has this length.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Whether the vectors are still to be drawn (as material comes from an
    /// expander or a dealer), not yet [`ProgramMaterial::expanded`].
    pub fn is_deferred(&self) -> bool {
        matches!(self.store, Store::Deferred(_))
    }

    /// The program deferred material draws its layout from.
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    pub(crate) fn deferred_program(&self) -> Option<&Program> {
        match &self.store {
            Store::Deferred(d) => Some(&d.program),
            Store::Expanded(_) => None,
        }
    }

    /// Check that this material was made for `program` on `n` elements.
    pub fn check(&self, program: &Program, n: usize) -> Result<()> {
        let want = program_tag(program, n);
        if self.tag != want || self.n != n {
            return Err(ProtocolError::MaterialMismatch(format!(
                "program material for {} elements (tag {:x}) used for {} elements (tag {:x})",
                self.n, self.tag, n, want
            )));
        }
        Ok(())
    }

    /// Every vector of this material, expanded now if it was deferred.
    pub fn expanded(&mut self) -> &mut ExpandedShares {
        if let Store::Deferred(d) = &self.store {
            self.store = Store::Expanded(expand_program(&d.prg, &d.program, self.n, d.corr.as_deref()));
        }
        match &mut self.store {
            Store::Expanded(e) => e,
            Store::Deferred(_) => unreachable!("expanded above"),
        }
    }

    /// The expanded vectors, if they are (see [`ProgramMaterial::expanded`]).
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    pub(crate) fn held(&self) -> Option<&ExpandedShares> {
        match &self.store {
            Store::Expanded(e) => Some(e),
            Store::Deferred(_) => None,
        }
    }

    /// Elements `lo..lo + out.len()` of deferred vector `v` (`lo` even: two
    /// elements an AES block), drawn from the stream or unpacked from the
    /// corrections.
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    pub(crate) fn draw(&self, v: VectorId, lo: usize, out: &mut [R]) {
        match &self.store {
            Store::Expanded(_) => unreachable!("expanded material is read in place (ProgramMaterial::held)"),
            Store::Deferred(d) => {
                debug_assert!(lo.is_multiple_of(2), "draws start on an AES block");
                let m = d.program.n_openings();
                match &d.corr {
                    Some(words) if v >= m => {
                        let c = v - m;
                        let w = d.program.correction_widths()[c];
                        pack::unpack_into(&words[d.offsets[c]..d.offsets[c] + pack::words(self.n, w)], w, lo, out);
                    }
                    _ => d.prg.fill_at(program_vector_block(v, self.n) + (lo / 2) as u128, out),
                }
                if let Some((j, s)) = v.checked_sub(m).and_then(|c| low_atom(&d.program, c)) {
                    // R_i = r_i + K z_i: add the mask share, drawn piece by piece.
                    let mut r = [0; 256];
                    for (i, piece) in out.chunks_mut(r.len()).enumerate() {
                        let r = &mut r[..piece.len()];
                        d.prg.fill_at(program_vector_block(j, self.n) + ((lo + i * 256) / 2) as u128, r);
                        piece.iter_mut().zip(r.iter()).for_each(|(z, r)| *z = low_share(*r, *z, s));
                    }
                }
            }
        }
    }
}

/// One party's material for one inference through a linear layer.
#[derive(Debug, PartialEq, Eq)]
pub struct LinearMaterial {
    pub(crate) tag: u64,
    /// Registration index of the layer this material is for.
    pub layer: usize,
    /// Share of the input mask `r`.
    pub r: Vec<R>,
    /// Share of `conv(A, r_1)`, `A` the layer's weight mask, `r_1` party 1's mask share.
    pub z: Vec<R>,
}

/// Material of either kind, as produced by a source.
#[derive(Debug)]
pub enum Material {
    /// For a [`Request::Program`].
    Program(ProgramMaterial),
    /// For a [`Request::Linear`].
    Linear(LinearMaterial),
}

impl Material {
    /// Whether this material was made for `req` (its fingerprint matches).
    pub fn is_for(&self, req: &Request) -> bool {
        let tag = match self {
            Material::Program(p) => p.tag,
            Material::Linear(l) => l.tag,
        };
        tag == req.tag()
    }

    /// The program material inside; linear material is [`ProtocolError::MaterialMismatch`].
    pub fn into_program(self) -> Result<ProgramMaterial> {
        match self {
            Material::Program(m) => Ok(m),
            Material::Linear(_) => Err(ProtocolError::MaterialMismatch("expected program material, got linear".into())),
        }
    }

    /// The linear material inside; program material is [`ProtocolError::MaterialMismatch`].
    pub fn into_linear(self) -> Result<LinearMaterial> {
        match self {
            Material::Linear(m) => Ok(m),
            Material::Program(_) => Err(ProtocolError::MaterialMismatch("expected linear material, got program".into())),
        }
    }
}

pub(crate) fn program_tag(p: &Program, n: usize) -> u64 {
    p.digest() ^ (n as u64).rotate_left(32)
}

pub(crate) fn linear_tag(layer: usize, spec: &LinearSpec) -> u64 {
    0x4c49_4e00 ^ (layer as u64) ^ ((spec.input_len() as u64) << 20) ^ ((spec.output_len() as u64) << 40)
}

impl LinearMaterial {
    /// Check that this material was made for `layer` with `spec`.
    pub fn check(&self, layer: usize, spec: &LinearSpec) -> Result<()> {
        if self.tag != linear_tag(layer, spec) || self.r.len() != spec.input_len() || self.z.len() != spec.output_len() {
            return Err(ProtocolError::MaterialMismatch(format!(
                "linear material for layer {} used for layer {layer} ({spec:?})",
                self.layer
            )));
        }
        Ok(())
    }
}

/// The two PRG streams derived from a party's seed: one for per-request
/// material, one for the weight masks of the model's linear layers (fixed for
/// the life of a model).
pub(crate) fn streams(seed: Seed) -> (Prg, Prg) {
    let mut root = Prg::from_seed(seed);
    (root.fork(), root.fork())
}

/// The party-side expander: derives this party's material from its seed (and,
/// for party 1, the dealer's corrections).
pub struct Expander {
    party: Party,
    requests: Prg,
    masks: Prg,
}

impl Expander {
    /// `party`'s expander from the seed the dealer sent it; it must see the
    /// same sequence of requests (and of weight masks) as the dealer.
    pub fn new(party: Party, seed: Seed) -> Self {
        let (requests, masks) = streams(seed);
        Self { party, requests, masks }
    }

    /// The party whose material this expands.
    pub fn party(&self) -> Party {
        self.party
    }

    /// Party 0: the weight mask `A` of the next registered linear layer
    /// (layers are registered in the same order by the server and the dealer).
    pub fn next_weight_mask(&mut self, len: usize) -> Vec<R> {
        self.masks.fork().gen(len)
    }

    /// Expand the material of `req`. Party 1 must pass exactly
    /// `req.correction_len()` words of corrections; party 0 passes none.
    pub fn expand(&mut self, req: &Request, corrections: Option<Vec<R>>) -> Result<Material> {
        let mut prg = self.requests.fork();
        match (self.party, corrections) {
            (Party::Server, None) => Ok(expand_party0(&mut prg, req)),
            (Party::Client, Some(corr)) => expand_party1(&mut prg, req, corr),
            (Party::Server, Some(_)) => Err(ProtocolError::MaterialMismatch("party 0 receives no corrections".into())),
            (Party::Client, None) => Err(ProtocolError::MaterialMismatch("party 1 needs the dealer's corrections".into())),
        }
    }
}

/// Party 0's material: everything from its PRG, in a fixed order:
/// all mask shares, then (low, msb) of each truncating opening, then products
/// (program); or the mask share, then the conv share (linear).
pub(crate) fn expand_party0(prg: &mut Prg, req: &Request) -> Material {
    assemble(prg, req, None)
}

/// Party 1's material: mask shares from its PRG, the rest unpacked from the
/// corrections (in the order party 0 draws them; a value of width `w` is
/// party 1's share mod `2^w`, which is all the online forms see of it, or
/// for a low atom the `z_1` of its share `r_1 + K z_1`).
pub(crate) fn expand_party1(prg: &mut Prg, req: &Request, corr: Vec<R>) -> Result<Material> {
    if corr.len() != req.correction_len() {
        return Err(ProtocolError::Length { context: "dealer corrections", expected: req.correction_len(), got: corr.len() });
    }
    Ok(assemble(prg, req, Some(corr)))
}

/// The AES block where vector `v` of a program request's stream starts: each
/// vector holds `n` elements and starts on a whole block (two elements a
/// block). The dealer draws party 0's shares at the same places.
pub(crate) fn program_vector_block(v: usize, n: usize) -> u128 {
    v as u128 * n.div_ceil(2) as u128
}

/// The AES block where a linear request's conv share `z` starts, after the
/// input mask share.
pub(crate) fn linear_z_block(spec: &LinearSpec) -> u128 {
    spec.input_len().div_ceil(2) as u128
}

/// `n` elements of `prg`'s stream from AES block `block` on, expanded in
/// parallel pieces.
fn gen_at(prg: &Prg, block: u128, n: usize) -> Vec<R> {
    const PIECE: usize = 1 << 14;
    let mut v = vec![0; n];
    v.par_chunks_mut(PIECE).enumerate().for_each(|(i, piece)| prg.fill_at(block + (i * PIECE / 2) as u128, piece));
    v
}

/// The layout both parties share. A request's stream holds one vector after
/// another, each starting on a whole AES block: for a program on `n`
/// elements, every opening's mask share, then every derived value (each
/// truncating opening's low and msb atoms, then each atom product); for a
/// linear layer, the input mask share, then the conv share. Mask shares
/// always come from the stream; the derived values from it too (party 0) or
/// from the dealer's packed corrections (party 1, `corr`). Program material
/// is deferred (drawn where it is used); linear material is expanded here.
fn assemble(prg: &Prg, req: &Request, corr: Option<Vec<R>>) -> Material {
    let tag = req.tag();
    match req {
        Request::Program { program, n } => Material::Program(ProgramMaterial::deferred(program, *n, tag, prg.clone(), corr)),
        Request::Linear { layer, spec } => {
            let r = gen_at(prg, 0, spec.input_len());
            let z = match corr {
                None => gen_at(prg, linear_z_block(spec), spec.output_len()),
                Some(words) => words,
            };
            Material::Linear(LinearMaterial { tag, layer: *layer, r, z })
        }
    }
}

/// Word offset of each derived vector in party 1's packed corrections.
fn correction_offsets(program: &Program, n: usize) -> Vec<usize> {
    let mut at = 0usize;
    program
        .correction_widths()
        .iter()
        .map(|&w| {
            let here = at;
            at = at.saturating_add(pack::words(n, w));
            here
        })
        .collect()
}

/// Every vector of a program request's material, expanded in parallel
/// (random access into the stream).
fn expand_program(prg: &Prg, program: &Program, n: usize, corr: Option<&[R]>) -> ExpandedShares {
    let m = program.n_openings();
    let masks: Vec<Vec<R>> = (0..m).into_par_iter().map(|j| gen_at(prg, program_vector_block(j, n), n)).collect();
    let widths = program.correction_widths();
    let offsets = correction_offsets(program, n);
    let mut derived: std::vec::IntoIter<Vec<R>> = (0..widths.len())
        .into_par_iter()
        .map(|c| match corr {
            None => gen_at(prg, program_vector_block(m + c, n), n),
            Some(words) => pack::unpacked(&words[offsets[c]..offsets[c] + pack::words(n, widths[c])], widths[c], n),
        })
        .collect::<Vec<_>>()
        .into_iter();
    let mut next = || derived.next().expect("one vector per width");
    let mut opens = Vec::with_capacity(m);
    for (r, step) in masks.into_iter().zip(program.opens()) {
        let (low, msb) = if step.shift > 0 {
            let mut low = next();
            low.iter_mut().zip(&r).for_each(|(z, r)| *z = low_share(*r, *z, step.shift));
            (low, next())
        } else {
            (Vec::new(), Vec::new())
        };
        opens.push(OpenShares { r, low, msb });
    }
    ExpandedShares { opens, products: derived.collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::ConvSpec;
    use crate::poly::{PolyRelu, ReluConfig};

    fn held(m: &mut Material) -> u64 {
        let n = match m {
            Material::Program(p) => {
                let p = p.expanded();
                p.opens.iter().map(|o| o.r.len() + o.low.len() + o.msb.len()).sum::<usize>()
                    + p.products.iter().map(Vec::len).sum::<usize>()
            }
            Material::Linear(l) => l.r.len() + l.z.len(),
        };
        n as u64
    }

    #[test]
    fn material_len_is_what_a_party_holds() {
        let relu = PolyRelu::new(ReluConfig::new(pann_approx::Alpha::new(9).unwrap(), 36)).unwrap();
        let spec = LinearSpec::Conv(ConvSpec::dense(2, 3, 5, 5, 4, 3, 1, 1));
        for req in [Request::program(&relu.program, 7), Request::Linear { layer: 0, spec }] {
            let mut m = Expander::new(Party::Server, [1; 16]).expand(&req, None).unwrap();
            assert_eq!(req.material_len(), held(&mut m));
        }
        // Saturates instead of wrapping.
        let huge = Request::program(&relu.program, usize::MAX);
        assert_eq!(huge.material_len(), u64::MAX);
    }

    /// Every vector drawn chunk by chunk (and from an odd offset) equals the
    /// expanded one, for both parties; the vector ids of masks, atoms and
    /// products are distinct and cover the layout; consecutive vectors'
    /// stream ranges do not overlap for odd lengths.
    #[test]
    fn drawn_vectors_equal_the_expanded_ones() {
        use crate::dealer::Dealer;
        use crate::program::{ops, Atom};
        let relu = PolyRelu::new(ReluConfig::new(pann_approx::Alpha::new(9).unwrap(), 36)).unwrap();
        let programs = [(*relu.program).clone(), ops::product(0, 0), ops::product(16, 16), ops::truncate(62), ops::square(5)];
        for program in programs {
            let program = Arc::new(program);
            let m = program.n_openings();
            let mut ids: Vec<VectorId> = Vec::new();
            for (j, o) in program.opens().iter().enumerate() {
                ids.push(vector_of_atom(&program, j, Atom::Full));
                if o.shift > 0 {
                    ids.extend([vector_of_atom(&program, j, Atom::Low), vector_of_atom(&program, j, Atom::Msb)]);
                }
            }
            ids.extend((0..program.products().len()).map(|k| vector_of_product(&program, k)));
            ids.sort_unstable();
            assert_eq!(ids, (0..m + program.correction_widths().len()).collect::<Vec<_>>());
            for n in [0usize, 1, 2, 3, 2047, 2048, 2049, 5001] {
                assert!(program_vector_block(1, n) * 2 >= n as u128, "vector 0 of {n} runs into vector 1");
                let req = Request::program(&program, n);
                let (a, b) = Dealer::new([7; 16], [8; 16]).deal(&req).unwrap();
                for mat in [a, b] {
                    let mut mat = mat.into_program().unwrap();
                    assert!(mat.is_deferred());
                    let drawn: Vec<Vec<R>> = (0..ids.len())
                        .map(|v| {
                            let mut out = vec![0; n];
                            for (ci, c) in out.chunks_mut(2048).enumerate() {
                                mat.draw(v, ci * 2048, c);
                            }
                            out
                        })
                        .collect();
                    if n > 3 {
                        let mut window = vec![0; n - 3];
                        mat.draw(m, 2, &mut window);
                        assert_eq!(window[..], drawn[m][2..n - 1]);
                        // Negative control: the same window drawn one block early differs.
                        mat.draw(m, 0, &mut window);
                        assert_ne!(window[..], drawn[m][2..n - 1]);
                    }
                    let e = mat.expanded();
                    let mut want: Vec<Vec<R>> = e.opens.iter().map(|o| o.r.clone()).collect();
                    for o in e.opens.iter().filter(|o| !o.low.is_empty()) {
                        want.extend([o.low.clone(), o.msb.clone()]);
                    }
                    want.extend(e.products.iter().cloned());
                    if n > 0 {
                        assert_eq!(drawn.len(), want.len());
                        assert_eq!(drawn, want, "n {n}");
                    }
                }
            }
        }
    }
}
