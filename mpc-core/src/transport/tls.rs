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
use crate::handshake::Role;

/// Sent by the server after a successful handshake (see the module docs).
const CONFIRM: u8 = 0x50;

/// Both TLS configurations of one party: its identity and the pinned
/// certificate of each peer role it talks to. Built once; cheap to share
/// between connections.
///
/// Each pinned certificate belongs to exactly one role, and the channel of
/// every connection records the role whose certificate the peer presented
/// ([`Channel::certified_peer`]), which the session handshake then enforces.
#[derive(Clone)]
pub struct TlsPeers {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    roles: Arc<Vec<(Role, CertificateDer<'static>)>>,
    peer_fingerprint: String,
}

impl std::fmt::Debug for TlsPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPeers").field("peer_cert_sha256", &self.peer_fingerprint).finish_non_exhaustive()
    }
}

/// rustls' ring provider with TLS 1.3's AES-128-GCM first. Both ends are
/// PANN's, so this is the suite every connection uses. 128-bit keys are the
/// security level of the AES-128 PRG that expands the shares anyway, and on
/// AES-NI/VAES machines it moved 8 MiB each way in 17.6-19.4 ms against
/// 22.0-22.6 for rustls' default AES-256-GCM and 27.4 for ChaCha20-Poly1305
/// (`cargo bench -p pann-mpc-core --bench channel -- tls_exchange`).
fn provider() -> rustls::crypto::CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|c| c.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    p
}

