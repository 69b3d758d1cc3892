//! Transports that produce a [`Channel`]: plain TCP and mutually
//! authenticated TLS with pinned self-signed certificates.
//!
//! Both ends of a PANN session are known in advance (the server and the
//! client, or a party and the dealer), so there is no certificate authority:
//! each side is configured with its own identity and the exact certificate it
//! expects from the peer (see [`tls`]). Plain TCP exists for tests and
//! benchmarks and must be asked for explicitly by the binaries.
//!
//! Every wait is bounded: accepting and connecting by
//! [`ChannelConfig::connect_timeout`], the TLS handshake by
//! [`ChannelConfig::timeout`].

mod identity;
mod pinned;
pub mod tls;

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::channel::{Channel, ChannelConfig};
use crate::error::{CoreError, Result};

pub use identity::{load_peer_cert, sha256_fingerprint, TlsIdentity, DEFAULT_SUBJECT};
pub use rustls::pki_types::CertificateDer;
pub use tls::{tls_connect, tls_listen_accept, TlsPeers};

/// A bound listening socket. Binding is separate from accepting so that a
/// caller (or a test on port 0) can learn the address before the peer connects.
pub struct Listener {
    inner: TcpListener,
}

impl Listener {
    /// Bind a TCP listener on `addr` (port 0: any free port). Failure is
    /// [`CoreError::Config`] naming the address.
    pub async fn bind<A: ToSocketAddrs + Display>(addr: A) -> Result<Listener> {
        let shown = addr.to_string();
        let inner = TcpListener::bind(addr).await.map_err(|e| CoreError::Config(format!("cannot listen on {shown}: {e}")))?;
        Ok(Listener { inner })
    }

    /// The address actually bound (the port chosen when binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.inner.local_addr().map_err(CoreError::io("reading the listening address"))
    }

    /// Wait (at most `connect_timeout`) for one peer; returns its socket with
    /// TCP_NODELAY set (rounds are latency bound; Nagle would add delays).
    pub async fn accept_stream(&self, connect_timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = tokio::time::timeout(connect_timeout, self.inner.accept())
            .await
            .map_err(|_| CoreError::Timeout { context: "waiting for the peer to connect", after: connect_timeout })?
            .map_err(CoreError::io("accepting a connection"))?;
        stream.set_nodelay(true).map_err(CoreError::io("setting TCP_NODELAY"))?;
        Ok((stream, peer))
    }

    /// Accept one peer over plain TCP.
    pub async fn accept_tcp(&self, cfg: ChannelConfig) -> Result<Channel> {
        let (stream, _) = self.accept_stream(cfg.connect_timeout).await?;
        Ok(tcp_channel(stream, cfg))
    }

    /// Accept one peer over mutually authenticated TLS.
    pub async fn accept_tls(&self, cfg: ChannelConfig, peers: &TlsPeers) -> Result<Channel> {
        let (stream, peer) = self.accept_stream(cfg.connect_timeout).await?;
        tls::server_handshake(stream, peer, cfg, peers).await
    }
}

/// A channel over an established TCP stream. The owned halves let the read
/// and the write of a round proceed without sharing a lock.
pub fn tcp_channel(stream: TcpStream, cfg: ChannelConfig) -> Channel {
    let (r, w) = stream.into_split();
    Channel::from_halves(Box::new(r), Box::new(w), cfg)
}

/// Listen on `addr` and accept exactly one peer over plain TCP.
pub async fn tcp_listen_accept<A: ToSocketAddrs + Display>(addr: A, cfg: ChannelConfig) -> Result<Channel> {
    Listener::bind(addr).await?.accept_tcp(cfg).await
}

/// Connect to `addr` over plain TCP, retrying until `cfg.connect_timeout`.
pub async fn tcp_connect<A: ToSocketAddrs + Display + Clone>(addr: A, cfg: ChannelConfig) -> Result<Channel> {
    let stream = connect_stream(addr, cfg.connect_timeout).await?;
    Ok(tcp_channel(stream, cfg))
}

/// Open a TCP connection, retrying with a short backoff until `connect_timeout`
/// has passed: the peer's listener may not be up yet. Sets TCP_NODELAY.
pub async fn connect_stream<A: ToSocketAddrs + Display + Clone>(addr: A, connect_timeout: Duration) -> Result<TcpStream> {
    let deadline = tokio::time::Instant::now() + connect_timeout;
    let mut backoff = Duration::from_millis(20);
    let fail = |last: String| CoreError::Connect { addr: addr.to_string(), after: connect_timeout, last };
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let last = match tokio::time::timeout(left, TcpStream::connect(addr.clone())).await {
            Err(_) => return Err(fail("connection attempt timed out".into())),
            Ok(Ok(stream)) => {
                stream.set_nodelay(true).map_err(CoreError::io("setting TCP_NODELAY"))?;
                return Ok(stream);
            }
            Ok(Err(e)) => e.to_string(),
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(fail(last));
        }
        tokio::time::sleep(backoff.min(left)).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}
