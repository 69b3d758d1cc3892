//! Element-wise sum of two values of the same shape (residual add).

use super::{want, EvalCx, Lowering, Operator};
use crate::error::Result;
use crate::network::Shape;

/// `a + b`; the secure plan rescales each operand by a public constant to a
/// common scale and factor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Add;

impl Operator for Add {
    fn infer_shape(&self, ins: &[Shape]) -> std::result::Result<Shape, String> {
        want(ins, 2)?;
        if ins[0] != ins[1] {
            return Err(format!("adds shapes {:?} and {:?}", ins[0], ins[1]));
        }
        Ok(ins[0])
    }
    fn max_inputs(&self) -> usize {
        2
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::Add
    }
    fn eval(&self, cx: &mut EvalCx<'_>) -> Result<Vec<f64>> {
        Ok(cx.inputs[0].iter().zip(cx.inputs[1]).map(|(a, b)| a + b).collect())
    }
}
