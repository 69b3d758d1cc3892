//! What a party receives does not depend on the other party's secret, and
//! malformed material or messages are errors, not panics.

mod common;

use std::sync::Arc;

use pann_mpc_core::channel::Tag;
use pann_mpc_core::{Channel, ChannelConfig, CoreError, Party, Prg};
use pann_protocols::harness::share_clear;
use pann_protocols::program::ops;
use pann_protocols::{run_program, Dealer, ProtocolError, Request};

/// Party 1's view (everything it receives) of a product x * y where party 0
/// contributed the shares of a secret.
async fn client_view(x: &[u64], y: &[u64], seed: u8) -> Vec<u64> {
    let n = x.len();
    let p = Arc::new(ops::product(16, 16));
    let mut prg = Prg::from_seed([seed; 16]);
    let (x0, x1) = share_clear(x, &mut prg);
    let (y0, y1) = share_clear(y, &mut prg);
    let mut dealer = Dealer::new([seed ^ 1; 16], [seed ^ 2; 16]);
    let (m0, m1) = dealer.deal(&Request::program(&p, n)).unwrap();
    let (mut c0, c1) = Channel::mem_pair(ChannelConfig::default());
    // Party 1 is replaced by a recorder that plays its role and keeps what it receives.
    let mut c1 = c1;
    let ins = [x0.as_slice(), y0.as_slice()];
    let (r0, r1) = tokio::join!(
        run_program(&mut c0, Party::Server, &p, &ins, m0.into_program().unwrap()),
        async {
            // Same as run_program for party 1, but recording the received frame.
            let m = m1.into_program().unwrap();
            let mut masked = Vec::with_capacity(2 * n);
            for (share, o) in [(&x1, &m.opens[0]), (&y1, &m.opens[1])] {
                masked.extend(share.iter().zip(&o.r).map(|(a, b)| a.wrapping_add(*b)));
            }
            c1.exchange_ring(&masked).await.unwrap()
        }
    );
    r0.unwrap();
    r1
}

