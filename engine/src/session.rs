//! The three roles of a secure inference session over established channels,
//! in steps that a service composes (`pann-party`), and as whole sessions
//! (tests, `pann frontier`).
//!
//! * Server: [`server_admit`] (handshake with the client, the public model
//!   description, the client's request), a source of preprocessing (a dealer
//!   over the network: [`server_dealer_open`]; any [`Preprocessing`]), then
//!   [`server_run`] (the masked weights `E = W - A` once, then per batch the
//!   online phase).
//! * Client: [`client_connect`] (handshake, the model description and its
//!   digest, the request with a fresh [`SessionId`]), [`client_dealer_open`]
//!   (the dealer's seed), then [`client_run`] while [`correction_stream`]
//!   receives the dealer's corrections concurrently, at most a few requests
//!   ahead.
//! * Dealer: [`dealer_greet`] each connection (its certified role, the
//!   session id and, from the client, the model digest), pair the two
//!   halves of a session by id, then [`dealer_serve`] (the public model and
//!   the request from the server, a seed to each, party 1's corrections
//!   streamed request by request).
//!
//! An error on one side is sent to the peers as an Abort with a code and its
//! fixed public text ([`AbortCode`]); the error's own message, which may name
//! secret values or file paths, stays in the local log.

use std::sync::Arc;
use std::time::Instant;

use pann_approx::Precision;
use pann_models::card::sha256_hex;
use pann_models::model::Model;
use pann_mpc_core::channel::Tag;
use pann_mpc_core::handshake::{handshake, handshake_responder, Role, SessionParams};
use pann_mpc_core::ring::R;
use pann_mpc_core::{AbortCode, Channel, CoreError, Meter, Party, Phase, Prg, Seed};
use pann_protocols::dealer::{recv_seed, send_corrections, send_seed, serve};
use pann_protocols::linear::{setup_client, setup_server_with_mask};
use pann_protocols::ops::{reveal, share_input};
use pann_protocols::{Dealer, ProtocolError};
use serde::{Deserialize, Serialize};

use crate::exec::{run_plan, PartyBackend};
use crate::limits::{MaterialSize, SessionLimits, MAX_MODEL_DESCRIPTION, MAX_REQUEST};
use crate::plan::{Plan, PublicModel, ServerWeights};
use crate::preprocessing::{correction_stream, MaterialQueue, Preprocessing, SeedExpansion};

/// A session's errors: [`ModelError`](pann_models::error::ModelError), whose
/// [`abort_code`](pann_models::error::ModelError::abort_code) is what the
/// peers are told.
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
/// Largest number of batches one session may request.
pub const MAX_BATCHES: usize = 1 << 20;

/// Requests of material party 1 receives ahead of the online phase: the
/// queue between the dealer's stream and the online phase holds at most this
/// many (see [`SessionLimits`] for what a party holds at once).
pub const STREAM_DEPTH: usize = 1;

/// A session's identifier: 128 random bits the client draws, sent to the
/// server in its request and bound to both parties' handshakes with the
/// dealer, which pairs the two halves of a session by it, never by arrival
/// order. Treat it as a capability while the session runs: whoever knows it
/// (and holds a client or server certificate) could claim a half of the
/// session at the dealer, which would make the honest party's session fail
/// or compute garbage (never reveal a secret). Logs show only its first 8
/// hex digits; reports hold it whole after the session has ended.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// 128 fresh random bits (from the operating system's entropy).
    pub fn random() -> SessionId {
        SessionId(Prg::random_seed())
    }

    /// Exactly 32 lowercase hex digits.
    pub fn parse(s: &str) -> Option<SessionId> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(SessionId(out))
    }

    /// The first 8 hex digits, for log lines.
    pub fn short(&self) -> String {
        self.to_string()[..8].to_string()
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// The client's request, sent to the server after the handshake (and by the
/// server to the dealer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRequest {
    /// Images per run, 1..=[`MAX_BATCH`] (the last batch is padded).
    pub batch: usize,
    /// Runs in the session, 1..=[`MAX_BATCHES`].
    pub batches: usize,
    /// The [`SessionId`], as 32 hex digits.
    pub session: String,
}

