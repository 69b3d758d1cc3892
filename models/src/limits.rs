//! Limits on every size and parameter that a model description decides.
//!
//! A public model description comes from a peer (the server sends it to the
//! client and the dealer), and a model card from a file: neither is trusted
//! to be sane. Every dimension, count and numeric parameter is range-checked
//! here before anything is sized from it, with checked arithmetic, so a
//! hostile description ends in a typed error ([`ModelError::TooLarge`],
//! [`ModelError::OutOfRange`]) instead of an overflow, a panic or a huge
//! allocation. [`Network::validate`] and [`crate::network::NetworkBuilder`]
//! apply the structural limits (so every deserialised or built network obeys
//! them); `pann_engine::PublicModel::check` and [`crate::ModelCard::check`]
//! apply the numeric ones ([`check_input_spec`], [`check_bound`]).
//!
//! The caps are far above the networks this project runs (ResNet-20/32/56 on
//! 32 x 32 images: at most 64 channels, 16,384 elements per activation,
//! about 200 nodes with batch norms, 36,864 weights per layer) and far below
//! what would overflow 64-bit sizes: every product of capped dimensions below
//! is computed in u64 with `checked_mul`.
//!
//! The memory a session needs (the material of a batch) is bounded separately,
//! per session, by `pann_engine::SessionLimits`.

use crate::card::InputSpec;
use crate::error::{ModelError, Result};
use crate::network::{Network, Op, Shape};
use crate::ops::Limit;

/// Most nodes (layers, including ReLUs, adds and pooling) in a network.
pub const MAX_NODES: usize = 4096;

/// Longest node name, in bytes (names are ReLU site names and parameter prefixes).
pub const MAX_NAME_LEN: usize = 256;

/// Most channels of any value, and most input or output channels of a conv
/// (a fully connected layer's output of `n` features is `n` channels of 1 x 1).
pub const MAX_CHANNELS: usize = 1 << 16;

/// Largest height or width of any value, in pixels.
pub const MAX_SPATIAL: usize = 1 << 12;

/// Most elements of one image's value at any node (`c * h * w`), and most
/// input or output features of a fully connected layer: 4 Mi elements, i.e.
/// 32 MiB of ring elements per image and value.
pub const MAX_FEATURES: usize = 1 << 22;

/// Most logits (classes) a network may output per image.
pub const MAX_CLASSES: usize = 1 << 16;

/// Largest kernel side of a convolution or pooling window.
pub const MAX_KERNEL: usize = 32;

/// Largest stride of a convolution, pooling or shortcut.
pub const MAX_STRIDE: usize = 32;

/// Largest zero padding of a convolution, on each side.
pub const MAX_PADDING: usize = 32;

/// Most weights of one linear layer (`out * in * k * k`): 16 Mi weights, i.e.
/// 128 MiB of ring elements (the client holds them masked, the server in the clear).
pub const MAX_LAYER_WEIGHTS: usize = 1 << 24;

/// Smallest input standard deviation (the divisor of the normalisation).
pub const MIN_STD: f64 = 1e-3;

/// Largest input standard deviation.
pub const MAX_STD: f64 = 1e3;

/// Largest |mean| of the input normalisation.
pub const MAX_MEAN: f64 = 1e3;

/// Largest |x| of a normalised pixel, `x = (p / 255 - mean) / std` for any
/// `p` in 0..=255. The input is encoded at 35 or 36 fractional bits and
/// linear outputs must stay below 2^62 for the opening (|x / B| <= 256 at a
/// ReLU input, see `pann_engine::plan`); common normalisations give |x| < 3. A
/// server that could announce any normalisation could push a chosen pixel
/// value out of the encodable range on purpose and learn from the failure
/// whether the client's image holds it: with this cap every pixel of every
/// image encodes.
pub const MAX_NORMALISED_INPUT: f64 = 256.0;

/// Smallest ReLU bound B, 2^-10. B folds into the neighbouring layers'
/// weights (x 1/B) and their rescaling constants, which must fit the
/// fixed-point plan (weights at 18 bits, constants below 2^40).
pub const MIN_BOUND: f64 = 1.0 / 1024.0;

