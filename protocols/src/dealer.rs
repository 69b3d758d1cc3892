//! The dealer (a trusted third party that sees no inputs, weights or outputs)
//! and the sources through which parties obtain material.
//!
//! * [`Dealer`]: holds both parties' seeds and the weight masks `A` of the
//!   model's linear layers. In process it produces both parties' material
//!   directly ([`Dealer::deal`], for tests and single-process demos); as a
//!   service it produces only party 1's corrections ([`serve`]).
//! * [`MaterialSource`]: what online code calls to obtain material for a
//!   request, ignorant of where it came from. [`DealerLink`] expands from the
//!   seed and (party 1) receives corrections over a channel in
//!   `Phase::Offline`; [`Prepared`] hands out material made beforehand.
//!
//! Security: semi-honest, the dealer colludes with neither party. Party 1's
//! corrections are its shares of derived values, masked by party 0's
//! pseudo-random shares, which party 1 does not know.

use std::collections::VecDeque;
use std::future::Future;

use pann_mpc_core::channel::Tag;
use pann_mpc_core::ring::{self, R};
use pann_mpc_core::{Channel, CoreError, Party, Phase, Prg, Seed};

use crate::error::{check_len, ProtocolError, Result};
use crate::kernels::LinearSpec;
use crate::material::{expand_party0, expand_party1, linear_z_block, program_vector_block, streams, Expander, Material, Request};
use crate::open::{low_z, mask_atoms};
use crate::pack;
use crate::program::{Atom, Program};
use rayon::prelude::*;

/// Largest number of ring elements per correction frame (8 MiB).
pub const CHUNK: usize = 1 << 20;

/// The dealer: both seeds, the model's weight masks.
pub struct Dealer {
    req0: Prg,
    req1: Prg,
    masks0: Prg,
    layers: Vec<(LinearSpec, Vec<R>)>,
}

impl Dealer {
    /// The dealer for a session whose parties hold `seed0` (the server) and
    /// `seed1` (the client); no linear layer registered yet.
    pub fn new(seed0: Seed, seed1: Seed) -> Self {
        let (req0, masks0) = streams(seed0);
        let (req1, _) = streams(seed1);
        Self { req0, req1, masks0, layers: Vec::new() }
    }

    /// Register the next linear layer of the model: derive its weight mask `A`
    /// (party 0 derives the same with [`Expander::next_weight_mask`]). Returns
    /// the layer id used in requests.
    pub fn register_linear(&mut self, spec: LinearSpec) -> Result<usize> {
        spec.validate()?;
        let a = self.masks0.fork().gen(spec.weight_len());
        self.layers.push((spec, a));
        Ok(self.layers.len() - 1)
    }

    /// Party 1's corrections for `req` (advances the request streams).
    pub fn corrections(&mut self, req: &Request) -> Result<Vec<R>> {
        let (prg0, prg1) = (self.req0.fork(), self.req1.fork());
        self.corrections_from(&prg0, &prg1, req)
    }

    /// Both parties' material for `req` (in-process dealer).
    pub fn deal(&mut self, req: &Request) -> Result<(Material, Material)> {
        let (prg0, prg1) = (self.req0.fork(), self.req1.fork());
        let corr = self.corrections_from(&prg0, &prg1, req)?;
        Ok((expand_party0(&mut prg0.clone(), req), expand_party1(&mut prg1.clone(), req, corr)?))
    }

    /// Party 1's corrections, from the two parties' request streams at the
    /// start of `req`. Party 0's material is never built whole: each of its
    /// shares is drawn where it is needed (random access into its stream).
    fn corrections_from(&self, prg0: &Prg, prg1: &Prg, req: &Request) -> Result<Vec<R>> {
        match req {
            Request::Program { program, n } => Ok(program_corrections(prg0, prg1, program, *n)),
            Request::Linear { layer, spec } => {
                let (lspec, a) = self
                    .layers
                    .get(*layer)
                    .ok_or_else(|| ProtocolError::MaterialMismatch(format!("linear layer {layer} is not registered")))?;
                if lspec != spec {
                    return Err(ProtocolError::MaterialMismatch(format!("layer {layer} registered as {lspec:?}, requested as {spec:?}")));
                }
                // Party 0's stream: its mask share r (input_len), then z.
                let r1 = prg1.clone().gen(spec.input_len());
                let mut z = spec.apply(a, &r1)?;
                let mut z0 = vec![0; spec.output_len()];
                prg0.fill_at(linear_z_block(spec), &mut z0);
                ring::sub_assign(&mut z, &z0);
                Ok(z)
            }
        }
    }
}