/// Two-sample chi-square on byte histograms (256 bins) of the received values.
fn chi_square(a: &[u64], b: &[u64]) -> f64 {
    let hist = |v: &[u64]| {
        let mut h = [0f64; 256];
        for x in v {
            for byte in x.to_le_bytes() {
                h[byte as usize] += 1.0;
            }
        }
        h
    };
    let (ha, hb) = (hist(a), hist(b));
    (0..256)
        .map(|i| {
            let s = ha[i] + hb[i];
            if s == 0.0 {
                0.0
            } else {
                (ha[i] - hb[i]).powi(2) / s
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_values_do_not_depend_on_the_secret() {
    let n = 1 << 15;
    let zeros = vec![0u64; n];
    let big: Vec<u64> = (0..n as u64)
        .map(|i| ((i * 0x9e37_79b9) as i64 >> 4 << 2) as u64 | (1u64 << 61))
        .collect();
    let small: Vec<u64> = (0..n as u64).map(|i| i & 0xff).collect();
    let v_zero = client_view(&zeros, &zeros, 1).await;
    let v_big = client_view(&big, &small, 2).await;
    let v_big2 = client_view(&big, &small, 3).await;
    // df = 255: the 1e-6 upper quantile is about 385. Fixed seeds: deterministic.
    let chi_diff = chi_square(&v_zero, &v_big);
    let chi_same = chi_square(&v_big, &v_big2);
    assert!(
        chi_diff < 385.0,
        "chi-square {chi_diff} between secrets 0 and large"
    );
    assert!(
        chi_same < 385.0,
        "chi-square {chi_same} between two masks of the same secret"
    );
    // And the high bytes (where a small secret would show) look uniform too.
    let top = |v: &[u64]| -> Vec<u64> { v.iter().map(|x| x >> 56).collect() };
    assert!(chi_square(&top(&v_zero), &top(&v_big)) < 385.0);
    // Sanity: the test can fail — a transcript of unmasked values is detected.
    assert!(chi_square(&zeros, &big) > 1000.0);
}

#[tokio::test]
async fn mismatched_material_and_lengths_are_errors() {
    let p = Arc::new(ops::product(0, 0));
    let q = Arc::new(ops::square(0));
    let mut dealer = Dealer::new([1; 16], [2; 16]);
    let (m0, _) = dealer.deal(&Request::program(&q, 4)).unwrap();
    let (mut c0, _c1) = Channel::mem_pair(ChannelConfig::default());
    let x = vec![0u64; 4];
    let err = run_program(
        &mut c0,
        Party::Server,
        &p,
        &[&x, &x],
        m0.into_program().unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ProtocolError::MaterialMismatch(_)), "{err}");
    let (m0, _) = dealer.deal(&Request::program(&p, 4)).unwrap();
    let short = vec![0u64; 3];
    let err = run_program(
        &mut c0,
        Party::Server,
        &p,
        &[&x, &short],
        m0.into_program().unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ProtocolError::Length { .. }), "{err}");
    let (m0, _) = dealer.deal(&Request::program(&p, 4)).unwrap();
    let err = run_program(
        &mut c0,
        Party::Server,
        &p,
        &[&x],
        m0.into_program().unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ProtocolError::Length { .. }), "{err}");
    // Linear material where program material is expected.
    let spec = pann_protocols::LinearSpec::Matmul(pann_protocols::MatmulSpec { m: 1, k: 2, n: 1 });
    let id = dealer.register_linear(spec).unwrap();
    let (l0, _) = dealer.deal(&Request::Linear { layer: id, spec }).unwrap();
    assert!(l0.into_program().is_err());
    assert!(dealer.deal(&Request::Linear { layer: 7, spec }).is_err());
}

#[tokio::test]
async fn a_peer_sending_the_wrong_length_or_aborting_is_an_error() {
    let p = Arc::new(ops::product(16, 0));
    let mut dealer = Dealer::new([1; 16], [2; 16]);
    let (m0, _) = dealer.deal(&Request::program(&p, 4)).unwrap();
    let (mut c0, mut c1) = Channel::mem_pair(ChannelConfig::default());
    let x = vec![0u64; 4];
    let ins = [x.as_slice(), x.as_slice()];
    let (r, _) = tokio::join!(
        run_program(&mut c0, Party::Server, &p, &ins, m0.into_program().unwrap()),
        async {
            c1.send_ring(&[1, 2, 3]).unwrap();
            c1.flush().await.unwrap();
        }
    );
    // Refused from the frame's header (3 elements where 8 are expected).
    assert!(
        matches!(
            r,
            Err(ProtocolError::Core(CoreError::FrameLength { len: 24, .. }))
        ),
        "{r:?}"
    );
    let (m0, _) = dealer.deal(&Request::program(&p, 4)).unwrap();
    let (mut c0, mut c1) = Channel::mem_pair(ChannelConfig::default());
    let (r, _) = tokio::join!(
        run_program(&mut c0, Party::Server, &p, &ins, m0.into_program().unwrap()),
        async {
            c1.send_tagged(Tag::Abort, b"bye").unwrap();
            c1.flush().await.unwrap();
        }
    );
    assert!(
        matches!(r, Err(ProtocolError::Core(CoreError::PeerAborted(_)))),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_party_asking_the_dealer_for_other_material_gets_an_error() {
    use pann_protocols::dealer::serve;
    use pann_protocols::{DealerLink, MaterialSource};
    let p = Arc::new(ops::product(16, 0));
    let q = Arc::new(ops::square(16));
    let (mut d1, p1) = Channel::mem_pair(ChannelConfig::default());
    let mut dealer = Dealer::new([1; 16], [2; 16]);
    let mut link = DealerLink::new(Party::Client, [2; 16], Some(p1)).unwrap();
    let reqs = [Request::program(&p, 8)];
    let other = Request::program(&q, 8);
    let (s, m) = tokio::join!(serve(&mut dealer, &mut d1, &reqs), link.fetch(&other));
    s.unwrap();
    assert!(
        matches!(m, Err(ProtocolError::MaterialMismatch(_))),
        "{m:?}"
    );
}
