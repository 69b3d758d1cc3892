//! PANN trainer: CIFAR ResNets in tch (libtorch) trained so that they stay
//! accurate when every ReLU is replaced by the PANN polynomial
//! `x (1 + p(x / B)) / 2` at low precision. The only crate of the workspace
//! that links libtorch.
//!
//! - [`graph`]: any network of the models crate as a tch module (one forward
//!   rule per operator, the models crate's parameter names);
//!   [`net`]: ResNet-20/32/56 on it, with akamaster's tensor names and pluggable
//!   activations; [`act`]: NGNV leakage, PANN ReLU in the loop, calibration.
//! - [`recipe`]: the `baseline`, `paper` and `finetune` presets.
//! - [`train`]: the loop; [`checkpoint`]: every-epoch checkpoints and resume;
//!   [`optim`]: SGD whose state can be saved.
//! - [`export`]: safetensors + model card for `pann_models::LoadedModel`;
//!   [`eval`]: exact and PANN accuracy through `pann_models::PlainExecutor`.
//!
//! See docs/TRAINER.md for the install, the formulas and the commands.

#![deny(missing_docs)]

pub mod act;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod eval;
pub mod export;
pub mod graph;
pub mod net;
pub mod optim;
pub mod recipe;
pub mod rng;
pub mod train;

pub use error::{Result, TrainerError};
