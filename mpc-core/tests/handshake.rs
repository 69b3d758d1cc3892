//! The session handshake: agreement, and every kind of disagreement reported
//! on both sides with the field that differs.

mod common;

use common::{pair, short_cfg, within, Transport, ALL};
use pann_mpc_core::channel::{Tag, HEADER};
use pann_mpc_core::handshake::{handshake, Role, SessionParams, HANDSHAKE_LABEL, PROTOCOL_VERSION};
use pann_mpc_core::{sha256_hex, AbortCode, CoreError, Phase, Result};

fn params(role: Role) -> SessionParams {
    SessionParams::new(role).with("ring_bits", 64).with("frac_bits", 16).with("alpha", 9).with("model", sha256_hex(b"resnet20 weights"))
}

/// Run the handshake on both ends of a fresh pair.
async fn both(t: Transport, a: &SessionParams, b: &SessionParams) -> (Result<SessionParams>, Result<SessionParams>) {
    let (mut ca, mut cb) = pair(t, short_cfg()).await;
    within(10, async { tokio::join!(handshake(&mut ca, a), handshake(&mut cb, b)) }).await
}

/// Both sides must fail with a mismatch naming `field`, each from its own view.
fn assert_mismatch(res: (Result<SessionParams>, Result<SessionParams>), field: &str, a: &str, b: &str) {
    match res {
        (
            Err(CoreError::HandshakeMismatch { field: fa, ours: oa, theirs: ta }),
            Err(CoreError::HandshakeMismatch { field: fb, ours: ob, theirs: tb }),
        ) => {
            assert_eq!((fa.as_str(), fb.as_str()), (field, field));
            assert_eq!((oa.as_str(), ta.as_str()), (a, b));
            assert_eq!((ob.as_str(), tb.as_str()), (b, a));
        }
        other => panic!("expected a mismatch on {field} on both sides, got {other:?}"),
    }
}

#[tokio::test]
async fn agreement_on_every_transport_is_metered_in_setup() {
    for t in ALL {
        let (mut ca, mut cb) = pair(t, short_cfg()).await;
        ca.set_phase(Phase::Online);
        ca.set_label("conv1");
        let (a, b) = (params(Role::Server).expecting(Role::Client), params(Role::Client));
        let (ra, rb) = within(10, async { tokio::join!(handshake(&mut ca, &a), handshake(&mut cb, &b)) }).await;
        assert_eq!(ra.unwrap(), b, "{t:?}");
        assert_eq!(rb.unwrap(), a, "{t:?}");
        // Phase and label are restored; the traffic is in (setup, handshake).
        assert_eq!((ca.meter().phase(), ca.meter().label()), (Phase::Online, "conv1"));
        let cell = ca.meter().labels(Phase::Setup);
        assert_eq!(cell.len(), 1);
        assert_eq!(cell[0].0, HANDSHAKE_LABEL);
        let c = cell[0].1;
        assert_eq!(c.bytes_sent, (HEADER + 1 + a.encode().len()) as u64, "{t:?}");
        assert_eq!(c.bytes_recv, (HEADER + 1 + b.encode().len()) as u64, "{t:?}");
        assert_eq!((c.msgs_sent, c.msgs_recv, c.rounds), (1, 1, 1));
        assert_eq!(ca.meter().phase_total(Phase::Online), Default::default());
        // The channel is usable afterwards.
        let (x, y) = tokio::join!(ca.exchange_ring(&[1]), cb.exchange_ring(&[2]));
        assert_eq!((x.unwrap(), y.unwrap()), (vec![2], vec![1]));
    }
}

#[tokio::test]
async fn mismatched_parameter_is_named_on_both_sides() {
    for t in ALL {
        let a = params(Role::Server);
        let b = params(Role::Client).with("alpha", 10);
        assert_mismatch(both(t, &a, &b).await, "alpha", "9", "10");
    }
}

#[tokio::test]
async fn several_mismatches_name_the_same_field_on_both_sides() {
    let a = params(Role::Server).with("model", "aaaa");
    let b = params(Role::Client).with("model", "bbbb").with("frac_bits", 20);
    assert_mismatch(both(Transport::Mem, &a, &b).await, "frac_bits", "16", "20");
}

#[tokio::test]
async fn missing_parameter_is_a_mismatch() {
    let a = params(Role::Server).with("trunc", "dealer-pairs");
    let b = params(Role::Client);
    assert_mismatch(both(Transport::Mem, &a, &b).await, "trunc", "dealer-pairs", "<absent>");
}

#[tokio::test]
async fn same_role_is_refused() {
    for t in [Transport::Mem, Transport::Tcp] {
        assert_mismatch(both(t, &params(Role::Server), &params(Role::Server)).await, "role", "server", "server");
    }
    // Over TLS the listener pins the client's certificate: a Hello claiming
    // the server role from it is refused before the roles are compared.
    let (ra, rb) = both(Transport::Tls, &params(Role::Server), &params(Role::Server)).await;
    assert!(matches!(ra, Err(CoreError::RoleNotCertified { claimed: Role::Server, certified: Role::Client })), "{ra:?}");
    assert!(rb.is_err(), "{rb:?}");
    let d = params(Role::Dealer);
    assert_mismatch(both(Transport::Mem, &d, &d).await, "role", "dealer", "dealer");
}

#[tokio::test]
async fn unexpected_peer_role_is_refused_on_both_sides() {
    let a = params(Role::Server).expecting(Role::Client);
    let b = params(Role::Dealer);
    assert_mismatch(both(Transport::Mem, &a, &b).await, "role", "server (expecting client)", "dealer");
    // A party and the dealer are complementary.
    let (ra, rb) = both(Transport::Mem, &params(Role::Client).expecting(Role::Dealer), &b).await;
    assert_eq!(ra.unwrap().role, Role::Dealer);
    assert_eq!(rb.unwrap().role, Role::Client);
}

#[tokio::test]
async fn version_mismatch_is_refused() {
    let a = params(Role::Server);
    let mut b = params(Role::Client);
    b.version = 99;
    assert_mismatch(both(Transport::Tcp, &a, &b).await, "version", &PROTOCOL_VERSION.to_string(), "99");
}

#[tokio::test]
async fn wrong_message_instead_of_hello() {
    let (mut ca, mut cb) = pair(Transport::Mem, short_cfg()).await;
    cb.send_tagged(Tag::Bytes, b"not a hello").unwrap();
    let ours = params(Role::Server);
    let (ra, rb) = within(10, async { tokio::join!(handshake(&mut ca, &ours), cb.recv_tagged(Tag::Hello)) }).await;
    assert!(matches!(ra, Err(CoreError::UnexpectedMessage { .. })), "{ra:?}");
    assert!(rb.is_ok());
    // The peer learns why.
    let err = within(5, cb.recv_tagged(Tag::Hello)).await.unwrap_err();
    assert!(matches!(&err, CoreError::PeerAborted(AbortCode::Malformed)), "{err}");
}
