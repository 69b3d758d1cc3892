//! The impersonation matrix: every connection of a PANN session (client to
//! server, client to dealer, server to dealer), attempted with every identity
//! presenting itself as every role. A connection is accepted only when the
//! presented certificate is pinned for the claimed role; everything else is
//! refused on both sides, by TLS pinning or by the handshake's binding of the
//! Hello's role to the certificate.
//!
//! Run with `-- --nocapture` to print the matrix (docs/results/security.md).

mod common;

use common::{short_cfg, within};
use pann_mpc_core::handshake::{handshake, Role, SessionParams};
use pann_mpc_core::transport::{tcp_connect, CertificateDer, Listener, TlsIdentity, TlsPeers};
use pann_mpc_core::{tls_connect, CoreError};

const ROLES: [Role; 3] = [Role::Server, Role::Client, Role::Dealer];

struct Ids {
    by_role: Vec<(Role, TlsIdentity)>,
}

impl Ids {
    fn new() -> Ids {
        Ids { by_role: ROLES.iter().map(|r| (*r, TlsIdentity::generate_for(&format!("pann-{r}")).unwrap())).collect() }
    }
    fn of(&self, r: Role) -> &TlsIdentity {
        &self.by_role.iter().find(|(x, _)| *x == r).unwrap().1
    }
    fn cert(&self, r: Role) -> CertificateDer<'static> {
        self.of(r).cert().clone()
    }
}

/// What the listening role pins, as pann-party configures it.
fn listener_pins(ids: &Ids, listener: Role) -> Vec<(Role, CertificateDer<'static>)> {
    match listener {
        Role::Dealer => vec![(Role::Server, ids.cert(Role::Server)), (Role::Client, ids.cert(Role::Client))],
        _ => vec![(Role::Client, ids.cert(Role::Client))],
    }
}

/// The Hello a role sends on this connection, as the sessions build it.
fn hello(claims: Role, expects: Option<Role>) -> SessionParams {
    let p = SessionParams::new(claims).with("ring", "Z_2^64");
    match expects {
        Some(e) => p.expecting(e),
        None => p,
    }
}

/// One attempt: `listener` (honest, with its own identity and pins) accepts a
/// connection from a peer presenting `presents`'s certificate and claiming
/// `claims`, or an honest `connector` reaches a listener that presents
/// `presents` and claims `claims`. Returns each side's outcome.
async fn attempt(
    ids: &Ids,
    honest_listens: bool,
    honest: Role,
    other_expected: Role,
    presents: Role,
    claims: Role,
) -> (Result<Role, String>, Result<Role, String>) {
    let cfg = short_cfg();
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    // The honest side's configuration, exactly as in a deployment.
    let honest_pins = if honest_listens { listener_pins(ids, honest) } else { vec![(other_expected, ids.cert(other_expected))] };
    let honest_tls = TlsPeers::new(ids.of(honest), honest_pins).unwrap();
    // The other side holds `presents`'s key and pins the honest side.
    let other_tls = TlsPeers::new(ids.of(presents), vec![(honest, ids.cert(honest))]).unwrap();
    let honest_hello = hello(honest, if honest == Role::Dealer { None } else { Some(other_expected) });
    let other_hello = hello(claims, Some(honest));
    // The handshake, then one exchange as the session's first message: a
    // side whose Hello passed its own checks learns of the peer's refusal
    // (an Abort) there.
    let run = |chan: Result<pann_mpc_core::Channel, CoreError>, ours: SessionParams| async move {
        let mut ch = chan.map_err(|e| format!("{e}"))?;
        let peer = handshake(&mut ch, &ours).await.map(|t| t.role).map_err(|e| format!("{e}"))?;
        ch.exchange_ring(&[1]).await.map_err(|e| format!("{e}"))?;
        Ok(peer)
    };
    if honest_listens {
        let (a, b) =
            within(20, async { tokio::join!(l.accept_tls(cfg.clone(), &honest_tls), tls_connect(addr, cfg.clone(), &other_tls)) }).await;
        within(20, async { tokio::join!(run(a, honest_hello), run(b, other_hello)) }).await
    } else {
        let (a, b) =
            within(20, async { tokio::join!(l.accept_tls(cfg.clone(), &other_tls), tls_connect(addr, cfg.clone(), &honest_tls)) }).await;
        let (other, honest) = within(20, async { tokio::join!(run(a, other_hello), run(b, honest_hello)) }).await;
        (honest, other)
    }
}

