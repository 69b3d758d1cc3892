//! Sets a cfg for each kind of data the tests need that is not in the
//! repository, when it is present, so that the tests needing it are reported
//! as ignored, with the reason, rather than passing silently:
//! `pann_shared_data` for ../shared/data (kept beside the checkout) and
//! `pann_fashion_mnist` for Debian's dataset-fashion-mnist.

use std::path::Path;

fn main() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let fashion = Path::new("/usr/share/datasets/fashion-mnist");
    for (cfg, dir, marker) in
        [("pann_shared_data", shared.as_path(), "README.md"), ("pann_fashion_mnist", fashion, "t10k-labels-idx1-ubyte.gz")]
    {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        // Re-run when the data appears or changes: a missing path re-runs every
        // build (only this small package's test targets are rebuilt then). Data
        // moved back in with mtimes older than the last run goes unnoticed:
        // the tests then say they are ignored, and `cargo clean -p pann` fixes it.
        println!("cargo::rerun-if-changed={}", dir.join(marker).display());
        if dir.is_dir() {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
