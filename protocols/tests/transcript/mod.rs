//! Transcript experiments: what each party sees, with the peer's secret fixed
//! to two different values, under the real protocol and under three broken
//! variants that must be detected. Shared by `tests/security.rs` (which
//! asserts on the results) and `examples/transcript_stats.rs` (which prints
//! them for docs/results/security-transcripts.md).
//!
//! ## The experiment
//! For a case (opening with truncation, linear layer, ReLU at one alpha) and a
//! viewer (party 0 or party 1), two runs are made that differ only in the
//! peer's secret (value `a` or `b`) and the peer's randomness: the viewer's
//! input shares and seed are the same in both. The viewer's channel is tapped
//! below the framing (every byte it receives and sends), and its own material
//! is kept. A view is: received frames, sent frames, own mask shares, and the
//! peer's mask shares *as the viewer would compute them by expanding its own
//! seed as if it were the peer's* (a function of its seed, so part of its view).
//!
//! ## Statistics (functions of one view, per element of every opening)
//! * `wire[j]`: the received value (all the old test looked at);
//! * `open[j]`: received + sent = the opened value (`c = v + r (+ 2^62)` for
//!   shift 0; the shifted value plus the mask mod `2^(64-s)` otherwise): what
//!   the viewer computes from the peer's contribution and its own;
//! * `unmask[j]`: `c - own mask share - guessed peer mask share`;
//! * `open[j]-open[k]`: differences of two openings of one run.
//!
//! In the real protocol every one of these is uniform (on Z_2^64, or on the
//! `64 - s` bits that a truncating opening sends) whatever the secret (the
//! peer's mask share is uniform and independent of the viewer's view), so
//! its distribution must be the same under `a` and `b`. For each
//! statistic and each of its 8 byte positions, a two-sample chi-square test
//! (256 bins) compares the `a` and `b` runs; a family's p-value is the
//! Bonferroni bound `min(1, m * min p)` over its `m` tests.
//!
//! ## Broken variants (test code only; production code has no switch for them)
//! * zero mask: the dealer's full masks are 0 (`r1 = -r0`, weight mask `A = 0`);
//!   each wire value alone is still uniform, `open` is the secret itself;
//! * reused mask: opening 1 (program) or inference 1 (linear) gets the mask of
//!   opening / inference 0; `open[0]-open[1]` is the difference of secrets;
//! * shared seed: the dealer gives both parties the same seed; `unmask` is the
//!   secret.
//!
//! All variants keep the material consistent, so the outputs stay correct: a
//! correctness test cannot see these bugs, only a transcript test can.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use pann_mpc_core::ring::{self, R};
use pann_mpc_core::{Channel, ChannelConfig, Party, Phase, Prg, Seed};
use pann_protocols::harness::seeds_from;
use pann_protocols::linear::{linear_forward, setup_client, setup_server, LinearKey, LinearLayer};
use pann_protocols::material::{Expander, ProgramMaterial, Request};
use pann_protocols::open::{mask_atoms, message_width};
use pann_protocols::pack;
use pann_protocols::poly::enc;
use pann_protocols::program::{Atom, Form, Program, ProgramBuilder};
use pann_protocols::{reference, run_program, Dealer, LinearSpec, MatmulSpec, PolyRelu, ReluConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Elements per opening (samples per statistic and secret).
pub const N: usize = 1 << 13;

/// A family passes (no leak detected) above this log10 p-value...
pub const PASS_LOG10: f64 = -6.0;
/// ...and detects a leak below this one.
pub const DETECT_LOG10: f64 = -12.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Real,
    ZeroMask,
    ReusedMask,
    SharedSeed,
}

