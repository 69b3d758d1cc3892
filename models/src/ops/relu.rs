//! ReLU: an activation site (the PANN evaluates `x (1 + p(x / B)) / 2`).

use super::{want, EvalCx, Lowering, Operator};
use crate::error::Result;
use crate::network::Shape;

/// ReLU; the node's name is the site that bounds and alphas refer to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relu;

impl Operator for Relu {
    fn infer_shape(&self, ins: &[Shape]) -> std::result::Result<Shape, String> {
        want(ins, 1)?;
        Ok(ins[0])
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::Relu
    }
    fn eval(&self, cx: &mut EvalCx<'_>) -> Result<Vec<f64>> {
        let x = cx.inputs[0];
        Ok(cx.act.relu(x))
    }
}
