//! Every `stride`-th row and column.

use super::{want, Gather, Limit, Lowering, Operator};
use crate::limits::MAX_STRIDE;
use crate::network::Shape;
use serde::{Deserialize, Serialize};

/// `x[:, :, ::stride, ::stride]`: every `stride`-th row and column from the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subsample {
    /// Step, both directions.
    pub stride: usize,
}

impl Operator for Subsample {
    fn infer_shape(&self, ins: &[Shape]) -> Result<Shape, String> {
        want(ins, 1)?;
        if self.stride == 0 {
            return Err("stride must be positive".into());
        }
        Ok(Shape::new(ins[0].c, ins[0].h.div_ceil(self.stride), ins[0].w.div_ceil(self.stride)))
    }
    fn limits(&self) -> Vec<Limit> {
        vec![Limit::AtMost("stride", self.stride, MAX_STRIDE)]
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::Gather
    }
    fn gather(&self, ins: &[Shape]) -> Option<Gather> {
        let s = self.stride;
        Some(Gather::from_fn(ins, self.infer_shape(ins).ok()?, |c, y, x| Some((0, c, y * s, x * s))))
    }
}
