//! The three roles of a secure inference session over established channels.
//!
//! Setup: handshakes (ring, precision: one alpha or per-layer alphas; the client and dealer also agree on the
//! model digest), the server sends the public model description to the
//! client and the dealer, the client sends its session request (batch size,
//! number of batches), the dealer sends each party its seed, the server sends
//! the client its masked weights `E = W - A` once.
//! Per batch: offline (party 1 receives its corrections from the dealer; party
//! 0 expands its material from its seed), then online (the client shares its
//! images, the plan runs, the logits are revealed to the client only).
//! An error on one side is sent to the peers as an Abort with a code and its
//! fixed public text ([`AbortCode`]); the error's own message, which may name
//! secret values or file paths, stays in the local log.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use pann_mpc_core::channel::Tag;
use pann_mpc_core::handshake::{handshake, Role, SessionParams};
use pann_mpc_core::{AbortCode, Channel, CoreError, Meter, Party, Phase, Prg};
use pann_protocols::dealer::{receive_material, recv_seed, send_seed, serve};
use pann_protocols::linear::{setup_client, setup_server};
use pann_protocols::ops::{reveal, share_input};
use pann_protocols::{Dealer, Expander, Material, ProtocolError};
use serde::{Deserialize, Serialize};

use crate::exec::{run_plan, PartyBackend};
use crate::limits::{MaterialSize, SessionLimits, MAX_MODEL_DESCRIPTION, MAX_REQUEST};
use crate::plan::{Plan, PublicModel, ServerWeights};
use pann_models::card::sha256_hex;
use pann_models::model::Model;

pub type SessionError = pann_models::error::ModelError;
type Result<T> = std::result::Result<T, SessionError>;

fn err(e: impl std::fmt::Display) -> SessionError {
    SessionError::Secure(e.to_string())
}

/// A failure with the code the peers are told (the message stays local).
fn coded(code: AbortCode, message: impl std::fmt::Display) -> SessionError {
    SessionError::Session { code, message: message.to_string() }
}

/// The code peers are told about a failed channel or protocol step.
trait Code: std::fmt::Display {
    fn code(&self) -> AbortCode;
}

impl Code for CoreError {
    fn code(&self) -> AbortCode {
        self.abort_code()
    }
}

impl Code for ProtocolError {
    fn code(&self) -> AbortCode {
        self.abort_code()
    }
}

/// `.map_err(on("dealer"))`: an error on the channel with that peer, naming
/// the peer (a party with two channels must say which one failed).
fn on<E: Code>(peer: &'static str) -> impl Fn(E) -> SessionError {
    move |e| coded(e.code(), format!("with the {peer}: {e}"))
}

/// As [`on`] for the online phase's errors, which are already session errors.
fn online(peer: &'static str) -> impl Fn(SessionError) -> SessionError {
    move |e| match e {
        SessionError::Secure(s) => err(format!("with the {peer}: {s}")),
        SessionError::Session { code, message } => coded(code, format!("with the {peer}: {message}")),
        other => other,
    }
}

/// Data a peer sent that does not decode or check: the peer is told only
/// that its message was malformed or beyond a limit.
fn from_peer(peer: &'static str) -> impl Fn(SessionError) -> SessionError {
    move |e| coded(e.abort_code().unwrap_or(AbortCode::Malformed), format!("from the {peer}: {e}"))
}

/// Tell both peers why this side gives up: the error's own code, or `local`
/// for a failure of this side's own preparation (its model, its input).
async fn abort_both(a: &mut Channel, b: &mut Channel, e: &SessionError, local: AbortCode) {
    let code = e.abort_code().unwrap_or(local);
    a.abort(code).await;
    b.abort(code).await;
}

/// Largest batch and number of batches a client may request (the protocol's
/// ceiling; each role's own, usually smaller, limit is [`SessionLimits`]).
pub const MAX_BATCH: usize = 1024;
pub const MAX_BATCHES: usize = 1 << 20;