/// Elements per block of a program's corrections: the block's masks, atoms
/// and products stay in the core's cache (about 300 KiB at alpha 9).
const BLOCK: usize = 1024;

/// Party 1's corrections for `program` on `n` elements: its shares of every
/// truncating opening's atoms (for the low atom, the `z_1` of its share
/// `r_1 + K z_1`; then the msb), then of every atom product, each a
/// vector of `n` packed to its width ([`Program::correction_widths`], module
/// [`crate::pack`]), in the order [`crate::material`] assembles them.
/// Computed in independent blocks of elements, in parallel; both parties'
/// shares are drawn at their positions in the request streams (layout of
/// `material::assemble`: party 0 draws the masks, then the atoms, then the
/// products, one vector of `n` after another; party 1 draws only the masks).
fn program_corrections(prg0: &Prg, prg1: &Prg, program: &Program, n: usize) -> Vec<R> {
    let m = program.n_openings();
    let truncating: Vec<(usize, u32)> =
        program.opens().iter().enumerate().filter(|(_, o)| o.shift > 0).map(|(j, o)| (j, o.shift)).collect();
    let mut slot = vec![usize::MAX; m];
    for (t, &(j, _)) in truncating.iter().enumerate() {
        slot[j] = t;
    }
    let n_atoms = 2 * truncating.len();
    let widths = program.correction_widths();
    let mut out = vec![0; program.correction_words(n)];
    if n == 0 {
        return out;
    }
    // Each block of BLOCK values of width w packs into exactly 16 w words.
    let n_blocks = n.div_ceil(BLOCK);
    let mut blocks: Vec<Vec<&mut [R]>> = (0..n_blocks).map(|_| Vec::new()).collect();
    let mut rest = out.as_mut_slice();
    for &w in widths {
        let (vector, tail) = rest.split_at_mut(pack::words(n, w));
        rest = tail;
        let mut pieces = vector.chunks_mut((16 * w as usize).max(1));
        for block in blocks.iter_mut() {
            block.push(if w == 0 { &mut [] } else { pieces.next().expect("a piece per block") });
        }
    }
    // Both streams as `material::assemble` lays them out; BLOCK is even, so a
    // block of elements starts on a whole AES block.
    blocks.into_par_iter().enumerate().for_each(|(b, mut outs)| {
        let lo = b * BLOCK;
        let len = BLOCK.min(n - lo);
        let at = |v: usize| program_vector_block(v, n) + (lo / 2) as u128;
        // Full masks r = r0 + r1 of every opening.
        let mut rs = vec![0; m * len];
        let mut share = vec![0; len];
        for (j, r) in rs.chunks_mut(len).enumerate() {
            prg0.fill_at(at(j), r);
            prg1.fill_at(at(j), &mut share);
            ring::add_assign(r, &share);
        }
        let mut atoms = vec![0; n_atoms * len];
        for (t, &(j, s)) in truncating.iter().enumerate() {
            let (low, msb) = atoms[2 * t * len..(2 * t + 2) * len].split_at_mut(len);
            for (e, &r) in rs[j * len..(j + 1) * len].iter().enumerate() {
                (low[e], msb[e]) = mask_atoms(r, s);
            }
        }
        let atom = |j: usize, a: Atom| -> &[R] {
            match a {
                Atom::Full => &rs[j * len..(j + 1) * len],
                Atom::Low => &atoms[2 * slot[j] * len..(2 * slot[j] + 1) * len],
                Atom::Msb => &atoms[(2 * slot[j] + 1) * len..(2 * slot[j] + 2) * len],
            }
        };
        // Corrections: value - party 0's share (drawn in place), packed.
        let mut value = vec![0; len];
        let mut share0 = vec![0; len];
        for (c, (o, &w)) in outs.iter_mut().zip(widths).enumerate() {
            if w == 0 {
                continue;
            }
            if c < n_atoms && c % 2 == 0 {
                // A low atom travels as z: party 1's is z_1 = z - z_0.
                let (j, s) = truncating[c / 2];
                for (v, &r) in value.iter_mut().zip(&rs[j * len..(j + 1) * len]) {
                    *v = low_z(r, s);
                }
            } else if c < n_atoms {
                value.copy_from_slice(&atoms[c * len..(c + 1) * len]);
            } else {
                let key = &program.products()[c - n_atoms];
                value.copy_from_slice(atom(key[0].0, key[0].1));
                for &(j, a) in &key[1..] {
                    ring::mul_assign(&mut value, atom(j, a));
                }
            }
            prg0.fill_at(at(m + c), &mut share0);
            ring::sub_assign(&mut value, &share0);
            pack::pack(&value, w, o);
        }
    });
    out
}