impl SessionRequest {
    /// Parse and check a request as a peer sends it (JSON).
    pub fn decode(bytes: &[u8]) -> Result<SessionRequest> {
        // serde's message may quote the peer's text: only where and what kind.
        let r: SessionRequest = serde_json::from_slice(bytes).map_err(|e| {
            coded(
                AbortCode::Malformed,
                format!("malformed session request ({:?} error at line {} column {})", e.classify(), e.line(), e.column()),
            )
        })?;
        if SessionId::parse(&r.session).is_none() {
            return Err(coded(AbortCode::Malformed, "malformed session request (the session id is not 32 lowercase hex digits)"));
        }
        r.check().map_err(|e| coded(AbortCode::Limit, e))?;
        Ok(r)
    }

    fn check(&self) -> Result<()> {
        if self.batch == 0 || self.batch > MAX_BATCH || self.batches == 0 || self.batches > MAX_BATCHES {
            return Err(err(format!(
                "session request of batch {} x {}: batch must be 1..={MAX_BATCH}, batches 1..={MAX_BATCHES}",
                self.batch, self.batches
            )));
        }
        Ok(())
    }

    /// The session id (checked by [`SessionRequest::decode`]).
    pub fn id(&self) -> Result<SessionId> {
        SessionId::parse(&self.session).ok_or_else(|| coded(AbortCode::Malformed, "the session id is not 32 lowercase hex digits"))
    }
}

/// Parameters the two parties must agree on before anything else.
/// `precision` is [`PublicModel::precision`], sent as its text form (`"9"`,
/// or `"per-layer:4,5,..."`) under the name `alpha`.
pub fn session_params(role: Role, precision: &Precision) -> SessionParams {
    dealer_params(role).with("alpha", precision)
}

/// Parameters every role agrees on with every other.
pub fn dealer_params(role: Role) -> SessionParams {
    SessionParams::new(role).with("ring", "Z_2^64")
}

/// A party's Hello to the dealer: the session id (which the dealer pairs
/// the parties by) and, from the client, the digest of the model the server
/// described (which the dealer checks against the description it gets).
pub fn dealer_hello(role: Role, id: &SessionId, model: Option<&str>) -> SessionParams {
    let p = dealer_params(role).with("session", id).expecting(Role::Dealer);
    match model {
        Some(d) => p.with("model", d),
        None => p,
    }
}

/// The server's one-byte answer to an admitted request.
const ADMITTED: u8 = 1;

/// The fields of a party's Hello that the dealer adopts (see [`dealer_hello`]).
pub const DEALER_ADOPTS: [&str; 2] = ["session", "model"];

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
    /// Real images in the batch (the client does not count padding; the
    /// server, which cannot tell, counts the whole batch).
    pub images: usize,
    /// Time spent waiting for (client) or expanding (server) material during
    /// the batch: material arrives while the online phase runs.
    pub offline_s: f64,
    /// The batch's wall time less `offline_s`.
    pub online_s: f64,
    /// Online wall time per step (node name, seconds).
    pub steps: Vec<(String, f64)>,
}

/// What the client learns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientOutcome {
    /// One vector of decoded logits per input image, in order.
    pub logits: Vec<Vec<f64>>,
    /// The server's calibrated logit range (from the public model), to judge
    /// the logits with (`pann_models::range::check_logits`).
    #[serde(default)]
    pub logit_range: Option<[f64; 2]>,
    /// Timings per batch.
    pub batches: Vec<BatchReport>,
    /// The SHA-256 of the model description the server sent.
    pub model_digest: String,
    /// Setup wall time in seconds: the masked weights, and in a whole session
    /// ([`client_session`]) the connection before them.
    pub setup_s: f64,
    /// Traffic with the server (setup, online); empty from [`client_run`].
    pub meter_server: Meter,
    /// Traffic with the dealer (setup, offline); empty from [`client_run`].
    pub meter_dealer: Meter,
}

