//! The three roles over TLS (default) or plain TCP (`--insecure-tcp`).
//!
//! Topology: the dealer listens for both parties; the server listens for the
//! client and connects to the dealer; the client connects to both. Each role
//! reads its own key and the certificates of the peers it talks to from its
//! own directory (`pann certs --role R` writes `R.key` and `R.crt`; the peers'
//! `.crt` files are copied in). A directory that holds another private key is
//! refused: whoever holds a role's key can act as that role.
//!
//! When a role gives up it tells its peers an [`AbortCode`] only; its own
//! message (file paths, values) stays on its stderr.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pann_mpc_core::handshake::Role;
use pann_mpc_core::transport::{load_peer_cert, tcp_connect, tls_connect, Listener, TlsIdentity, TlsPeers};
use pann_mpc_core::channel::{abort_code_of, Tag};
use pann_mpc_core::AbortCode;
use pann_mpc_core::{Channel, ChannelConfig};
use pann_engine::{client_session_with, dealer_session_with, server_session_with, ClientOutcome, PublicModel, SecureConfig};
use pann_engine::{MaterialSize, SessionLimits};
use pann_models::LoadedModel;

use crate::input::Images;
use crate::report::{PartyReport, Prediction};

/// How a role reaches its peers.
#[derive(Clone, Debug)]
pub struct Net {
    /// This role's directory: `<role>.key`, `<role>.crt` and the peers' `.crt`; `None` = plain TCP.
    pub certs: Option<PathBuf>,
    pub timeout: Duration,
    /// This role's per-session limits (batch, material memory).
    pub limits: SessionLimits,
}

impl Net {
    fn cfg(&self) -> ChannelConfig {
        ChannelConfig::default().with_timeout(self.timeout).with_connect_timeout(self.timeout)
    }