/// Send party 1's corrections for each request over `to_client`, metered as
/// offline traffic (the dealer as a service).
pub async fn serve(dealer: &mut Dealer, to_client: &mut Channel, reqs: &[Request]) -> Result<()> {
    for req in reqs {
        let corr = dealer.corrections(req)?;
        send_corrections(to_client, req, &corr).await?;
    }
    Ok(())
}

/// Send party 1's corrections for one request (made now by [`serve`], or
/// beforehand), metered as offline traffic.
pub async fn send_corrections(to_client: &mut Channel, req: &Request, corr: &[R]) -> Result<()> {
    check_len("dealer corrections", req.correction_len(), corr.len())?;
    to_client.set_phase(Phase::Offline);
    // The request's fingerprint first: a party that asks for something
    // else (out of order, other shapes) gets an error, not wrong material.
    to_client.send_ring(&[req.tag()])?;
    for chunk in corr.chunks(CHUNK) {
        to_client.send_ring(chunk)?;
    }
    to_client.flush().await?;
    Ok(())
}

/// Like [`serve`], and also send each request's fingerprint to party 0, so
/// that a server whose request sequence diverges from the dealer's gets an
/// error instead of silently wrong material (8 bytes per request).
pub async fn serve_both(dealer: &mut Dealer, to_server: &mut Channel, to_client: &mut Channel, reqs: &[Request]) -> Result<()> {
    to_server.set_phase(Phase::Offline);
    for req in reqs {
        to_server.send_ring(&[req.tag()])?;
    }
    to_server.flush().await?;
    serve(dealer, to_client, reqs).await
}

async fn check_tag(chan: &mut Channel, req: &Request) -> Result<()> {
    chan.set_phase(Phase::Offline);
    let tag = chan.recv_ring(1).await?;
    if tag[0] != req.tag() {
        return Err(ProtocolError::MaterialMismatch(format!(
            "the dealer sent material for request {:x}, this party asked for {:x}",
            tag[0],
            req.tag()
        )));
    }
    Ok(())
}

async fn recv_chunked(chan: &mut Channel, len: usize) -> Result<Vec<R>> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let k = (len - out.len()).min(CHUNK);
        chan.recv_ring_append(k, &mut out).await?;
    }
    Ok(out)
}

/// Send a seed to a party (setup phase, dealer side).
pub async fn send_seed(chan: &mut Channel, seed: &Seed) -> Result<()> {
    chan.set_phase(Phase::Setup);
    chan.send_tagged(Tag::Bytes, seed)?;
    chan.flush().await?;
    Ok(())
}

/// Receive the dealer's seed (setup phase, party side).
pub async fn recv_seed(chan: &mut Channel) -> Result<Seed> {
    chan.set_phase(Phase::Setup);
    // A seed frame is refused from its header if longer than a seed.
    let b = chan.recv_tagged_max(Tag::Bytes, std::mem::size_of::<Seed>()).await?;
    b.as_slice().try_into().map_err(|_| ProtocolError::Core(CoreError::Malformed(format!("a seed is 16 bytes, got {}", b.len()))))
}

