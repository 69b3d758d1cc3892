//! Average pooling without padding.

use super::{want, EvalCx, Limit, Lowering, Operator};
use crate::error::{ModelError, Result};
use crate::limits::{MAX_KERNEL, MAX_STRIDE};
use crate::network::Shape;
use pann_protocols::kernels::avg_pool_sum;
use serde::{Deserialize, Serialize};

/// Average pooling over `k x k` windows, without padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvgPool {
    /// Window side (the window is k x k).
    pub kernel: usize,
    /// Stride, both directions.
    pub stride: usize,
}

impl Operator for AvgPool {
    fn infer_shape(&self, ins: &[Shape]) -> std::result::Result<Shape, String> {
        want(ins, 1)?;
        let (s, k, st) = (ins[0], self.kernel, self.stride);
        if k == 0 || st == 0 || s.h < k || s.w < k {
            return Err("bad pooling window".into());
        }
        Ok(Shape::new(s.c, (s.h - k) / st + 1, (s.w - k) / st + 1))
    }
    fn limits(&self) -> Vec<Limit> {
        vec![Limit::AtMost("kernel", self.kernel, MAX_KERNEL), Limit::AtMost("stride", self.stride, MAX_STRIDE)]
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::AvgPool { kernel: self.kernel, stride: self.stride }
    }
    fn eval(&self, cx: &mut EvalCx<'_>) -> Result<Vec<f64>> {
        let (c, h, w) = cx.dims();
        let sums = avg_pool_sum(cx.x(), 1, c, h, w, self.kernel, self.stride)
            .map_err(|e| ModelError::Config(format!("node {:?}: {e}", cx.name)))?;
        let inv = 1.0 / (self.kernel * self.kernel) as f64;
        Ok(sums.into_iter().map(|s| s * inv).collect())
    }
}