    /// Our identity and the pinned certificate of each peer role, after
    /// checking that the directory holds no other private key.
    fn peers(&self, me: Role, peers: &[Role]) -> Result<Option<TlsPeers>> {
        let Some(dir) = &self.certs else { return Ok(None) };
        check_cert_dir(dir, me)?;
        let (crt, key) = (dir.join(format!("{me}.crt")), dir.join(format!("{me}.key")));
        let id = TlsIdentity::load(&crt, &key).with_context(|| format!("loading the {me} identity from {}", dir.display()))?;
        let certs = peers
            .iter()
            .map(|p| {
                let path = dir.join(format!("{p}.crt"));
                let cert = load_peer_cert(&path).with_context(|| format!("loading the {p} certificate {} (copy it from the {p}'s `pann certs --role {p}` directory)", path.display()))?;
                Ok((*p, cert))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(TlsPeers::new(&id, certs).with_context(|| format!("the certificates in {}", dir.display()))?))
    }

    async fn connect(&self, me: Role, peer: Role, addr: &str) -> Result<Channel> {
        let ch = match self.peers(me, &[peer])? {
            Some(p) => tls_connect(addr.to_string(), self.cfg(), &p).await,
            None => tcp_connect(addr.to_string(), self.cfg()).await,
        };
        ch.with_context(|| format!("connecting to the {peer} at {addr}"))
    }

    async fn accept(&self, listener: &Listener, me: Role, peers: &[Role]) -> Result<Channel> {
        let ch = match self.peers(me, peers)? {
            Some(p) => listener.accept_tls(self.cfg(), &p).await,
            None => listener.accept_tcp(self.cfg()).await,
        };
        let names: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
        ch.with_context(|| format!("accepting the {}", names.join(" or ")))
    }
}

/// Largest file inspected for a private key (certificates and keys are a few KB).
const MAX_CERT_FILE: u64 = 1 << 20;

/// Refuse a role's certificate directory that holds a private key other than
/// `<me>.key`: a directory shared between roles means that one role can
/// impersonate another, which breaks the dealer's non-collusion assumption.
pub fn check_cert_dir(dir: &Path, me: Role) -> Result<()> {
    let own = dir.join(format!("{me}.key"));
    if let Some(found) = foreign_key(dir, &own, 0)? {
        let name = found.strip_prefix(dir).unwrap_or(&found).display().to_string();
        bail!(
            "refusing to run as the {me}: the certificate directory {} also holds the private key {name}. \
             A role's directory must hold only its own key ({me}.key) and its peers' certificates; \
             whoever holds another role's key can act as that role toward its peers. \
             Give each role its own directory (`pann certs --role {me} --out DIR`) and remove {name}",
            dir.display()
        );
    }
    Ok(())
}

/// Subdirectory levels searched for keys (a backup folder inside the role's
/// directory counts too).
const MAX_CERT_DEPTH: usize = 3;

/// The first file under `dir` (other than `own`) that is or holds a private
/// key: by name (`.key`, `.p12`, `.pfx`, any case) or by content (a PEM
/// private key block anywhere in its first MiB).
fn foreign_key(dir: &Path, own: &Path, depth: usize) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading the certificate directory {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading the certificate directory {}", dir.display()))?;
        let path = entry.path();
        if path == own {
            continue;
        }
        if path.is_dir() {
            if depth < MAX_CERT_DEPTH {
                if let Some(found) = foreign_key(&path, own, depth + 1)? {
                    return Ok(Some(found));
                }
            }
            continue;
        }
        if !path.is_file() {
            continue;
        }
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let holds_key = if ["key", "p12", "pfx"].contains(&ext.as_str()) {
            true
        } else {
            let mut head = Vec::new();
            let f = std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_CERT_FILE), &mut head).with_context(|| format!("reading {}", path.display()))?;
            String::from_utf8_lossy(&head).contains("PRIVATE KEY-----")
        };
        if holds_key {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

async fn bind(addr: &str) -> Result<Listener> {
    Listener::bind(addr.to_string()).await.with_context(|| format!("listening on {addr}"))
}

/// Each channel's meter by peer name, in the meter's own serde form (which
/// `Meter` deserialises again), plus a per-phase summary under `summary`.
fn meters(pairs: &[(&str, &Channel)]) -> serde_json::Map<String, serde_json::Value> {
    let mut m: serde_json::Map<String, serde_json::Value> =
        pairs.iter().map(|(k, c)| (k.to_string(), serde_json::to_value(c.meter()).expect("a meter serialises"))).collect();
    let summary: serde_json::Map<_, _> = pairs.iter().map(|(k, c)| (k.to_string(), c.meter().to_json())).collect();
    m.insert("summary".into(), summary.into());
    m
}

/// Give up on a channel politely: send everything queued, close our
/// direction (TLS close_notify), and read what the peer still sends for a
/// moment, so that closing the socket does not reset the connection before
/// the peer has read our last message (an Abort with its code). Returns the
/// peer's own Abort code if one arrives meanwhile (it may have failed first,
/// for a reason we have not seen yet).
async fn goodbye(ch: &mut Channel) -> Option<AbortCode> {
    let mut said = None;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = ch.close().await;
        // Other frames are skipped without being buffered (a peer cannot
        // make us hold a long frame here either).
        if let Ok(reason) = ch.drain_until_abort().await {
            said = Some(reason);
        }
    })
    .await;
    said
}

/// How a peer's Abort reads in an error (mpc-core's `PeerAborted`).
const PEER_ABORTED: &str = "peer aborted the session";

/// Close both channels after a session: politely ([`goodbye`]) after an
/// error, whose reason the session already sent to the peers as an Abort.
/// Returns what the peers said when they gave up, if anything (`a` first).
async fn end_session(ok: bool, a: (&mut Channel, &str), b: (&mut Channel, &str)) -> String {
    if ok {
        let _ = tokio::join!(a.0.close(), b.0.close());
        return String::new();
    }
    let (sa, sb) = tokio::join!(goodbye(a.0), goodbye(b.0));
    let mut out = String::new();
    for (said, who) in [(sa, a.1), (sb, b.1)] {
        // A peer that gave up because another party failed only echoes.
        if let Some(code) = said.filter(|c| *c != AbortCode::PeerFailed) {
            out += &format!(" (the {who} aborted: {code})");
        }
    }
    out
}

/// The session's result, with what the peers said when it failed: their
/// reason may name the cause (e.g. a dealer that vanished, seen first by the
/// client). Not added when our own error already carries a peer's reason.
fn with_peers<T, E: std::error::Error + Send + Sync + 'static>(res: std::result::Result<T, E>, what: &str, said: String) -> Result<T> {
    res.map_err(|e| {
        let e = e.to_string();
        let said = if e.contains(PEER_ABORTED) { String::new() } else { said };
        anyhow::anyhow!("{what}: {e}{said}")
    })
}

