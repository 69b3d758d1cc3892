//! A user's own network from ONNX, through the binaries: `pann import`
//! (LeNet-5 trained on Fashion-MNIST and exported by PyTorch), `pann
//! calibrate`, `pann eval`, then three `pann-party` processes over pinned TLS
//! whose predictions equal the in-process fixed-point reference; the same for
//! a network with max pooling. A file that
//! does not decode, or an existing --out, leaves nothing written.

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;
use pann_models::{ImageSet, LoadedModel};

#[test]
fn an_imported_lenet_is_calibrated_evaluated_and_served() {
    let s = Session::patient("onnx");
    let dir = s.dir.path();
    let onnx = repo().join("models/tests/data/onnx/lenet5.opset13.onnx");
    let idx = repo().join("models/tests/data/fashion-mnist-small/t10k-images-idx3-ubyte.gz");
    let (card, calibrated) = (dir.join("lenet.card.json"), dir.join("lenet-cal.card.json"));

    let (ok, out) = run_pann(&[os("import"), os(&onnx), os("--out"), os(&card)]);
    assert!(ok, "pann import:\n{out}");
    assert!(out.contains("4 activation sites (4 ReLU, 0 max pooling)"), "{out}");
    let m = LoadedModel::load(&card).expect("the imported card loads");
    let sha = pann_models::sha256_hex(&std::fs::read(&onnx).unwrap());
    assert_eq!(m.card.provenance.onnx_sha256.as_deref(), Some(sha.as_str()), "the card records the ONNX file's SHA-256");

    // Importing again over the card refuses and leaves it as it was.
    let before = std::fs::read(&card).unwrap();
    let (ok, out) = run_pann(&[os("import"), os(&onnx), os("--out"), os(&card)]);
    assert!(!ok && out.contains("never replaces"), "{out}");
    assert_eq!(std::fs::read(&card).unwrap(), before);
    // A file that is not ONNX: an error, and no card.
    let bad = dir.join("truncated.onnx");
    std::fs::write(&bad, &std::fs::read(&onnx).unwrap()[..1000]).unwrap();
    let (ok, out) = run_pann(&[os("import"), os(&bad), os("--out"), os(&dir.join("bad.card.json"))]);
    assert!(!ok && out.contains("decoding"), "{out}");
    assert!(!dir.join("bad.card.json").exists() && !dir.join("bad.safetensors").exists());

    let (ok, out) = run_pann(
        &[os("calibrate"), os("--model"), os(&card), os("--data"), os(&idx)]
            .into_iter()
            .chain([os("--images"), os("64"), os("--holdout"), os("32"), os("--out"), os(&calibrated)])
            .collect::<Vec<_>>(),
    );
    assert!(ok, "pann calibrate:\n{out}");
    let (ok, out) =
        run_pann(&[os("eval"), os("--model"), os(&calibrated), os("--data"), os(&idx), os("--images"), os("100"), os("--alphas"), os("9")]);
    assert!(ok, "pann eval:\n{out}");
    let accuracy = |row: &str| -> f64 {
        let line = out.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("no {row} row:\n{out}"));
        line.split_whitespace().find(|w| w.ends_with('%')).unwrap().trim_end_matches('%').parse().unwrap()
    };
    // Trained for one epoch: about 83% on the full test set (models/tests/data/onnx/README.md).
    assert!(accuracy("exact") > 70.0 && accuracy("PANN 9") > 70.0, "{out}");

    serve(&s, &calibrated, &idx);
}

/// The first two images of `data` served with `card` at alpha 9 by three
/// processes: the client's classes and logits equal the fixed-point
/// reference's (the labels are only passed through, so random weights do).
fn serve(s: &Session, card: &Path, images: &Path) {
    let data = ImageSet::read_file(images).expect("shipped images");
    let raw: Vec<Vec<u8>> = (0..2).map(|i| data.image(i).to_vec()).collect();
    let labels: Vec<Option<u8>> = (0..2).map(|i| Some(data.labels[i])).collect();
    let (digest, want) = reference_of(card, Some(ALPHA), &raw, 2);
    let t0 = Instant::now();
    let mut d = s.dealer();
    let mut sv = s.server(card, ALPHA);
    let mut c = s.client_with(&s.certs, &["--alpha", "9", "--count", "2", "--batch", "2", "--expect-model", &digest], &[images]);
    let (de, se, ce) = wait_all(&mut d, &mut sv, &mut c, t0);
    ce.succeeded("client");
    se.succeeded("server");
    de.succeeded("dealer");
    check_predictions(&s.report("client"), &want, &labels);
}

/// The other committed networks, each imported, calibrated and served by
/// three processes: a VGG-style network with max pooling (random weights,
/// its input normalisation as Sub/Div in the graph; max pooling runs
/// securely as pairwise polynomial maxima), a block with depthwise, dilated
/// and grouped convolutions, padding and a concatenation (from the dynamo
/// exporter, which folds the padding into the next convolution, and from the
/// TorchScript one, which keeps it), a ResNet-18-style network with 1x1
/// convolution shortcuts, and an MLP trained on Fashion-MNIST.
#[test]
fn imported_networks_with_every_supported_operator_are_served() {
    let s = Session::patient("onnx-more");
    let dir = s.dir.path();
    let idx = repo().join("models/tests/data/fashion-mnist-small/t10k-images-idx3-ubyte.gz");
    let cifar = cifar();
    let cases = [
        ("vgg_maxpool.opset13", &cifar, "6 activation sites (4 ReLU, 2 max pooling)"),
        ("depthwise_block.dynamo", &cifar, "6 activation sites (5 ReLU, 1 max pooling)"),
        ("depthwise_block.opset13", &cifar, "6 activation sites (5 ReLU, 1 max pooling)"),
        ("resnet18_style.opset13", &cifar, "7 activation sites (7 ReLU, 0 max pooling)"),
        ("mlp_fmnist.dynamo", &idx, "2 activation sites (2 ReLU, 0 max pooling)"),
    ];
    for (file, data, sites) in cases {
        let onnx = repo().join(format!("models/tests/data/onnx/{file}.onnx"));
        let (card, calibrated) = (dir.join(format!("{file}.card.json")), dir.join(format!("{file}-cal.card.json")));
        let (ok, out) = run_pann(&[os("import"), os(&onnx), os("--out"), os(&card)]);
        assert!(ok && out.contains(sites), "pann import {file}:\n{out}");
        let (ok, out) = run_pann(
            &[os("calibrate"), os("--model"), os(&card), os("--data"), os(data)]
                .into_iter()
                .chain([os("--images"), os("48"), os("--holdout"), os("16"), os("--out"), os(&calibrated)])
                .collect::<Vec<_>>(),
        );
        assert!(ok, "pann calibrate {file}:\n{out}");
        serve(&s, &calibrated, data);
    }
}
