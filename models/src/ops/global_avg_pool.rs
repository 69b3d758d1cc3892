//! Mean over each channel plane.

use super::{want, EvalCx, Lowering, Operator};
use crate::error::Result;
use crate::network::Shape;
use pann_protocols::kernels::global_pool_sum;

/// Mean over each channel plane; output `c x 1 x 1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalAvgPool;

impl Operator for GlobalAvgPool {
    fn infer_shape(&self, ins: &[Shape]) -> std::result::Result<Shape, String> {
        want(ins, 1)?;
        Ok(Shape::new(ins[0].c, 1, 1))
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::GlobalAvgPool
    }
    fn eval(&self, cx: &mut EvalCx<'_>) -> Result<Vec<f64>> {
        let (c, h, w) = cx.dims();
        let sums = global_pool_sum(cx.x(), 1, c, h, w).map_err(|e| crate::error::ModelError::Config(e.to_string()))?;
        Ok(sums.into_iter().map(|s| s / (h * w) as f64).collect())
    }
}