/// Tell a peer why this role gives up (an Abort the peer reports as the
/// reason of its own error), then close.
async fn tell(ch: &mut Channel, code: AbortCode) {
    ch.abort(code).await;
    let _ = goodbye(ch).await;
}

/// Tell the reachable peers, concurrently.
async fn tell_both(a: Option<&mut Channel>, b: Option<&mut Channel>, code: AbortCode) {
    tokio::join!(tell_maybe(a, code), tell_maybe(b, code));
}

async fn tell_maybe(c: Option<&mut Channel>, code: AbortCode) {
    if let Some(c) = c {
        tell(c, code).await;
    }
}

/// The first failure among a role's preparation and its two connections,
/// with the connections that did succeed (to tell them) and the code they
/// are told: `prep_code` for a failed preparation, else `PeerFailed`.
type Failed = Box<(anyhow::Error, Option<Channel>, Option<Channel>, AbortCode)>;

fn first_failure<T>(prep: Result<T>, prep_code: AbortCode, a: Result<Channel>, b: Result<Channel>) -> std::result::Result<(T, Channel, Channel), Failed> {
    match (prep, a, b) {
        (Ok(t), Ok(a), Ok(b)) => Ok((t, a, b)),
        (Err(e), a, b) => Err(Box::new((e, a.ok(), b.ok(), prep_code))),
        (Ok(_), Err(e), b) => Err(Box::new((e, None, b.ok(), AbortCode::PeerFailed))),
        (Ok(_), Ok(a), Err(e)) => Err(Box::new((e, Some(a), None, AbortCode::PeerFailed))),
    }
}

/// What the server needs before it talks to anyone.
struct ServerModel {
    loaded: LoadedModel,
    public: PublicModel,
}

/// The model as the server deploys it: at `alpha` everywhere if given, else
/// at the card's per-layer alphas if it has them, else at its default alpha.
fn load_server_model(card: &Path, alpha: Option<u32>) -> Result<ServerModel> {
    let loaded = LoadedModel::load(card).with_context(|| format!("loading the model card {}", card.display()))?;
    if loaded.card.relu_bounds.is_empty() {
        bail!("the model card {} has no ReLU bounds: calibrate it first (pann calibrate)", card.display());
    }
    let per_layer = if alpha.is_none() { loaded.card.relu_alphas.clone() } else { Default::default() };
    let alpha = alpha.unwrap_or(loaded.card.default_alpha);
    let public = PublicModel::new(&loaded.model, &loaded.card.input, &loaded.card.relu_bounds, SecureConfig::new(alpha))
        .and_then(|p| p.with_alphas(per_layer))
        .and_then(|p| p.with_logit_range(loaded.card.logit_range))
        .with_context(|| format!("preparing the model of {} at alpha {alpha}", card.display()))?;
    Ok(ServerModel { loaded, public })
}

/// The digest of the public model a server deploys from `card` at `alpha`
/// (as [`run_server`] prints it): what a client passes to `--expect-model`.
pub fn public_model_digest(card: &Path, alpha: Option<u32>) -> Result<String> {
    Ok(load_server_model(card, alpha)?.public.digest())
}

