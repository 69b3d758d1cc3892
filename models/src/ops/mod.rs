//! One definition per operator.
//!
//! Each operator is a type in its own file that says everything the rest of
//! the code needs to know about it: its output shape, its parameters, the
//! sizes a peer could make huge, its evaluation on reals (the f64 executor),
//! and how the fixed-point plan and the secure executor run it
//! ([`Lowering`]): as a linear layer with the server's weights, an activation
//! site, a sum with public multipliers, pooling sums, or pure data movement
//! described by an index map ([`Gather`]) that both executors apply, to
//! reals and to shares alike. [`crate::network::Op`] registers them: one
//! variant each, which is also the operator's serialised form.
//!
//! Adding an operator: a file here with a type implementing [`Operator`], a
//! variant in `Op` and its line in `Op::operator`. When it lowers to an
//! existing [`Lowering`], nothing else changes: validation, limits, cards,
//! calibration, the planner, the plan and the secure executor follow.

mod add;
mod affine;
mod avg_pool;
mod batch_norm;
mod concat;
mod conv;
mod gather;
mod global_avg_pool;
mod input;
mod linear;
mod max_pool;
mod pad;
mod relu;
mod shortcut_a;
mod subsample;

pub use add::Add;
pub use affine::Affine;
pub use avg_pool::AvgPool;
pub use batch_norm::BatchNorm;
pub use concat::Concat;
pub use conv::Conv2d;
pub use gather::Gather;
pub use global_avg_pool::GlobalAvgPool;
pub use input::Input;
pub use linear::Linear;
pub use max_pool::{pool_windows, MaxPool};
pub use pad::Pad;
pub use relu::Relu;
pub use shortcut_a::ShortcutA;
pub use subsample::Subsample;

use crate::error::{ModelError, Result};
use crate::network::Shape;
use crate::tensor::Params;
use pann_protocols::kernels::LinearSpec;

/// What an operator is to every executor.
pub trait Operator {
    /// The output shape for inputs of shapes `ins` (as many as the node
    /// reads), or why there is none (the caller names the node).
    fn infer_shape(&self, ins: &[Shape]) -> std::result::Result<Shape, String>;

    /// Parameters read from the model as `<node name>.<name>`, with their shapes.
    fn params(&self) -> Vec<(&'static str, Vec<usize>)> {
        Vec::new()
    }

    /// The fields a peer could make huge, with their caps, checked before
    /// any shape is computed from them (see [`crate::limits`]).
    fn limits(&self) -> Vec<Limit> {
        Vec::new()
    }

    /// Most inputs a node of this operator reads.
    fn max_inputs(&self) -> usize {
        1
    }

    /// How the fixed-point plan and the secure executor run it, given its
    /// inputs' shapes (per image).
    fn lowering(&self, ins: &[Shape]) -> Lowering;

    /// Data movement only: where each output element comes from.
    fn gather(&self, _ins: &[Shape]) -> Option<Gather> {
        None
    }

    /// One image through the operator, on reals. The default applies
    /// [`Operator::gather`]; every other operator defines its own.
    fn eval(&self, cx: &mut EvalCx<'_>) -> Result<Vec<f64>> {
        match self.gather(cx.shapes) {
            Some(g) => Ok(g.apply(cx.inputs, 1)),
            None => Err(ModelError::Config(format!("node {:?}: no evaluation for this operator", cx.name))),
        }
    }
}

/// A size limit of an operator's field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The field `.0` is `.1`, at most `.2`.
    AtMost(&'static str, usize, usize),
    /// The product of the dimensions `.1` (e.g. a weight tensor's), at most `.2`.
    Product(&'static str, Vec<usize>, usize),
}

/// How an operator runs in the fixed-point plan and the secure executor.
#[derive(Clone, Debug, PartialEq)]
pub enum Lowering {
    /// The network's input (the client's image).
    Input,
    /// A linear layer with the server's secret weights `<name>.weight` and,
    /// if the model has it, bias `<name>.bias` per output channel; the
    /// spec is for one image (the plan sets the batch).
    Linear(LinearSpec),
    /// An activation site evaluated by the ReLU program.
    Relu,
    /// An activation site evaluated pairwise by the max program over
    /// windows (side, stride, padding).
    MaxPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding (excluded from the windows).
        padding: usize,
    },
    /// The sum of two values, each times a public constant.
    Add,
    /// Pure data movement: [`Operator::gather`].
    Gather,
    /// Sums over `k x k` windows; the division is public (folded into the
    /// value's factor).
    AvgPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Sums over each channel plane; the division is folded likewise.
    GlobalAvgPool,
    /// Folded into the convolution before it ahead of any fixed-point run
    /// ([`crate::fold`]); a plan refuses it.
    FoldedAway,
}

/// The f64 evaluation of an activation site (exact, or the PANN polynomial
/// with the site's bound), counting what it sees.
pub trait Activation {
    /// ReLU of every element.
    fn relu(&mut self, x: &[f64]) -> Vec<f64>;
    /// `max(a, b)`: exact, or `b + relu(a - b)` with the polynomial.
    fn max2(&mut self, a: f64, b: f64) -> f64;
}

/// What an operator's evaluation sees of one node and one image.
pub struct EvalCx<'a> {
    /// The node's name (its parameters are `<name>.<param>`).
    pub name: &'a str,
    /// The inputs' values, one image each.
    pub inputs: &'a [&'a [f64]],
    /// The inputs' shapes.
    pub shapes: &'a [Shape],
    /// The model's parameters (checked against [`Operator::params`]).
    pub params: &'a Params,
    /// The activation of this node's site (only activation sites call it).
    pub act: &'a mut dyn Activation,
}

