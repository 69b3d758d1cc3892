//! The server and the dealer as long-running services.
//!
//! * **Server**: accepts clients until SIGINT or SIGTERM, each connection in
//!   its own task: TLS, admission (at most `--max-sessions` at once; beyond
//!   that a client waits in a bounded queue for `--queue-wait`, or is told
//!   `Busy`), then the session: the client's request, this session's seed
//!   over a link to the dealer kept from session to session, the online
//!   phase. A failing, slow or
//!   hostile client ends its own session only. On a signal the server stops
//!   accepting, lets in-flight sessions finish within `--drain`, and exits 0.
//! * **Dealer**: accepts both parties of many sessions at once and pairs the
//!   two halves of a session by the id both bound into their handshakes,
//!   never by arrival order; a half whose partner does not come within
//!   `--timeout` is told so and dropped.
//!
//! Sessions keep no state outside their task (a kept link carries none from
//! one session to the next): several server processes can
//! share one dealer behind a TCP load balancer (docs/results/serving.md).
//! With `--sessions N` a role ends after N connections (the demo, the bench
//! and the tests run one session per process that way) and exits 1 if any of
//! them failed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use pann_approx::Precision;
use pann_engine::{
    client_connect, client_run_with_dealer, dealer_greet, dealer_receive, dealer_seeds, dealer_stream, server_confirm, server_dealer_open,
    server_hear, server_run,
};
use pann_engine::{Admitted, ClientOutcome, DealerJob, Greeting, Plan, PreparedSession, PublicModel, ServedModel, SessionError, SessionId};
use pann_mpc_core::handshake::Role;
use pann_mpc_core::meter::{Cost, Meter};
use pann_mpc_core::transport::{Listener, TlsPeers};
use pann_mpc_core::{AbortCode, Channel};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, info_span, warn, Instrument};

use crate::metrics::Metrics;
use crate::party::{goodbye, meters, Net};
use crate::report::PartyReport;

/// How a long-running role serves.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Sessions run at once (server; dealer: paired sessions).
    pub max_sessions: usize,
    /// Clients that may wait for a session slot (server).
    pub queue: usize,
    /// Longest wait in that queue before the client is told `Busy`.
    pub queue_wait: Duration,
    /// End after this many connections (`None`: until a signal).
    pub sessions: Option<u64>,
    /// Overall deadline of one session, from its connection.
    pub deadline: Duration,
    /// After a signal: how long in-flight sessions may still run.
    pub drain: Duration,
    /// Append one JSON line per session here.
    pub report: Option<PathBuf>,
}

/// Longest wait to connect to the dealer once a session has started (its
/// absence is reported quickly; the next session tries again).
const DEALER_CONNECT: Duration = Duration::from_secs(10);

/// Kinds of session (model, batch, batches) the dealer's pool keeps
/// material for at most.
const MAX_POOL_KINDS: usize = 8;

/// The dealer's default number of concurrent sessions.
pub const DEALER_MAX_SESSIONS: usize = 64;

/// The default number of concurrent sessions: one per core (a session's
/// online phase keeps about one core busy).
pub fn default_max_sessions() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// How one session ended, for the tally and the report.
struct Ended {
    ok: bool,
    /// The local error message (never sent to a peer).
    error: Option<String>,
    report: Option<serde_json::Value>,
}

impl Ended {
    /// A dealer connection whose partner's task ran (and counts) the session.
    fn paired() -> Ended {
        Ended { ok: true, error: Some(PAIRED.into()), report: None }
    }
}

/// Marks [`Ended::paired`], which the tally does not count.
const PAIRED: &str = "paired";

/// Counts of ended sessions; in `--sessions` mode the last error is the
/// process's error.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    last_error: Option<String>,
}

impl Tally {
    fn add(&mut self, e: Ended, report: &Option<PathBuf>) {
        if e.ok && e.error.as_deref() == Some(PAIRED) {
            return;
        }
        if e.ok {
            self.ok += 1;
        } else {
            self.failed += 1;
            self.last_error = e.error.clone();
        }
        if let (Some(path), Some(mut r)) = (report, e.report) {
            if let Some(err) = &e.error {
                r["error"] = err.clone().into();
            }
            r["ok"] = e.ok.into();
            append_line(path, &r);
        }
    }
}