/// Largest ReLU bound B, 2^20.
pub const MAX_BOUND: f64 = (1u64 << 20) as f64;

fn too_large(what: String, value: u64, max: usize) -> ModelError {
    ModelError::TooLarge { what, value, max: max as u64 }
}

/// `value <= max`, else `TooLarge` naming `what`.
fn at_most(what: impl FnOnce() -> String, value: usize, max: usize) -> Result<()> {
    if value > max {
        return Err(too_large(what(), value as u64, max));
    }
    Ok(())
}

/// The product of `dims` in u64, checked, and at most `max`.
fn product_at_most(what: impl FnOnce() -> String, dims: &[usize], max: usize) -> Result<u64> {
    let p = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    match p {
        Some(p) if p <= max as u64 => Ok(p),
        Some(p) => Err(too_large(what(), p, max)),
        None => Err(too_large(what(), u64::MAX, max)),
    }
}

/// A node's name and the parameters of its op, before any shape is computed
/// from them (so that shape inference cannot overflow).
pub fn check_op(name: &str, op: &Op) -> Result<()> {
    at_most(|| "node name length (bytes)".into(), name.len(), MAX_NAME_LEN)?;
    for limit in op.operator().limits() {
        match limit {
            Limit::AtMost(field, value, max) => at_most(|| format!("node {name:?}: {field}"), value, max)?,
            Limit::Product(field, dims, max) => {
                product_at_most(|| format!("node {name:?}: {field}"), &dims, max)?;
            }
        }
    }
    Ok(())
}

/// Inputs of one concatenation.
pub const MAX_CONCAT_INPUTS: usize = 64;

/// One image's value at node `name`: each dimension at least 1, and each
/// dimension and the element count capped.
pub fn check_shape(name: &str, s: Shape) -> Result<()> {
    // Before any product: the dimensions may be huge.
    if s.c == 0 || s.h == 0 || s.w == 0 {
        return Err(ModelError::Config(format!("node {name:?}: empty shape {}x{}x{}", s.c, s.h, s.w)));
    }
    let what = |field: &'static str| move || format!("node {name:?}: {field}");
    at_most(what("channels"), s.c, MAX_CHANNELS)?;
    at_most(what("height"), s.h, MAX_SPATIAL)?;
    at_most(what("width"), s.w, MAX_SPATIAL)?;
    product_at_most(what("elements per image"), &[s.c, s.h, s.w], MAX_FEATURES)?;
    Ok(())
}

/// The structural limits of a whole network: node count, every node's op
/// and stored shape (before [`Network::validate`] infers any shape), and the
/// number of classes.
pub fn check_network(net: &Network) -> Result<()> {
    at_most(|| "number of nodes".into(), net.nodes.len(), MAX_NODES)?;
    for n in &net.nodes {
        check_op(&n.name, &n.op)?;
        check_shape(&n.name, n.shape)?;
        at_most(|| format!("node {:?}: number of inputs", n.name), n.inputs.len(), n.op.operator().max_inputs().max(2))?;
    }
    if let Some(out) = net.nodes.get(net.output) {
        at_most(|| "number of classes (output elements per image)".into(), out.shape.len(), MAX_CLASSES)?;
    }
    Ok(())
}

/// `lo <= v <= hi` and finite, else `OutOfRange` naming `what`.
fn in_range(what: impl FnOnce() -> String, v: f64, lo: f64, hi: f64) -> Result<()> {
    if !(v.is_finite() && lo <= v && v <= hi) {
        return Err(ModelError::OutOfRange { what: what(), value: v, min: lo, max: hi });
    }
    Ok(())
}