impl EvalCx<'_> {
    /// The first input.
    pub fn x(&self) -> &[f64] {
        self.inputs[0]
    }

    /// The first input's shape as `(c, h, w)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        let s = self.shapes[0];
        (s.c, s.h, s.w)
    }

    /// Parameter `p` of this node.
    pub fn param(&self, p: &str) -> Result<&[f64]> {
        self.opt_param(p).ok_or_else(|| ModelError::MissingTensor { name: format!("{}.{p}", self.name) })
    }

    /// Parameter `p` of this node, if the model has it.
    pub fn opt_param(&self, p: &str) -> Option<&[f64]> {
        self.params.get(&format!("{}.{p}", self.name)).map(|t| t.data.as_slice())
    }
}

/// `Err` text when `ins` does not hold `k` inputs.
pub(crate) fn want(ins: &[Shape], k: usize) -> std::result::Result<(), String> {
    if ins.len() == k {
        Ok(())
    } else {
        Err(format!("takes {k} input(s), got {}", ins.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Op;

    /// Exact activations, for operators that call one.
    struct Exact;
    impl Activation for Exact {
        fn relu(&mut self, x: &[f64]) -> Vec<f64> {
            x.iter().map(|v| v.max(0.0)).collect()
        }
        fn max2(&mut self, a: f64, b: f64) -> f64 {
            a.max(b)
        }
    }

    fn eval(op: &Op, ins: &[(&[f64], Shape)]) -> Vec<f64> {
        let (inputs, shapes): (Vec<&[f64]>, Vec<Shape>) = ins.iter().copied().unzip();
        let params = Params::new();
        let mut cx = EvalCx { name: "n", inputs: &inputs, shapes: &shapes, params: &params, act: &mut Exact };
        let out = op.operator().eval(&mut cx).unwrap();
        assert_eq!(out.len(), op.operator().infer_shape(&shapes).unwrap().len());
        out
    }

    #[test]
    fn pad_and_subsample_move_values_where_they_belong() {
        let x: Vec<f64> = (1..=4).map(|v| v as f64).collect(); // 1 x 2 x 2
        let pad = Op::Pad(Pad { channels_before: 1, channels_after: 0, top: 1, bottom: 0, left: 0, right: 1 });
        let y = eval(&pad, &[(&x, Shape::new(1, 2, 2))]);
        assert_eq!(y.len(), 2 * 3 * 3);
        assert_eq!(&y[..9], &[0.0; 9]);
        assert_eq!(&y[9..], &[0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0]);
        let z: Vec<f64> = (0..15).map(|v| v as f64).collect(); // 1 x 3 x 5
        assert_eq!(eval(&Op::Subsample(Subsample { stride: 2 }), &[(&z, Shape::new(1, 3, 5))]), vec![0.0, 2.0, 4.0, 10.0, 12.0, 14.0]);
    }

    #[test]
    fn shortcut_subsamples_and_pads() {
        let x: Vec<f64> = (0..2 * 4 * 4).map(|v| v as f64).collect();
        let y = eval(&Op::ShortcutA(ShortcutA { stride: 2, pad_channels: 1 }), &[(&x, Shape::new(2, 4, 4))]);
        assert_eq!(y.len(), 4 * 2 * 2);
        assert_eq!(&y[0..4], &[0.0; 4]);
        assert_eq!(&y[4..8], &[0.0, 2.0, 8.0, 10.0]);
        assert_eq!(&y[8..12], &[16.0, 18.0, 24.0, 26.0]);
        assert_eq!(&y[12..16], &[0.0; 4]);
    }

    #[test]
    fn concat_stacks_channels() {
        let (a, b) = ([1.0, 2.0], [3.0, 4.0, 5.0, 6.0]);
        assert_eq!(eval(&Op::Concat, &[(&a, Shape::new(1, 1, 2)), (&b, Shape::new(2, 1, 2))]), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn max_pool_windows_exclude_padding_and_reduce_as_a_tree() {
        let x: Vec<f64> = vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0, 7.0, -8.0, 9.0];
        // 3x3, kernel 2, stride 2, padding 1: windows {1}, {-2, 3}, {-4, 7}, {5, -6, -8, 9}.
        let op = Op::MaxPool(MaxPool { kernel: 2, stride: 2, padding: 1 });
        assert_eq!(eval(&op, &[(&x, Shape::new(1, 3, 3))]), vec![1.0, 3.0, 7.0, 9.0]);
        // The tree order: ((a, b), (c, d)) over {5, -6, -8, 9}, seen through the combiner's calls.
        struct Calls(Vec<(f64, f64)>);
        impl Activation for Calls {
            fn relu(&mut self, x: &[f64]) -> Vec<f64> {
                x.to_vec()
            }
            fn max2(&mut self, a: f64, b: f64) -> f64 {
                self.0.push((a, b));
                a.max(b)
            }
        }
        let mut calls = Calls(Vec::new());
        let params = Params::new();
        let x = [5.0, -6.0, -8.0, 9.0];
        let mut cx = EvalCx { name: "m", inputs: &[&x], shapes: &[Shape::new(1, 2, 2)], params: &params, act: &mut calls };
        Op::MaxPool(MaxPool { kernel: 2, stride: 2, padding: 0 }).operator().eval(&mut cx).unwrap();
        assert_eq!(calls.0, vec![(5.0, -6.0), (-8.0, 9.0), (5.0, 9.0)]);
    }
}
