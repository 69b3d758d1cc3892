//! Criterion benchmark of one whole secure inference in one process: the
//! shipped ResNet-20 (akamaster weights, BN folded) at alpha 9, batch 1,
//! server, client and dealer over in-memory channels (the dealer makes the
//! material on demand; no TLS, no network: `scripts/bench.sh` measures the
//! binaries over TLS and with network delays).
//!
//! `cargo bench -p pann --bench inference` (under `cargo test` each
//! benchmark runs once, as a check that it still works).

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pann::nn::{Alpha, ImageSet, LoadedModel};
use pann::secure::{session_in_memory, PublicModel, SecureConfig};

fn end_to_end(c: &mut Criterion) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let m = LoadedModel::load(repo.join("models/assets/resnet20-akamaster.card.json")).expect("shipped card");
    let images = ImageSet::read_file(repo.join("models/tests/data/test_batch_first64.bin")).expect("shipped test images");
    let raw = vec![images.image(0).to_vec()];
    let public =
        PublicModel::new(&m.model, &m.card.input, &m.card.relu_bounds, SecureConfig::new(Alpha::new(9).unwrap())).expect("public model");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut g = c.benchmark_group("resnet20_alpha9");
    g.bench_function("batch1_three_roles_in_memory", |b| {
        b.iter(|| rt.block_on(session_in_memory(&m.model, &public, &raw, 1)).unwrap().logits)
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(2));
    targets = end_to_end
}
criterion_main!(benches);