impl Variant {
    pub const ALL: [Variant; 4] = [Variant::Real, Variant::ZeroMask, Variant::ReusedMask, Variant::SharedSeed];
    pub fn name(self) -> &'static str {
        match self {
            Variant::Real => "real protocol",
            Variant::ZeroMask => "zero mask",
            Variant::ReusedMask => "reused mask",
            Variant::SharedSeed => "shared seed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Two inputs, each opened with truncation by 16 bits (one round).
    Truncation,
    /// Matrix product with server-held weights: setup (E = W - A) and two inferences.
    Linear,
    /// The polynomial ReLU program at one alpha (input x/B at 54 fractional bits).
    Relu(u32),
}

pub const CASES: [Case; 5] = [Case::Truncation, Case::Linear, Case::Relu(4), Case::Relu(9), Case::Relu(12)];

impl Case {
    pub fn name(self) -> String {
        match self {
            Case::Truncation => "opening with truncation".into(),
            Case::Linear => "linear layer".into(),
            Case::Relu(a) => format!("ReLU alpha {a}"),
        }
    }
    fn id(self) -> u64 {
        match self {
            Case::Truncation => 1,
            Case::Linear => 2,
            Case::Relu(a) => 100 + a as u64,
        }
    }
}

pub fn viewer_name(p: Party) -> &'static str {
    match p {
        Party::Server => "party 0 (server)",
        Party::Client => "party 1 (client)",
    }
}

// ---------------------------------------------------------------------------
// Tapping a channel: every byte the viewer reads and writes.

struct Tap<T> {
    inner: T,
    log: Arc<Mutex<Vec<u8>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tap<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            self.log.lock().unwrap().extend_from_slice(&buf.filled()[before..]);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tap<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(k)) = &r {
            self.log.lock().unwrap().extend_from_slice(&buf[..*k]);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The viewer's raw bytes, both directions.
#[derive(Clone, Default)]
struct Wire {
    recv: Arc<Mutex<Vec<u8>>>,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Wire {
    fn recv_frames(&self) -> Vec<Vec<R>> {
        ring_frames(&self.recv.lock().unwrap())
    }
    fn sent_frames(&self) -> Vec<Vec<R>> {
        ring_frames(&self.sent.lock().unwrap())
    }
}

/// Connected channels (viewer's, peer's); the viewer's is tapped.
fn tapped_pair() -> (Channel, Channel, Wire) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (ra, wa) = tokio::io::split(a);
    let wire = Wire::default();
    let viewer = Channel::from_halves(
        Box::new(Tap { inner: ra, log: Arc::clone(&wire.recv) }),
        Box::new(Tap { inner: wa, log: Arc::clone(&wire.sent) }),
        ChannelConfig::default(),
    );
    (viewer, Channel::from_stream(b, ChannelConfig::default()), wire)
}

/// Parse framed bytes; every frame must be a ring vector (nothing else is
/// exchanged in these protocols, so nothing else may appear on the wire).
fn ring_frames(bytes: &[u8]) -> Vec<Vec<R>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        let payload = &rest[4..4 + len];
        assert_eq!(payload[0], 1, "a frame that is not a ring vector");
        out.push(payload[1..].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect());
        rest = &rest[4 + len..];
    }
    out
}

// ---------------------------------------------------------------------------
// Views.

/// One opening as the viewer sees it.
pub struct Seen {
    pub label: String,
    /// Bits of each value that travel (`64 - s` for an opening with shift
    /// `s`); every statistic is taken mod `2^width`.
    pub width: u32,
    pub recv: Vec<R>,
    pub sent: Vec<R>,
    pub own_mask: Vec<R>,
    pub guessed_peer_mask: Vec<R>,
}

/// One run: the viewer's openings and whether the reconstructed outputs were
/// correct (within the documented truncation noise).
pub struct Run {
    pub seen: Vec<Seen>,
    pub correct: bool,
}

/// Seeds of one run: the viewer's are fixed per (case, viewer); the peer's
/// differ between the secrets (fresh randomness), except with a shared seed.
struct Seeds {
    s0: Seed,
    s1: Seed,
    own: Seed,
    own_shares: Seed,
}