/// Where online code gets its material from.
pub trait MaterialSource: Send {
    /// This party's material for `req`. Requests must come in the order the
    /// material was produced in (the dealer's request sequence); where the
    /// source can check it (a fingerprint from the dealer, prepared material),
    /// material for another request is [`ProtocolError::MaterialMismatch`].
    fn fetch(&mut self, req: &Request) -> impl Future<Output = Result<Material>> + Send;
}

/// A party's link to a dealer: expands from the shared seed; party 1 also
/// receives corrections on `chan` (offline phase).
pub struct DealerLink {
    expander: Expander,
    chan: Option<Channel>,
}

impl DealerLink {
    /// Party 1 must have a channel (corrections); party 0 may have one (then
    /// the dealer must use [`serve_both`], and request sequences are checked).
    pub fn new(party: Party, seed: Seed, chan: Option<Channel>) -> Result<Self> {
        if party == Party::Client && chan.is_none() {
            return Err(ProtocolError::Params("party 1 needs a channel to the dealer".into()));
        }
        Ok(Self { expander: Expander::new(party, seed), chan })
    }

    /// The expander behind the link, e.g. for party 0 to draw weight masks
    /// ([`Expander::next_weight_mask`]) from the same seed.
    pub fn expander_mut(&mut self) -> &mut Expander {
        &mut self.expander
    }

    /// The channel to the dealer, if any (to read its meter).
    pub fn channel(&self) -> Option<&Channel> {
        self.chan.as_ref()
    }
}

impl MaterialSource for DealerLink {
    async fn fetch(&mut self, req: &Request) -> Result<Material> {
        match self.expander.party() {
            Party::Server => {
                // With a channel (see `serve_both`), check the dealer's sequence.
                if let Some(chan) = self.chan.as_mut() {
                    check_tag(chan, req).await?;
                }
                self.expander.expand(req, None)
            }
            Party::Client => {
                let chan = self.chan.as_mut().ok_or_else(|| ProtocolError::Params("no dealer channel".into()))?;
                receive_material(chan, &mut self.expander, req).await
            }
        }
    }
}

/// Party 1: receive the dealer's corrections for `req` on `chan` (offline
/// phase) and expand the material. The dealer sends the request's
/// fingerprint first, so material for another request is an error.
pub async fn receive_material(chan: &mut Channel, expander: &mut Expander, req: &Request) -> Result<Material> {
    check_tag(chan, req).await?;
    let corr = recv_chunked(chan, req.correction_len()).await?;
    expander.expand(req, Some(corr))
}

/// Material prepared beforehand (e.g. by an in-process [`Dealer`]), handed
/// out in order; a request that does not match the next item is an error.
#[derive(Default)]
pub struct Prepared {
    items: VecDeque<Material>,
}

impl Prepared {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue `m` after the material already held.
    pub fn push(&mut self, m: Material) {
        self.items.push_back(m);
    }

    /// Pieces of material not yet fetched.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether every piece has been fetched.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl MaterialSource for Prepared {
    async fn fetch(&mut self, req: &Request) -> Result<Material> {
        let m = self.items.pop_front().ok_or_else(|| ProtocolError::MaterialMismatch("no prepared material left".into()))?;
        let tag = match &m {
            Material::Program(p) => p.tag,
            Material::Linear(l) => l.tag,
        };
        if tag != req.tag() {
            return Err(ProtocolError::MaterialMismatch("prepared material is for another request".into()));
        }
        Ok(m)
    }
}

