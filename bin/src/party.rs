//! The three roles over TLS (default) or plain TCP (`--insecure-tcp`).
//!
//! Topology: the dealer listens for both parties; the server listens for the
//! client and connects to the dealer; the client connects to both. Each role
//! reads its own key and the certificates of the peers it talks to from one
//! directory (`pann certs` writes `server|client|dealer.{crt,key}`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pann_mpc_core::handshake::Role;
use pann_mpc_core::transport::{load_peer_cert, tcp_connect, tls_connect, Listener, TlsIdentity, TlsPeers};
use pann_mpc_core::{Channel, ChannelConfig};
use pann_models::secure::{client_session, dealer_session, server_session, ClientOutcome, PublicModel, SecureConfig};
use pann_models::LoadedModel;

use crate::report::{argmax, PartyReport, Prediction};

/// How a role reaches its peers.
#[derive(Clone, Debug)]
pub struct Net {
    /// Directory with `<role>.crt`, `<role>.key` and the peers' `.crt`; `None` = plain TCP.
    pub certs: Option<PathBuf>,
    pub timeout: Duration,
}

impl Net {
    fn cfg(&self) -> ChannelConfig {
        ChannelConfig::default().with_timeout(self.timeout).with_connect_timeout(self.timeout)
    }

    fn peers(&self, me: Role, peers: &[Role]) -> Result<Option<TlsPeers>> {
        let Some(dir) = &self.certs else { return Ok(None) };
        let (crt, key) = (dir.join(format!("{me}.crt")), dir.join(format!("{me}.key")));
        let id = TlsIdentity::load(&crt, &key).with_context(|| format!("loading the {me} identity from {}", dir.display()))?;
        let certs = peers
            .iter()
            .map(|p| {
                let path = dir.join(format!("{p}.crt"));
                load_peer_cert(&path).with_context(|| format!("loading the {p} certificate {}", path.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(TlsPeers::new_multi(&id, certs)?))
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

/// The server: loads the model card (with calibrated bounds), waits for the
/// client on `listen`, connects to the dealer.
pub async fn run_server(net: &Net, card: &Path, alpha: Option<u32>, listen: &str, dealer: &str) -> Result<PartyReport> {
    let loaded = LoadedModel::load(card).with_context(|| format!("loading the model card {}", card.display()))?;
    if loaded.card.relu_bounds.is_empty() {
        bail!("the model card {} has no ReLU bounds: calibrate it first (pann calibrate)", card.display());
    }
    let alpha = alpha.unwrap_or(loaded.card.default_alpha);
    let public = PublicModel::new(&loaded.model, &loaded.card.input, &loaded.card.relu_bounds, SecureConfig::new(alpha))?;
    let listener = bind(listen).await?;
    eprintln!("server: model {} (digest {}), alpha {alpha}, listening on {}", loaded.card.name, public.digest(), listener.local_addr()?);
    let mut to_dealer = net.connect(Role::Server, Role::Dealer, dealer).await?;
    let mut to_client = net.accept(&listener, Role::Server, &[Role::Client]).await?;
    let t0 = std::time::Instant::now();
    let batches = server_session(&mut to_client, &mut to_dealer, &loaded.model, &public).await.context("server session")?;
    let setup_s = t0.elapsed().as_secs_f64() - batches.iter().map(|b| b.offline_s + b.online_s).sum::<f64>();
    Ok(PartyReport {
        role: "server".into(),
        alpha,
        model_digest: public.digest(),
        setup_s,
        batches,
        predictions: Vec::new(),
        meters: meters(&[("client", &to_client), ("dealer", &to_dealer)]),
    })
}

/// The dealer: accepts the server and the client on `listen`.
pub async fn run_dealer(net: &Net, listen: &str) -> Result<PartyReport> {
    let listener = bind(listen).await?;
    eprintln!("dealer: listening on {}", listener.local_addr()?);
    let mut a = net.accept(&listener, Role::Dealer, &[Role::Server, Role::Client]).await?;
    let mut b = net.accept(&listener, Role::Dealer, &[Role::Server, Role::Client]).await?;
    dealer_session(&mut a, &mut b).await.context("dealer session")?;
    Ok(PartyReport {
        role: "dealer".into(),
        alpha: 0,
        model_digest: String::new(),
        setup_s: 0.0,
        batches: Vec::new(),
        predictions: Vec::new(),
        meters: meters(&[("peer-1", &a), ("peer-2", &b)]),
    })
}

/// The client: connects to the server and the dealer, learns the logits.
#[allow(clippy::too_many_arguments)]
pub async fn run_client(
    net: &Net,
    server: &str,
    dealer: &str,
    alpha: u32,
    expect_model: Option<&str>,
    images: &[Vec<u8>],
    labels: &[Option<u8>],
    batch: usize,
) -> Result<(PartyReport, ClientOutcome)> {
    let mut to_server = net.connect(Role::Client, Role::Server, server).await?;
    let mut to_dealer = net.connect(Role::Client, Role::Dealer, dealer).await?;
    let out = client_session(&mut to_server, &mut to_dealer, alpha, expect_model, images, batch).await.context("client session")?;
    let predictions = out
        .logits
        .iter()
        .zip(labels)
        .map(|(l, &label)| Prediction { class: argmax(l), label, logits: l.clone() })
        .collect();
    let report = PartyReport {
        role: "client".into(),
        alpha,
        model_digest: out.model_digest.clone(),
        setup_s: out.setup_s,
        batches: out.batches.clone(),
        predictions,
        meters: meters(&[("server", &to_server), ("dealer", &to_dealer)]),
    };
    Ok((report, out))
}

/// Write `pann certs` identities for the three roles into `dir`.
pub fn write_certs(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for role in [Role::Server, Role::Client, Role::Dealer] {
        let id = TlsIdentity::generate_for(&format!("pann-{role}"))?;
        id.save(dir.join(format!("{role}.crt")), dir.join(format!("{role}.key")))?;
    }
    Ok(())
}