/// A model as a server serves it: the BN-folded model, its public
/// description (and the exact bytes sent, whose SHA-256 is the digest a
/// client pins), and the material one image needs (for limits). Built once
/// and shared by every session.
pub struct ServedModel {
    /// The BN-folded model with its weights (secret).
    pub model: Model,
    /// Its public description.
    pub public: Arc<PublicModel>,
    description: Vec<u8>,
    /// The material one image needs, for [`SessionLimits::check_batch`].
    pub size: MaterialSize,
}

impl ServedModel {
    /// `model` must be BN-folded and described by `public`.
    pub fn new(model: Model, public: PublicModel) -> Result<ServedModel> {
        let public = Arc::new(public);
        let size = MaterialSize::of(&public)?;
        Ok(ServedModel { model, description: public.to_json(), public, size })
    }

    /// The SHA-256 of the description sent to clients (what `--expect-model` pins).
    pub fn digest(&self) -> String {
        sha256_hex(&self.description)
    }
}

/// A client the server has admitted: its request and the plan for its batch.
pub struct Admitted {
    /// The client's request (checked against the server's limits).
    pub request: SessionRequest,
    /// Its session id.
    pub id: SessionId,
    /// The plan for the requested batch.
    pub plan: Plan,
}

/// The server's first step: handshake with the client, the public model
/// description, the client's request (refused above `limits`), and the
/// answer that admits it ([`server_hear`] then [`server_confirm`]).
pub async fn server_admit(client: &mut Channel, served: &ServedModel, limits: &SessionLimits) -> Result<Admitted> {
    let admitted = server_hear(client, served, limits).await?;
    server_confirm(client).await?;
    Ok(admitted)
}

/// [`server_admit`] up to the client's request, without answering it: a
/// service takes a session slot in between (a client holds no slot until it
/// has asked for something), and answers with [`server_confirm`] or an
/// Abort (`Busy`).
pub async fn server_hear(client: &mut Channel, served: &ServedModel, limits: &SessionLimits) -> Result<Admitted> {
    handshake(client, &session_params(Role::Server, &served.public.precision()).expecting(Role::Client)).await.map_err(on("client"))?;
    client.set_phase(Phase::Setup);
    client.set_label("model");
    client.send_tagged(Tag::Bytes, &served.description).map_err(on("client"))?;
    client.flush().await.map_err(on("client"))?;
    let request = recv_request(client, "client").await?;
    let id = request.id()?;
    limits.check_batch("server", request.batch, &served.size)?;
    let plan = Plan::compile(Arc::clone(&served.public), request.batch)?;
    Ok(Admitted { request, id, plan })
}

/// Tell the client it is admitted, before it contacts the dealer: a refusal
/// reaches it from the server, with its code, and never leaves a half
/// session waiting at the dealer.
pub async fn server_confirm(client: &mut Channel) -> Result<()> {
    client.send_tagged(Tag::Bytes, &[ADMITTED]).map_err(on("client"))?;
    client.flush().await.map_err(on("client"))
}

/// Party 0's preprocessing from a dealer over `dealer`: the handshake bound
/// to the session id, the public model and the request to the dealer, the
/// seed back. The dealer sends party 0 nothing else (party 0 expands all its
/// material from the seed), so `dealer` may be closed afterwards, or used
/// for the next session (a server's persistent link to its dealer).
pub async fn server_dealer_open(dealer: &mut Channel, served: &ServedModel, admitted: &Admitted) -> Result<SeedExpansion> {
    handshake(dealer, &dealer_hello(Role::Server, &admitted.id, None)).await.map_err(on("dealer"))?;
    dealer.set_phase(Phase::Setup);
    dealer.set_label("model");
    dealer.send_tagged(Tag::Bytes, &served.description).map_err(on("dealer"))?;
    send_json(dealer, "dealer", &admitted.request).await?;
    let seed = recv_seed(dealer).await.map_err(on("dealer"))?;
    Ok(SeedExpansion::new(seed))
}