fn seeds(case: Case, viewer: Party, secret: usize, variant: Variant, salt: u64) -> Seeds {
    let base = salt * 1_000_000 + case.id() * 1000 + 10 * viewer.index() as u64;
    let own = seeds_from(base).0;
    let peer = if variant == Variant::SharedSeed { own } else { seeds_from(base + 100 + secret as u64).1 };
    let (s0, s1) = if viewer == Party::Server { (own, peer) } else { (peer, own) };
    Seeds { s0, s1, own, own_shares: seeds_from(base + 7).0 }
}

/// Recompute party 1's derived shares (truncation atoms, atom products) from
/// the full masks `r0 + r1`, as the dealer does, keeping party 0's shares: the
/// mutated material stays consistent, so outputs stay correct.
fn rederive(program: &Program, m0: &mut ProgramMaterial, m1: &mut ProgramMaterial) {
    let n = m0.n();
    let (m0, m1) = (m0.expanded(), m1.expanded());
    let full: Vec<Vec<R>> = m0.opens.iter().zip(&m1.opens).map(|(a, b)| ring::add(&a.r, &b.r)).collect();
    let mut atoms = Vec::new();
    for (j, step) in program.opens().iter().enumerate() {
        if step.shift > 0 {
            let (low, msb): (Vec<R>, Vec<R>) = full[j].iter().map(|&x| mask_atoms(x, step.shift)).unzip();
            m1.opens[j].low = ring::sub(&low, &m0.opens[j].low);
            m1.opens[j].msb = ring::sub(&msb, &m0.opens[j].msb);
            atoms.push((low, msb));
        } else {
            atoms.push((Vec::new(), Vec::new()));
        }
    }
    for (k, key) in program.products().iter().enumerate() {
        let mut v = vec![1u64; n];
        for &(j, a) in key {
            let src = match a {
                Atom::Full => &full[j],
                Atom::Low => &atoms[j].0,
                Atom::Msb => &atoms[j].1,
            };
            ring::mul_assign(&mut v, src);
        }
        m1.products[k] = ring::sub(&v, &m0.products[k]);
    }
}

/// Apply a broken variant to freshly dealt program material.
fn break_program(program: &Program, variant: Variant, m0: &mut ProgramMaterial, m1: &mut ProgramMaterial) {
    match variant {
        Variant::Real | Variant::SharedSeed => return,
        Variant::ZeroMask => {
            for (a, b) in m0.expanded().opens.iter().zip(m1.expanded().opens.iter_mut()) {
                b.r = a.r.iter().map(|x| x.wrapping_neg()).collect();
            }
        }
        Variant::ReusedMask => {
            for m in [m0.expanded(), m1.expanded()] {
                m.opens[1].r = m.opens[0].r.clone();
            }
        }
    }
    rederive(program, m0, m1);
}

/// `len` values `centre +- SPREAD`, pseudo-random (fixed), encoded at `frac` bits.
fn secret_values(centre: f64, slot: usize, len: usize, frac: u32) -> Vec<R> {
    let mut prg = Prg::from_seed(seeds_from(0x5ec + slot as u64).0);
    prg.gen(len).iter().map(|&u| enc(centre + SPREAD * ((u >> 11) as f64 / (1u64 << 52) as f64 - 1.0), frac)).collect()
}