/// The client's request, sent to the server and the dealer after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRequest {
    pub batch: usize,
    pub batches: usize,
}

impl SessionRequest {
    /// Parse and check a request as a peer sends it (JSON).
    pub fn decode(bytes: &[u8]) -> Result<SessionRequest> {
        // serde's message may quote the peer's text: only where and what kind.
        let r: SessionRequest = serde_json::from_slice(bytes)
            .map_err(|e| coded(AbortCode::Malformed, format!("malformed session request ({:?} error at line {} column {})", e.classify(), e.line(), e.column())))?;
        r.check().map_err(|e| coded(AbortCode::Limit, e))?;
        Ok(r)
    }

    fn check(&self) -> Result<()> {
        if self.batch == 0 || self.batch > MAX_BATCH || self.batches == 0 || self.batches > MAX_BATCHES {
            return Err(err(format!("session request {self:?}: batch must be 1..={MAX_BATCH}, batches 1..={MAX_BATCHES}")));
        }
        Ok(())
    }
}

/// Parameters the two parties must agree on before anything else.
/// `precision` is [`PublicModel::precision`]: `"9"`, or `"per-layer:4,5,..."`.
pub fn session_params(role: Role, precision: &str) -> SessionParams {
    dealer_params(role).with("alpha", precision)
}

/// Parameters a party and the dealer agree on first (the dealer learns alpha
/// from the model description; the client checks the model digest with it).
pub fn dealer_params(role: Role) -> SessionParams {
    SessionParams::new(role).with("ring", "Z_2^64")
}

/// The second handshake between client and dealer: the same public model.
fn model_params(role: Role, digest: &str) -> SessionParams {
    SessionParams::new(role).with("model", digest)
}

async fn send_json<T: Serialize>(chan: &mut Channel, peer: &'static str, v: &T) -> Result<()> {
    chan.send_tagged(Tag::Bytes, &serde_json::to_vec(v).map_err(err)?).map_err(on(peer))?;
    chan.flush().await.map_err(on(peer))
}

/// A setup message of at most `max` bytes (refused from its header if longer).
async fn recv_bytes(chan: &mut Channel, peer: &'static str, max: usize) -> Result<Vec<u8>> {
    chan.recv_tagged_max(Tag::Bytes, max).await.map_err(on(peer))
}

async fn recv_request(chan: &mut Channel, peer: &'static str) -> Result<SessionRequest> {
    let b = recv_bytes(chan, peer, MAX_REQUEST).await?;
    SessionRequest::decode(&b).map_err(from_peer(peer))
}

/// Timings of one batch at one party (seconds).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BatchReport {
    pub images: usize,
    pub offline_s: f64,
    pub online_s: f64,
    /// Online wall time per step (node name, seconds).
    pub steps: Vec<(String, f64)>,
}

/// What the client learns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientOutcome {
    pub logits: Vec<Vec<f64>>,
    /// The server's calibrated logit range (from the public model), to judge
    /// the logits with (`pann_models::range::check_logits`).
    #[serde(default)]
    pub logit_range: Option<[f64; 2]>,
    pub batches: Vec<BatchReport>,
    pub model_digest: String,
    pub setup_s: f64,
    /// Traffic with the server (setup, online) and with the dealer (setup, offline).
    pub meter_server: Meter,
    pub meter_dealer: Meter,
}

/// The server's side. `model` must be BN-folded and described by `public`.
pub async fn server_session(client: &mut Channel, dealer: &mut Channel, model: &Model, public: &PublicModel) -> Result<Vec<BatchReport>> {
    server_session_with(client, dealer, model, public, &SessionLimits::default()).await
}