/// The server's session after admission: the masked weights to the client,
/// then every batch's online phase, with material from `source`.
pub async fn server_run<P: Preprocessing>(
    client: &mut Channel,
    served: &ServedModel,
    admitted: &Admitted,
    source: &mut P,
) -> Result<Vec<BatchReport>> {
    let plan = &admitted.plan;
    let weights = ServerWeights::encode(plan, &served.model)?;
    let mut layers = Vec::with_capacity(plan.linears.len());
    for (id, ((node, spec), w)) in plan.linears.iter().zip(weights.weights.iter()).enumerate() {
        client.set_label(&plan.network().nodes[*node].name);
        let mask = source.weight_mask(spec).map_err(|e| coded(e.abort_code(), format!("material: {e}")))?;
        layers.push(setup_server_with_mask(client, id, *spec, w.clone(), &mask).await.map_err(on("client"))?);
    }
    let mut reports = Vec::new();
    for _ in 0..admitted.request.batches {
        client.set_phase(Phase::Online);
        client.set_label("input");
        let mut prg = Prg::from_entropy();
        let x = share_input(client, Party::Server, Party::Client, None, plan.len_of(0), &mut prg).await.map_err(on("client"))?;
        // The batch starts when the client's input arrives (before, the
        // server only waits for the client).
        let t1 = Instant::now();
        let mut backend = PartyBackend::new(&mut *client, Party::Server, &layers, &mut *source);
        let mut steps = Vec::new();
        let y = run_plan(plan, Some(&weights), &mut backend, x, Some(&mut steps)).await.map_err(online("client"))?;
        let offline_s = backend.waited_s;
        client.set_label("output");
        reveal(client, Party::Server, &y, Some(Party::Client)).await.map_err(on("client"))?;
        let online_s = (t1.elapsed().as_secs_f64() - offline_s).max(0.0);
        reports.push(BatchReport { images: admitted.request.batch, offline_s, online_s, steps });
    }
    Ok(reports)
}

/// The server's side of a whole session with a dealer over `dealer`.
/// `model` must be BN-folded and described by `public`.
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
    let res = async {
        let served = ServedModel::new(model.clone(), public.clone())?;
        let admitted = server_admit(client, &served, limits).await?;
        let mut source = server_dealer_open(dealer, &served, &admitted).await?;
        server_run(client, &served, &admitted, &mut source).await
    }
    .await;
    if let Err(e) = &res {
        abort_both(client, dealer, e, AbortCode::Model).await;
    }
    res
}

/// A client connected to a server: the public model, its digest, the
/// request sent and the plan for it.
pub struct Connected {
    /// The server's public model, checked.
    pub public: Arc<PublicModel>,
    /// The SHA-256 of its description as received.
    pub digest: String,
    /// The request sent.
    pub request: SessionRequest,
    /// The session id drawn for it.
    pub id: SessionId,
    /// The plan for the requested batch.
    pub plan: Plan,
}

/// The client's first step: handshake with the server, the public model
/// description (checked against `expect_digest` when given), and the request
/// for `images` in batches of `batch`, under a fresh session id. The images
/// are raw `[c, h, w]` pixels (0..=255); only their number and sizes are
/// used here.
pub async fn client_connect(
    server: &mut Channel,
    precision: &Precision,
    expect_digest: Option<&str>,
    images: &[Vec<u8>],
    batch: usize,
    limits: &SessionLimits,
) -> Result<Connected> {
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
    let id = SessionId::random();
    let request = SessionRequest { batch, batches: images.len().div_ceil(batch), session: id.to_string() };
    request.check()?;
    limits.check_batch("client", batch, &MaterialSize::of(&public)?)?;
    send_json(server, "server", &request).await?;
    let plan = Plan::compile(Arc::clone(&public), batch).map_err(from_peer("server"))?;
    if recv_bytes(server, "server", 1).await? != [ADMITTED] {
        return Err(coded(AbortCode::Malformed, "the server's answer to the request is malformed"));
    }
    Ok(Connected { public, digest, request, id, plan })
}