/// Run `program` on clear inputs around `secret` (one centre per input,
/// encoded at `frac` bits), the viewer holding fixed pseudo-random shares.
#[allow(clippy::too_many_arguments)]
async fn program_run(
    case: Case,
    program: &Arc<Program>,
    frac: u32,
    secret: &[f64],
    which: usize,
    viewer: Party,
    variant: Variant,
    tol: u64,
    salt: u64,
) -> Run {
    let sd = seeds(case, viewer, which, variant, salt);
    let clear: Vec<Vec<R>> = secret.iter().enumerate().map(|(i, &v)| secret_values(v, i, N, frac)).collect();
    let mut prg = Prg::from_seed(sd.own_shares);
    let own: Vec<Vec<R>> = clear.iter().map(|_| prg.gen(N)).collect();
    let peer: Vec<Vec<R>> = clear.iter().zip(&own).map(|(x, o)| ring::sub(x, o)).collect();
    let (in0, in1) = if viewer == Party::Server { (&own, &peer) } else { (&peer, &own) };
    let req = Request::program(program, N);
    let (m0, m1) = Dealer::new(sd.s0, sd.s1).deal(&req).unwrap();
    let (mut m0, mut m1) = (m0.into_program().unwrap(), m1.into_program().unwrap());
    break_program(program, variant, &mut m0, &mut m1);
    // The viewer's material is expanded to read its masks; the peer's stays
    // deferred in the real runs, so both kinds are exercised.
    let own_mat = if viewer == Party::Server { &mut m0 } else { &mut m1 };
    let own_masks: Vec<Vec<R>> = own_mat.expanded().opens.iter().map(|o| o.r.clone()).collect();
    let mut guess = Expander::new(Party::Server, sd.own).expand(&req, None).unwrap().into_program().unwrap();
    let guessed_masks: Vec<Vec<R>> = guess.expanded().opens.iter().map(|o| o.r.clone()).collect();
    let (cv, cp, wire) = tapped_pair();
    let (mut c0, mut c1) = if viewer == Party::Server { (cv, cp) } else { (cp, cv) };
    c0.set_phase(Phase::Online);
    c1.set_phase(Phase::Online);
    let r0: Vec<&[R]> = in0.iter().map(|v| v.as_slice()).collect();
    let r1: Vec<&[R]> = in1.iter().map(|v| v.as_slice()).collect();
    let (o0, o1) =
        tokio::join!(run_program(&mut c0, Party::Server, program, &r0, m0), run_program(&mut c1, Party::Client, program, &r1, m1));
    let (o0, o1) = (o0.unwrap(), o1.unwrap());
    let refs: Vec<&[R]> = clear.iter().map(|v| v.as_slice()).collect();
    let want = reference::run_program(program, &refs).unwrap();
    let correct = want.out_of_range == 0
        && o0.iter().zip(&o1).zip(&want.outputs).all(|((a, b), w)| {
            a.iter().zip(b).zip(w).all(|((a, b), w)| (a.wrapping_add(*b).wrapping_sub(*w) as i64).unsigned_abs() <= tol)
        });
    // Frames are rounds; a round's frame holds its openings in order, N
    // messages each, packed to the opening's width.
    let (recv, sent) = (wire.recv_frames(), wire.sent_frames());
    assert_eq!(recv.len(), program.n_rounds());
    assert_eq!(sent.len(), program.n_rounds());
    let mut seen: Vec<Option<Seen>> = (0..program.n_openings()).map(|_| None).collect();
    for (ri, round) in program.rounds().iter().enumerate() {
        let mut at = 0;
        for &j in round {
            let width = message_width(program.opens()[j].shift);
            let k = pack::words(N, width);
            let r = at..at + k;
            at += k;
            seen[j] = Some(Seen {
                label: format!("{j}"),
                width,
                recv: pack::unpacked(&recv[ri][r.clone()], width, N),
                sent: pack::unpacked(&sent[ri][r], width, N),
                own_mask: own_masks[j].clone(),
                guessed_peer_mask: guessed_masks[j].clone(),
            });
        }
        assert_eq!(recv[ri].len(), at);
    }
    Run { seen: seen.into_iter().map(Option::unwrap).collect(), correct }
}

/// The linear layer of the experiment: 64 rows of 128 inputs, 64 outputs
/// (input and weights have the same length, N).
pub fn linear_spec() -> LinearSpec {
    LinearSpec::Matmul(MatmulSpec { m: 64, k: 128, n: 64 })
}

/// The broken server setup of the zero-mask variant: `E = W - 0`.
async fn setup_server_unmasked(chan: &mut Channel, id: usize, spec: LinearSpec, w: Vec<R>) -> LinearLayer {
    chan.set_phase(Phase::Setup);
    chan.send_ring(&w).unwrap();
    chan.flush().await.unwrap();
    LinearLayer { id, spec, key: LinearKey::Server(w) }
}

