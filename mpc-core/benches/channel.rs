//! Channel throughput over loopback: both parties send 8 MiB of ring elements
//! at once and receive the other's (one `exchange_ring`), each party on its
//! own tokio task so that both directions run in parallel. The reported
//! throughput counts the bytes of both directions (2 x 8 MiB per iteration).

use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pann_mpc_core::transport::{Listener, TlsIdentity, TlsPeers};
use pann_mpc_core::{tcp_connect, tls_connect, Channel, ChannelConfig, Prg};
use tokio::runtime::Runtime;

const N: usize = (8 << 20) / 8;

async fn tcp_pair() -> (Channel, Channel) {
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (a, b) = tokio::join!(l.accept_tcp(ChannelConfig::default()), tcp_connect(addr, ChannelConfig::default()));
    (a.unwrap(), b.unwrap())
}

async fn tls_pair() -> (Channel, Channel) {
    let (s, c) = (TlsIdentity::generate().unwrap(), TlsIdentity::generate().unwrap());
    let sp = TlsPeers::new(&s, vec![(pann_mpc_core::Role::Client, c.cert().clone())]).unwrap();
    let cp = TlsPeers::new(&c, vec![(pann_mpc_core::Role::Server, s.cert().clone())]).unwrap();
    let l = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (a, b) = tokio::join!(l.accept_tls(ChannelConfig::default(), &sp), tls_connect(addr, ChannelConfig::default(), &cp));
    (a.unwrap(), b.unwrap())
}

fn exchange(rt: &Runtime, chans: &mut Option<(Channel, Channel)>, xs: &Arc<Vec<u64>>, ys: &Arc<Vec<u64>>) {
    let (mut a, mut b) = chans.take().expect("channels are put back after every iteration");
    let (xs, ys) = (xs.clone(), ys.clone());
    let back = rt.block_on(async move {
        let ta = tokio::spawn(async move {
            black_box(a.exchange_ring(&xs).await.unwrap());
            a
        });
        let tb = tokio::spawn(async move {
            black_box(b.exchange_ring(&ys).await.unwrap());
            b
        });
        (ta.await.unwrap(), tb.await.unwrap())
    });
    *chans = Some(back);
}

fn channel(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let xs = Arc::new(Prg::from_seed([1; 16]).gen(N));
    let ys = Arc::new(Prg::from_seed([2; 16]).gen(N));
    let mut g = c.benchmark_group("channel");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(2 * 8 * N as u64));
    for (name, pair) in [
        ("mem_exchange_8MiB_each_way", rt.block_on(async { Channel::mem_pair(ChannelConfig::default()) })),
        ("tcp_exchange_8MiB_each_way", rt.block_on(tcp_pair())),
        ("tls_exchange_8MiB_each_way", rt.block_on(tls_pair())),
    ] {
        let mut chans = Some(pair);
        g.bench_function(name, |b| b.iter(|| exchange(&rt, &mut chans, &xs, &ys)));
    }
    g.finish();
}

criterion_group!(benches, channel);
criterion_main!(benches);
