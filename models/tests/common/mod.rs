//! Helpers shared by the integration tests.
#![allow(dead_code)]

use pann_models::{ImageSet, LoadedModel};
use std::path::{Path, PathBuf};

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The models crate: the shipped cards and test data live there (these
/// helpers are shared with the engine's tests).
pub fn models_dir() -> PathBuf {
    crate_dir().join("../models")
}

pub fn card_path() -> PathBuf {
    models_dir().join("assets/resnet20-akamaster.card.json")
}

pub fn load_akamaster() -> LoadedModel {
    LoadedModel::load(card_path()).expect("shipped akamaster model loads")
}

pub fn first64() -> ImageSet {
    ImageSet::read_file(models_dir().join("tests/data/test_batch_first64.bin")).expect("shipped test records")
}

pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pann-test-{}-{}-{name}", env!("CARGO_PKG_NAME"), std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write temp file");
}

/// A small CNN (3x8x8 input, 5 classes) with pseudo-random weights, and
/// `images` pseudo-random raw images: fast, covers conv, pooling, linear.
pub fn small_cnn(images: usize) -> (pann_models::Model, Vec<Vec<u8>>) {
    use pann_models::{Params, SmallCnnConfig, Tensor};
    let net = SmallCnnConfig { channels: vec![4, 6], num_classes: 5, batch_norm: false, in_channels: 3, image_size: 8, bn_eps: 1e-5 }
        .build()
        .unwrap();
    let mut prg = pann_mpc_core::Prg::from_seed([5; 16]);
    let mut uni =
        |n: usize, s: f64| -> Vec<f64> { prg.gen(n).iter().map(|&v| ((v >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * s).collect() };
    let mut params = Params::new();
    for spec in net.param_specs() {
        let n = spec.shape.iter().product();
        params.insert(spec.name.clone(), Tensor::new(spec.shape.clone(), uni(n, 0.8)));
    }
    let raw = (0..images).map(|_| prg.gen(3 * 8 * 8).iter().map(|&v| v as u8).collect()).collect();
    (pann_models::Model::new(net, params).unwrap(), raw)
}