/// Setup and two inferences through the linear layer. `secret` is
/// `[w, x_0, x_1]`: the centres of the weights (18 bits) and of the inputs of
/// the two inferences (36 bits). The server's weights are its own: when it is
/// the viewer they are those of secret `a` in both runs.
async fn linear_run(secret: &[f64], which: usize, viewer: Party, variant: Variant, salt: u64) -> Run {
    let case = Case::Linear;
    let sd = seeds(case, viewer, which, variant, salt);
    let spec = linear_spec();
    let w = secret_values(secret[0], 0, spec.weight_len(), 18);
    let xs: Vec<Vec<R>> = secret[1..].iter().enumerate().map(|(i, &v)| secret_values(v, i + 1, spec.input_len(), 36)).collect();
    let mut prg = Prg::from_seed(sd.own_shares);
    let own: Vec<Vec<R>> = xs.iter().map(|_| prg.gen(spec.input_len())).collect();
    let peer: Vec<Vec<R>> = xs.iter().zip(&own).map(|(x, o)| ring::sub(x, o)).collect();
    let (in0, in1) = if viewer == Party::Server { (&own, &peer) } else { (&peer, &own) };
    let mut dealer = Dealer::new(sd.s0, sd.s1);
    let id = dealer.register_linear(spec).unwrap();
    let mut exp0 = Expander::new(Party::Server, sd.s0);
    let req = Request::Linear { layer: id, spec };
    let mut mats = Vec::new();
    for _ in 0..2 {
        let (m0, m1) = dealer.deal(&req).unwrap();
        mats.push((m0.into_linear().unwrap(), m1.into_linear().unwrap()));
    }
    match variant {
        Variant::Real | Variant::SharedSeed => {}
        Variant::ZeroMask => {
            // r = 0 and A = 0, so Z = conv(A, r1) = 0.
            for (m0, m1) in &mut mats {
                m1.r = m0.r.iter().map(|x| x.wrapping_neg()).collect();
                m1.z = m0.z.iter().map(|x| x.wrapping_neg()).collect();
            }
        }
        Variant::ReusedMask => {
            let (a, b) = mats.split_at_mut(1);
            b[0].0.r = a[0].0.r.clone();
            b[0].0.z = a[0].0.z.clone();
            b[0].1.r = a[0].1.r.clone();
            b[0].1.z = a[0].1.z.clone();
        }
    }
    let own_masks: Vec<Vec<R>> = mats.iter().map(|(m0, m1)| if viewer == Party::Server { m0.r.clone() } else { m1.r.clone() }).collect();
    let mut guess = Expander::new(Party::Server, sd.own);
    let guessed_a = guess.next_weight_mask(spec.weight_len());
    let guessed_r: Vec<Vec<R>> = (0..2).map(|_| guess.expand(&req, None).unwrap().into_linear().unwrap().r).collect();
    let (cv, cp, wire) = tapped_pair();
    let (mut c0, mut c1) = if viewer == Party::Server { (cv, cp) } else { (cp, cv) };
    let (l0, l1) = tokio::join!(
        async {
            if variant == Variant::ZeroMask {
                setup_server_unmasked(&mut c0, id, spec, w.clone()).await
            } else {
                setup_server(&mut c0, &mut exp0, id, spec, w.clone()).await.unwrap()
            }
        },
        async { setup_client(&mut c1, id, spec).await.unwrap() }
    );
    let mut correct = true;
    for (i, (m0, m1)) in mats.into_iter().enumerate() {
        let (o0, o1) = tokio::join!(linear_forward(&mut c0, &l0, &in0[i], m0), linear_forward(&mut c1, &l1, &in1[i], m1));
        correct &= ring::add(&o0.unwrap(), &o1.unwrap()) == spec.apply(&w, &xs[i]).unwrap();
    }
    let (recv, sent) = (wire.recv_frames(), wire.sent_frames());
    let mut seen = Vec::new();
    // Party 1 receives E in the setup: its "mask" is -A, all of it party 0's.
    let inf = if viewer == Party::Client {
        assert_eq!(recv.len(), 3);
        seen.push(Seen {
            label: "E".into(),
            width: 64,
            recv: recv[0].clone(),
            sent: vec![0; spec.weight_len()],
            own_mask: vec![0; spec.weight_len()],
            guessed_peer_mask: guessed_a.iter().map(|x| x.wrapping_neg()).collect(),
        });
        &recv[1..]
    } else {
        assert_eq!(recv.len(), 2);
        &recv[..]
    };
    let sent_inf = if viewer == Party::Server { &sent[1..] } else { &sent[..] };
    for i in 0..2 {
        seen.push(Seen {
            label: format!("x#{i}"),
            width: 64,
            recv: inf[i].clone(),
            sent: sent_inf[i].clone(),
            own_mask: own_masks[i].clone(),
            guessed_peer_mask: guessed_r[i].clone(),
        });
    }
    Run { seen, correct }
}

