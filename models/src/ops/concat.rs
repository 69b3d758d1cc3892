//! Concatenation along channels.

use super::{Gather, Lowering, Operator};
use crate::limits::MAX_CONCAT_INPUTS;
use crate::network::Shape;

/// All inputs side by side along the channels (same height and width).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Concat;

impl Operator for Concat {
    fn infer_shape(&self, ins: &[Shape]) -> Result<Shape, String> {
        if ins.is_empty() {
            return Err("concatenates no inputs".into());
        }
        if let Some(o) = ins.iter().find(|o| (o.h, o.w) != (ins[0].h, ins[0].w)) {
            return Err(format!("concatenates planes of {}x{} and {}x{}", ins[0].h, ins[0].w, o.h, o.w));
        }
        Ok(Shape::new(ins.iter().map(|s| s.c).sum(), ins[0].h, ins[0].w))
    }
    fn max_inputs(&self) -> usize {
        MAX_CONCAT_INPUTS
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::Gather
    }
    fn gather(&self, ins: &[Shape]) -> Option<Gather> {
        let out = self.infer_shape(ins).ok()?;
        // Channel c of the output is channel c - first[k] of input k.
        let first: Vec<usize> = ins.iter().scan(0, |acc, s| Some(std::mem::replace(acc, *acc + s.c))).collect();
        Some(Gather::from_fn(ins, out, |c, y, x| {
            let k = first.iter().rposition(|&f| f <= c).expect("channel 0 is in input 0");
            Some((k, c - first[k], y, x))
        }))
    }
}