impl TlsPeers {
    /// Configure TLS with our identity and the certificate of each peer role
    /// we accept (a party pins its one peer per connection; the dealer pins
    /// the server and the client on one port). Refused: no peer, a role
    /// named twice, one certificate for two roles, or a peer certificate
    /// equal to our own (one identity must never serve two roles).
    pub fn new(identity: &TlsIdentity, peers: Vec<(Role, CertificateDer<'static>)>) -> Result<TlsPeers> {
        if peers.is_empty() {
            return Err(CoreError::Config("no peer certificate to pin".into()));
        }
        for (i, (role, cert)) in peers.iter().enumerate() {
            if cert.as_ref() == identity.cert_der() {
                return Err(CoreError::Config(format!("the {role}'s certificate is our own: every role needs its own identity")));
            }
            for (other, c2) in &peers[..i] {
                if other == role {
                    return Err(CoreError::Config(format!("two certificates pinned for the {role}")));
                }
                if c2.as_ref() == cert.as_ref() {
                    return Err(CoreError::Config(format!(
                        "the {other} and the {role} have the same certificate: every role needs its own identity"
                    )));
                }
            }
        }
        Self::with_provider(identity, peers, provider())
    }

    /// [`TlsPeers::new`] after its checks, with the given cipher suites
    /// (the tests compare the suites that connections settle on).
    fn with_provider(
        identity: &TlsIdentity,
        peers: Vec<(Role, CertificateDer<'static>)>,
        provider: rustls::crypto::CryptoProvider,
    ) -> Result<TlsPeers> {
        let provider = Arc::new(provider);
        let algs = provider.signature_verification_algorithms;
        let certs: Vec<CertificateDer<'static>> = peers.iter().map(|(_, c)| c.clone()).collect();
        let peer_fingerprint = certs.iter().map(sha256_fingerprint).collect::<Vec<_>>().join(",");
        let verifier = PinnedCert::new(certs, algs);
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
        Ok(TlsPeers { server: Arc::new(server), client: Arc::new(client), roles: Arc::new(peers), peer_fingerprint })
    }

    /// Load our identity and one peer role's certificate from PEM files.
    pub fn from_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
        peer_role: Role,
        peer_cert_path: impl AsRef<Path>,
    ) -> Result<TlsPeers> {
        let identity = TlsIdentity::load(cert_path, key_path)?;
        TlsPeers::new(&identity, vec![(peer_role, load_peer_cert(peer_cert_path)?)])
    }

    /// SHA-256 (hex) of the pinned peer certificate(s), comma-separated.
    pub fn peer_fingerprint(&self) -> &str {
        &self.peer_fingerprint
    }

    /// The role whose pinned certificate the peer presented. The verifier
    /// accepted only pinned certificates, so `None` means a broken TLS state.
    fn role_of(&self, presented: Option<&[CertificateDer<'static>]>) -> Result<Role> {
        let end_entity = presented.and_then(|c| c.first());
        end_entity
            .and_then(|e| self.roles.iter().find(|(_, c)| c.as_ref() == e.as_ref()).map(|(r, _)| *r))
            .ok_or_else(|| CoreError::Tls("the peer's certificate is not one of the pinned ones".into()))
    }
}

/// Listen on `addr` and accept exactly one peer over mutually authenticated TLS.
pub async fn tls_listen_accept<A: ToSocketAddrs + Display>(addr: A, cfg: ChannelConfig, peers: &TlsPeers) -> Result<Channel> {
    Listener::bind(addr).await?.accept_tls(cfg, peers).await
}

/// Connect to `addr` (retrying until `cfg.connect_timeout`) and run the TLS
/// handshake as the TLS client. Fails if either side rejects the other's certificate.
pub async fn tls_connect<A: ToSocketAddrs + Display + Clone>(addr: A, cfg: ChannelConfig, peers: &TlsPeers) -> Result<Channel> {
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
    let role = peers.role_of(tls.get_ref().1.peer_certificates())?;
    Ok(Channel::from_stream(tls, cfg).with_certified_peer(role))
}

/// Run the server side of the handshake on an accepted TCP stream.
pub async fn server_handshake(stream: TcpStream, peer: SocketAddr, cfg: ChannelConfig, peers: &TlsPeers) -> Result<Channel> {
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
    let role = peers.role_of(tls.get_ref().1.peer_certificates())?;
    Ok(Channel::from_stream(tls, cfg).with_certified_peer(role))
}

/// A TLS failure with its cause spelled out: our own rejection of the peer's
/// certificate, the peer's rejection of ours (an alert), or a closed socket.
fn tls_error(stage: &str, e: std::io::Error) -> CoreError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let detail = match inner {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))) => {
            format!("we rejected the peer: {o}")
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the peer rejected the handshake (alert {alert:?}); it probably does not have our certificate pinned")
        }
        Some(r) => r.to_string(),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => "the peer closed the connection during the handshake".to_string(),
        None => e.to_string(),
    };
    CoreError::Tls(format!("{stage}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The suite a handshake between `server` and `client` settles on.
    async fn negotiated(server: &TlsPeers, client: &TlsPeers) -> rustls::CipherSuite {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let name = ServerName::try_from(DEFAULT_SUBJECT.to_string()).unwrap();
        let (s, c) =
            tokio::join!(async { TlsAcceptor::from(server.server.clone()).accept(l.accept().await.unwrap().0).await.unwrap() }, async {
                TlsConnector::from(client.client.clone()).connect(name, TcpStream::connect(addr).await.unwrap()).await.unwrap()
            });
        let suite = s.get_ref().1.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(Some(suite), c.get_ref().1.negotiated_cipher_suite().map(|x| x.suite()));
        suite
    }

    #[tokio::test]
    async fn connections_use_aes_128_gcm() {
        let (a, b) = (TlsIdentity::generate().unwrap(), TlsIdentity::generate().unwrap());
        let server = TlsPeers::new(&a, vec![(Role::Client, b.cert().clone())]).unwrap();
        let client = TlsPeers::new(&b, vec![(Role::Server, a.cert().clone())]).unwrap();
        assert_eq!(negotiated(&server, &client).await, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        // Negative control: a client with rustls' default order gets AES-256-GCM.
        let default =
            TlsPeers::with_provider(&b, vec![(Role::Server, a.cert().clone())], rustls::crypto::ring::default_provider()).unwrap();
        assert_eq!(negotiated(&server, &default).await, rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    }
}
