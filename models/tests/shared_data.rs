//! Tests on ../shared/data (CI has it beside the clone); each prints
//! "SKIPPED: ../shared/data not found" and passes when it is absent.

mod common;

use pann_models::{CifarDir, Model, PlainExecutor, ReluMode, ResNetConfig};

#[test]
fn shared_weights_load_as_they_are() {
    let Some(data) = common::shared_data() else { return };
    let net = ResNetConfig::cifar10(20).build().unwrap();
    Model::from_safetensors_file(net, data.join("models/resnet20-akamaster.safetensors")).unwrap();
}

/// Full test set with the f64 executor: about 81.0% on this JPEG-derived copy.
#[test]
#[ignore = "full 10,000-image run; cargo test --release -p pann-models -- --ignored"]
fn full_test_set_accuracy() {
    let Some(data) = common::shared_data() else { return };
    let m = common::load_akamaster();
    let test = CifarDir::new(data.join("cifar-10-jpeg")).test().unwrap();
    let exec = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap();
    let ev = exec.evaluate(test.len(), |i| m.card.input.normalise(test.image(i)), &test.labels, None).unwrap();
    eprintln!("accuracy {}/{} = {:.4}", ev.correct, ev.images, ev.accuracy());
    assert_eq!(ev.images, 10_000);
    assert!((ev.accuracy() - 0.81).abs() < 0.01, "accuracy {}", ev.accuracy());
}

/// First 1,000 test images: quick enough for every run.
#[test]
fn first_thousand_accuracy() {
    let Some(data) = common::shared_data() else { return };
    let m = common::load_akamaster();
    let test = CifarDir::new(data.join("cifar-10-jpeg")).test().unwrap().truncated(1000);
    let exec = PlainExecutor::new(&m.model, ReluMode::Exact).unwrap();
    let ev = exec.evaluate(test.len(), |i| m.card.input.normalise(test.image(i)), &test.labels, None).unwrap();
    eprintln!("accuracy on the first 1000: {:.4}", ev.accuracy());
    assert!(ev.accuracy() > 0.75 && ev.accuracy() < 0.87, "accuracy {}", ev.accuracy());
}
