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
use crate::material::{expand_party0, expand_party1, streams, Expander, Material, Request};
use crate::open::mask_atoms;
use crate::program::Atom;

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
        Ok(self.deal_inner(req, false)?.2)
    }

    /// Both parties' material for `req` (in-process dealer).
    pub fn deal(&mut self, req: &Request) -> Result<(Material, Material)> {
        let (m0, m1, _) = self.deal_inner(req, true)?;
        Ok((m0, m1.expect("requested")))
    }

    fn deal_inner(&mut self, req: &Request, want_p1: bool) -> Result<(Material, Option<Material>, Vec<R>)> {
        let mut prg0 = self.req0.fork();
        let mut prg1 = self.req1.fork();
        let prg1_start = prg1.clone();
        let m0 = expand_party0(&mut prg0, req);
        let mut corr = Vec::with_capacity(req.correction_len());
        match (req, &m0) {
            (Request::Program { program, n }, Material::Program(p0)) => {
                let n = *n;
                // Full masks r = r0 + r1 (party 1's shares drawn in its order).
                let rs: Vec<Vec<R>> = p0.opens.iter().map(|o| ring::add(&o.r, &prg1.gen(n))).collect();
                let mut atoms: Vec<(Vec<R>, Vec<R>)> = Vec::with_capacity(rs.len());
                for ((r, step), o0) in rs.iter().zip(program.opens()).zip(&p0.opens) {
                    if step.shift > 0 {
                        let (low, msb): (Vec<R>, Vec<R>) = r.iter().map(|&x| mask_atoms(x, step.shift)).unzip();
                        corr.extend(low.iter().zip(&o0.low).map(|(v, s)| v.wrapping_sub(*s)));
                        corr.extend(msb.iter().zip(&o0.msb).map(|(v, s)| v.wrapping_sub(*s)));
                        atoms.push((low, msb));
                    } else {
                        atoms.push((Vec::new(), Vec::new()));
                    }
                }
                let atom = |j: usize, a: Atom| -> &[R] {
                    match a {
                        Atom::Full => &rs[j],
                        Atom::Low => &atoms[j].0,
                        Atom::Msb => &atoms[j].1,
                    }
                };
                for (key, s0) in program.products().iter().zip(&p0.products) {
                    let mut v = atom(key[0].0, key[0].1).to_vec();
                    for &(j, a) in &key[1..] {
                        ring::mul_assign(&mut v, atom(j, a));
                    }
                    ring::sub_assign(&mut v, s0);
                    corr.extend_from_slice(&v);
                }
            }
            (Request::Linear { layer, spec }, Material::Linear(l0)) => {
                let (lspec, a) = self
                    .layers
                    .get(*layer)
                    .ok_or_else(|| ProtocolError::MaterialMismatch(format!("linear layer {layer} is not registered")))?;
                if lspec != spec {
                    return Err(ProtocolError::MaterialMismatch(format!("layer {layer} registered as {lspec:?}, requested as {spec:?}")));
                }
                let r1 = prg1.gen(spec.input_len());
                let mut z = spec.apply(a, &r1)?;
                ring::sub_assign(&mut z, &l0.z);
                corr = z;
            }
            _ => unreachable!("expand_party0 returns the request's kind"),
        }
        let m1 = if want_p1 { Some(expand_party1(&mut prg1_start.clone(), req, corr.clone())?) } else { None };
        Ok((m0, m1, corr))
    }
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
        out.extend(chan.recv_ring(k).await?);
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