/// The input normalisation: one mean and one std per input channel, each
/// within its range, and every pixel 0..=255 of every channel normalised
/// to at most [`MAX_NORMALISED_INPUT`] in magnitude.
pub fn check_input_spec(spec: &InputSpec, channels: usize) -> Result<()> {
    if spec.mean.len() != channels || spec.std.len() != channels {
        return Err(ModelError::Config(format!(
            "input normalisation has {} means and {} stds for {channels} channels",
            spec.mean.len(),
            spec.std.len()
        )));
    }
    for (c, (&m, &s)) in spec.mean.iter().zip(&spec.std).enumerate() {
        in_range(|| format!("input mean of channel {c}"), m, -MAX_MEAN, MAX_MEAN)?;
        in_range(|| format!("input std of channel {c}"), s, MIN_STD, MAX_STD)?;
        // |(p/255 - m) / s| is largest at p = 0 or p = 255.
        let worst = (m.abs()).max((1.0 - m).abs()) / s;
        in_range(
            || format!("largest normalised pixel of channel {c} (|(p/255 - mean) / std|, p in 0..=255)"),
            worst,
            0.0,
            MAX_NORMALISED_INPUT,
        )?;
    }
    Ok(())
}

/// A ReLU bound: finite and within [`MIN_BOUND`, `MAX_BOUND`].
pub fn check_bound(site: &str, b: f64) -> Result<()> {
    if !(b > 0.0 && b.is_finite()) {
        return Err(ModelError::BadBound { site: site.into(), bound: b });
    }
    in_range(|| format!("bound of ReLU site {site:?}"), b, MIN_BOUND, MAX_BOUND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_are_checked_not_wrapped() {
        let op = Op::Conv2d(crate::ops::Conv2d::dense(MAX_CHANNELS, MAX_CHANNELS, 3, 1, 1, false));
        assert!(matches!(check_op("c", &op), Err(ModelError::TooLarge { .. })));
        let s = Shape::new(usize::MAX, usize::MAX, usize::MAX);
        assert!(matches!(check_shape("x", s), Err(ModelError::TooLarge { .. })));
        // At the caps: accepted.
        assert!(check_shape("x", Shape::new(4, 1 << 10, 1 << 10)).is_ok());
        assert!(matches!(check_shape("x", Shape::new(4, 1 << 10, (1 << 10) + 1)), Err(ModelError::TooLarge { .. })));
    }

    #[test]
    fn normalisation_limits() {
        let ok = InputSpec::imagenet();
        assert!(check_input_spec(&ok, 3).is_ok());
        let one = |m: f64, s: f64| InputSpec { mean: vec![m], std: vec![s] };
        // |(1 - 0) / s| = 256 exactly: accepted; a hair less std: refused.
        assert!(check_input_spec(&one(0.0, 1.0 / 256.0), 1).is_ok());
        assert!(matches!(check_input_spec(&one(0.0, 1.0 / 257.0), 1), Err(ModelError::OutOfRange { .. })));
        assert!(matches!(check_input_spec(&one(0.0, 1e-4), 1), Err(ModelError::OutOfRange { .. })));
        assert!(matches!(check_input_spec(&one(2e3, 1e3), 1), Err(ModelError::OutOfRange { .. })));
        assert!(matches!(check_input_spec(&one(f64::NAN, 1.0), 1), Err(ModelError::OutOfRange { .. })));
        assert!(matches!(check_input_spec(&one(0.0, f64::INFINITY), 1), Err(ModelError::OutOfRange { .. })));
        assert!(matches!(check_input_spec(&ok, 1), Err(ModelError::Config(_))));
    }

    #[test]
    fn bound_limits() {
        assert!(check_bound("r", MIN_BOUND).is_ok());
        assert!(check_bound("r", MAX_BOUND).is_ok());
        assert!(matches!(check_bound("r", MIN_BOUND / 2.0), Err(ModelError::OutOfRange { .. })));
        assert!(matches!(check_bound("r", MAX_BOUND * 2.0), Err(ModelError::OutOfRange { .. })));
        assert!(matches!(check_bound("r", f64::INFINITY), Err(ModelError::BadBound { .. })));
        assert!(matches!(check_bound("r", -1.0), Err(ModelError::BadBound { .. })));
    }
}