/// [`server_session`] refusing a client's batch above `limits`.
pub async fn server_session_with(
    client: &mut Channel,
    dealer: &mut Channel,
    model: &Model,
    public: &PublicModel,
    limits: &SessionLimits,
) -> Result<Vec<BatchReport>> {
    let res = server_inner(client, dealer, model, public, limits).await;
    if let Err(e) = &res {
        abort_both(client, dealer, e, AbortCode::Model).await;
    }
    res
}

async fn server_inner(client: &mut Channel, dealer: &mut Channel, model: &Model, public: &PublicModel, limits: &SessionLimits) -> Result<Vec<BatchReport>> {
    let desc = public.to_json();
    let shared = Arc::new(public.clone());
    let size = MaterialSize::of(&shared)?;
    handshake(client, &session_params(Role::Server, &public.precision()).expecting(Role::Client)).await.map_err(on("client"))?;
    handshake(dealer, &dealer_params(Role::Server).expecting(Role::Dealer)).await.map_err(on("dealer"))?;
    for (ch, peer) in [(&mut *client, "client"), (&mut *dealer, "dealer")] {
        ch.set_phase(Phase::Setup);
        ch.set_label("model");
        ch.send_tagged(Tag::Bytes, &desc).map_err(on(peer))?;
        ch.flush().await.map_err(on(peer))?;
    }
    let req = recv_request(client, "client").await?;
    limits.check_batch("server", req.batch, &size)?;
    let plan = Plan::compile(shared, req.batch)?;
    let weights = ServerWeights::encode(&plan, model)?;
    let mut expander = Expander::new(Party::Server, recv_seed(dealer).await.map_err(on("dealer"))?);
    let mut layers = Vec::with_capacity(plan.linears.len());
    for (id, ((_, spec), w)) in plan.linears.iter().zip(weights.weights.iter()).enumerate() {
        client.set_label(&plan.network().nodes[plan.linears[id].0].name);
        layers.push(setup_server(client, &mut expander, id, *spec, w.clone()).await.map_err(on("client"))?);
    }
    let mut reports = Vec::new();
    for _ in 0..req.batches {
        let t0 = Instant::now();
        let material = plan.requests().iter().map(|r| expander.expand(r, None)).collect::<std::result::Result<_, _>>().map_err(err)?;
        let offline_s = t0.elapsed().as_secs_f64();
        client.set_phase(Phase::Online);
        client.set_label("input");
        let mut prg = Prg::from_entropy();
        let x = share_input(client, Party::Server, Party::Client, None, plan.len_of(0), &mut prg).await.map_err(on("client"))?;
        // Online time starts when the client's input arrives (before, the
        // server only waits for the client's offline phase).
        let t1 = Instant::now();
        let mut backend = PartyBackend { chan: &mut *client, party: Party::Server, layers: &layers, material };
        let mut steps = Vec::new();
        let y = run_plan(&plan, Some(&weights), &mut backend, x, Some(&mut steps)).await.map_err(online("client"))?;
        client.set_label("output");
        reveal(client, Party::Server, &y, Some(Party::Client)).await.map_err(on("client"))?;
        reports.push(BatchReport { images: req.batch, offline_s, online_s: t1.elapsed().as_secs_f64(), steps });
    }
    Ok(reports)
}

/// Party 1's offline phase: the material of every request of a run, from
/// the dealer's corrections.
async fn fetch_client(expander: &mut Expander, dealer: &mut Channel, plan: &Plan) -> Result<VecDeque<Material>> {
    let mut out = VecDeque::new();
    for r in plan.requests() {
        out.push_back(receive_material(dealer, expander, &r).await.map_err(on("dealer"))?);
    }
    Ok(out)
}

/// The client's side: `images` are raw `[c, h, w]` pixels (0..=255), which
/// the client normalises with the public model's input spec. The last batch
/// is padded with zero images (the padding's outputs are dropped).
pub async fn client_session(
    server: &mut Channel,
    dealer: &mut Channel,
    precision: &str,
    expect_digest: Option<&str>,
    images: &[Vec<u8>],
    batch: usize,
) -> Result<ClientOutcome> {
    client_session_with(server, dealer, precision, expect_digest, images, batch, &SessionLimits::default()).await
}

