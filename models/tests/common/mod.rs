//! Helpers shared by the integration tests.
#![allow(dead_code)]

use pann_models::{ImageSet, LoadedModel};
use std::path::{Path, PathBuf};

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn card_path() -> PathBuf {
    crate_dir().join("assets/resnet20-akamaster.card.json")
}

pub fn load_akamaster() -> LoadedModel {
    LoadedModel::load(card_path()).expect("shipped akamaster model loads")
}

pub fn first64() -> ImageSet {
    ImageSet::read_file(crate_dir().join("tests/data/test_batch_first64.bin")).expect("shipped test records")
}

/// ../shared/data relative to the repository root, if present.
pub fn shared_data() -> Option<PathBuf> {
    let p = crate_dir().join("../../shared/data");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIPPED: ../shared/data not found (looked at {})", p.display());
        None
    }
}

pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pann-models-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write temp file");
}