/// The truncation program: inputs x, y opened with shift 16 (one round), outputs their truncations.
pub fn truncation_program() -> Program {
    let mut b = ProgramBuilder::new(2);
    let x = b.open(Form::input(0, 1), 16).unwrap();
    let y = b.open(Form::input(1, 1), 16).unwrap();
    b.output(Form::mono(1, &[x])).unwrap();
    b.output(Form::mono(1, &[y])).unwrap();
    b.build().unwrap()
}

/// Half-width of the interval each secret value is drawn from.
pub const SPREAD: f64 = 0.25;

/// The two values `a`, `b` of the peer's secret: per input, the centre of the
/// interval (width 2 SPREAD) its elements are drawn from.
pub fn secrets(case: Case) -> [Vec<f64>; 2] {
    match case {
        Case::Truncation => [vec![0.25, 0.25], vec![1.5, -2.75]],
        Case::Linear => [vec![0.5, 0.25, 0.25], vec![-0.125, 1.5, -2.75]],
        Case::Relu(_) => [vec![0.3], vec![-0.7]],
    }
}

/// Both runs (secret `a`, secret `b`) of one case, viewer and variant; `salt`
/// changes every seed (0 for the tests and the table).
pub async fn runs(case: Case, viewer: Party, variant: Variant, salt: u64) -> [Run; 2] {
    let s = secrets(case);
    match case {
        Case::Truncation => {
            let p = Arc::new(truncation_program());
            [
                program_run(case, &p, 36, &s[0], 0, viewer, variant, 1, salt).await,
                program_run(case, &p, 36, &s[1], 1, viewer, variant, 1, salt).await,
            ]
        }
        Case::Linear => {
            let mut sb = s[1].clone();
            if viewer == Party::Server {
                sb[0] = s[0][0]; // the server's own weights
            }
            [linear_run(&s[0], 0, viewer, variant, salt).await, linear_run(&sb, 1, viewer, variant, salt).await]
        }
        Case::Relu(alpha) => {
            let relu = PolyRelu::new(ReluConfig::new(pann_approx::Alpha::new(alpha).unwrap(), 54)).unwrap();
            let tol = 1u64 << (relu.config.output_frac() - 12);
            let p = relu.program;
            [
                program_run(case, &p, 54, &s[0], 0, viewer, variant, tol, salt).await,
                program_run(case, &p, 54, &s[1], 1, viewer, variant, tol, salt).await,
            ]
        }
    }
}

// ---------------------------------------------------------------------------
// Statistics.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Wire,
    Open,
    Unmask,
    Difference,
}