/// The server: loads the model card (with calibrated bounds), waits for the
/// client on `listen`, connects to the dealer. If the model cannot be loaded,
/// it still meets its peers (within the timeout) to tell them why it gives up.
pub async fn run_server(net: &Net, card: &Path, alpha: Option<u32>, listen: &str, dealer: &str) -> Result<PartyReport> {
    let listener = bind(listen).await?;
    let model = load_server_model(card, alpha);
    match &model {
        Ok(m) => {
            eprintln!(
                "server: model {} (digest {}), alpha {}, listening on {}",
                m.loaded.card.name,
                m.public.digest(),
                m.public.precision(),
                listener.local_addr()?
            );
            if let Ok(size) = MaterialSize::of(&std::sync::Arc::new(m.public.clone())) {
                eprintln!(
                    "server: accepts batches of up to {} image(s) ({:.1} MB of material per image, session memory limit {:.1} MB)",
                    net.limits.batch_limit(&size),
                    size.per_image as f64 / 1e6,
                    net.limits.max_memory as f64 / 1e6
                );
            }
        }
        Err(e) => eprintln!(
            "server: cannot serve: {e:#}\nserver: telling the dealer and the client why (waiting up to {} s for them)",
            net.timeout.as_secs()
        ),
    }
    // Both at once, and both even if one fails, to tell the other why the
    // session will not happen.
    let (to_dealer, to_client) =
        tokio::join!(net.connect(Role::Server, Role::Dealer, dealer), net.accept(&listener, Role::Server, &[Role::Client]));
    let (m, mut to_dealer, mut to_client) = match first_failure(model, AbortCode::Model, to_dealer, to_client) {
        Ok(ok) => ok,
        Err(failed) => {
            let (e, mut d, mut c, code) = *failed;
            tell_both(d.as_mut(), c.as_mut(), code).await;
            return Err(e);
        }
    };
    let t0 = std::time::Instant::now();
    let res = server_session_with(&mut to_client, &mut to_dealer, &m.loaded.model, &m.public, &net.limits).await;
    let total_s = t0.elapsed().as_secs_f64();
    let said = end_session(res.is_ok(), (&mut to_client, "client"), (&mut to_dealer, "dealer")).await;
    let batches = with_peers(res, "server session", said)?;
    let setup_s = total_s - batches.iter().map(|b| b.offline_s + b.online_s).sum::<f64>();
    Ok(PartyReport {
        role: "server".into(),
        alpha: uniform_alpha(&m.public.precision()),
        precision: m.public.precision(),
        model_digest: m.public.digest(),
        setup_s,
        batches,
        predictions: Vec::new(),
        meters: meters(&[("client", &to_client), ("dealer", &to_dealer)]),
    })
}

/// The dealer: accepts the server and the client on `listen`, both within
/// one timeout.
pub async fn run_dealer(net: &Net, listen: &str) -> Result<PartyReport> {
    let listener = bind(listen).await?;
    eprintln!("dealer: listening on {}", listener.local_addr()?);
    // Two accepts in flight at once, so that a connection stuck in its TLS
    // handshake does not hold up the other; both within one timeout.
    let both = [Role::Server, Role::Client];
    let deadline = tokio::time::Instant::now() + net.timeout;
    let accept = || async {
        match tokio::time::timeout_at(deadline, net.accept(&listener, Role::Dealer, &both)).await {
            Err(_) => Err(anyhow::anyhow!("no party connected within {} s", net.timeout.as_secs())),
            Ok(r) => r,
        }
    };
    let (a, b) = tokio::join!(accept(), accept());
    let (mut a, mut b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), Err(f)) => {
            let (e, f) = (format!("{e:#}"), format!("{f:#}"));
            if e == f {
                bail!("waiting for the server and the client: {e}");
            }
            bail!("waiting for the server and the client: {e}; {f}");
        }
        (Ok(mut ok), Err(e)) | (Err(e), Ok(mut ok)) => {
            // The party that came may have told us why the other one did not.
            let said = match tokio::time::timeout(Duration::from_millis(300), ok.recv_tagged(Tag::Abort)).await {
                Ok(Ok(body)) => format!(" (the party that connected aborted: {})", abort_code_of(&body)),
                _ => String::new(),
            };
            let e = e.context(format!("only one of the server and the client connected{said}"));
            tell(&mut ok, AbortCode::PeerFailed).await;
            return Err(e);
        }
    };
    eprintln!("dealer: both parties connected");
    let res = dealer_session_with(&mut a, &mut b, &net.limits).await;
    let said = end_session(res.is_ok(), (&mut a, "peer"), (&mut b, "peer")).await;
    with_peers(res, "dealer session", said)?;
    eprintln!("dealer: done");
    Ok(PartyReport {
        role: "dealer".into(),
        alpha: 0,
        precision: String::new(),
        model_digest: String::new(),
        setup_s: 0.0,
        batches: Vec::new(),
        predictions: Vec::new(),
        meters: meters(&[("peer-1", &a), ("peer-2", &b)]),
    })
}

/// The alpha of a uniform precision string (`"9"`), 0 for `"per-layer:..."`.
fn uniform_alpha(precision: &str) -> u32 {
    precision.parse().unwrap_or(0)
}

