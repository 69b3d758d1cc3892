//! Fully connected layer.

use super::{want, EvalCx, Limit, Lowering, Operator};
use crate::error::Result;
use crate::limits::{MAX_FEATURES, MAX_LAYER_WEIGHTS};
use crate::network::Shape;
use pann_protocols::kernels::{LinearSpec, MatmulSpec};
use serde::{Deserialize, Serialize};

/// Fully connected layer over the flattened input. Params: `weight`
/// `[out, in]`, and `bias` `[out]` when `bias` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linear {
    /// Input features (`c * h * w` of the input, flattened CHW).
    pub in_features: usize,
    /// Output features (logits, for the last layer).
    pub out_features: usize,
    /// Whether the layer has a `bias` parameter.
    pub bias: bool,
}

impl Operator for Linear {
    fn infer_shape(&self, ins: &[Shape]) -> std::result::Result<Shape, String> {
        want(ins, 1)?;
        if ins[0].len() != self.in_features {
            return Err(format!("expects {} features, input has {}", self.in_features, ins[0].len()));
        }
        Ok(Shape::new(self.out_features, 1, 1))
    }
    fn params(&self) -> Vec<(&'static str, Vec<usize>)> {
        let mut p = vec![("weight", vec![self.out_features, self.in_features])];
        if self.bias {
            p.push(("bias", vec![self.out_features]));
        }
        p
    }
    fn limits(&self) -> Vec<Limit> {
        vec![
            Limit::AtMost("in_features", self.in_features, MAX_FEATURES),
            Limit::AtMost("out_features", self.out_features, MAX_FEATURES),
            Limit::Product("weights", vec![self.out_features, self.in_features], MAX_LAYER_WEIGHTS),
        ]
    }
    fn lowering(&self, _ins: &[Shape]) -> Lowering {
        Lowering::Linear(LinearSpec::Matmul(MatmulSpec { m: 1, k: self.in_features, n: self.out_features }))
    }
    fn eval(&self, cx: &mut EvalCx<'_>) -> Result<Vec<f64>> {
        let (x, w, b) = (cx.x(), cx.param("weight")?, cx.opt_param("bias"));
        let in_f = x.len();
        Ok((0..self.out_features)
            .map(|o| {
                let dot: f64 = w[o * in_f..(o + 1) * in_f].iter().zip(x).map(|(a, b)| a * b).sum();
                dot + b.map_or(0.0, |b| b[o])
            })
            .collect())
    }
}
