//! Per-channel scale and shift (graph constants that could not be folded).

use super::{want, EvalCx, Limit, Lowering, Operator};
use crate::error::Result;
use crate::limits::MAX_CHANNELS;
use crate::network::Shape;
use pann_protocols::kernels::{ConvSpec, LinearSpec};
use serde::{Deserialize, Serialize};

/// Per-channel `x * weight[c] + bias[c]` (constants of an imported graph
/// that could not be folded into a neighbour). Params: `weight`, `bias`,
/// each `[channels]`. They are the server's, so the secure executor runs it
/// as the depthwise 1x1 convolution it is (weights `[c, 1, 1, 1]`: the same values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affine {
    /// Channels of the input (and of each parameter).
    pub channels: usize,
}

impl Operator for Affine {
    fn infer_shape(&self, ins: &[Shape]) -> std::result::Result<Shape, String> {
        want(ins, 1)?;
        if ins[0].c != self.channels {
            return Err(format!("expects {} channels, input has {}", self.channels, ins[0].c));
        }
        Ok(ins[0])
    }
    fn params(&self) -> Vec<(&'static str, Vec<usize>)> {
        vec![("weight", vec![self.channels]), ("bias", vec![self.channels])]
    }
    fn limits(&self) -> Vec<Limit> {
        vec![Limit::AtMost("channels", self.channels, MAX_CHANNELS)]
    }
    fn lowering(&self, ins: &[Shape]) -> Lowering {
        let s = ins[0];
        Lowering::Linear(LinearSpec::Conv(ConvSpec { groups: s.c, ..ConvSpec::dense(1, s.c, s.h, s.w, s.c, 1, 1, 0) }))
    }
    fn eval(&self, cx: &mut EvalCx<'_>) -> Result<Vec<f64>> {
        let (scale, shift) = (cx.param("weight")?, cx.param("bias")?);
        let (_, h, w) = cx.dims();
        Ok(cx.x().chunks_exact(h * w).zip(scale.iter().zip(shift)).flat_map(|(c, (&a, &b))| c.iter().map(move |v| v * a + b)).collect())
    }
}