/// [`client_session`] refusing a model whose material for `batch` images
/// exceeds `limits` (a server chooses the model's size).
pub async fn client_session_with(
    server: &mut Channel,
    dealer: &mut Channel,
    precision: &str,
    expect_digest: Option<&str>,
    images: &[Vec<u8>],
    batch: usize,
    limits: &SessionLimits,
) -> Result<ClientOutcome> {
    let res = client_inner(server, dealer, precision, expect_digest, images, batch, limits).await;
    if let Err(e) = &res {
        abort_both(server, dealer, e, AbortCode::Input).await;
    }
    res
}

async fn client_inner(
    server: &mut Channel,
    dealer: &mut Channel,
    precision: &str,
    expect_digest: Option<&str>,
    images: &[Vec<u8>],
    batch: usize,
    limits: &SessionLimits,
) -> Result<ClientOutcome> {
    let t_setup = Instant::now();
    if images.is_empty() {
        return Err(err("no input images"));
    }
    handshake(server, &session_params(Role::Client, precision).expecting(Role::Server)).await.map_err(on("server"))?;
    server.set_phase(Phase::Setup);
    let desc = recv_bytes(server, "server", MAX_MODEL_DESCRIPTION).await?;
    let public = Arc::new(PublicModel::from_json(&desc).map_err(from_peer("server"))?);
    // The digest of the bytes as sent, which is what the server computes.
    let digest = sha256_hex(&desc);
    if let Some(want) = expect_digest {
        if !want.eq_ignore_ascii_case(&digest) {
            return Err(coded(AbortCode::Mismatch, format!("the server's model has digest {digest}, expected {want}")));
        }
    }
    let per_image = public.network.input_shape().len();
    if let Some((i, img)) = images.iter().enumerate().find(|(_, im)| im.len() != per_image) {
        let s = public.network.input_shape();
        return Err(err(format!("image {i} has {} values, the model expects {}x{}x{} = {per_image}", img.len(), s.c, s.h, s.w)));
    }
    let batch = batch.clamp(1, MAX_BATCH).min(images.len());
    let req = SessionRequest { batch, batches: images.len().div_ceil(batch) };
    req.check()?;
    limits.check_batch("client", batch, &MaterialSize::of(&public)?)?;
    send_json(server, "server", &req).await?;
    handshake(dealer, &dealer_params(Role::Client).expecting(Role::Dealer)).await.map_err(on("dealer"))?;
    handshake(dealer, &model_params(Role::Client, &digest).expecting(Role::Dealer)).await.map_err(on("dealer"))?;
    send_json(dealer, "dealer", &req).await?;
    let mut expander = Expander::new(Party::Client, recv_seed(dealer).await.map_err(on("dealer"))?);
    let plan = Plan::compile(Arc::clone(&public), batch).map_err(from_peer("server"))?;
    let mut layers = Vec::with_capacity(plan.linears.len());
    for (id, (node, spec)) in plan.linears.iter().enumerate() {
        server.set_label(&plan.network().nodes[*node].name);
        layers.push(setup_client(server, id, *spec).await.map_err(on("server"))?);
    }
    let setup_s = t_setup.elapsed().as_secs_f64();
    let mut logits = Vec::with_capacity(images.len());
    let mut reports = Vec::new();
    let mut prg = Prg::from_entropy();
    for chunk in images.chunks(batch) {
        let t0 = Instant::now();
        let material = fetch_client(&mut expander, dealer, &plan).await?;
        let offline_s = t0.elapsed().as_secs_f64();
        let mut x: Vec<f64> = chunk.iter().flat_map(|im| public.input.normalise(im)).collect();
        x.resize(per_image * batch, 0.0);
        let enc = plan.encode_input(&x)?;
        server.set_phase(Phase::Online);
        let t1 = Instant::now();
        server.set_label("input");
        let xs = share_input(server, Party::Client, Party::Client, Some(&enc), enc.len(), &mut prg).await.map_err(on("server"))?;
        let mut backend = PartyBackend { chan: &mut *server, party: Party::Client, layers: &layers, material };
        let mut steps = Vec::new();
        let y = run_plan(&plan, None, &mut backend, xs, Some(&mut steps)).await.map_err(online("server"))?;
        server.set_label("output");
        let out = reveal(server, Party::Client, &y, Some(Party::Client)).await.map_err(on("server"))?.ok_or_else(|| err("no output revealed"))?;
        let online_s = t1.elapsed().as_secs_f64();
        let classes = plan.network().output_shape().len();
        logits.extend(plan.decode_output(&out).chunks(classes).take(chunk.len()).map(|c| c.to_vec()));
        reports.push(BatchReport { images: chunk.len(), offline_s, online_s, steps });
    }
    Ok(ClientOutcome {
        logits,
        logit_range: public.logit_range,
        batches: reports,
        model_digest: digest,
        setup_s,
        meter_server: server.meter().clone(),
        meter_dealer: dealer.meter().clone(),
    })
}

