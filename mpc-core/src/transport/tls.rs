//! Mutually authenticated TLS over TCP, with pinned self-signed certificates.
//!
//! The crypto provider is always rustls' `ring` provider, passed explicitly:
//! a process-wide default would depend on which crates happen to be linked.
//! Both sides present a certificate and accept only the peer's pinned one
//! (see `pinned.rs`), so an unknown peer fails the handshake on both sides.
//!
//! In TLS 1.3 the client finishes its handshake before the server has checked
//! the client's certificate. So that a rejected client learns it at connect
//! time (and not at its first read), the server sends one confirmation byte
//! once its handshake is complete, and the client waits for it. This byte is
//! below the framing and is not metered, like the TLS records themselves.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::identity::{load_peer_cert, sha256_fingerprint, TlsIdentity, DEFAULT_SUBJECT};
use super::pinned::PinnedCert;
use super::{connect_stream, Listener};
use crate::channel::{Channel, ChannelConfig};
use crate::error::{CoreError, Result};

/// Sent by the server after a successful handshake (see the module docs).
const CONFIRM: u8 = 0x50;

/// Both TLS configurations of one party: its identity and the peer's pinned
/// certificate. Built once; cheap to share between connections.
#[derive(Clone)]
pub struct TlsPeers {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    peer_fingerprint: String,
}

impl std::fmt::Debug for TlsPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPeers").field("peer_cert_sha256", &self.peer_fingerprint).finish_non_exhaustive()
    }
}

impl TlsPeers {
    /// Configure TLS with our identity and the one certificate we accept from the peer.
    pub fn new(identity: &TlsIdentity, peer_cert: CertificateDer<'static>) -> Result<TlsPeers> {
        Self::new_multi(identity, vec![peer_cert])
    }

    /// Configure TLS accepting any of several pinned peers (the dealer
    /// accepts the server and the client on one port).
    pub fn new_multi(identity: &TlsIdentity, peer_certs: Vec<CertificateDer<'static>>) -> Result<TlsPeers> {
        if peer_certs.is_empty() {
            return Err(CoreError::Tls("no peer certificate to pin".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algs = provider.signature_verification_algorithms;
        let peer_fingerprint = peer_certs.iter().map(sha256_fingerprint).collect::<Vec<_>>().join(",");
        let verifier = PinnedCert::new(peer_certs, algs);
        let cfg_err = |e: rustls::Error| CoreError::Tls(format!("building the TLS configuration: {e}"));

        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(cfg_err)?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(vec![identity.cert().clone()], identity.key())
            .map_err(cfg_err)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(cfg_err)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![identity.cert().clone()], identity.key())
            .map_err(cfg_err)?;
        Ok(TlsPeers { server: Arc::new(server), client: Arc::new(client), peer_fingerprint })
    }

    /// Load our identity and the peer's certificate from PEM files.
    pub fn from_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
        peer_cert_path: impl AsRef<Path>,
    ) -> Result<TlsPeers> {
        let identity = TlsIdentity::load(cert_path, key_path)?;
        TlsPeers::new(&identity, load_peer_cert(peer_cert_path)?)
    }

    /// SHA-256 (hex) of the pinned peer certificate(s), comma-separated.
    pub fn peer_fingerprint(&self) -> &str {
        &self.peer_fingerprint
    }
}

/// Listen on `addr` and accept exactly one peer over mutually authenticated TLS.
pub async fn tls_listen_accept<A: ToSocketAddrs + Display>(
    addr: A,
    cfg: ChannelConfig,
    peers: &TlsPeers,
) -> Result<Channel> {
    Listener::bind(addr).await?.accept_tls(cfg, peers).await
}

/// Connect to `addr` (retrying until `cfg.connect_timeout`) and run the TLS
/// handshake as the TLS client. Fails if either side rejects the other's certificate.
pub async fn tls_connect<A: ToSocketAddrs + Display + Clone>(
    addr: A,
    cfg: ChannelConfig,
    peers: &TlsPeers,
) -> Result<Channel> {
    let stream = connect_stream(addr, cfg.connect_timeout).await?;
    client_handshake(stream, cfg, peers).await
}

/// Run the client side of the handshake on an established TCP stream.
pub async fn client_handshake(stream: TcpStream, cfg: ChannelConfig, peers: &TlsPeers) -> Result<Channel> {
    let after = cfg.timeout;
    let connector = TlsConnector::from(peers.client.clone());
    // The name is not checked (the certificate is pinned) but TLS requires one.
    let name = ServerName::try_from(DEFAULT_SUBJECT.to_string()).map_err(|e| CoreError::Tls(e.to_string()))?;
    let mut tls = tokio::time::timeout(after, connector.connect(name, stream))
        .await
        .map_err(|_| CoreError::Timeout { context: "the TLS handshake (as client)", after })?
        .map_err(|e| tls_error("handshake (as client) failed", e))?;
    let mut confirm = [0u8; 1];
    tokio::time::timeout(after, tls.read_exact(&mut confirm))
        .await
        .map_err(|_| CoreError::Timeout { context: "waiting for the TLS server's confirmation", after })?
        .map_err(|e| tls_error("handshake (as client) failed after our Finished message", e))?;
    if confirm[0] != CONFIRM {
        return Err(CoreError::Tls(format!("unexpected confirmation byte {:#04x} from the TLS server", confirm[0])));
    }
    Ok(Channel::from_stream(tls, cfg))
}

/// Run the server side of the handshake on an accepted TCP stream.
pub async fn server_handshake(
    stream: TcpStream,
    peer: SocketAddr,
    cfg: ChannelConfig,
    peers: &TlsPeers,
) -> Result<Channel> {
    let after = cfg.timeout;
    let acceptor = TlsAcceptor::from(peers.server.clone());
    let mut tls = tokio::time::timeout(after, acceptor.accept(stream))
        .await
        .map_err(|_| CoreError::Timeout { context: "the TLS handshake (as server)", after })?
        .map_err(|e| tls_error(&format!("handshake (as server) with {peer} failed"), e))?;
    tokio::time::timeout(after, async {
        tls.write_all(&[CONFIRM]).await?;
        tls.flush().await
    })
    .await
    .map_err(|_| CoreError::Timeout { context: "confirming the TLS handshake", after })?
    .map_err(|e| tls_error("confirming the TLS handshake failed", e))?;
    Ok(Channel::from_stream(tls, cfg))
}

/// A TLS failure with its cause spelled out: our own rejection of the peer's
/// certificate, the peer's rejection of ours (an alert), or a closed socket.
fn tls_error(stage: &str, e: std::io::Error) -> CoreError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let detail = match inner {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))) => {
            format!("we rejected the peer: {o}")
        }
        Some(rustls::Error::AlertReceived(alert)) => format!(
            "the peer rejected the handshake (alert {alert:?}); it probably does not have our certificate pinned"
        ),
        Some(r) => r.to_string(),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the peer closed the connection during the handshake".to_string()
        }
        None => e.to_string(),
    };
    CoreError::Tls(format!("{stage}: {detail}"))
}
