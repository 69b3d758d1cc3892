//! Criterion benchmarks of the online phase (material dealt outside the timed
//! region): element-wise product, ring convolution (plain kernel and secure
//! layer) on ResNet-20-sized layers, and the polynomial ReLU per alpha (its
//! openings, rounds and bytes per element are printed beside the times).
//!
//! `cargo bench -p pann --bench protocols` (under `cargo test` each benchmark
//! runs once, as a check that it still works).

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pann_approx::Alpha;
use pann_mpc_core::ring::R;
use pann_mpc_core::{Channel, ChannelConfig, Party, Prg};
use pann_protocols::harness::share_clear;
use pann_protocols::kernels::conv2d;
use pann_protocols::linear::{linear_forward, LinearKey, LinearLayer};
use pann_protocols::program::ops;
use pann_protocols::{run_program, ConvSpec, Dealer, LinearSpec, Material, PolyRelu, Program, ReluConfig, Request};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Online two-party run of `prog` on `inputs` with fresh material.
fn bench_program(c: &mut Criterion, name: &str, prog: Arc<Program>, inputs: Vec<Vec<R>>) {
    let rt = rt();
    let n = inputs[0].len();
    let mut prg = Prg::from_seed([1; 16]);
    let (in0, in1): (Vec<Vec<R>>, Vec<Vec<R>>) = inputs.iter().map(|x| share_clear(x, &mut prg)).unzip();
    let mut dealer = Dealer::new([2; 16], [3; 16]);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("n={n}"), |b| {
        b.iter_batched(
            || dealer.deal(&Request::program(&prog, n)).unwrap(),
            |(m0, m1)| {
                rt.block_on(async {
                    let (mut c0, mut c1) = Channel::mem_pair(ChannelConfig::default());
                    let r0: Vec<&[R]> = in0.iter().map(|v| v.as_slice()).collect();
                    let r1: Vec<&[R]> = in1.iter().map(|v| v.as_slice()).collect();
                    let (a, b) = tokio::join!(
                        run_program(&mut c0, Party::Server, &prog, &r0, m0.into_program().unwrap()),
                        run_program(&mut c1, Party::Client, &prog, &r1, m1.into_program().unwrap())
                    );
                    (a.unwrap(), b.unwrap())
                })
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn product(c: &mut Criterion) {
    let n = 1 << 16;
    let mut prg = Prg::from_seed([4; 16]);
    let x: Vec<R> = prg.gen(n).iter().map(|v| v >> 20).collect();
    let y: Vec<R> = prg.gen(n).iter().map(|v| v >> 20).collect();
    bench_program(c, "product_trunc16", Arc::new(ops::product(16, 16)), vec![x.clone(), y.clone()]);
    bench_program(c, "product_beaver", Arc::new(ops::product(0, 0)), vec![x, y]);
}

fn relu(c: &mut Criterion) {
    let n = 1 << 14;
    let mut prg = Prg::from_seed([5; 16]);
    let x: Vec<R> = prg.gen(n).iter().map(|v| ((*v as i64) >> 44) as u64).collect(); // |x| < 2^19 at scale 20
    for alpha in [4, 5, 7, 9, 12, 14] {
        let relu = PolyRelu::new(ReluConfig::new(Alpha::new(alpha).unwrap(), 20)).unwrap();
        let info = relu.info();
        eprintln!(
            "relu alpha {alpha}: {} openings, {} rounds, online {} B and offline {} B per element",
            info.openings,
            info.rounds,
            2 * 8 * info.openings,
            info.correction_bits_per_element / 8
        );
        bench_program(c, &format!("relu_alpha{alpha}"), Arc::clone(&relu.program), vec![x.clone()]);
    }
    let quadratic = PolyRelu::new(ReluConfig::quadratic(Alpha::new(9).unwrap(), 20)).unwrap();
    bench_program(c, "relu_alpha9_quadratic", Arc::clone(&quadratic.program), vec![x]);
}

fn conv(c: &mut Criterion) {
    let rt = rt();
    let mut prg = Prg::from_seed([6; 16]);
    let layers =
        [("16x32x32_k3_o16", ConvSpec::dense(1, 16, 32, 32, 16, 3, 1, 1)), ("64x8x8_k3_o64", ConvSpec::dense(1, 64, 8, 8, 64, 3, 1, 1))];
    for (name, spec) in layers {
        let w = prg.gen(spec.weight_len());
        let x = prg.gen(spec.input_len());
        let macs = (spec.output_len() * spec.c * spec.kh * spec.kw) as u64;
        let mut g = c.benchmark_group(format!("conv_{name}"));
        g.throughput(Throughput::Elements(macs));
        g.bench_function("ring_kernel", |b| b.iter(|| conv2d(&spec, &w, &x).unwrap()));
        // Secure layer, online: one opening of the input and one convolution per party.
        let lspec = LinearSpec::Conv(spec);
        let mut dealer = Dealer::new([7; 16], [8; 16]);
        let id = dealer.register_linear(lspec).unwrap();
        let l0 = LinearLayer { id, spec: lspec, key: LinearKey::Server(w.clone()) };
        let l1 = LinearLayer { id, spec: lspec, key: LinearKey::Client(prg.gen(spec.weight_len())) };
        let (x0, x1) = share_clear(&x, &mut prg);
        g.bench_function("secure_online", |b| {
            b.iter_batched(
                || dealer.deal(&Request::Linear { layer: id, spec: lspec }).unwrap(),
                |(m0, m1): (Material, Material)| {
                    rt.block_on(async {
                        let (mut c0, mut c1) = Channel::mem_pair(ChannelConfig::default());
                        let (a, b) = tokio::join!(
                            linear_forward(&mut c0, &l0, &x0, m0.into_linear().unwrap()),
                            linear_forward(&mut c1, &l1, &x1, m1.into_linear().unwrap())
                        );
                        (a.unwrap(), b.unwrap())
                    })
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = product, conv, relu
}
criterion_main!(benches);
