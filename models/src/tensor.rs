//! A minimal dense tensor of f64 (row-major), used for parameters.
//!
//! Parameters are imported from f32 files but kept in f64: the plaintext
//! reference should add no error of its own on top of what it is checking.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Dense row-major tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Dimensions, outermost first (PyTorch order, e.g. `[out, in, k, k]`).
    pub shape: Vec<usize>,
    /// The values, row-major; as many as the product of `shape`.
    pub data: Vec<f64>,
}

impl Tensor {
    /// A tensor of the given shape; `data.len()` must equal the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    /// A tensor of the given shape filled with zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self { shape, data: vec![0.0; n] }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Named parameters, keyed by their PyTorch names (e.g. `layer1.0.conv1.weight`).
pub type Params = BTreeMap<String, Tensor>;
