//! Max pooling: an activation site.

use super::{want, EvalCx, Limit, Lowering, Operator};
use crate::error::Result;
use crate::limits::{MAX_KERNEL, MAX_PADDING, MAX_STRIDE};
use crate::network::Shape;
use serde::{Deserialize, Serialize};

/// Max pooling over `k x k` windows; positions in the padding are not part
/// of a window (as if padded with -infinity). An *activation site* like a
/// ReLU: a PANN evaluates `max(a, b) = b + relu(a - b)` with the sign
/// polynomial, pairwise over each window (a balanced tree in row-major
/// window order), with the site's bound on the differences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxPool {
    /// Window side (the window is k x k).
    pub kernel: usize,
    /// Stride, both directions.
    pub stride: usize,
    /// Padding on each side (excluded from the windows).
    pub padding: usize,
}

impl Operator for MaxPool {
    fn infer_shape(&self, ins: &[Shape]) -> std::result::Result<Shape, String> {
        want(ins, 1)?;
        let (s, k, st, p) = (ins[0], self.kernel, self.stride, self.padding);
        if k == 0 || st == 0 || s.h + 2 * p < k || s.w + 2 * p < k {
            return Err("bad pooling window".into());
        }
        if p >= k {
            return Err(format!("padding {p} leaves windows with no input (kernel {k})"));
        }
        Ok(Shape::new(s.c, (s.h + 2 * p - k) / st + 1, (s.w + 2 * p - k) / st + 1))
    }
    fn limits(&self) -> Vec<Limit> {
        vec![
            Limit::AtMost("kernel", self.kernel, MAX_KERNEL),
            Limit::AtMost("stride", self.stride, MAX_STRIDE),
            Limit::AtMost("padding", self.padding, MAX_PADDING),
        ]
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::MaxPool { kernel: self.kernel, stride: self.stride, padding: self.padding }
    }
    fn eval(&self, cx: &mut EvalCx<'_>) -> Result<Vec<f64>> {
        let (c, h, w) = cx.dims();
        let windows = pool_windows(h, w, self.kernel, self.stride, self.padding);
        let mut out = Vec::with_capacity(c * windows.len());
        for plane in cx.inputs[0].chunks_exact(h * w).take(c) {
            for win in &windows {
                let mut values: Vec<f64> = win.iter().map(|&i| plane[i]).collect();
                while values.len() > 1 {
                    values = values.chunks(2).map(|p| if p.len() == 2 { cx.act.max2(p[0], p[1]) } else { p[0] }).collect();
                }
                out.push(values[0]);
            }
        }
        Ok(out)
    }
}

/// The windows of a `k x k` pooling with stride and padding over one `h x w`
/// plane: for each output position (row-major), the plane indices of its
/// elements in row-major window order, padded positions excluded. The f64
/// executor and the secure one reduce max-pooling windows in this order.
pub fn pool_windows(h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Vec<Vec<usize>> {
    let oh = (h + 2 * pad - k) / stride + 1;
    let ow = (w + 2 * pad - k) / stride + 1;
    let mut out = Vec::with_capacity(oh * ow);
    for oy in 0..oh {
        for ox in 0..ow {
            let mut win = Vec::with_capacity(k * k);
            for ky in 0..k {
                for kx in 0..k {
                    let (iy, ix) = ((oy * stride + ky) as isize - pad as isize, (ox * stride + kx) as isize - pad as isize);
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                        win.push(iy as usize * w + ix as usize);
                    }
                }
            }
            out.push(win);
        }
    }
    out
}
