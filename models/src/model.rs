//! A network together with its parameters, and parameter import/export in
//! the safetensors format with PyTorch tensor names.
//!
//! Import is strict on purpose: a missing, extra, mis-shaped, non-float or
//! non-finite tensor is an error naming the tensor. Quietly ignoring an extra
//! tensor is how a model trained with a different architecture ends up
//! "loading" and then producing garbage inside a protocol where nobody can
//! look at intermediate values.

use crate::error::{ModelError, Result};
use crate::network::Network;
use crate::tensor::{Params, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::BTreeSet;
use std::path::Path;

/// A network and exactly the parameters it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The architecture (public).
    pub network: Network,
    /// Its parameters, exactly [`Network::param_specs`] (secret: the server's).
    pub params: Params,
}

impl Model {
    /// Pair a network with parameters, checking that the parameter set is
    /// exactly [`Network::param_specs`] (names and shapes) and all finite.
    pub fn new(network: Network, params: Params) -> Result<Self> {
        network.validate()?;
        check_params(&network, &params)?;
        Ok(Self { network, params })
    }

    /// Import from safetensors bytes (F32 or F64 tensors, PyTorch names).
    pub fn from_safetensors(network: Network, bytes: &[u8]) -> Result<Self> {
        let params = read_safetensors(bytes)?;
        Self::new(network, params)
    }

    /// Import from a safetensors file.
    pub fn from_safetensors_file(network: Network, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_safetensors(network, &bytes)
    }

    /// A parameter by full name; panics only if the model was built without
    /// [`Model::new`]'s check, which the constructor makes impossible.
    pub fn param(&self, name: &str) -> &Tensor {
        &self.params[name]
    }
}

/// Check a parameter map against what the network needs.
pub fn check_params(network: &Network, params: &Params) -> Result<()> {
    let specs = network.param_specs();
    let wanted: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    for spec in &specs {
        let t = params.get(&spec.name).ok_or_else(|| ModelError::MissingTensor { name: spec.name.clone() })?;
        if t.shape != spec.shape {
            return Err(ModelError::ShapeMismatch { name: spec.name.clone(), expected: spec.shape.clone(), found: t.shape.clone() });
        }
        if t.data.len() != spec.shape.iter().product::<usize>() {
            return Err(ModelError::BadTensor { name: spec.name.clone(), reason: "data length does not match shape".into() });
        }
        if let Some(index) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { name: spec.name.clone(), index });
        }
    }
    if let Some(extra) = params.keys().find(|k| !wanted.contains(k.as_str())) {
        return Err(ModelError::ExtraTensor { name: extra.clone() });
    }
    Ok(())
}

/// Read every tensor of a safetensors buffer into f64 tensors. Accepts F32
/// and F64 (little-endian, as the format prescribes); other dtypes are errors.
pub fn read_safetensors(bytes: &[u8]) -> Result<Params> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors(e.to_string()))?;
    let mut params = Params::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let raw = view.data();
        let data: Vec<f64> = match view.dtype() {
            Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect(),
            Dtype::F64 => raw.chunks_exact(8).map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])).collect(),
            other => return Err(ModelError::WrongDtype { name, found: format!("{other:?}") }),
        };
        if data.len() != shape.iter().product::<usize>() {
            return Err(ModelError::BadTensor { name, reason: format!("{} values for shape {shape:?}", data.len()) });
        }
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { name, index });
        }
        params.insert(name, Tensor::new(shape, data));
    }
    Ok(params)
}

/// Write parameters as safetensors, in f32 (what PyTorch checkpoints use) or f64.
pub fn write_safetensors(params: &Params, f64_dtype: bool) -> Result<Vec<u8>> {
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .iter()
        .map(|(name, t)| {
            let bytes = if f64_dtype {
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect()
            } else {
                t.data.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect()
            };
            (name.clone(), t.shape.clone(), bytes)
        })
        .collect();
    let dtype = if f64_dtype { Dtype::F64 } else { Dtype::F32 };
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| ModelError::BadTensor { name: name.clone(), reason: e.to_string() })
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize(views, None).map_err(|e| ModelError::Safetensors(e.to_string()))
}
