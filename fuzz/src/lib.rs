//! Bodies of the cargo-fuzz targets (see `fuzz/README.md`).

mod bodies;
pub use bodies::*;
