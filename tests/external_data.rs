//! Tests on data that is not in the repository: ../shared/data (the data set,
//! weights and tables kept beside the checkout; CI has it) and Debian's
//! dataset-fashion-mnist (`make test` installs it). Without the data each
//! test is reported as ignored, with the reason, in the test summary: the
//! root package's build script sets the cfgs `pann_shared_data` and
//! `pann_fashion_mnist` when they exist.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use pann_approx::Alpha;
use pann_engine::{run_plan, ClearBackend, Plan, PublicModel, SecureConfig, ServerWeights};
use pann_models::range::check_logits;
use pann_models::{CifarDir, DataDir, ImageSet, LoadedModel, Model, PlainExecutor, ReluMode, ResNetConfig, Shape};

/// ../shared/data (present: the tests that call this are ignored without it).
fn shared_data() -> PathBuf {
    let p = common::repo().join("../shared/data");
    assert!(p.is_dir(), "{} not found, yet the build script saw it: rebuild (cargo clean -p pann)", p.display());
    p
}

fn load_akamaster() -> LoadedModel {
    LoadedModel::load(common::card()).expect("shipped akamaster model loads")
}

#[test]
#[cfg_attr(not(pann_shared_data), ignore = "needs ../shared/data beside the checkout (there now? cargo clean -p pann)")]
fn shared_weights_load_as_they_are() {
    let net = ResNetConfig::cifar10(20).build().unwrap();
    Model::from_safetensors_file(net, shared_data().join("models/resnet20-akamaster.safetensors")).unwrap();
}

/// Full test set with the f64 executor: about 81.0% on this JPEG-derived copy.
#[test]
#[ignore = "full 10,000-image run; cargo test --release -p pann --test external_data -- --ignored"]
fn full_test_set_accuracy() {
    let m = load_akamaster();
    let test = CifarDir::new(shared_data().join("cifar-10-jpeg")).test().unwrap();
    let exec = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap();
    let ev = exec.evaluate(test.len(), |i| m.card.input.normalise(test.image(i)), &test.labels, None).unwrap();
    eprintln!("accuracy {}/{} = {:.4}", ev.correct, ev.images, ev.accuracy());
    assert_eq!(ev.images, 10_000);
    assert!((ev.accuracy() - 0.81).abs() < 0.01, "accuracy {}", ev.accuracy());
}

/// First 1,000 test images: quick enough for every run.
#[test]
#[cfg_attr(not(pann_shared_data), ignore = "needs ../shared/data beside the checkout (there now? cargo clean -p pann)")]
fn first_thousand_accuracy() {
    let m = load_akamaster();
    let test = CifarDir::new(shared_data().join("cifar-10-jpeg")).test().unwrap().truncated(1000);
    let exec = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap();
    let ev = exec.evaluate(test.len(), |i| m.card.input.normalise(test.image(i)), &test.labels, None).unwrap();
    eprintln!("accuracy on the first 1000: {:.4}", ev.accuracy());
    assert!(ev.accuracy() > 0.75 && ev.accuracy() < 0.87, "accuracy {}", ev.accuracy());
}

/// CIFAR-10 (JPEG-derived) test image 3142 with the shipped alpha-4 card: a
/// ReLU input goes past the ring headroom (|x/B| 2.69 > 2.48 at
/// layer1.1.relu2), the secure result wraps (logits in the hundreds). The
/// exact fixed-point reference counts the wraps and the client's check
/// against the card's logit range flags the logits; image 3143 (negative
/// control) stays in range and passes.
#[test]
#[cfg_attr(not(pann_shared_data), ignore = "needs ../shared/data beside the checkout (there now? cargo clean -p pann)")]
fn a_wrapped_result_is_flagged_and_a_normal_one_is_not() {
    let m = LoadedModel::load(common::repo().join("models/assets/resnet20-alpha4.card.json")).unwrap();
    let range = m.card.logit_range;
    assert!(range.is_some(), "the shipped alpha-4 card carries its logit range");
    let test = ImageSet::read_file(shared_data().join("cifar-10-jpeg/test_batch.bin")).unwrap();
    let public = PublicModel::new(&m.model, &m.card.input, &m.card.relu_bounds, SecureConfig::new(Alpha::new(4).unwrap()))
        .unwrap()
        .with_logit_range(range)
        .unwrap();
    let plan = Plan::compile(Arc::new(public), 1).unwrap();
    let weights = ServerWeights::encode(&plan, &m.model).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for (i, bad) in [(3142, true), (3143, false)] {
        let x = plan.encode_input(&m.card.input.normalise(test.image(i))).unwrap();
        let mut clear = ClearBackend::new(&weights);
        let y = rt.block_on(run_plan(&plan, Some(&weights), &mut clear, x, None)).unwrap();
        let logits = plan.decode_output(&y);
        assert_eq!(!clear.in_range(), bad, "image {i}: {} openings out of range, {} wraps", clear.out_of_range, clear.wrapped);
        assert_eq!(check_logits(range, &logits).is_unreliable(), bad, "image {i}: logits {logits:?}, range {range:?}");
    }
}

/// The whole of Fashion-MNIST as Debian's dataset-fashion-mnist installs it:
/// 60,000 + 10,000 images, 6,000 / 1,000 of each class.
#[test]
#[cfg_attr(not(pann_fashion_mnist), ignore = "needs Debian's dataset-fashion-mnist (make fashion-mnist)")]
fn debian_fashion_mnist_reads_whole() {
    let dd = DataDir::open(FASHION_MNIST).unwrap();
    for (set, n) in [(dd.train(usize::MAX).unwrap(), 6000), (dd.test().unwrap(), 1000)] {
        assert_eq!(set.len(), 10 * n);
        assert_eq!(set.shape, Shape::new(1, 28, 28));
        let mut counts = [0usize; 10];
        set.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [n; 10]);
    }
    // The shipped subset is the head of these files, byte for byte.
    let small = DataDir::open(common::repo().join("models/tests/data/fashion-mnist-small")).unwrap().test().unwrap();
    assert_eq!(dd.test().unwrap().truncated(small.len()), small);
}

/// Where Debian's dataset-fashion-mnist puts the IDX files (build.rs looks there too).
const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";
