//! The option-A shortcut of the CIFAR ResNets.

use super::{want, Gather, Limit, Lowering, Operator};
use crate::limits::{MAX_CHANNELS, MAX_STRIDE};
use crate::network::Shape;
use serde::{Deserialize, Serialize};

/// `x[:, :, ::stride, ::stride]` followed by `pad_channels` zero planes
/// before and after the channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortcutA {
    /// Subsampling step, both directions.
    pub stride: usize,
    /// Zero channel planes added on each side.
    pub pad_channels: usize,
}

impl Operator for ShortcutA {
    fn infer_shape(&self, ins: &[Shape]) -> Result<Shape, String> {
        want(ins, 1)?;
        if self.stride == 0 {
            return Err("stride must be positive".into());
        }
        let s = ins[0];
        Ok(Shape::new(s.c + 2 * self.pad_channels, s.h.div_ceil(self.stride), s.w.div_ceil(self.stride)))
    }
    fn limits(&self) -> Vec<Limit> {
        vec![Limit::AtMost("stride", self.stride, MAX_STRIDE), Limit::AtMost("pad_channels", self.pad_channels, MAX_CHANNELS)]
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::Gather
    }
    fn gather(&self, ins: &[Shape]) -> Option<Gather> {
        let (p, s) = (self.pad_channels, self.stride);
        let c = ins[0].c;
        Some(Gather::from_fn(ins, self.infer_shape(ins).ok()?, |oc, y, x| (p..p + c).contains(&oc).then(|| (0, oc - p, y * s, x * s))))
    }
}