/// The client: connects to the server and the dealer, learns the logits.
/// `images` is the result of loading the input: if that failed, the client
/// still meets its peers (within the timeout) to tell them why it gives up.
pub async fn run_client(
    net: &Net,
    server: &str,
    dealer: &str,
    precision: &str,
    expect_model: Option<&str>,
    images: Result<Images>,
    batch: usize,
) -> Result<(PartyReport, ClientOutcome)> {
    if let Err(e) = &images {
        eprintln!(
            "client: cannot go on: {e:#}\nclient: telling the server and the dealer why (waiting up to {} s for them)",
            net.timeout.as_secs()
        );
    }
    // Both at once, and both even if one fails, to tell the other why the
    // session will not happen.
    let (to_server, to_dealer) =
        tokio::join!(net.connect(Role::Client, Role::Server, server), net.connect(Role::Client, Role::Dealer, dealer));
    let (imgs, mut to_server, mut to_dealer) = match first_failure(images, AbortCode::Input, to_server, to_dealer) {
        Ok(ok) => ok,
        Err(failed) => {
            let (e, mut s, mut d, code) = *failed;
            tell_both(s.as_mut(), d.as_mut(), code).await;
            return Err(e);
        }
    };
    let res = client_session_with(&mut to_server, &mut to_dealer, precision, expect_model, &imgs.pixels, batch, &net.limits).await;
    let said = end_session(res.is_ok(), (&mut to_server, "server"), (&mut to_dealer, "dealer")).await;
    let out = with_peers(res, "client session", said)?;
    let predictions = out
        .logits
        .iter()
        .zip(&imgs.labels)
        .map(|(l, &label)| Prediction::judge(l, label, out.logit_range))
        .collect();
    let report = PartyReport {
        role: "client".into(),
        alpha: uniform_alpha(precision),
        precision: precision.into(),
        model_digest: out.model_digest.clone(),
        setup_s: out.setup_s,
        batches: out.batches.clone(),
        predictions,
        meters: meters(&[("server", &to_server), ("dealer", &to_dealer)]),
    };
    Ok((report, out))
}

/// The peers each role talks to (and so the certificates its directory needs).
pub fn peers_of(role: Role) -> &'static [Role] {
    match role {
        Role::Server => &[Role::Client, Role::Dealer],
        Role::Client => &[Role::Server, Role::Dealer],
        Role::Dealer => &[Role::Server, Role::Client],
    }
}

/// `pann certs --role R --out DIR`: a fresh identity for one role, created
/// where the role runs. Writes `DIR/R.key` (owner-only) and `DIR/R.crt`;
/// returns the certificate's SHA-256. Refuses a directory that holds another
/// role's key, and an existing key unless `force`.
pub fn write_role_identity(dir: &Path, role: Role, force: bool) -> Result<String> {
    create_private_dir(dir)?;
    check_cert_dir(dir, role)?;
    let key = dir.join(format!("{role}.key"));
    if key.exists() && !force {
        bail!("{} already exists: keep it, or pass --force to replace it (its peers must then pin the new certificate)", key.display());
    }
    let id = TlsIdentity::generate_for(&format!("pann-{role}"))?;
    id.save(dir.join(format!("{role}.crt")), &key)?;
    Ok(id.fingerprint())
}

/// `pann certs --local DIR`: the three roles' directories for running all of
/// them on this machine (tests, demos, benchmarks): `DIR/<role>/` holds the
/// role's own key and its peers' certificates, nothing else.
pub fn write_local_certs(dir: &Path) -> Result<()> {
    let roles = [Role::Server, Role::Client, Role::Dealer];
    for role in roles {
        write_role_identity(&dir.join(role.as_str()), role, true)?;
    }
    for role in roles {
        for peer in peers_of(role) {
            let from = dir.join(peer.as_str()).join(format!("{peer}.crt"));
            let to = dir.join(role.as_str()).join(format!("{peer}.crt"));
            std::fs::copy(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(())
}

/// Create `dir` if missing, readable by its owner only (it will hold a key).
fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).with_context(|| format!("creating {}", dir.display()))?;
    // An existing directory keeps its mode on create: tighten it.
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).with_context(|| format!("restricting {}", dir.display()))?;
    Ok(())
}