/// The dealer's side: two accepted channels, in any order (the handshake
/// tells which is the server and which the client).
pub async fn dealer_session(a: &mut Channel, b: &mut Channel) -> Result<()> {
    dealer_session_with(a, b, &SessionLimits::default()).await
}

/// [`dealer_session`] refusing a client's batch above `limits`.
pub async fn dealer_session_with(a: &mut Channel, b: &mut Channel, limits: &SessionLimits) -> Result<()> {
    let res = dealer_inner(a, b, limits).await;
    if let Err(e) = &res {
        abort_both(a, b, e, AbortCode::Internal).await;
    }
    res
}

async fn dealer_inner(a: &mut Channel, b: &mut Channel, limits: &SessionLimits) -> Result<()> {
    // Both at once: each party reaches its dealer handshake at its own time.
    let ours = dealer_params(Role::Dealer);
    // The first failure ends the wait (the other party may never get here).
    let (ra, rb) = tokio::try_join!(
        async { handshake(a, &ours).await.map_err(on("first party")) },
        async { handshake(b, &ours).await.map_err(on("second party")) }
    )?;
    let (server, client) = match (ra.role, rb.role) {
        (Role::Server, Role::Client) => (a, b),
        (Role::Client, Role::Server) => (b, a),
        (x, y) => return Err(coded(AbortCode::Mismatch, format!("the dealer needs one server and one client, got {x} and {y}"))),
    };
    server.set_phase(Phase::Setup);
    let desc = recv_bytes(server, "server", MAX_MODEL_DESCRIPTION).await?;
    let public = Arc::new(PublicModel::from_json(&desc).map_err(from_peer("server"))?);
    let size = MaterialSize::of(&public)?;
    handshake(client, &model_params(Role::Dealer, &sha256_hex(&desc)).expecting(Role::Client)).await.map_err(on("client"))?;
    let req = recv_request(client, "client").await?;
    limits.check_batch("dealer", req.batch, &size)?;
    let plan = Plan::compile(Arc::clone(&public), req.batch)?;
    let (s0, s1) = (Prg::random_seed(), Prg::random_seed());
    send_seed(server, &s0).await.map_err(on("server"))?;
    send_seed(client, &s1).await.map_err(on("client"))?;
    let mut dealer = Dealer::new(s0, s1);
    for (_, spec) in &plan.linears {
        dealer.register_linear(*spec).map_err(err)?;
    }
    let reqs = plan.requests();
    for _ in 0..req.batches {
        serve(&mut dealer, client, &reqs).await.map_err(on("client"))?;
    }
    Ok(())
}