fn show(r: &Result<Role, String>) -> String {
    match r {
        Ok(role) => format!("accepted (peer is the {role})"),
        Err(e) => format!("refused: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_pinned_certificate_of_the_claimed_role_is_accepted() {
    let ids = Ids::new();
    println!("| connection | honest side | other side presents | claims | honest side | other side |");
    println!("|---|---|---|---|---|---|");
    let mut refused = 0;
    // (honest role, does it listen, the role it expects on the other end).
    // The dealer listens for both parties on one port: one block covers both.
    let connections = [
        (Role::Dealer, true, Role::Server, "party -> dealer"),
        (Role::Server, true, Role::Client, "client -> server"),
        (Role::Client, false, Role::Server, "client -> server"),
        (Role::Client, false, Role::Dealer, "client -> dealer"),
        (Role::Server, false, Role::Dealer, "server -> dealer"),
    ];
    for (honest, listens, expected, conn) in connections {
        for presents in ROLES {
            // The honest side's own certificate, presented back to it, is
            // never pinned (TlsPeers refuses to pin its own identity).
            if presents == honest {
                continue;
            }
            for claims in ROLES {
                let (h, o) = attempt(&ids, listens, honest, expected, presents, claims).await;
                let legit = presents == claims && if honest == Role::Dealer { presents != Role::Dealer } else { presents == expected };
                let side = if listens { "listens" } else { "connects" };
                println!("| {conn} | {honest} ({side}) | {presents}'s certificate | {claims} | {} | {} |", show(&h), show(&o));
                if legit {
                    assert_eq!(h.as_ref().ok(), Some(&claims), "{conn}: the genuine {claims} must be accepted: {h:?} / {o:?}");
                    assert_eq!(o.as_ref().ok(), Some(&honest), "{conn}: the genuine {claims} must accept the {honest}: {o:?}");
                } else {
                    assert!(h.is_err(), "{conn}: the {honest} accepted the {presents}'s certificate claiming {claims}");
                    assert!(o.is_err(), "{conn}: the impostor ({presents} claiming {claims}) was not told it was refused");
                    refused += 1;
                }
            }
        }
    }
    assert!(refused >= 15, "only {refused} attempts were impersonations");
}

#[tokio::test]
async fn a_client_claiming_the_server_role_at_the_dealer_is_refused_naming_both_roles() {
    let ids = Ids::new();
    let (dealer, client) = attempt(&ids, true, Role::Dealer, Role::Server, Role::Client, Role::Server).await;
    let dealer = dealer.unwrap_err();
    assert!(dealer.contains("certificate is the client's") && dealer.contains("claims the role server"), "{dealer}");
    let client = client.unwrap_err();
    assert!(client.contains("does not match the certificate"), "{client}");
}

/// Negative control: without certificates (plain TCP), nothing binds a role,
/// and the same claim is accepted. The binding, not luck, refuses it above.
#[tokio::test]
async fn without_certificates_the_same_claim_would_be_accepted() {
    let cfg = short_cfg();
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (a, b) = within(10, async { tokio::join!(l.accept_tcp(cfg.clone()), tcp_connect(addr, cfg.clone())) }).await;
    let (mut dealer, mut impostor) = (a.unwrap(), b.unwrap());
    let (hd, hi) = (hello(Role::Dealer, None), hello(Role::Server, Some(Role::Dealer)));
    let (d, i) = within(10, async { tokio::join!(handshake(&mut dealer, &hd), handshake(&mut impostor, &hi)) }).await;
    assert_eq!(d.unwrap().role, Role::Server);
    assert!(i.is_ok());
}

#[test]
fn one_identity_cannot_be_pinned_for_two_roles_or_as_our_own_peer() {
    let ids = Ids::new();
    let same = TlsPeers::new(ids.of(Role::Dealer), vec![(Role::Server, ids.cert(Role::Client)), (Role::Client, ids.cert(Role::Client))]);
    assert!(matches!(same, Err(CoreError::Config(m)) if m.contains("same certificate")));
    let own = TlsPeers::new(ids.of(Role::Dealer), vec![(Role::Server, ids.cert(Role::Dealer))]);
    assert!(matches!(own, Err(CoreError::Config(m)) if m.contains("our own")));
    let twice = TlsPeers::new(ids.of(Role::Dealer), vec![(Role::Server, ids.cert(Role::Server)), (Role::Server, ids.cert(Role::Client))]);
    assert!(matches!(twice, Err(CoreError::Config(m)) if m.contains("two certificates")));
}
