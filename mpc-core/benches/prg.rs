//! PRG throughput: `Prg::fill` on 1 MiB of ring elements.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pann_mpc_core::Prg;

fn prg(c: &mut Criterion) {
    let mut g = c.benchmark_group("prg");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let mut buf = vec![0u64; (1 << 20) / 8];
    g.throughput(Throughput::Bytes((buf.len() * 8) as u64));
    let mut p = Prg::from_seed([1; 16]);
    g.bench_function("fill_1MiB", |b| {
        b.iter(|| {
            p.fill(&mut buf);
            black_box(&buf);
        })
    });
    g.finish();
}

criterion_group!(benches, prg);
criterion_main!(benches);
