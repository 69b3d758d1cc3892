//! PANN: private inference with polynomial-approximated neural networks.
//!
//! This crate is the library face of the workspace: it re-exports the layers
//! (`core` -> `protocols` -> `models` -> `engine`) so that users depend on one crate.
//! See `docs/ARCHITECTURE.md` for the picture.

pub use pann_engine as engine;
pub use pann_models as models;
pub use pann_mpc_core as core;
pub use pann_protocols as protocols;