/// Party 1's handshake with the dealer (the session id and the model
/// digest), and its seed. The corrections follow on `dealer`: receive them
/// with [`correction_stream`].
pub async fn client_dealer_open(dealer: &mut Channel, c: &Connected) -> Result<Seed> {
    handshake(dealer, &dealer_hello(Role::Client, &c.id, Some(&c.digest))).await.map_err(on("dealer"))?;
    recv_seed(dealer).await.map_err(on("dealer"))
}

/// The client's session after [`client_connect`]: the masked weights, then
/// every batch's online phase, with material from `source`. The last batch
/// is padded with zero images (the padding's outputs are dropped). The
/// returned outcome's meters are empty: the caller owns the channels.
pub async fn client_run<P: Preprocessing>(
    server: &mut Channel,
    c: &Connected,
    source: &mut P,
    images: &[Vec<u8>],
) -> Result<ClientOutcome> {
    let t_setup = Instant::now();
    let (plan, public, batch) = (&c.plan, &c.public, c.request.batch);
    let per_image = public.network.input_shape().len();
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
        let mut x: Vec<f64> = chunk.iter().flat_map(|im| public.input.normalise(im)).collect();
        x.resize(per_image * batch, 0.0);
        let enc = plan.encode_input(&x)?;
        server.set_phase(Phase::Online);
        let t1 = Instant::now();
        server.set_label("input");
        let xs = share_input(server, Party::Client, Party::Client, Some(&enc), enc.len(), &mut prg).await.map_err(on("server"))?;
        let mut backend = PartyBackend::new(&mut *server, Party::Client, &layers, &mut *source);
        let mut steps = Vec::new();
        let y = run_plan(plan, None, &mut backend, xs, Some(&mut steps)).await.map_err(online("server"))?;
        let offline_s = backend.waited_s;
        server.set_label("output");
        let out =
            reveal(server, Party::Client, &y, Some(Party::Client)).await.map_err(on("server"))?.ok_or_else(|| err("no output revealed"))?;
        let online_s = (t1.elapsed().as_secs_f64() - offline_s).max(0.0);
        let classes = plan.network().output_shape().len();
        logits.extend(plan.decode_output(&out).chunks(classes).take(chunk.len()).map(|c| c.to_vec()));
        reports.push(BatchReport { images: chunk.len(), offline_s, online_s, steps });
    }
    Ok(ClientOutcome {
        logits,
        logit_range: public.logit_range,
        batches: reports,
        model_digest: c.digest.clone(),
        setup_s,
        meter_server: Meter::default(),
        meter_dealer: Meter::default(),
    })
}

/// The client's whole session after [`client_connect`] with a dealer over
/// `dealer`: the seed, then the online phase while the dealer's corrections
/// stream in (at most [`STREAM_DEPTH`] requests ahead).
pub async fn client_run_with_dealer(
    server: &mut Channel,
    dealer: &mut Channel,
    c: &Connected,
    images: &[Vec<u8>],
) -> Result<ClientOutcome> {
    let seed = client_dealer_open(dealer, c).await?;
    let (mut queue, fill): (MaterialQueue, _) = correction_stream(dealer, seed, c.plan.requests(), c.request.batches, STREAM_DEPTH);
    let fill = async { fill.await.map_err(on("dealer")) };
    let run = client_run(server, c, &mut queue, images);
    let ((), out) = tokio::try_join!(fill, run)?;
    Ok(out)
}

