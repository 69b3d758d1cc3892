//! 2-D convolution: stride, zero padding, dilation and groups.

use super::{want, EvalCx, Limit, Lowering, Operator};
use crate::error::{ModelError, Result};
use crate::limits::{MAX_CHANNELS, MAX_KERNEL, MAX_LAYER_WEIGHTS, MAX_PADDING, MAX_STRIDE};
use crate::network::Shape;
use pann_protocols::kernels::{conv2d_acc, ConvSpec, LinearSpec};
use serde::{Deserialize, Serialize};

/// 2-D convolution, square kernel, zero padding. Params: `weight`
/// `[out, in / groups, k, k]`, and `bias` `[out]` when `bias` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv2d {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side k (the kernel is k x k).
    pub kernel: usize,
    /// Stride, both directions.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Whether the layer has a `bias` parameter.
    pub bias: bool,
    /// Spacing between kernel taps (1: dense); the kernel spans
    /// `dilation (k - 1) + 1` pixels. Not serialised when 1, so that
    /// descriptions (and their digests) of networks without it are unchanged.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub dilation: usize,
    /// Channel groups: input and output channels are split into `groups`
    /// equal parts, each convolved on its own (`groups == in_channels`:
    /// depthwise). Not serialised when 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub groups: usize,
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Conv2d {
    /// A dense convolution (no dilation, one group).
    pub fn dense(in_channels: usize, out_channels: usize, kernel: usize, stride: usize, padding: usize, bias: bool) -> Self {
        Self { in_channels, out_channels, kernel, stride, padding, bias, dilation: 1, groups: 1 }
    }

    /// The ring kernel's description of this convolution on one `input` image.
    pub fn spec(&self, input: Shape) -> ConvSpec {
        ConvSpec {
            dilation: self.dilation,
            groups: self.groups,
            ..ConvSpec::dense(1, input.c, input.h, input.w, self.out_channels, self.kernel, self.stride, self.padding)
        }
    }
}

impl Operator for Conv2d {
    fn infer_shape(&self, ins: &[Shape]) -> std::result::Result<Shape, String> {
        want(ins, 1)?;
        let s = ins[0];
        let Conv2d { in_channels, out_channels, kernel, stride, padding, dilation, groups, .. } = *self;
        if s.c != in_channels {
            return Err(format!("expects {in_channels} channels, input has {}", s.c));
        }
        if kernel == 0 || stride == 0 || out_channels == 0 || dilation == 0 || groups == 0 {
            return Err("kernel, stride, dilation, groups and out_channels must be positive".into());
        }
        if in_channels % groups != 0 || out_channels % groups != 0 {
            return Err(format!("{groups} groups do not divide {in_channels} input and {out_channels} output channels"));
        }
        let span = dilation * (kernel - 1) + 1;
        if s.h + 2 * padding < span || s.w + 2 * padding < span {
            return Err("kernel larger than padded input".into());
        }
        // Valid now: the ring kernel's own output size.
        let (h, w) = self.spec(s).out_hw();
        Ok(Shape::new(out_channels, h, w))
    }
    fn params(&self) -> Vec<(&'static str, Vec<usize>)> {
        let mut p = vec![("weight", vec![self.out_channels, self.in_channels / self.groups.max(1), self.kernel, self.kernel])];
        if self.bias {
            p.push(("bias", vec![self.out_channels]));
        }
        p
    }
    fn limits(&self) -> Vec<Limit> {
        let c = self;
        vec![
            Limit::AtMost("in_channels", c.in_channels, MAX_CHANNELS),
            Limit::AtMost("out_channels", c.out_channels, MAX_CHANNELS),
            Limit::AtMost("kernel", c.kernel, MAX_KERNEL),
            Limit::AtMost("stride", c.stride, MAX_STRIDE),
            Limit::AtMost("padding", c.padding, MAX_PADDING),
            Limit::AtMost("dilation", c.dilation, MAX_STRIDE),
            Limit::AtMost("groups", c.groups, MAX_CHANNELS),
            Limit::Product("weights", vec![c.out_channels, c.in_channels / c.groups.max(1), c.kernel, c.kernel], MAX_LAYER_WEIGHTS),
        ]
    }
    fn lowering(&self, ins: &[Shape]) -> Lowering {
        Lowering::Linear(LinearSpec::Conv(self.spec(ins[0])))
    }
    fn eval(&self, cx: &mut EvalCx<'_>) -> Result<Vec<f64>> {
        let spec = self.spec(cx.shapes[0]);
        let mut out = vec![0.0; spec.output_len()];
        if let Some(b) = cx.opt_param("bias") {
            // The sums start from the bias.
            let plane = out.len() / self.out_channels;
            for (row, &bv) in out.chunks_exact_mut(plane).zip(b) {
                row.fill(bv);
            }
        }
        conv2d_acc(&spec, cx.param("weight")?, cx.x(), &mut out).map_err(|e| ModelError::Config(format!("node {:?}: {e}", cx.name)))?;
        Ok(out)
    }
}
