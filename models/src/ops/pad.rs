//! Zero padding of channels, rows and columns.

use super::{want, Gather, Limit, Lowering, Operator};
use crate::limits::{MAX_CHANNELS, MAX_PADDING};
use crate::network::Shape;
use serde::{Deserialize, Serialize};

/// Zero padding of channels, rows and columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pad {
    /// Zero channel planes before the channels.
    pub channels_before: usize,
    /// Zero channel planes after the channels.
    pub channels_after: usize,
    /// Zero rows above.
    pub top: usize,
    /// Zero rows below.
    pub bottom: usize,
    /// Zero columns on the left.
    pub left: usize,
    /// Zero columns on the right.
    pub right: usize,
}

impl Operator for Pad {
    fn infer_shape(&self, ins: &[Shape]) -> Result<Shape, String> {
        want(ins, 1)?;
        let s = ins[0];
        Ok(Shape::new(s.c + self.channels_before + self.channels_after, s.h + self.top + self.bottom, s.w + self.left + self.right))
    }
    fn limits(&self) -> Vec<Limit> {
        vec![
            Limit::AtMost("channels_before", self.channels_before, MAX_CHANNELS),
            Limit::AtMost("channels_after", self.channels_after, MAX_CHANNELS),
            Limit::AtMost("top", self.top, MAX_PADDING),
            Limit::AtMost("bottom", self.bottom, MAX_PADDING),
            Limit::AtMost("left", self.left, MAX_PADDING),
            Limit::AtMost("right", self.right, MAX_PADDING),
        ]
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::Gather
    }
    fn gather(&self, ins: &[Shape]) -> Option<Gather> {
        let s = ins[0];
        let (cb, t, l) = (self.channels_before, self.top, self.left);
        let inside = |v: usize, lo: usize, n: usize| (lo..lo + n).contains(&v);
        Some(Gather::from_fn(ins, self.infer_shape(ins).ok()?, |c, y, x| {
            (inside(c, cb, s.c) && inside(y, t, s.h) && inside(x, l, s.w)).then(|| (0, c - cb, y - t, x - l))
        }))
    }
}