/// The client's side of a whole session: `images` are raw `[c, h, w]`
/// pixels (0..=255), which the client normalises with the public model's
/// input spec.
pub async fn client_session(
    server: &mut Channel,
    dealer: &mut Channel,
    precision: &Precision,
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
    precision: &Precision,
    expect_digest: Option<&str>,
    images: &[Vec<u8>],
    batch: usize,
    limits: &SessionLimits,
) -> Result<ClientOutcome> {
    let t0 = Instant::now();
    let res = async {
        let c = client_connect(server, precision, expect_digest, images, batch, limits).await?;
        let setup = t0.elapsed().as_secs_f64();
        let mut out = client_run_with_dealer(server, dealer, &c, images).await?;
        out.setup_s += setup;
        Ok(out)
    }
    .await;
    match res {
        Ok(mut out) => {
            out.meter_server = server.meter().clone();
            out.meter_dealer = dealer.meter().clone();
            Ok(out)
        }
        Err(e) => {
            abort_both(server, dealer, &e, AbortCode::Input).await;
            Err(e)
        }
    }
}

/// What the dealer learns from a party's Hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// The peer's role (the certified one where the channel has a certificate).
    pub role: Role,
    /// The session it names.
    pub id: SessionId,
    /// The client's: the digest of the model the server described to it.
    pub model: Option<String>,
}

/// The dealer's first step with a connection: the handshake as responder
/// (the role is the certified one where the channel has a certificate),
/// adopting the session id and, from the client, the model digest.
pub async fn dealer_greet(chan: &mut Channel) -> Result<Greeting> {
    let theirs = handshake_responder(chan, &dealer_params(Role::Dealer), &DEALER_ADOPTS).await.map_err(on("party"))?;
    let malformed = |what: &str| coded(AbortCode::Malformed, format!("the {}'s Hello {what}", theirs.role));
    let id = theirs.get("session").and_then(SessionId::parse).ok_or_else(|| malformed("has no valid session id"))?;
    let model = theirs.get("model").map(str::to_string);
    match (theirs.role, &model) {
        (Role::Client, Some(d)) if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {}
        (Role::Client, _) => return Err(malformed("has no valid model digest")),
        (Role::Server, None) => {}
        (Role::Server, Some(_)) => return Err(malformed("names a model digest")),
        (Role::Dealer, _) => return Err(malformed("claims the dealer role")),
    }
    Ok(Greeting { role: theirs.role, id, model })
}

/// What the dealer learns from the server for one session: the public
/// model (checked against the client's digest), the request, and the plan.
pub struct DealerJob {
    /// The public model, checked.
    pub public: Arc<PublicModel>,
    /// The SHA-256 of the model description (the client's pinned digest).
    pub digest: String,
    /// The client's request, as the server forwarded it.
    pub request: SessionRequest,
    /// The plan for the requested batch.
    pub plan: Plan,
}

impl DealerJob {
    /// Sessions with the same key can use the same prepared material.
    pub fn key(&self) -> (String, usize, usize) {
        (self.digest.clone(), self.request.batch, self.request.batches)
    }
}

/// A session's dealer material made before its parties arrive (`--pool`):
/// both seeds and party 1's corrections for every request of every batch.
pub struct PreparedSession {
    seeds: (Seed, Seed),
    corrections: Vec<Vec<R>>,
}

impl PreparedSession {
    /// Fresh seeds and all corrections of `batches` runs of `plan`
    /// (CPU-bound: run it off the async runtime).
    pub fn generate(plan: &Plan, batches: usize) -> Result<PreparedSession> {
        let seeds = (Prg::random_seed(), Prg::random_seed());
        let mut dealer = Dealer::new(seeds.0, seeds.1);
        for (_, spec) in &plan.linears {
            dealer.register_linear(*spec).map_err(err)?;
        }
        let reqs = plan.requests();
        let mut corrections = Vec::with_capacity(reqs.len() * batches);
        for _ in 0..batches {
            for r in &reqs {
                corrections.push(dealer.corrections(r).map_err(err)?);
            }
        }
        Ok(PreparedSession { seeds, corrections })
    }

