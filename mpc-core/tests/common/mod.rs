//! Helpers shared by the integration tests: connected channel pairs over
//! each transport, TLS identities, and a guard against hangs.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use pann_mpc_core::transport::{Listener, TlsIdentity, TlsPeers};
use pann_mpc_core::Role;
use pann_mpc_core::{tcp_connect, tls_connect, Channel, ChannelConfig};

#[derive(Clone, Copy, Debug)]
pub enum Transport {
    Mem,
    Tcp,
    Tls,
}

pub const ALL: [Transport; 3] = [Transport::Mem, Transport::Tcp, Transport::Tls];

/// A configuration with short waits, so that failures show up in seconds.
pub fn short_cfg() -> ChannelConfig {
    ChannelConfig::default().with_timeout(Duration::from_secs(2)).with_connect_timeout(Duration::from_secs(2))
}

/// Run `fut`, failing the test if it takes longer than `secs`: a hang is a bug.
pub async fn within<F: Future>(secs: u64, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("did not finish within {secs} s"),
    }
}

/// Two identities and the TLS configurations of each side pinning the other:
/// the first is the server's (pinning the client), the second the client's.
pub fn tls_pair() -> (TlsPeers, TlsPeers) {
    let a = TlsIdentity::generate().unwrap();
    let b = TlsIdentity::generate().unwrap();
    (TlsPeers::new(&a, vec![(Role::Client, b.cert().clone())]).unwrap(), TlsPeers::new(&b, vec![(Role::Server, a.cert().clone())]).unwrap())
}

/// A connected pair (listener side, connecting side).
pub async fn pair(t: Transport, cfg: ChannelConfig) -> (Channel, Channel) {
    match t {
        Transport::Mem => Channel::mem_pair(cfg),
        Transport::Tcp => {
            let l = Listener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let (a, b) = tokio::join!(l.accept_tcp(cfg.clone()), tcp_connect(addr, cfg.clone()));
            (a.unwrap(), b.unwrap())
        }
        Transport::Tls => {
            let (sp, cp) = tls_pair();
            let l = Listener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let (a, b) = tokio::join!(l.accept_tls(cfg.clone(), &sp), tls_connect(addr, cfg.clone(), &cp));
            (a.unwrap(), b.unwrap())
        }
    }
}

/// A fresh, empty directory for files written by a test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pann-mpc-core-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
