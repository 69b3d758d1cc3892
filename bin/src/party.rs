//! The three roles over TLS (default) or plain TCP (`--insecure-tcp`).
//!
//! Topology: the dealer listens for both parties; the server listens for the
//! client and connects to the dealer; the client connects to both. Each role
//! reads its own key and the certificates of the peers it talks to from its
//! own directory (`pann certs --role R` writes `R.key` and `R.crt`; the peers'
//! `.crt` files are copied in). A directory that holds another private key is
//! refused: whoever holds a role's key can act as that role.
//!
//! The server and the dealer are long-running services ([`crate::service`]);
//! the client runs one session. When a role gives up on a session it tells
//! its peers an [`AbortCode`] only; its own message (file paths, values)
//! stays in its log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use pann_approx::{Alpha, Precision};
use pann_mpc_core::handshake::Role;
use pann_mpc_core::transport::{load_peer_cert, tcp_channel, tcp_connect, tls, tls_connect, Listener, TlsIdentity, TlsPeers};

use pann_engine::{ClientOutcome, PublicModel, SecureConfig, ServedModel, SessionLimits};
use pann_models::LoadedModel;
use pann_mpc_core::meter::Meter;
use pann_mpc_core::AbortCode;
use pann_mpc_core::{Channel, ChannelConfig};
use tracing::info;

use crate::input::Images;
use crate::metrics::Metrics;
use crate::report::{PartyReport, Prediction};
use crate::service::{client_session, DealerService, ServerService, ServiceOptions};

/// Longest time each step of a new connection's admission may take (its TLS
/// handshake, then its request (server) or Hello (dealer)): an idle
/// connection holds nothing longer.
const ADMISSION: Duration = Duration::from_secs(10);

/// How a role reaches its peers.
#[derive(Clone, Debug)]
pub struct Net {
    /// This role's directory: `<role>.key`, `<role>.crt` and the peers' `.crt`; `None` = plain TCP.
    pub certs: Option<PathBuf>,
    /// Longest wait for a peer's next message, and for a connection (`--timeout`).
    pub timeout: Duration,
    /// Send an empty frame to a peer after this long without writing to it
    /// (`None`: never), so that a peer's `timeout` counts silence, not work.
    pub keepalive: Option<Duration>,
    /// This role's per-session limits (batch, material memory).
    pub limits: SessionLimits,
}

impl Net {
    fn cfg(&self) -> ChannelConfig {
        ChannelConfig::default().with_timeout(self.timeout).with_connect_timeout(self.timeout).with_keepalive(self.keepalive)
    }