/// Deal `reqs` in process, returning each party's prepared source.
pub fn deal_all(dealer: &mut Dealer, reqs: &[Request]) -> Result<(Prepared, Prepared)> {
    let (mut a, mut b) = (Prepared::new(), Prepared::new());
    for r in reqs {
        let (m0, m1) = dealer.deal(r)?;
        a.push(m0);
        b.push(m1);
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::ConvSpec;
    use crate::material::expand_party0;
    use crate::poly::{PolyRelu, ReluConfig};
    use crate::program::ops;
    use std::sync::Arc;

    /// The corrections computed the plain way: party 0's whole material,
    /// then value - share per derived vector.
    fn reference(prg0: &Prg, prg1: &Prg, program: &Program, n: usize) -> Vec<R> {
        let Material::Program(mut p0) = expand_party0(&mut prg0.clone(), &Request::program(&Arc::new(program.clone()), n)) else {
            unreachable!()
        };
        let p0 = p0.expanded();
        let mut prg1 = prg1.clone();
        let rs: Vec<Vec<R>> = p0.opens.iter().map(|o| ring::add(&o.r, &prg1.gen(n))).collect();
        let mut corr = Vec::new();
        let mut atoms = Vec::new();
        for ((r, step), o0) in rs.iter().zip(program.opens()).zip(&p0.opens) {
            let (low, msb): (Vec<R>, Vec<R>) = r.iter().map(|&x| mask_atoms(x, step.shift)).unzip();
            if step.shift > 0 {
                // Party 1's share of R is r_1 + K z_1: z_1 = (R - R_0 - r_1) / K.
                let r1 = ring::sub(r, &o0.r);
                let k_z1 = ring::sub(&ring::sub(&low, &o0.low), &r1);
                assert!(k_z1.iter().all(|v| v.trailing_zeros() >= 63 - step.shift));
                corr.extend(k_z1.iter().map(|v| v >> (63 - step.shift)));
                corr.extend(ring::sub(&msb, &o0.msb));
            }
            atoms.push((low, msb));
        }
        for (key, s0) in program.products().iter().zip(&p0.products) {
            let mut v = vec![1; n];
            for &(j, a) in key {
                ring::mul_assign(
                    &mut v,
                    match a {
                        Atom::Full => &rs[j],
                        Atom::Low => &atoms[j].0,
                        Atom::Msb => &atoms[j].1,
                    },
                );
            }
            corr.extend(ring::sub(&v, s0));
        }
        // Packed to the widths, vector by vector.
        let mut packed = Vec::new();
        for (v, &w) in corr.chunks(n.max(1)).zip(program.correction_widths()) {
            let mut p = vec![0; pack::words(n, w)];
            pack::pack(v, w, &mut p);
            packed.extend(p);
        }
        packed
    }

    #[test]
    fn blocked_corrections_equal_the_plain_computation() {
        let relu = PolyRelu::new(ReluConfig::new(pann_approx::Alpha::new(9).unwrap(), 36)).unwrap();
        let (prg0, prg1) = (Prg::from_seed([1; 16]), Prg::from_seed([2; 16]));
        for program in [(*relu.program).clone(), ops::product(0, 0), ops::product(16, 0), ops::truncate(12)] {
            for n in [0, 1, 7, BLOCK, 2 * BLOCK + 3] {
                assert_eq!(program_corrections(&prg0, &prg1, &program, n), reference(&prg0, &prg1, &program, n), "n = {n}");
            }
        }
        // Negative control: party 1's masks from another stream give other corrections.
        let p = ops::product(16, 16);
        assert_ne!(program_corrections(&prg0, &Prg::from_seed([3; 16]), &p, 100), reference(&prg0, &prg1, &p, 100));
    }

    #[test]
    fn dealt_material_reconstructs_for_linear_layers() {
        let spec = LinearSpec::Conv(ConvSpec::dense(2, 3, 5, 5, 4, 3, 1, 1));
        let mut dealer = Dealer::new([4; 16], [5; 16]);
        let layer = dealer.register_linear(spec).unwrap();
        let a = dealer.layers[layer].1.clone();
        let (m0, m1) = dealer.deal(&Request::Linear { layer, spec }).unwrap();
        let (l0, l1) = (m0.into_linear().unwrap(), m1.into_linear().unwrap());
        // z0 + z1 = conv(A, r1): party 1's input mask share through the weight mask.
        assert_eq!(ring::add(&l0.z, &l1.z), spec.apply(&a, &l1.r).unwrap());
    }
}
