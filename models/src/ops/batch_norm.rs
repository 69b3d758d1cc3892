//! Inference batch norm (folded into the convolution before it).

use super::{want, EvalCx, Limit, Lowering, Operator};
use crate::error::Result;
use crate::limits::MAX_CHANNELS;
use crate::network::Shape;
use serde::{Deserialize, Serialize};

/// Inference batch norm. Params: `weight`, `bias`, `running_mean`,
/// `running_var`, each `[channels]`. Folded into the preceding conv by
/// [`crate::fold::fold_batch_norm`] before any fixed-point run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm {
    /// Channels of the input (and of each parameter).
    pub channels: usize,
    /// Added to the variance before the square root.
    pub eps: f64,
}

impl Operator for BatchNorm {
    fn infer_shape(&self, ins: &[Shape]) -> std::result::Result<Shape, String> {
        want(ins, 1)?;
        if ins[0].c != self.channels {
            return Err(format!("expects {} channels, input has {}", self.channels, ins[0].c));
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(format!("eps {} must be positive", self.eps));
        }
        Ok(ins[0])
    }
    fn params(&self) -> Vec<(&'static str, Vec<usize>)> {
        ["weight", "bias", "running_mean", "running_var"].into_iter().map(|p| (p, vec![self.channels])).collect()
    }
    fn limits(&self) -> Vec<Limit> {
        vec![Limit::AtMost("channels", self.channels, MAX_CHANNELS)]
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::FoldedAway
    }
    fn eval(&self, cx: &mut EvalCx<'_>) -> Result<Vec<f64>> {
        let (gamma, beta, mean, var) = (cx.param("weight")?, cx.param("bias")?, cx.param("running_mean")?, cx.param("running_var")?);
        let (_, h, w) = cx.dims();
        let plane = h * w;
        let mut y = cx.x().to_vec();
        for c in 0..self.channels {
            let sc = gamma[c] / (var[c] + self.eps).sqrt();
            for v in &mut y[c * plane..(c + 1) * plane] {
                *v = (*v - mean[c]) * sc + beta[c];
            }
        }
        Ok(y)
    }
}
