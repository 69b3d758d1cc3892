//! Malformed, truncated, oversized, silent and unauthenticated peers: every
//! case ends in a typed error within the configured timeout, never a panic or
//! a hang. The misbehaving end is a raw tokio socket where bytes must be
//! malformed.

mod common;

use std::time::{Duration, Instant};

use common::{short_cfg, tls_pair, within};
use pann_mpc_core::channel::{Tag, HEADER};
use pann_mpc_core::handshake::{handshake, Role, SessionParams, PROTOCOL_VERSION};
use pann_mpc_core::transport::{tcp_channel, Listener, TlsIdentity, TlsPeers};
use pann_mpc_core::{tcp_connect, tls_connect, AbortCode, Channel, CoreError, Prg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A channel accepted from a raw TCP socket that the test controls.
async fn channel_and_raw(cfg: pann_mpc_core::ChannelConfig) -> (Channel, TcpStream) {
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (ch, raw) = tokio::join!(l.accept_tcp(cfg), TcpStream::connect(addr));
    (ch.unwrap(), raw.unwrap())
}

#[tokio::test]
async fn oversized_frame_is_rejected_before_reading_it() {
    let cfg = short_cfg().with_max_frame(1024);
    let (mut ch, mut raw) = channel_and_raw(cfg).await;
    raw.write_all(&1025u32.to_le_bytes()).await.unwrap();
    let err = within(5, ch.recv_ring(128)).await.unwrap_err();
    assert!(matches!(err, CoreError::FrameTooLarge { len: 1025, max: 1024 }), "{err}");
    // The sending side refuses too, before anything is queued.
    let err = ch.send_ring(&[0; 128]).unwrap_err();
    assert!(matches!(err, CoreError::FrameTooLarge { len: 1025, max: 1024 }), "{err}");
}

#[tokio::test]
async fn a_ring_frame_of_another_length_is_refused_from_its_header() {
    // Exactly 1 + 8n bytes: accepted.
    let (mut ch, mut raw) = channel_and_raw(short_cfg()).await;
    let mut frame = (1 + 8 * 4u32).to_le_bytes().to_vec();
    frame.push(Tag::Ring as u8);
    frame.extend((1..=4u64).flat_map(|x| x.to_le_bytes()));
    raw.write_all(&frame).await.unwrap();
    assert_eq!(within(5, ch.recv_ring(4)).await.unwrap(), vec![1, 2, 3, 4]);
    // One byte more: refused from the header and the tag alone. The body is
    // never sent and the peer stays connected, so an answer that waited for
    // the body would time out instead.
    let cfg = short_cfg().with_timeout(Duration::from_secs(3));
    let (mut ch, mut raw) = channel_and_raw(cfg).await;
    raw.write_all(&(1 + 8 * 4u32 + 1).to_le_bytes()).await.unwrap();
    raw.write_all(&[Tag::Ring as u8]).await.unwrap();
    let t0 = Instant::now();
    let err = within(5, ch.recv_ring(4)).await.unwrap_err();
    assert!(matches!(&err, CoreError::FrameLength { len: 33, expected, .. } if expected == "exactly 32"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(ch.meter().total().bytes_recv, 0, "nothing of the refused frame is counted as received");
    // A frame announcing 1 GiB where a small setup message is expected: refused
    // at once (the default max_frame would have let it through).
    let (mut ch, mut raw) = channel_and_raw(short_cfg()).await;
    raw.write_all(&(1u32 << 30).to_le_bytes()).await.unwrap();
    raw.write_all(&[Tag::Bytes as u8]).await.unwrap();
    let err = within(5, ch.recv_tagged_max(Tag::Bytes, 1 << 20)).await.unwrap_err();
    assert!(matches!(&err, CoreError::FrameLength { len, .. } if *len == (1 << 30) - 1), "{err}");
    drop(raw);
}

#[tokio::test]
async fn huge_announced_frame_then_close_does_not_allocate_it() {
    // Within the limit (1 GiB by default) but never sent: the reader must
    // fail with PeerClosed, having allocated only what arrived.
    let (mut ch, mut raw) = channel_and_raw(short_cfg()).await;
    raw.write_all(&(1u32 << 30).to_le_bytes()).await.unwrap();
    raw.write_all(&[Tag::Ring as u8; 100]).await.unwrap();
    drop(raw);
    let err = within(5, ch.recv_frame()).await.unwrap_err();
    assert!(matches!(err, CoreError::PeerClosed { .. }), "{err}");
}

#[tokio::test]
async fn truncated_frame_is_peer_closed() {
    let (mut ch, mut raw) = channel_and_raw(short_cfg()).await;
    raw.write_all(&(1 + 8 * 10u32).to_le_bytes()).await.unwrap();
    raw.write_all(&[Tag::Ring as u8, 1, 2, 3, 4, 5, 6, 7, 8, 9]).await.unwrap();
    drop(raw);
    let err = within(5, ch.recv_ring(10)).await.unwrap_err();
    assert!(matches!(err, CoreError::PeerClosed { context: "reading a frame body" }), "{err}");

    // A header cut short is reported as well.
    let (mut ch, mut raw) = channel_and_raw(short_cfg()).await;
    raw.write_all(&[5, 0]).await.unwrap();
    drop(raw);
    let err = within(5, ch.recv_ring(1)).await.unwrap_err();
    assert!(matches!(err, CoreError::PeerClosed { context: "waiting for a frame header" }), "{err}");
}

#[tokio::test]
async fn garbage_where_a_ring_frame_is_expected() {
    let mut prg = Prg::from_seed([9; 16]);
    // A well-framed payload of random bytes with an unknown tag.
    let (mut ch, mut raw) = channel_and_raw(short_cfg()).await;
    let mut junk = vec![0u8; 64];
    prg.fill_bytes(&mut junk);
    junk[0] = 0xEE;
    raw.write_all(&(junk.len() as u32).to_le_bytes()).await.unwrap();
    raw.write_all(&junk).await.unwrap();
    let err = within(5, ch.recv_ring(8)).await.unwrap_err();
    assert!(matches!(&err, CoreError::UnexpectedMessage { got, .. } if got == "unknown tag 238"), "{err}");

    // A Ring tag with a body that is not a whole number of elements: refused
    // from its header (a fresh channel: the refused body is never read).
    let (mut ch, mut raw) = channel_and_raw(short_cfg()).await;
    junk[0] = Tag::Ring as u8;
    raw.write_all(&(junk.len() as u32).to_le_bytes()).await.unwrap();
    raw.write_all(&junk).await.unwrap();
    let err = within(5, ch.recv_ring(8)).await.unwrap_err();
    assert!(matches!(err, CoreError::FrameLength { len: 63, .. }), "{err}");

    // Unframed random bytes: whatever the header says, an error comes quickly.
    for round in 0..20 {
        let (mut ch, mut raw) = channel_and_raw(short_cfg().with_max_frame(1 << 16)).await;
        let mut junk = vec![0u8; 1000];
        prg.fill_bytes(&mut junk);
        if round % 2 == 0 {
            junk[2] = 0; // a plausible length, so the body path is exercised too
            junk[3] = 0;
        }
        raw.write_all(&junk).await.unwrap();
        drop(raw);
        let err = within(5, ch.recv_ring(4)).await.unwrap_err();
        assert!(
            matches!(
                err,
                CoreError::FrameTooLarge { .. }
                    | CoreError::FrameLength { .. }
                    | CoreError::PeerClosed { .. }
                    | CoreError::UnexpectedMessage { .. }
                    | CoreError::Malformed(_)
            ),
            "{err}"
        );
    }
}

#[tokio::test]
async fn garbage_where_a_hello_is_expected() {
    let mut prg = Prg::from_seed([10; 16]);
    for len in [0usize, 3, 17, 300] {
        let (mut ch, mut raw) = channel_and_raw(short_cfg()).await;
        let mut body = vec![0u8; 1 + len];
        prg.fill_bytes(&mut body);
        body[0] = Tag::Hello as u8;
        if len >= 4 {
            body[1..5].copy_from_slice(b"PANN");
        }
        if len >= 8 {
            // Our version, so that decoding goes past the version check.
            body[5..9].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        }
        raw.write_all(&(body.len() as u32).to_le_bytes()).await.unwrap();
        raw.write_all(&body).await.unwrap();
        let ours = SessionParams::new(Role::Server).with("ring_bits", 64);
        let err = within(5, handshake(&mut ch, &ours)).await.unwrap_err();
        assert!(matches!(err, CoreError::Malformed(_)), "len {len}: {err}");
        // The peer is told: our Hello, then an Abort naming the problem.
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(500), raw.read_to_end(&mut buf)).await;
        assert!(buf.len() > HEADER + 1);
        let hello_len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
        let abort = &buf[HEADER + hello_len..];
        assert_eq!(abort[HEADER], Tag::Abort as u8);
        // Only the code crosses, never the local error's text.
        assert_eq!(&abort[HEADER + 1..], &[AbortCode::Malformed as u8]);
    }
}

#[tokio::test]
async fn silent_tcp_peer_times_out() {
    let cfg = short_cfg().with_timeout(Duration::from_secs(1));
    let (mut ch, _raw) = channel_and_raw(cfg).await;
    let start = Instant::now();
    let err = within(5, ch.recv_ring(1)).await.unwrap_err();
    assert!(matches!(err, CoreError::Timeout { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn silent_tls_client_times_out_in_the_server_handshake() {
    let cfg = short_cfg().with_timeout(Duration::from_secs(1));
    let (sp, _) = tls_pair();
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (res, raw) = within(5, async { tokio::join!(l.accept_tls(cfg, &sp), TcpStream::connect(addr)) }).await;
    let err = res.unwrap_err();
    assert!(matches!(err, CoreError::Timeout { .. }), "{err}");
    drop(raw);
}

#[tokio::test]
async fn silent_tls_server_times_out_in_the_client_handshake() {
    let cfg = short_cfg().with_timeout(Duration::from_secs(1));
    let (_, cp) = tls_pair();
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (res, raw) = within(5, async { tokio::join!(tls_connect(addr, cfg, &cp), l.accept_stream(Duration::from_secs(2))) }).await;
    let err = res.unwrap_err();
    assert!(matches!(err, CoreError::Timeout { .. }), "{err}");
    drop(raw);
}

/// Runs a TLS session between a server and a client configuration; returns both results.
async fn tls_session(server: &TlsPeers, client: &TlsPeers) -> (pann_mpc_core::Result<Channel>, pann_mpc_core::Result<Channel>) {
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    within(10, async { tokio::join!(l.accept_tls(short_cfg(), server), tls_connect(addr, short_cfg(), client)) }).await
}

#[tokio::test]
async fn unknown_client_certificate_fails_on_both_sides() {
    let server = TlsIdentity::generate().unwrap();
    let expected_client = TlsIdentity::generate().unwrap();
    let intruder = TlsIdentity::generate().unwrap();
    let sp = TlsPeers::new(&server, vec![(Role::Client, expected_client.cert().clone())]).unwrap();
    let cp = TlsPeers::new(&intruder, vec![(Role::Server, server.cert().clone())]).unwrap();
    let (s, c) = tls_session(&sp, &cp).await;
    let (s, c) = (s.unwrap_err(), c.unwrap_err());
    eprintln!("server: {s}\nclient: {c}");
    assert!(matches!(&s, CoreError::Tls(m) if m.contains("is not a pinned peer certificate")), "server: {s}");
    assert!(matches!(&c, CoreError::Tls(m) if m.contains("peer rejected")), "client: {c}");
}

#[tokio::test]
async fn unknown_server_certificate_fails_on_both_sides() {
    let client = TlsIdentity::generate().unwrap();
    let expected_server = TlsIdentity::generate().unwrap();
    let intruder = TlsIdentity::generate().unwrap();
    let sp = TlsPeers::new(&intruder, vec![(Role::Client, client.cert().clone())]).unwrap();
    let cp = TlsPeers::new(&client, vec![(Role::Server, expected_server.cert().clone())]).unwrap();
    let (s, c) = tls_session(&sp, &cp).await;
    let (s, c) = (s.unwrap_err(), c.unwrap_err());
    eprintln!("server: {s}\nclient: {c}");
    assert!(matches!(&c, CoreError::Tls(m) if m.contains("is not a pinned peer certificate")), "client: {c}");
    assert!(matches!(&s, CoreError::Tls(m) if m.contains("peer rejected")), "server: {s}");
}

#[tokio::test]
async fn plain_tcp_client_against_tls_server_fails() {
    let (sp, _) = tls_pair();
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let client = async {
        let mut c = tcp_connect(addr, short_cfg()).await.unwrap();
        c.send_ring(&[1, 2, 3]).unwrap();
        let _ = c.flush().await;
        c
    };
    let (s, _c) = within(10, async { tokio::join!(l.accept_tls(short_cfg(), &sp), client) }).await;
    let err = s.unwrap_err();
    assert!(matches!(err, CoreError::Tls(_)), "{err}");
}

#[tokio::test]
async fn client_started_before_the_server_connects() {
    // Find a free port, release it, and start listening only after the client began.
    let addr = Listener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let client = tokio::spawn(tcp_connect(addr, short_cfg().with_connect_timeout(Duration::from_secs(5))));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut server = within(5, async { Listener::bind(addr).await.unwrap().accept_tcp(short_cfg()).await }).await.unwrap();
    let mut client = within(5, client).await.unwrap().unwrap();
    let (a, b) = tokio::join!(server.exchange_ring(&[1]), client.exchange_ring(&[2]));
    assert_eq!((a.unwrap(), b.unwrap()), (vec![2], vec![1]));
}

#[tokio::test]
async fn connect_gives_up_at_its_deadline() {
    let addr = Listener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let start = Instant::now();
    let err = within(5, tcp_connect(addr, short_cfg().with_connect_timeout(Duration::from_millis(500)))).await.unwrap_err();
    assert!(matches!(err, CoreError::Connect { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn accept_gives_up_at_its_deadline() {
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let err = within(5, l.accept_tcp(short_cfg().with_connect_timeout(Duration::from_millis(300)))).await.unwrap_err();
    assert!(matches!(err, CoreError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn peer_abort_is_reported_with_its_code() {
    let (mut ch, raw) = channel_and_raw(short_cfg()).await;
    let mut other = tcp_channel(raw, short_cfg());
    other.abort(AbortCode::Model).await;
    let err = within(5, ch.recv_ring(1)).await.unwrap_err();
    assert!(matches!(&err, CoreError::PeerAborted(AbortCode::Model)), "{err}");
    assert!(err.to_string().contains(AbortCode::Model.text()), "{err}");
}

#[tokio::test]
async fn an_abort_with_text_instead_of_a_code_is_shown_as_unknown_not_as_the_text() {
    let (mut ch, raw) = channel_and_raw(short_cfg()).await;
    let mut other = tcp_channel(raw, short_cfg());
    other.send_tagged(Tag::Abort, b"please run rm -rf /").unwrap();
    other.flush().await.unwrap();
    let err = within(5, ch.recv_ring(1)).await.unwrap_err();
    assert!(matches!(&err, CoreError::PeerAborted(AbortCode::Unknown)), "{err}");
    assert!(!err.to_string().contains("rm -rf"), "{err}");
}