fn append_line(path: &PathBuf, v: &serde_json::Value) {
    use std::io::Write;
    let res = std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| writeln!(f, "{v}"));
    if let Err(e) = res {
        warn!("writing the report {}: {e}", path.display());
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The accept loop shared by both roles: `handle` runs each connection in
/// its own task. Returns when `--sessions` connections have ended, or after
/// a signal and the drain.
/// `stopping` turns true when a signal stops the role (idle work such as a
/// dealer's link waiting for its next session ends then).
async fn accept_loop<F, Fut>(
    who: &str,
    net: &Net,
    listener: Listener,
    opts: &ServiceOptions,
    max_connections: usize,
    stopping: &tokio::sync::watch::Sender<bool>,
    handle: F,
) -> Result<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Ended> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut tally = Tally::default();
    let mut accepted = 0u64;
    // Connections in any stage (TLS, admission, session): beyond them a new
    // one is closed at once, so that a flood of idle sockets cannot exhaust
    // descriptors or memory.
    let connections = Arc::new(Semaphore::new(max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let mut turned_away = 0u64;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // One-shot runs give up when nobody comes; a service waits.
    let accept_wait = if opts.sessions.is_some() { net.timeout } else { Duration::from_secs(365 * 24 * 3600) };
    let ended = |res: std::result::Result<Ended, tokio::task::JoinError>| {
        res.unwrap_or_else(|e| Ended { ok: false, error: Some(format!("a session task failed: {e}")), report: None })
    };
    let mut signalled = false;
    loop {
        if opts.sessions.is_some_and(|n| accepted >= n) {
            break;
        }
        tokio::select! {
            _ = &mut shutdown => {
                info!("{who}: stopping: no new sessions; {} in flight may finish within {} s (a second signal stops them)", tasks.len(), opts.drain.as_secs());
                signalled = true;
                stopping.send_replace(true);
                break;
            }
            Some(res) = tasks.join_next(), if !tasks.is_empty() => {
                tally.add(ended(res), &opts.report);
                if tasks.is_empty() {
                    // Idle: what the sessions freed goes back to the system.
                    crate::alloc::release_free_memory();
                }
            }
            conn = listener.accept_stream(accept_wait) => match conn {
                Ok((stream, peer)) => {
                    let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                        turned_away += 1;
                        if turned_away.is_power_of_two() {
                            warn!("{who}: {max_connections} connections open: closed {turned_away} new one(s) at once so far");
                        }
                        continue;
                    };
                    accepted += 1;
                    let fut = handle(stream, peer);
                    tasks.spawn(async move {
                        let _permit = permit;
                        fut.await
                    });
                }
                Err(e) if opts.sessions.is_some() => {
                    tally.add(Ended { ok: false, error: Some(format!("{e}")), report: None }, &None);
                    break;
                }
                Err(e) => {
                    warn!("{who}: accepting a connection: {e}");
                    // Out of descriptors, say: wait instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    if signalled {
        let deadline = tokio::time::Instant::now() + opts.drain;
        let again = shutdown_signal();
        tokio::pin!(again);
        loop {
            tokio::select! {
                res = tasks.join_next() => match res {
                    Some(res) => tally.add(ended(res), &opts.report),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    warn!("{who}: {} session(s) still running after the drain deadline were stopped", tasks.len());
                    tally.failed += tasks.len() as u64;
                    tasks.abort_all();
                    break;
                }
                _ = &mut again => {
                    warn!("{who}: second signal: stopping {} session(s) now", tasks.len());
                    tally.failed += tasks.len() as u64;
                    tasks.abort_all();
                    break;
                }
            }
        }
        info!("{who}: stopped after {} session(s) ({} failed)", tally.ok + tally.failed, tally.failed);
        if opts.sessions.is_none() {
            return Ok(());
        }
    } else {
        while let Some(res) = tasks.join_next().await {
            tally.add(ended(res), &opts.report);
        }
    }
    match (opts.sessions, tally.failed, tally.last_error) {
        (Some(_), n, Some(e)) if n > 0 => Err(anyhow!("{e}")),
        (Some(_), n, None) if n > 0 => Err(anyhow!("{n} session(s) failed")),
        _ => Ok(()),
    }
}

/// Tell a peer why its session ends, then close politely; returns the
/// peer's own code if it gave up first for a reason of its own.
async fn refuse(ch: &mut Channel, code: AbortCode) -> Option<AbortCode> {
    ch.abort(code).await;
    goodbye(ch).await
}

/// What a peer said when it gave up, for our log line (echoes of another
/// party's failure add nothing).
fn said(who: &str, code: Option<AbortCode>) -> String {
    match code.filter(|c| *c != AbortCode::PeerFailed) {
        Some(c) => format!(" (the {who} aborted: {c})"),
        None => String::new(),
    }
}

fn total(meters: &[&Meter]) -> Cost {
    meters.iter().fold(Cost::default(), |mut acc, m| {
        let t = m.total();
        acc.bytes_sent += t.bytes_sent;
        acc.bytes_recv += t.bytes_recv;
        acc.msgs_sent += t.msgs_sent;
        acc.msgs_recv += t.msgs_recv;
        acc.rounds += t.rounds;
        acc
    })
}

/// The server's shared state.
pub struct ServerService {
    /// Certificates, timeouts and per-session limits.
    pub net: Net,
    /// The model every session serves, with its public description.
    pub served: Arc<ServedModel>,
    /// The dealer's address (`host:port`).
    pub dealer: String,
    /// Session slots, queue, deadlines, report.
    pub opts: ServiceOptions,
    /// This role's counters (`--metrics`).
    pub metrics: Arc<Metrics>,
    peers: Option<Arc<TlsPeers>>,
    slots: Arc<Semaphore>,
    queue: Arc<Semaphore>,
    /// Idle links to the dealer, reused session after session (service
    /// mode; at most one per session slot).
    links: Mutex<Vec<Channel>>,
}

/// Idle links to the dealer a server keeps at most (each holds one of the
/// dealer's connections; more sessions at once open more, closed after use).
pub const MAX_IDLE_LINKS: usize = 4;

/// A session's use of the dealer: the link, whether the dealer is still in
/// this session's setup (then it is told when the session fails), and the
/// link's meter for this session.
#[derive(Default)]
struct DealerUse {
    open: Option<Channel>,
    meter: Option<Meter>,
}

impl ServerService {
    /// The service, with its certificates loaded from `net` (fails on a
    /// certificate directory holding another role's key).
    pub fn new(net: Net, served: ServedModel, dealer: String, opts: ServiceOptions, metrics: Arc<Metrics>) -> Result<Arc<ServerService>> {
        let peers = net.peers(Role::Server, &[Role::Client, Role::Dealer])?.map(Arc::new);
        Ok(Arc::new(ServerService {
            slots: Arc::new(Semaphore::new(opts.max_sessions.clamp(1, Semaphore::MAX_PERMITS))),
            queue: Arc::new(Semaphore::new(opts.queue.min(Semaphore::MAX_PERMITS))),
            served: Arc::new(served),
            net,
            dealer,
            opts,
            metrics,
            peers,
            links: Mutex::new(Vec::new()),
        }))
    }

    /// Serve clients on `listener` (see the module docs).
    pub async fn run(self: &Arc<Self>, listener: Listener) -> Result<()> {
        let me = Arc::clone(self);
        // Sessions, the queue, and as many again in TLS or admission.
        let max_connections = 2 * (self.opts.max_sessions + self.opts.queue) + 16;
        let stopping = tokio::sync::watch::Sender::new(false);
        accept_loop("server", &self.net, listener, &self.opts, max_connections, &stopping, move |stream, peer| {
            let me = Arc::clone(&me);
            async move { me.connection(stream, peer).instrument(info_span!("session", peer = %peer, id = tracing::field::Empty)).await }
        })
        .await
    }

    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Ended {
        let t0 = Instant::now();
        let mut client = match self.net.upgrade(stream, peer, self.peers.as_deref(), "client").await {
            Ok(c) => c,
            Err(e) => {
                warn!("refused a connection: {e:#}");
                return Ended { ok: false, error: Some(format!("server session: {e:#}")), report: None };
            }
        };
        // The client's request first (a connection that asks for nothing
        // holds no slot), within a short admission time.
        let heard = match tokio::time::timeout(self.net.admission(), server_hear(&mut client, &self.served, &self.net.limits)).await {
            Ok(r) => r,
            Err(_) => Err(SessionError::Session {
                code: AbortCode::Timeout,
                message: format!("the client sent no request within {} s", self.net.admission().as_secs()),
            }),
        };
        let admitted = match heard {
            Ok(a) => a,
            Err(e) => {
                let c = refuse(&mut client, e.abort_code().unwrap_or(AbortCode::Internal)).await;
                let msg = format!("server session: {e}{}", said("client", c));
                warn!("{msg}");
                return Ended { ok: false, error: Some(msg), report: None };
            }
        };
        tracing::Span::current().record("id", tracing::field::display(admitted.id.short()));
        // A slot now, or a place in the queue and a slot within the wait.
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => match Arc::clone(&self.queue).try_acquire_owned() {
                Ok(_queued) => {
                    self.metrics.waiting(1);
                    let p =
                        tokio::time::timeout(self.opts.queue_wait, Arc::clone(&self.slots).acquire_owned()).await.ok().and_then(Result::ok);
                    self.metrics.waiting(-1);
                    p
                }
                Err(_) => None,
            },
        };
        let Some(_permit) = permit else {
            self.metrics.busy();
            info!("busy: {} session(s) running, the queue is full; told the client to try later", self.opts.max_sessions);
            let _ = refuse(&mut client, AbortCode::Busy).await;
            return Ended {
                ok: false,
                error: Some("server session: refused a client: every session slot was taken (Busy)".into()),
                report: None,
            };
        };
        self.metrics.started();
        let mut dealer = DealerUse::default();
        let res = match tokio::time::timeout_at((t0 + self.opts.deadline).into(), self.session(&mut client, admitted, &mut dealer)).await {
            Ok(r) => r,
            Err(_) => Err(SessionError::Session {
                code: AbortCode::Timeout,
                message: format!("the session passed its deadline of {} s", self.opts.deadline.as_secs()),
            }),
        };
        let secs = t0.elapsed().as_secs_f64();
        let cost = match dealer.meter.as_ref().or(dealer.open.as_ref().map(Channel::meter)) {
            Some(d) => total(&[client.meter(), d]),
            None => total(&[client.meter()]),
        };
        let mut report = PartyReport {
            role: "server".into(),
            alpha: self.served.public.precision().uniform(),
            precision: self.served.public.precision().to_string(),
            model_digest: self.served.digest(),
            setup_s: 0.0,
            batches: Vec::new(),
            predictions: Vec::new(),
            meters: serde_json::Map::new(),
        };
        let ended = match res {
            Ok((id, batches)) => {
                let _ = client.close().await;
                report.setup_s = secs - batches.iter().map(|b| b.offline_s + b.online_s).sum::<f64>();
                report.batches = batches;
                let online: f64 = report.batches.iter().map(|b| b.online_s).sum();
                info!("served {} batch(es) in {secs:.3} s (online {online:.3} s)", report.batches.len());
                let mut r = serde_json::to_value(&report).unwrap_or_default();
                r["session"] = id.to_string().into();
                r["meters"] = meters(&[("client", client.meter())]).into();
                Ended { ok: true, error: None, report: Some(r) }
            }
            Err(e) => {
                let code = e.abort_code().unwrap_or(AbortCode::Internal);
                let (c, _) = tokio::join!(refuse(&mut client, code), async {
                    // Only a dealer still in this session's setup is told
                    // (and that link ends).
                    if let Some(d) = dealer.open.as_mut() {
                        refuse(d, code).await;
                    }
                });
                let msg = format!("server session: {e}{}", said("client", c));
                warn!("{msg}");
                let mut r = serde_json::to_value(&report).unwrap_or_default();
                r["meters"] = meters(&[("client", client.meter())]).into();
                Ended { ok: false, error: Some(msg), report: Some(r) }
            }
        };
        self.metrics.ended(ended.ok, secs, cost);
        ended
    }

    async fn session(
        &self,
        client: &mut Channel,
        admitted: Admitted,
        dealer: &mut DealerUse,
    ) -> Result<(SessionId, Vec<pann_engine::BatchReport>), SessionError> {
        server_confirm(client).await?;
        let id = admitted.id;
        info!("admitted a batch of {} x {}", admitted.request.batch, admitted.request.batches);
        let idle = self.links.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let reused = idle.is_some();
        let d = dealer.open.insert(match idle {
            Some(link) => link,
            None => self.dial_dealer().await?,
        });
        *d.meter_mut() = Meter::new();
        let mut source = match server_dealer_open(d, &self.served, &admitted).await {
            // A kept link the dealer has closed meanwhile (idle, or the
            // dealer restarted): nothing came back, so nothing of this
            // session reached it. Once more on a fresh link.
            Err(_) if reused && d.meter().total().bytes_recv == 0 => {
                info!("the link to the dealer was closed; reconnecting");
                let d = dealer.open.insert(self.dial_dealer().await?);
                server_dealer_open(d, &self.served, &admitted).await?
            }
            r => r?,
        };
        // Party 0 needs nothing more from the dealer: the link waits for the
        // next session (or closes, in --sessions mode).
        if let Some(link) = dealer.open.take() {
            dealer.meter = Some(link.meter().clone());
            if let Some(mut link) = self.keep_link(link) {
                let _ = link.close().await;
            }
        }
        let batches = server_run(client, &self.served, &admitted, &mut source).await?;
        Ok((id, batches))
    }

    /// Keep `link` for the next session; returns it if it is not kept.
    fn keep_link(&self, link: Channel) -> Option<Channel> {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        if self.opts.sessions.is_some() || links.len() >= self.opts.max_sessions.min(MAX_IDLE_LINKS) {
            return Some(link);
        }
        links.push(link);
        None
    }

    async fn dial_dealer(&self) -> Result<Channel, SessionError> {
        self.net.connect_with(self.peers.as_deref(), Role::Dealer, &self.dealer, self.net.timeout.min(DEALER_CONNECT)).await.map_err(|e| {
            SessionError::Session {
                code: AbortCode::PeerFailed,
                message: format!("the dealer at {} cannot be reached: {e:#}", self.dealer),
            }
        })
    }
}

/// The server's half of a session, handed to the task of its client, which
/// runs the session and gives the channel back (to the server's link) once
/// the seeds are out.
struct ServerHalf {
    chan: Channel,
    back: tokio::sync::oneshot::Sender<Channel>,
}

/// A session half waiting at the dealer for its partner.
enum Waiting {
    /// A server: its client asks for the server's half through `wake`.
    Server { ticket: u64, wake: tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<ServerHalf>> },
    /// A client: its server gives its half through `give`.
    Client { ticket: u64, give: tokio::sync::oneshot::Sender<ServerHalf> },
}

impl Waiting {
    fn role(&self) -> Role {
        match self {
            Waiting::Server { .. } => Role::Server,
            Waiting::Client { .. } => Role::Client,
        }
    }

    fn ticket(&self) -> u64 {
        match self {
            Waiting::Server { ticket, .. } | Waiting::Client { ticket, .. } => *ticket,
        }
    }
}

/// What [`DealerService::pair`] found.
enum Paired {
    /// The partner waited: it is taken.
    Partner(Waiting),
    /// This half now waits, with this ticket.
    Waits(u64),
}

/// How long a server's link to the dealer may stay idle between sessions
/// before the dealer closes it.
pub const LINK_IDLE: Duration = Duration::from_secs(60);

/// The dealer's shared state: the halves waiting for their partner.
pub struct DealerService {
    /// Certificates, timeouts and per-session limits.
    pub net: Net,
    /// Session slots, deadlines, report (`queue_wait`: the longest wait of a
    /// paired session for a slot).
    pub opts: ServiceOptions,
    /// This role's counters (`--metrics`).
    pub metrics: Arc<Metrics>,
    peers: Option<Arc<TlsPeers>>,
    waiting: Mutex<HashMap<SessionId, Waiting>>,
    tickets: std::sync::atomic::AtomicU64,
    slots: Arc<Semaphore>,
    /// Halves of each role that may wait for their partner at once.
    max_waiting: usize,
    /// Sessions of material prepared ahead per (model digest, batch,
    /// batches): `--pool`, within `pool_memory` bytes in all.
    pool_size: usize,
    pool_memory: u64,
    pool_bytes: std::sync::atomic::AtomicU64,
    pools: Mutex<HashMap<(String, usize, usize), PoolEntry>>,
    /// True once a signal stops the dealer.
    stopping: tokio::sync::watch::Sender<bool>,
}

/// Prepared sessions of one key.
struct PoolEntry {
    ready: std::collections::VecDeque<PreparedSession>,
    filling: bool,
    public: Arc<PublicModel>,
}

impl DealerService {
    /// `pool`: sessions of material to prepare ahead per (model, batch,
    /// batches) once such a session has been seen (0: none).
    /// `pool_memory`: bytes all prepared sessions may hold together.
    pub fn new(net: Net, opts: ServiceOptions, pool: usize, pool_memory: u64, metrics: Arc<Metrics>) -> Result<Arc<DealerService>> {
        let peers = net.peers(Role::Dealer, &[Role::Server, Role::Client])?.map(Arc::new);
        Ok(Arc::new(DealerService {
            max_waiting: opts.max_sessions.max(1),
            pool_size: pool,
            pool_memory,
            pool_bytes: Default::default(),
            pools: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(opts.max_sessions.clamp(1, Semaphore::MAX_PERMITS))),
            net,
            opts,
            metrics,
            peers,
            waiting: Mutex::new(HashMap::new()),
            tickets: Default::default(),
            stopping: tokio::sync::watch::Sender::new(false),
        }))
    }

    /// Serve parties on `listener`. In `--sessions N` mode a session is one
    /// pair (or one half that found no partner), so both halves of N
    /// sessions are accepted.
    pub async fn run(self: &Arc<Self>, listener: Listener) -> Result<()> {
        let me = Arc::clone(self);
        let mut opts = self.opts.clone();
        opts.sessions = opts.sessions.map(|n| 2 * n);
        // Both halves of every session slot, the waiting halves, and some in TLS.
        let max_connections = 2 * self.opts.max_sessions + 2 * self.max_waiting + 16;
        accept_loop("dealer", &self.net, listener, &opts, max_connections, &self.stopping, move |stream, peer| {
            let me = Arc::clone(&me);
            async move { me.connection(stream, peer).instrument(info_span!("session", peer = %peer, id = tracing::field::Empty)).await }
        })
        .await
    }

    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Ended {
        let mut chan = match self.net.upgrade(stream, peer, self.peers.as_deref(), "server or client").await {
            Ok(c) => c,
            Err(e) => {
                warn!("refused a connection: {e:#}");
                return Ended { ok: false, error: Some(format!("dealer session: {e:#}")), report: None };
            }
        };
        let greeted = match tokio::time::timeout(self.net.admission(), dealer_greet(&mut chan)).await {
            Ok(r) => r,
            Err(_) => Err(SessionError::Session {
                code: AbortCode::Timeout,
                message: format!("no Hello within {} s", self.net.admission().as_secs()),
            }),
        };
        let greeting = match greeted {
            Ok(g) => g,
            Err(e) => {
                let c = refuse(&mut chan, e.abort_code().unwrap_or(AbortCode::Malformed)).await;
                let msg = format!("dealer session: {e}{}", said("party", c));
                warn!("{msg}");
                return Ended { ok: false, error: Some(msg), report: None };
            }
        };
        tracing::Span::current().record("id", tracing::field::display(greeting.id.short()));
        match greeting.role {
            Role::Server => self.server_link(chan, greeting).await,
            _ => self.client_half(chan, greeting).await,
        }
    }

    /// A server's link: its half of one session after another, each greeted
    /// with a new Hello on the same connection (in service mode; with
    /// `--sessions` the link ends after one session). The client's task runs
    /// each session and hands the channel back once the seeds are out. A
    /// link idle for [`LINK_IDLE`] is closed (the server reconnects when it
    /// next needs one).
    async fn server_link(&self, chan: Channel, mut greeting: Greeting) -> Ended {
        let mut chan = chan;
        let mut session = 0u64;
        loop {
            session += 1;
            chan = match self.server_half(chan, &greeting).await {
                Ok(back) => back,
                Err(ended) => return ended,
            };
            if self.opts.sessions.is_some() {
                let _ = chan.close().await;
                return Ended::paired();
            }
            *chan.meter_mut() = Meter::new();
            let mut stopping = self.stopping.subscribe();
            // An idle link: the server sends nothing on it (no keepalives go
            // to a dealer), so it is closed without waiting for its end.
            let next = tokio::select! {
                g = tokio::time::timeout(LINK_IDLE, dealer_greet(&mut chan)) => g,
                () = async { drop(stopping.wait_for(|s| *s).await) } => {
                    let _ = chan.close_now().await;
                    return Ended::paired();
                }
            };
            greeting = match next {
                Err(_) => {
                    info!("dealer: closing the server's link after {} s idle ({session} session(s) on it)", LINK_IDLE.as_secs());
                    let _ = chan.close_now().await;
                    return Ended::paired();
                }
                // The server closed its link (nothing arrived): not a failure.
                Ok(Err(_)) if chan.meter().total().bytes_recv == 0 => return Ended::paired(),
                Ok(Err(e)) => {
                    let c = refuse(&mut chan, e.abort_code().unwrap_or(AbortCode::Malformed)).await;
                    let msg = format!("dealer session: on the server's link: {e}{}", said("server", c));
                    warn!("{msg}");
                    return Ended { ok: false, error: Some(msg), report: None };
                }
                Ok(Ok(g)) if g.role == Role::Server => g,
                Ok(Ok(g)) => {
                    let _ = refuse(&mut chan, AbortCode::Mismatch).await;
                    let msg = format!("dealer session: a {} Hello on the server's link", g.role);
                    warn!("{msg}");
                    return Ended { ok: false, error: Some(msg), report: None };
                }
            };
            tracing::Span::current().record("id", tracing::field::display(greeting.id.short()));
            info!("dealer: session {} on the server's link (its session {})", greeting.id.short(), session + 1);
        }
    }

    /// Pair a session's half by id: take the waiting partner, or wait for
    /// it. `Err` ends the half (told to its party, logged, counted).
    fn pair(&self, greeting: &Greeting, waiting: impl FnOnce(u64) -> Waiting) -> std::result::Result<Paired, (AbortCode, String)> {
        let mut map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let id = greeting.id;
        match map.remove(&id) {
            Some(w) if w.role() != greeting.role => {
                self.metrics.waiting(-1);
                Ok(Paired::Partner(w))
            }
            Some(w) => {
                map.insert(id, w);
                Err((AbortCode::Mismatch, format!("dealer session: a second {} for session {}", greeting.role, id.short())))
            }
            // Each role's waiting halves are bounded apart, so that one
            // role's connections cannot crowd out the other's.
            None if map.values().filter(|w| w.role() == greeting.role).count() >= self.max_waiting => {
                self.metrics.busy();
                Err((
                    AbortCode::Busy,
                    format!("dealer session: {} {}s already wait for their partner: refused one (Busy)", self.max_waiting, greeting.role),
                ))
            }
            None => {
                let ticket = self.tickets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                map.insert(id, waiting(ticket));
                self.metrics.waiting(1);
                Ok(Paired::Waits(ticket))
            }
        }
    }

    /// Whether the half `ticket` of session `id` still waits; if so it is
    /// removed (it gave up).
    fn give_up(&self, id: &SessionId, ticket: u64) -> bool {
        let mut map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(id).is_some_and(|w| w.ticket() == ticket) {
            map.remove(id);
            self.metrics.waiting(-1);
            return true;
        }
        false
    }

    /// The server's half of one session: hand the channel to the client's
    /// task (at once if the client waits, else when it comes) and get it
    /// back once the seeds are out. `Err`: the half, and the link, end.
    async fn server_half(&self, mut chan: Channel, greeting: &Greeting) -> std::result::Result<Channel, Ended> {
        let id = greeting.id;
        let (wake, woken) = tokio::sync::oneshot::channel();
        let give = match self.pair(greeting, |ticket| Waiting::Server { ticket, wake }) {
            Ok(Paired::Partner(Waiting::Client { give, .. })) => give,
            Ok(Paired::Partner(Waiting::Server { .. })) => unreachable!("pair returns the other role"),
            Ok(Paired::Waits(ticket)) => match self.wait(&id, ticket, woken, &mut chan, Role::Server).await {
                Ok(give) => give,
                Err(ended) => return Err(ended),
            },
            Err((code, msg)) => return Err(self.refused(&mut chan, code, msg).await),
        };
        let (back, returned) = tokio::sync::oneshot::channel();
        if let Err(ServerHalf { mut chan, .. }) = give.send(ServerHalf { chan, back }) {
            // The client's task is gone (its party failed): it reported that.
            let _ = refuse(&mut chan, AbortCode::PeerFailed).await;
            return Err(Ended::paired());
        }
        // The session failed before the seeds were out: the client's task
        // told the server and reports it; the link ends.
        returned.await.map_err(|_| Ended::paired())
    }

    /// A half that came first waits up to `--timeout` for its partner's
    /// signal; if none comes, its party is told and the half ends.
    async fn wait<T>(
        &self,
        id: &SessionId,
        ticket: u64,
        mut woken: tokio::sync::oneshot::Receiver<T>,
        chan: &mut Channel,
        role: Role,
    ) -> std::result::Result<T, Ended> {
        if let Ok(Ok(t)) = tokio::time::timeout(self.net.timeout, &mut woken).await {
            return Ok(t);
        }
        if !self.give_up(id, ticket) {
            // The partner took this half just now: its signal is on its way.
            if let Ok(t) = woken.await {
                return Ok(t);
            }
            return Err(Ended::paired());
        }
        let other = if role == Role::Server { "client" } else { "server" };
        let c = refuse(chan, AbortCode::PeerFailed).await;
        let msg = format!(
            "dealer session: the {role} of session {} waited {} s, and no {other} came{}",
            id.short(),
            self.net.timeout.as_secs(),
            said(role.as_str(), c)
        );
        warn!("{msg}");
        Err(Ended { ok: false, error: Some(msg), report: None })
    }

    async fn refused(&self, chan: &mut Channel, code: AbortCode, msg: String) -> Ended {
        let c = refuse(chan, code).await;
        let msg = format!("{msg}{}", said("party", c));
        warn!("{msg}");
        Ended { ok: false, error: Some(msg), report: None }
    }

    /// The client's half: get the server's half (at once if the server
    /// waits, else when it comes), then run the session.
    async fn client_half(self: Arc<Self>, mut client: Channel, greeting: Greeting) -> Ended {
        let id = greeting.id;
        let (give, given) = tokio::sync::oneshot::channel();
        let half = match self.pair(&greeting, |ticket| Waiting::Client { ticket, give }) {
            Ok(Paired::Partner(Waiting::Server { wake, .. })) => {
                let (give, given) = tokio::sync::oneshot::channel();
                let asked = wake.send(give).is_ok();
                match tokio::time::timeout(self.net.timeout, given).await {
                    Ok(Ok(half)) if asked => half,
                    _ => {
                        return self
                            .refused(
                                &mut client,
                                AbortCode::PeerFailed,
                                format!("dealer session: the server of session {} left", id.short()),
                            )
                            .await
                    }
                }
            }
            Ok(Paired::Partner(Waiting::Client { .. })) => unreachable!("pair returns the other role"),
            Ok(Paired::Waits(ticket)) => match self.wait(&id, ticket, given, &mut client, Role::Client).await {
                Ok(half) => half,
                Err(ended) => return ended,
            },
            Err((code, msg)) => return self.refused(&mut client, code, msg).await,
        };
        self.session(id, half, client, greeting).await
    }

    /// One paired session: the job from the server, seeds to both (the
    /// server's channel then goes back to its link), corrections streamed
    /// to the client.
    async fn session(self: Arc<Self>, id: SessionId, half: ServerHalf, mut client: Channel, gc: Greeting) -> Ended {
        let ServerHalf { chan: mut server, back } = half;
        info!("dealer: paired the server and the client of session {}", id.short());
        let Ok(Ok(slot)) = tokio::time::timeout(self.opts.queue_wait, Arc::clone(&self.slots).acquire_owned()).await else {
            self.metrics.busy();
            let _ = tokio::join!(refuse(&mut server, AbortCode::Busy), refuse(&mut client, AbortCode::Busy));
            let msg = format!("dealer session: refused session {}: every session slot was taken (Busy)", id.short());
            warn!("{msg}");
            return Ended { ok: false, error: Some(msg), report: None };
        };
        self.metrics.started();
        let t0 = Instant::now();
        let deadline = tokio::time::Instant::from_std(t0 + self.opts.deadline);
        let digest = gc.model.clone().unwrap_or_default();
        let limits = self.net.limits;
        let setup = async {
            let job = dealer_receive(&mut server, &id, &digest, &limits).await?;
            let prepared = self.pool_take(&job);
            if prepared.is_some() {
                info!("dealer: material from the pool");
            }
            let source = dealer_seeds(&mut server, &mut client, &job, prepared).await?;
            Ok((job, source))
        };
        let past_deadline = || SessionError::Session {
            code: AbortCode::Timeout,
            message: format!("the session passed its deadline of {} s", self.opts.deadline.as_secs()),
        };
        let server_meter;
        let outcome = match tokio::time::timeout_at(deadline, setup).await.unwrap_or_else(|_| Err(past_deadline())) {
            Err(e) => {
                let code = e.abort_code().unwrap_or(AbortCode::Internal);
                let (s, c) = tokio::join!(refuse(&mut server, code), refuse(&mut client, code));
                server_meter = server.meter().clone();
                Err(format!("dealer session: {e}{}{}", said("server", s), said("client", c)))
            }
            Ok((job, source)) => {
                server_meter = server.meter().clone();
                // The server needs nothing more in this session: its link may
                // carry the next one while the corrections stream.
                if let Err(mut link) = back.send(server) {
                    let _ = link.close().await;
                }
                match tokio::time::timeout_at(deadline, dealer_stream(&mut client, &job, source))
                    .await
                    .unwrap_or_else(|_| Err(past_deadline()))
                {
                    Ok(()) => {
                        // Waiting for the client's end holds no slot.
                        drop(slot);
                        let _ = client.close().await;
                        // Every correction was sent, but the client may have
                        // given up after it (the server failed): its Abort
                        // arrives while the link closes.
                        match client.abort_seen_at_close() {
                            None => Ok(()),
                            Some(code) => {
                                Err(format!("dealer session: the client gave up after the last correction was sent: {}", code.text()))
                            }
                        }
                    }
                    Err(e) => {
                        let c = refuse(&mut client, e.abort_code().unwrap_or(AbortCode::Internal)).await;
                        Err(format!("dealer session: {e}{}", said("client", c)))
                    }
                }
            }
        };
        let secs = t0.elapsed().as_secs_f64();
        self.metrics.ended(outcome.is_ok(), secs, total(&[&server_meter, client.meter()]));
        let report = PartyReport {
            role: "dealer".into(),
            alpha: None,
            precision: String::new(),
            model_digest: digest,
            setup_s: 0.0,
            batches: Vec::new(),
            predictions: Vec::new(),
            meters: meters(&[("server", &server_meter), ("client", client.meter())]),
        };
        let mut r = serde_json::to_value(&report).unwrap_or_default();
        r["session"] = id.to_string().into();
        match outcome {
            Ok(()) => {
                info!("served a session in {secs:.3} s");
                Ended { ok: true, error: None, report: Some(r) }
            }
            Err(msg) => {
                warn!("{msg}");
                Ended { ok: false, error: Some(msg), report: Some(r) }
            }
        }
    }

    /// Prepared material for `job`'s key if the pool has some; (re)starts
    /// filling the pool for that key up to `--pool` sessions.
    fn pool_take(self: &Arc<Self>, job: &DealerJob) -> Option<PreparedSession> {
        if self.pool_size == 0 {
            return None;
        }
        let key = job.key();
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        // A bounded number of kinds: a new kind past it is not pooled.
        if !pools.contains_key(&key) && pools.len() >= MAX_POOL_KINDS {
            return None;
        }
        let entry = pools.entry(key.clone()).or_insert_with(|| PoolEntry {
            ready: Default::default(),
            filling: false,
            public: Arc::clone(&job.public),
        });
        let taken = entry.ready.pop_front();
        if let Some(t) = &taken {
            self.metrics.pool(-1);
            self.pool_bytes.fetch_sub(t.bytes(), std::sync::atomic::Ordering::Relaxed);
        }
        if !entry.filling && entry.ready.len() < self.pool_size {
            entry.filling = true;
            let me = Arc::clone(self);
            tokio::spawn(async move { me.fill(key).await });
        }
        taken
    }

    /// Prepare sessions for `key` until the pool holds `--pool` of them (one
    /// at a time, off the async threads).
    async fn fill(self: Arc<Self>, key: (String, usize, usize)) {
        loop {
            let public = {
                let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
                match pools.get(&key) {
                    Some(e) => Arc::clone(&e.public),
                    None => return,
                }
            };
            let (batch, batches) = (key.1, key.2);
            // Within the pool's memory: a session's corrections are known
            // from its plan before any is made.
            let need = match Plan::compile(Arc::clone(&public), batch) {
                Ok(plan) => plan
                    .requests()
                    .iter()
                    .fold(0u64, |acc, r| acc.saturating_add((r.correction_len() as u64).saturating_mul(8)))
                    .saturating_mul(batches as u64),
                Err(_) => u64::MAX,
            };
            let held = self.pool_bytes.load(std::sync::atomic::Ordering::Relaxed);
            if held.saturating_add(need) > self.pool_memory {
                let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(e) = pools.get_mut(&key) {
                    e.filling = false;
                }
                info!(
                    "dealer: pool memory ({:.0} MB) full; not preparing a session of {:.1} MB",
                    self.pool_memory as f64 / 1e6,
                    need as f64 / 1e6
                );
                return;
            }
            self.pool_bytes.fetch_add(need, std::sync::atomic::Ordering::Relaxed);
            let made = tokio::task::spawn_blocking(move || {
                Plan::compile(public, batch).and_then(|plan| PreparedSession::generate(&plan, batches))
            })
            .await;
            if !matches!(made, Ok(Ok(_))) {
                self.pool_bytes.fetch_sub(need, std::sync::atomic::Ordering::Relaxed);
            }
            let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            let Some(entry) = pools.get_mut(&key) else { return };
            match made {
                Ok(Ok(p)) => {
                    entry.ready.push_back(p);
                    self.metrics.pool(1);
                }
                Ok(Err(e)) => {
                    warn!("dealer: preparing material for the pool: {e}");
                    entry.filling = false;
                    return;
                }
                Err(e) => {
                    warn!("dealer: preparing material for the pool: {e}");
                    entry.filling = false;
                    return;
                }
            }
            if entry.ready.len() >= self.pool_size {
                entry.filling = false;
                return;
            }
        }
    }
}

/// The client: connect to the server and be admitted, then reach the dealer
/// and run. Returns the outcome and both channels (for their meters).
pub async fn client_session(
    net: &Net,
    server: &str,
    dealer: &str,
    precision: &Precision,
    expect_model: Option<&str>,
    images: &[Vec<u8>],
    batch: usize,
) -> Result<(ClientOutcome, Channel, Channel)> {
    let mut to_server = net.connect(Role::Client, Role::Server, server).await?;
    let t0 = Instant::now();
    let connected = match client_connect(&mut to_server, precision, expect_model, images, batch, &net.limits).await {
        Ok(c) => c,
        Err(e) => {
            let c = refuse(&mut to_server, e.abort_code().unwrap_or(AbortCode::Input)).await;
            return Err(anyhow!(
                "client session: {e}{}",
                if e.to_string().contains("peer aborted") { String::new() } else { said("server", c) }
            ));
        }
    };
    // The server has admitted us and is reaching the dealer too: a dealer
    // that is not there is reported within 10 s, not the whole timeout.
    let peers = net.peers(Role::Client, &[Role::Dealer])?;
    let mut to_dealer = match net.connect_with(peers.as_ref(), Role::Dealer, dealer, net.timeout.min(DEALER_CONNECT)).await {
        Ok(d) => d,
        Err(e) => {
            let _ = refuse(&mut to_server, AbortCode::PeerFailed).await;
            return Err(e);
        }
    };
    let setup = t0.elapsed().as_secs_f64();
    match client_run_with_dealer(&mut to_server, &mut to_dealer, &connected, images).await {
        Ok(mut out) => {
            out.setup_s += setup;
            let _ = tokio::join!(to_server.close(), to_dealer.close());
            out.meter_server = to_server.meter().clone();
            out.meter_dealer = to_dealer.meter().clone();
            Ok((out, to_server, to_dealer))
        }
        Err(e) => {
            let code = e.abort_code().unwrap_or(AbortCode::Input);
            let (s, d) = tokio::join!(refuse(&mut to_server, code), refuse(&mut to_dealer, code));
            let peers =
                if e.to_string().contains("peer aborted") { String::new() } else { format!("{}{}", said("server", s), said("dealer", d)) };
            Err(anyhow!("client session: {e}{peers}"))
        }
    }
}
