//! Bulk traffic over every transport: contents arrive intact and the meter's
//! counts equal exactly what the frame format says was sent.

mod common;

use common::{pair, within, Transport, ALL};
use pann_mpc_core::channel::{Tag, HEADER};
use pann_mpc_core::meter::Cost;
use pann_mpc_core::{Channel, ChannelConfig, Phase, Prg};

/// 10 MiB of ring elements.
const N: usize = 10 * (1 << 20) / 8;
const EXTRA: &[u8] = b"trailing bytes message";

/// One side of the exchange: a 10 MiB Ring frame and a Bytes frame sent at
/// once, both received (one round), then a one-element exchange (a second round).
async fn side(mut ch: Channel, seed: u8) -> (Channel, Vec<u64>) {
    ch.set_phase(Phase::Online);
    ch.set_label("bulk");
    let xs = Prg::from_seed([seed; 16]).gen(N);
    ch.send_ring(&xs).unwrap();
    ch.send_tagged(Tag::Bytes, EXTRA).unwrap();
    let got = ch.recv_ring(N).await.unwrap();
    assert_eq!(ch.recv_tagged(Tag::Bytes).await.unwrap(), EXTRA);
    let one = ch.exchange_ring(&[seed as u64]).await.unwrap();
    assert_eq!(one, vec![(3 - seed) as u64]);
    (ch, got)
}

async fn ten_megabytes_both_ways(t: Transport) {
    let (a, b) = pair(t, ChannelConfig::default()).await;
    let ((a, got_a), (b, got_b)) = within(60, async { tokio::join!(side(a, 1), side(b, 2)) }).await;
    assert!(got_a == Prg::from_seed([2; 16]).gen(N), "{t:?}: side a received corrupted data");
    assert!(got_b == Prg::from_seed([1; 16]).gen(N), "{t:?}: side b received corrupted data");

    let bulk = (HEADER + 1 + 8 * N) as u64;
    let bytes = (HEADER + 1 + EXTRA.len()) as u64;
    let small = (HEADER + 1 + 8) as u64;
    let expected = Cost { bytes_sent: bulk + bytes + small, bytes_recv: bulk + bytes + small, msgs_sent: 3, msgs_recv: 3, rounds: 2 };
    for ch in [&a, &b] {
        let m = ch.meter();
        assert_eq!(m.total(), expected, "{t:?}");
        assert_eq!(m.phase_total(Phase::Online), expected, "{t:?}");
        assert_eq!(m.labels(Phase::Online), vec![("bulk".to_string(), expected)], "{t:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_both_ways_mem() {
    ten_megabytes_both_ways(Transport::Mem).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_both_ways_tcp() {
    ten_megabytes_both_ways(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_both_ways_tls() {
    ten_megabytes_both_ways(Transport::Tls).await;
}

const ROUNDS: u64 = 200;

async fn small_rounds(mut ch: Channel, base: u64) -> Channel {
    for i in 0..ROUNDS {
        let got = ch.exchange_ring(&[base + i, i]).await.unwrap();
        assert_eq!(got, vec![(1000 - base) + i, i]);
    }
    ch
}

/// Many small rounds in both directions: ordering and per-round metering.
#[tokio::test]
async fn many_small_rounds_every_transport() {
    for t in ALL {
        let (a, b) = pair(t, ChannelConfig::default()).await;
        let (ra, rb) = within(20, async { tokio::join!(small_rounds(a, 0), small_rounds(b, 1000)) }).await;
        for ch in [ra, rb] {
            let c = ch.meter().total();
            assert_eq!(c.rounds, ROUNDS, "{t:?}");
            assert_eq!(c.bytes_sent, ROUNDS * (HEADER as u64 + 1 + 16), "{t:?}");
            assert_eq!(c.msgs_recv, ROUNDS, "{t:?}");
        }
    }
}

/// A clean close is seen by the peer as a closed connection, not a hang.
#[tokio::test]
async fn close_is_seen_by_the_peer() {
    for t in ALL {
        let (mut a, mut b) = pair(t, common::short_cfg()).await;
        a.send_ring(&[7]).unwrap();
        a.close().await.unwrap();
        assert_eq!(b.recv_ring(1).await.unwrap(), vec![7]);
        let err = within(5, b.recv_ring(1)).await.unwrap_err();
        assert!(matches!(err, pann_mpc_core::CoreError::PeerClosed { .. }), "{t:?}: {err}");
    }
}