    /// Bytes held (party 1's corrections).
    pub fn bytes(&self) -> u64 {
        self.corrections.iter().map(|c| c.len() as u64 * 8).sum()
    }
}

/// The dealer's session with one paired server and client (each greeted by
/// [`dealer_greet`] with the same id; `digest` is the client's): the public
/// model and the request from the server, checked against the client's
/// digest and `limits`; a seed to each; party 1's corrections streamed
/// request by request (the dealer holds one request's at a time).
pub async fn dealer_serve(server: &mut Channel, client: &mut Channel, id: &SessionId, digest: &str, limits: &SessionLimits) -> Result<()> {
    let res = async {
        let job = dealer_receive(server, id, digest, limits).await?;
        dealer_send(server, client, &job, None).await
    }
    .await;
    if let Err(e) = &res {
        abort_both(server, client, e, AbortCode::Internal).await;
    }
    res
}

/// The first half of [`dealer_serve`]: the model and the request from the
/// server, checked. On an error the caller tells both parties.
pub async fn dealer_receive(server: &mut Channel, id: &SessionId, digest: &str, limits: &SessionLimits) -> Result<DealerJob> {
    server.set_phase(Phase::Setup);
    let desc = recv_bytes(server, "server", MAX_MODEL_DESCRIPTION).await?;
    if !sha256_hex(&desc).eq_ignore_ascii_case(digest) {
        return Err(coded(AbortCode::Mismatch, "the server's model description is not the one the client was given (digests differ)"));
    }
    let public = Arc::new(PublicModel::from_json(&desc).map_err(from_peer("server"))?);
    let request = recv_request(server, "server").await?;
    if request.id()? != *id {
        return Err(coded(AbortCode::Mismatch, "the server's request names another session"));
    }
    limits.check_batch("dealer", request.batch, &MaterialSize::of(&public)?)?;
    let plan = Plan::compile(Arc::clone(&public), request.batch)?;
    Ok(DealerJob { public, digest: digest.to_ascii_lowercase(), request, plan })
}

/// The second half of [`dealer_serve`]: a seed to each party, then party
/// 1's corrections, from `prepared` if given (made for the same key), else
/// generated request by request. On an error the caller tells both parties.
pub async fn dealer_send(server: &mut Channel, client: &mut Channel, job: &DealerJob, prepared: Option<PreparedSession>) -> Result<()> {
    let stream = dealer_seeds(server, client, job, prepared).await?;
    dealer_stream(client, job, stream).await
}

/// What the dealer still owes party 1 once both seeds are sent.
pub struct CorrectionSource(Source);

enum Source {
    Prepared(Vec<Vec<R>>),
    Live(Box<Dealer>),
}

/// [`dealer_send`] up to the seeds: after it the dealer needs nothing more
/// of the server's channel (a service hands it back to its link at once).
pub async fn dealer_seeds(
    server: &mut Channel,
    client: &mut Channel,
    job: &DealerJob,
    prepared: Option<PreparedSession>,
) -> Result<CorrectionSource> {
    let reqs = job.plan.requests().len();
    let (seeds, source) = match prepared {
        Some(p) => {
            if p.corrections.len() != reqs * job.request.batches {
                return Err(err("prepared material for another plan"));
            }
            (p.seeds, Source::Prepared(p.corrections))
        }
        None => {
            let (s0, s1) = (Prg::random_seed(), Prg::random_seed());
            let mut dealer = Dealer::new(s0, s1);
            for (_, spec) in &job.plan.linears {
                dealer.register_linear(*spec).map_err(err)?;
            }
            ((s0, s1), Source::Live(Box::new(dealer)))
        }
    };
    // The client's first: once the server has its seed, nothing more is
    // written to its channel (a service hands it back to the server's link
    // for the next session, which must not find an Abort of this one).
    send_seed(client, &seeds.1).await.map_err(on("client"))?;
    send_seed(server, &seeds.0).await.map_err(on("server"))?;
    Ok(CorrectionSource(source))
}

