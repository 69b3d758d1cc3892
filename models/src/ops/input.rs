//! The network's input (node 0 only).

use super::{Lowering, Operator};
use crate::network::Shape;

/// The client's image; the network's node 0 and no other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Input;

impl Operator for Input {
    fn infer_shape(&self, _ins: &[Shape]) -> Result<Shape, String> {
        Err("only node 0 may be an input".into())
    }
    fn max_inputs(&self) -> usize {
        0
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::Input
    }
}