/// The statistics of one view, each a vector of N ring elements.
pub fn statistics(seen: &[Seen]) -> Vec<(Kind, String, Vec<R>)> {
    let mut out = Vec::new();
    let cut = |v: Vec<R>, w: u32| -> Vec<R> {
        if w == 64 {
            v
        } else {
            v.into_iter().map(|x| x & ((1u64 << w) - 1)).collect()
        }
    };
    let opened: Vec<Vec<R>> = seen.iter().map(|s| cut(ring::add(&s.recv, &s.sent), s.width)).collect();
    for (s, c) in seen.iter().zip(&opened) {
        out.push((Kind::Wire, format!("wire[{}]", s.label), s.recv.clone()));
        out.push((Kind::Open, format!("open[{}]", s.label), c.clone()));
        let mut u = ring::sub(c, &s.own_mask);
        ring::sub_assign(&mut u, &s.guessed_peer_mask);
        out.push((Kind::Unmask, format!("unmask[{}]", s.label), cut(u, s.width)));
    }
    for j in 0..seen.len() {
        for k in j + 1..seen.len() {
            if opened[j].len() == opened[k].len() {
                let d = cut(ring::sub(&opened[j], &opened[k]), seen[j].width.min(seen[k].width));
                out.push((Kind::Difference, format!("open[{}]-open[{}]", seen[j].label, seen[k].label), d));
            }
        }
    }
    out
}

/// One two-sample chi-square test.
#[derive(Clone, Debug)]
pub struct Check {
    pub kind: Kind,
    pub stat: String,
    pub byte: usize,
    pub chi2: f64,
    pub df: f64,
    pub log10_p: f64,
}

/// Byte histograms (8 positions x 256 bins) of a vector.
fn byte_hist(v: &[R]) -> Vec<[u32; 256]> {
    let mut h = vec![[0u32; 256]; 8];
    for x in v {
        for (i, b) in x.to_le_bytes().iter().enumerate() {
            h[i][*b as usize] += 1;
        }
    }
    h
}

/// Two-sample chi-square statistic on two histograms and its degrees of
/// freedom (non-empty bins - 1).
pub fn two_sample_chi2(a: &[u32], b: &[u32]) -> (f64, f64) {
    let (na, nb) = (a.iter().map(|&x| x as f64).sum::<f64>(), b.iter().map(|&x| x as f64).sum::<f64>());
    let (ka, kb) = ((nb / na).sqrt(), (na / nb).sqrt());
    let mut chi2 = 0.0;
    let mut bins = 0;
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        if x + y > 0.0 {
            chi2 += (ka * x - kb * y).powi(2) / (x + y);
            bins += 1;
        }
    }
    (chi2, (bins as f64 - 1.0).max(0.0))
}

/// Compare the statistics of the two runs: 8 byte-position tests per statistic.
pub fn compare(a: &Run, b: &Run) -> Vec<Check> {
    let (sa, sb) = (statistics(&a.seen), statistics(&b.seen));
    assert_eq!(sa.len(), sb.len());
    let mut out = Vec::new();
    for ((kind, name, va), (_, nb, vb)) in sa.iter().zip(&sb) {
        assert_eq!(name, nb);
        let (ha, hb) = (byte_hist(va), byte_hist(vb));
        for byte in 0..8 {
            let (chi2, df) = two_sample_chi2(&ha[byte], &hb[byte]);
            out.push(Check { kind: *kind, stat: name.clone(), byte, chi2, df, log10_p: log10_chi2_sf(chi2, df) });
        }
    }
    out
}

/// The worst test of a family and the family's Bonferroni p-value.
#[derive(Clone, Debug)]
pub struct Family {
    pub m: usize,
    pub worst: Check,
    pub log10_p: f64,
}

pub fn family(checks: &[Check], keep: impl Fn(&Check) -> bool) -> Family {
    let kept: Vec<&Check> = checks.iter().filter(|c| keep(c)).collect();
    let worst = kept.iter().min_by(|x, y| x.log10_p.total_cmp(&y.log10_p)).expect("a non-empty family");
    let m = kept.len();
    Family { m, worst: (*worst).clone(), log10_p: (worst.log10_p + (m as f64).log10()).min(0.0) }
}

// ---------------------------------------------------------------------------
// Chi-square p-values: the regularized upper incomplete gamma function
// Q(df/2, chi2/2), in log10 so that astronomically small values are reported
// (series for x < a + 1, continued fraction otherwise; Numerical Recipes 6.2).