    /// Our identity and the pinned certificate of each peer role, after
    /// checking that the directory holds no other private key.
    pub fn peers(&self, me: Role, peers: &[Role]) -> Result<Option<TlsPeers>> {
        let Some(dir) = &self.certs else { return Ok(None) };
        check_cert_dir(dir, me)?;
        let (crt, key) = (dir.join(format!("{me}.crt")), dir.join(format!("{me}.key")));
        let id = TlsIdentity::load(&crt, &key).with_context(|| format!("loading the {me} identity from {}", dir.display()))?;
        let certs = peers
            .iter()
            .map(|p| {
                let path = dir.join(format!("{p}.crt"));
                let cert = load_peer_cert(&path).with_context(|| {
                    format!("loading the {p} certificate {} (copy it from the {p}'s `pann certs --role {p}` directory)", path.display())
                })?;
                Ok((*p, cert))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(TlsPeers::new(&id, certs).with_context(|| format!("the certificates in {}", dir.display()))?))
    }

    /// Connect to the `peer` role at `addr` (retrying until the timeout).
    pub async fn connect(&self, me: Role, peer: Role, addr: &str) -> Result<Channel> {
        let peers = self.peers(me, &[peer])?;
        self.connect_with(peers.as_ref(), peer, addr, self.timeout).await
    }

    /// [`Net::connect`] with the pinned certificates already loaded, giving
    /// up after `connect_timeout`.
    pub async fn connect_with(&self, peers: Option<&TlsPeers>, peer: Role, addr: &str, connect_timeout: Duration) -> Result<Channel> {
        let mut cfg = self.cfg().with_connect_timeout(connect_timeout);
        if peer == Role::Dealer {
            // The dealer never waits for the parties after their Hello (it
            // only sends), so keepalives to it would only pile up unread.
            cfg = cfg.with_keepalive(None);
        }
        let ch = match peers {
            Some(p) => tls_connect(addr.to_string(), cfg, p).await,
            None => tcp_connect(addr.to_string(), cfg).await,
        };
        ch.with_context(|| format!("connecting to the {peer} at {addr}"))
    }

    /// How long each step of a new connection's admission may take (the TLS
    /// handshake, then its first message): the timeout, at most 10 s.
    pub fn admission(&self) -> Duration {
        self.timeout.min(ADMISSION)
    }

    /// A channel over an accepted connection: the TLS handshake (within
    /// [`Net::admission`]) when `peers` is given, else plain TCP.
    /// `expected` names the peer for messages ("client").
    pub async fn upgrade(
        &self,
        stream: tokio::net::TcpStream,
        addr: std::net::SocketAddr,
        peers: Option<&TlsPeers>,
        expected: &str,
    ) -> Result<Channel> {
        let Some(p) = peers else { return Ok(tcp_channel(stream, self.cfg())) };
        match tokio::time::timeout(self.admission(), tls::server_handshake(stream, addr, self.cfg(), p)).await {
            Ok(r) => r.with_context(|| format!("the TLS handshake with a {expected} at {addr}")),
            Err(_) => Err(anyhow!("no TLS handshake within {} s", self.admission().as_secs())),
        }
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
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_CERT_FILE), &mut head)
                .with_context(|| format!("reading {}", path.display()))?;
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
pub(crate) fn meters(pairs: &[(&str, &Meter)]) -> serde_json::Map<String, serde_json::Value> {
    let mut m: serde_json::Map<String, serde_json::Value> =
        pairs.iter().map(|(k, c)| (k.to_string(), serde_json::to_value(c).expect("a meter serialises"))).collect();
    let summary: serde_json::Map<_, _> = pairs.iter().map(|(k, c)| (k.to_string(), c.to_json())).collect();
    m.insert("summary".into(), summary.into());
    m
}

/// Give up on a channel politely: send everything queued, close our
/// direction (TLS close_notify), and read what the peer still sends for a
/// moment, so that closing the socket does not reset the connection before
/// the peer has read our last message (an Abort with its code). Returns the
/// peer's own Abort code if one arrives meanwhile (it may have failed first,
/// for a reason we have not seen yet).
pub(crate) async fn goodbye(ch: &mut Channel) -> Option<AbortCode> {
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

/// What the server needs before it talks to anyone.
struct ServerModel {
    loaded: LoadedModel,
    public: PublicModel,
}

/// The model as the server deploys it: at `alpha` everywhere if given, else
/// at the card's per-layer alphas if it has them, else at its default alpha.
fn load_server_model(card: &Path, alpha: Option<Alpha>) -> Result<ServerModel> {
    let loaded = LoadedModel::load(card).with_context(|| format!("loading the model card {}", card.display()))?;
    if loaded.card.relu_bounds.is_empty() {
        bail!("the model card {} has no ReLU bounds: calibrate it first (pann calibrate)", card.display());
    }
    if let Some(a) = alpha {
        loaded
            .card
            .check_alpha(a)
            .with_context(|| format!("serving {}: leave out --alpha to serve it at its own precision", card.display()))?;
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
pub fn public_model_digest(card: &Path, alpha: Option<Alpha>) -> Result<String> {
    Ok(load_server_model(card, alpha)?.public.digest())
}

/// The server: loads the model card (a card that does not load or check
/// ends the process before it listens), then serves clients on `listen`
/// until a signal, or `--sessions` (see [`crate::service`]).
pub async fn run_server(
    net: &Net,
    card: &Path,
    alpha: Option<Alpha>,
    listen: &str,
    dealer: &str,
    opts: ServiceOptions,
    metrics: Arc<Metrics>,
) -> Result<()> {
    let m = load_server_model(card, alpha)?;
    let served = ServedModel::new(m.loaded.model, m.public).with_context(|| format!("preparing the model of {}", card.display()))?;
    let listener = bind(listen).await?;
    info!(
        "server: model {} (digest {}), alpha {}, listening on {}",
        m.loaded.card.name,
        served.digest(),
        served.public.precision(),
        listener.local_addr()?
    );
    info!(
        "server: accepts batches of up to {} image(s) ({:.1} MB of material per image in all, {:.1} MB held at once at batch 1; session memory limit {:.1} MB); {} session(s) at once, {} waiting",
        net.limits.batch_limit(&served.size),
        served.size.total_per_image as f64 / 1e6,
        served.size.held_at_once(1) as f64 / 1e6,
        net.limits.max_memory as f64 / 1e6,
        opts.max_sessions,
        opts.queue
    );
    ServerService::new(net.clone(), served, dealer.to_string(), opts, metrics)?.run(listener).await
}

/// The dealer: serves the parties of many sessions on `listen`, pairing
/// each session's server and client by its id (see [`crate::service`]).
pub async fn run_dealer(net: &Net, listen: &str, opts: ServiceOptions, pool: usize, pool_memory: u64, metrics: Arc<Metrics>) -> Result<()> {
    let listener = bind(listen).await?;
    info!("dealer: listening on {}; {} session(s) at once, pool of {pool} per model and batch", listener.local_addr()?, opts.max_sessions);
    DealerService::new(net.clone(), opts, pool, pool_memory, metrics)?.run(listener).await
}

/// The client: one session with the server and the dealer; learns the
/// logits. An input that does not load ends the client before it connects.
pub async fn run_client(
    net: &Net,
    server: &str,
    dealer: &str,
    precision: &Precision,
    expect_model: Option<&str>,
    images: Images,
    batch: usize,
) -> Result<(PartyReport, ClientOutcome)> {
    let (out, to_server, to_dealer) = client_session(net, server, dealer, precision, expect_model, &images.pixels, batch).await?;
    let predictions = out.logits.iter().zip(&images.labels).map(|(l, &label)| Prediction::judge(l, label, out.logit_range)).collect();
    let report = PartyReport {
        role: "client".into(),
        alpha: precision.uniform(),
        precision: precision.to_string(),
        model_digest: out.model_digest.clone(),
        setup_s: out.setup_s,
        batches: out.batches.clone(),
        predictions,
        meters: meters(&[("server", to_server.meter()), ("dealer", to_dealer.meter())]),
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
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_trained_for_one_alpha_is_served_at_it_only() {
        let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/assets");
        let alpha = |a: u32| Some(Alpha::new(a).unwrap());
        let tuned = assets.join("resnet20-aka-ft-p4-kd-9ep.card.json");
        let e = format!("{:#}", public_model_digest(&tuned, alpha(5)).unwrap_err());
        assert!(e.contains("trained for alpha 4") && e.contains("leave out --alpha"), "{e}");
        assert!(public_model_digest(&tuned, alpha(4)).is_ok());
        assert!(public_model_digest(&tuned, None).is_ok(), "its own precision");
        // Negative control: a model trained with exact ReLU is served at any alpha.
        assert!(public_model_digest(&assets.join("resnet20-akamaster.card.json"), alpha(5)).is_ok());
    }
}