/// [`dealer_send`] after the seeds: party 1's corrections for every request
/// of every batch, prepared or generated one request at a time.
pub async fn dealer_stream(client: &mut Channel, job: &DealerJob, source: CorrectionSource) -> Result<()> {
    let reqs = job.plan.requests();
    match source.0 {
        Source::Prepared(corrections) => {
            for (req, corr) in reqs.iter().cycle().zip(&corrections) {
                send_corrections(client, req, corr).await.map_err(on("client"))?;
            }
        }
        Source::Live(mut dealer) => {
            for _ in 0..job.request.batches {
                serve(&mut dealer, client, &reqs).await.map_err(on("client"))?;
            }
        }
    }
    Ok(())
}

/// The dealer's side of one session on two accepted channels, in any order:
/// greets both and checks that they are one server and one client of the
/// same session (tests; a dealer service pairs many, see `pann-party`).
pub async fn dealer_session(a: &mut Channel, b: &mut Channel) -> Result<()> {
    dealer_session_with(a, b, &SessionLimits::default()).await
}

/// One whole session by server, client and dealer in this task, over
/// in-memory channels (tests, examples, benchmarks): the server serves
/// `model` described by `public`, the client sends `images` in batches of
/// `batch`, naming the model's precision and pinning its digest. The first
/// error of the server, the dealer or the client, in that order, else what
/// the client learns.
pub async fn session_in_memory(model: &Model, public: &PublicModel, images: &[Vec<u8>], batch: usize) -> Result<ClientOutcome> {
    let cfg = pann_mpc_core::ChannelConfig::default();
    let (mut server_client, mut client_server) = Channel::mem_pair(cfg.clone());
    let (mut server_dealer, mut dealer_server) = Channel::mem_pair(cfg.clone());
    let (mut client_dealer, mut dealer_client) = Channel::mem_pair(cfg);
    let (digest, precision) = (public.digest(), public.precision());
    let (s, c, d) = tokio::join!(
        server_session(&mut server_client, &mut server_dealer, model, public),
        client_session(&mut client_server, &mut client_dealer, &precision, Some(&digest), images, batch),
        dealer_session(&mut dealer_client, &mut dealer_server),
    );
    s?;
    d?;
    c
}

/// [`dealer_session`] refusing a client's batch above `limits`.
pub async fn dealer_session_with(a: &mut Channel, b: &mut Channel, limits: &SessionLimits) -> Result<()> {
    // Both at once: each party reaches the dealer at its own time; the first
    // failure ends the wait (the other party may never get here).
    let greeted = tokio::try_join!(async { dealer_greet(a).await.map_err(online("first party")) }, async {
        dealer_greet(b).await.map_err(online("second party"))
    });
    let (ga, gb) = match greeted {
        Ok(g) => g,
        Err(e) => {
            abort_both(a, b, &e, AbortCode::Internal).await;
            return Err(e);
        }
    };
    let (server, client, gs, gc) = match (ga.role, gb.role) {
        (Role::Server, Role::Client) => (a, b, ga, gb),
        (Role::Client, Role::Server) => (b, a, gb, ga),
        (x, y) => {
            let e = coded(AbortCode::Mismatch, format!("the dealer needs one server and one client, got {x} and {y}"));
            abort_both(a, b, &e, AbortCode::Internal).await;
            return Err(e);
        }
    };
    if gs.id != gc.id {
        let e = coded(AbortCode::Mismatch, "the server and the client name different sessions");
        abort_both(server, client, &e, AbortCode::Internal).await;
        return Err(e);
    }
    dealer_serve(server, client, &gc.id, gc.model.as_deref().unwrap_or_default(), limits).await
}
