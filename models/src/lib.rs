//! PANN models: the network description shared by every executor, weight
//! import from safetensors (PyTorch names), model cards, bound calibration,
//! the plaintext f64 executor, and image input (CIFAR-10, IDX / Fashion-MNIST, PNG).
//!
//! The pieces, in the order a caller meets them:
//! - [`config`]: [`ResNetConfig`] (CIFAR ResNet-20/32/56, akamaster layout) and
//!   [`SmallCnnConfig`] build a [`Network`]: a flat, serde-serialisable list of
//!   named [`Node`]s ([`Op`]: conv, batch norm, ReLU, add, option-A shortcut,
//!   pooling, linear). ReLU node names are the *sites* that bounds refer to
//!   (`relu`, `layer1.0.relu1`, ..., `layer3.2.relu2` for ResNet-20).
//! - [`model`]: a [`Model`] is a network plus exactly the parameters it needs,
//!   imported strictly from safetensors; [`fold`] folds BN into the convs.
//! - [`card`]: a [`ModelCard`] (JSON beside the weights) and
//!   [`LoadedModel::load`], which checks the weights' SHA-256 against the card,
//!   imports and folds.
//! - [`plain`]: [`PlainExecutor`] runs a model with exact or PANN ReLU
//!   ([`ReluMode`]) and counts ReLU inputs outside their bounds.
//! - [`calibrate`]: per-site bounds (margin x max |input|) and the global
//!   bound rule of Lee et al.
//! - [`planner`]: per-site alphas (mixed precision) that minimise online
//!   bytes or rounds within an accuracy target (`pann plan`).
//! - [`dataset`] ([`ImageSet`], [`DataDir`]), [`cifar`], [`idx`], [`image`]: input.
//! - [`precision`]: [`SecureConfig`], the precisions of a secure run. The secure
//!   executor itself (plan, fixed-point reference, the three roles) is `pann-engine`.
//!
//! One image through the shipped ResNet-20 card with the PANN ReLU at alpha 9:
//!
//! ```
//! use pann_models::{image::read_png, LoadedModel, PlainExecutor};
//!
//! let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
//! // Reads the card, checks the weights' SHA-256, imports them and folds BN.
//! let m = LoadedModel::load(format!("{assets}/resnet20-akamaster.card.json"))?;
//! // CHW bytes of a CIFAR-10 test image (label 3 in its name).
//! let chw_bytes = read_png(format!("{assets}/images/00000-3.png"), m.network.input_shape())?;
//! let exec = PlainExecutor::new(&m.model, m.card.pann_mode(pann_approx::Alpha::new(9).unwrap())?)?;
//! let out = exec.forward(&m.card.input.normalise(&chw_bytes))?;
//! println!("class {:?}, out of range: {}", out.predicted(), out.any_exceeded());
//! assert_eq!(out.predicted(), Some(3)); // CIFAR-10 class 3, "cat"
//! # Ok::<(), pann_models::ModelError>(())
//! ```

#![deny(missing_docs)]

pub mod calibrate;
pub mod card;
pub mod cifar;
pub mod config;
pub mod dataset;
pub mod error;
pub mod fold;
pub mod idx;
pub mod image;
pub mod limits;
pub mod model;
pub mod network;
pub mod onnx;
pub mod ops;
pub mod plain;
pub mod planner;
pub mod precision;
pub mod range;
pub mod tensor;

pub use calibrate::{max_abs_per_site, per_site_bounds, GlobalBoundRule};
pub use card::{sha256_hex, InputSpec, LoadedModel, ModelCard, Provenance};
pub use cifar::CifarDir;
pub use config::{Architecture, ResNetConfig, SmallCnnConfig};
pub use dataset::{DataDir, DatasetKind, ImageSet};
pub use error::{ModelError, Result};
pub use fold::fold_batch_norm;
pub use model::Model;
pub use network::{Network, Node, Op, Shape, ValueId};
pub use plain::{Evaluation, Forward, PlainExecutor, ReluMode, SiteStats};
pub use precision::SecureConfig;
pub use tensor::{Params, Tensor};
