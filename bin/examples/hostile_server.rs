//! A misbehaving server for measuring the peers' limits
//! (`scripts/security-limits.sh`): it holds the server's TLS identity, does
//! the handshakes like `pann-party --role server`, then sends the client and
//! the dealer either a public model description with a huge dimension
//! (`huge-model`: every value 2^20 x 2^20 pixels, about 1.7e13 elements per
//! image) or a 256 MiB frame where the description is expected
//! (`long-frame`). It then waits for the peers' Abort codes and prints them.
//! CERTS is the server's own certificate directory.
//!
//! ```text
//! cargo run --release -p pann-bin --example hostile_server -- huge-model CARD.json CERTS LISTEN DEALER
//! ```

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pann_approx::Alpha;
use pann_engine::session::{dealer_hello, session_params};
use pann_engine::SessionId;
use pann_engine::{PublicModel, SecureConfig};
use pann_models::LoadedModel;
use pann_mpc_core::channel::Tag;
use pann_mpc_core::handshake::{handshake, Role};
use pann_mpc_core::transport::{load_peer_cert, tls_connect, Listener, TlsIdentity, TlsPeers};
use pann_mpc_core::ChannelConfig;

/// The server's identity (from its own directory) pinning one peer role.
fn peers(dir: &Path, peer: Role) -> Result<TlsPeers> {
    let id = TlsIdentity::load(dir.join("server.crt"), dir.join("server.key"))?;
    Ok(TlsPeers::new(&id, vec![(peer, load_peer_cert(dir.join(format!("{peer}.crt")))?)])?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, card, certs, listen, dealer] = &args[..] else {
        bail!("usage: hostile_server huge-model|long-frame CARD.json CERTS_DIR LISTEN DEALER");
    };
    let m = LoadedModel::load(card).context("loading the card")?;
    let public = PublicModel::new(&m.model, &m.card.input, &m.card.relu_bounds, SecureConfig::new(Alpha::new(9).unwrap()))?;
    let precision = public.precision();
    let desc = match mode.as_str() {
        "huge-model" => {
            let mut v: serde_json::Value = serde_json::from_slice(&public.to_json())?;
            for n in v["network"]["nodes"].as_array_mut().context("nodes")? {
                n["shape"]["h"] = (1u64 << 20).into();
                n["shape"]["w"] = (1u64 << 20).into();
            }
            serde_json::to_vec(&v)?
        }
        "long-frame" => Vec::new(),
        other => bail!("unknown mode {other}"),
    };
    let cfg = ChannelConfig::default().with_timeout(Duration::from_secs(20)).with_connect_timeout(Duration::from_secs(20));
    let certs = Path::new(certs);
    let listener = Listener::bind(listen.clone()).await?;
    let (dealer_peers, client_peers) = (peers(certs, Role::Dealer)?, peers(certs, Role::Client)?);
    let (to_dealer, to_client) =
        tokio::join!(tls_connect(dealer.clone(), cfg.clone(), &dealer_peers), listener.accept_tls(cfg, &client_peers));
    let (mut to_dealer, mut to_client) = (to_dealer?, to_client?);
    handshake(&mut to_client, &session_params(Role::Server, &precision).expecting(Role::Client)).await?;
    // The dealer takes the description only once a client of the same
    // session arrives; this one never does, so the dealer times the half out.
    handshake(&mut to_dealer, &dealer_hello(Role::Server, &SessionId::random(), None)).await?;
    for (ch, who) in [(&mut to_client, "client"), (&mut to_dealer, "dealer")] {
        if mode == "huge-model" {
            ch.send_tagged(Tag::Bytes, &desc)?;
            ch.flush().await?;
        } else {
            // A 256 MiB frame where a description of at most 4 MiB is
            // expected (the default max_frame of 1 GiB lets it through).
            let mut body = vec![b' '; 256 << 20];
            body[0] = Tag::Bytes as u8;
            ch.send_frame(&body)?;
            // The peer refuses it from its header: the flush cannot finish.
            let sent = tokio::time::timeout(Duration::from_secs(5), ch.flush()).await;
            eprintln!("hostile server: long frame to the {who}: {}", if sent.is_ok() { "written" } else { "not read by the peer" });
        }
        let said = tokio::time::timeout(Duration::from_secs(10), ch.recv_tagged(Tag::Abort)).await;
        match said {
            Ok(Ok(r)) => println!("the {who} aborted: {}", pann_mpc_core::channel::abort_code_of(&r)),
            Ok(Err(e)) => println!("the {who}: {e}"),
            Err(_) => println!("the {who} said nothing within 10 s"),
        }
    }
    Ok(())
}