/// ln Gamma(x), x > 0 (Lanczos, g = 7, 9 terms; relative error ~1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    // The published digits, kept as printed.
    #[allow(clippy::excessive_precision)]
    const C: [f64; 9] = [
        0.999_999_999_999_809_93,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_13,
        -176.615_029_162_140_59,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_571_6e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// log10 of the chi-square survival function P(X > chi2), X ~ chi2(df).
pub fn log10_chi2_sf(chi2: f64, df: f64) -> f64 {
    if df <= 0.0 || chi2 <= 0.0 {
        return 0.0;
    }
    let (a, x) = (df / 2.0, chi2 / 2.0);
    let ln_front = -x + a * x.ln() - ln_gamma(a);
    let ln_q = if x < a + 1.0 {
        let (mut ap, mut del, mut sum) = (a, 1.0 / a, 1.0 / a);
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        (1.0 - sum * ln_front.exp()).max(f64::MIN_POSITIVE).ln()
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-16 {
                break;
            }
        }
        ln_front + h.ln()
    };
    (ln_q / std::f64::consts::LN_10).min(0.0)
}

// ---------------------------------------------------------------------------
// Rows of the report.

pub struct Row {
    pub case: Case,
    pub viewer: Party,
    pub variant: Variant,
    /// All statistics of the view.
    pub all: Family,
    /// Received values only (what the old test looked at).
    pub wire: Family,
    /// Both runs' outputs were correct.
    pub correct: bool,
    /// Every test's log10 p-value (for calibration).
    pub log10_ps: Vec<f64>,
}

impl Row {
    pub fn verdict(&self) -> &'static str {
        if self.all.log10_p < DETECT_LOG10 {
            "leak detected"
        } else if self.all.log10_p > PASS_LOG10 {
            "no leak detected"
        } else {
            "inconclusive"
        }
    }
    /// As expected: the real protocol passes, every broken variant is detected.
    pub fn as_expected(&self) -> bool {
        self.correct
            && match self.variant {
                Variant::Real => self.all.log10_p > PASS_LOG10,
                _ => self.all.log10_p < DETECT_LOG10,
            }
    }
}

pub async fn row(case: Case, viewer: Party, variant: Variant) -> Row {
    row_salted(case, viewer, variant, 0).await
}

pub async fn row_salted(case: Case, viewer: Party, variant: Variant, salt: u64) -> Row {
    let [a, b] = runs(case, viewer, variant, salt).await;
    let checks = compare(&a, &b);
    Row {
        case,
        viewer,
        variant,
        all: family(&checks, |_| true),
        wire: family(&checks, |c| c.kind == Kind::Wire),
        correct: a.correct && b.correct,
        log10_ps: checks.iter().map(|c| c.log10_p).collect(),
    }
}

pub async fn case_rows(case: Case) -> Vec<Row> {
    let mut out = Vec::new();
    for viewer in [Party::Client, Party::Server] {
        for variant in Variant::ALL {
            out.push(row(case, viewer, variant).await);
        }
    }
    out
}

/// A p-value given as log10, printed as 1e-x for tiny ones.
pub fn fmt_p(log10_p: f64) -> String {
    if log10_p > -4.0 {
        format!("{:.4}", 10f64.powf(log10_p))
    } else {
        let e = log10_p.floor();
        format!("{:.1}e{}", 10f64.powf(log10_p - e), e as i64)
    }
}

pub const HEADER: &str = "| test | view | variant | worst statistic (byte) | chi2 | df | p (worst test) | tests m | p (family, m x p) | p (wire values only) | outputs correct | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";

pub fn markdown_line(r: &Row) -> String {
    let w = &r.all.worst;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} ({}) | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
        r.case.name(),
        viewer_name(r.viewer),
        r.variant.name(),
        w.stat,
        w.byte,
        w.chi2,
        w.df,
        fmt_p(w.log10_p),
        r.all.m,
        fmt_p(r.all.log10_p),
        fmt_p(r.wire.log10_p),
        if r.correct { "yes" } else { "no" },
        r.verdict()
    );
    s
}
