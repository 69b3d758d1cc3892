//! PANN models: the network description shared by every executor, weight
//! import from safetensors (PyTorch names), model cards, bound calibration,
//! the plaintext f64 executor, and CIFAR-10 / PNG input.

pub mod calibrate;
pub mod card;
pub mod cifar;
pub mod config;
pub mod error;
pub mod fold;
pub mod image;
pub mod linalg;
pub mod model;
pub mod network;
pub mod plain;
pub mod tensor;

pub use calibrate::{max_abs_per_site, per_site_bounds, GlobalBoundRule};
pub use card::{sha256_hex, InputSpec, LoadedModel, ModelCard, Provenance};
pub use cifar::{Cifar10, CifarDir};
pub use config::{Architecture, ResNetConfig, SmallCnnConfig};
pub use error::{ModelError, Result};
pub use fold::fold_batch_norm;
pub use model::Model;
pub use network::{Network, Node, Op, Shape, ValueId};
pub use plain::{Evaluation, Forward, PlainExecutor, ReluMode, SiteStats};
pub use tensor::{Params, Tensor};
