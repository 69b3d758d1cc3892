//! The network description: a list of named nodes in topological order, each
//! reading earlier nodes' outputs by index.
//!
//! Why a flat node list rather than nested modules: the plaintext f64
//! executor, the fixed-point reference and the secure executor all walk the
//! same list, so they cannot disagree about the architecture, and the list is
//! what a server sends the client as the public architecture (serde). The
//! parameters live apart (see [`crate::model::Model`]), keyed by PyTorch names
//! derived from the node names, so the description stays public while the
//! weights stay secret.

use crate::error::{ModelError, Result};
use crate::ops::{self, Lowering, Operator};
use serde::{Deserialize, Serialize};

/// Index of a node (and of the value it produces) in [`Network::nodes`].
pub type ValueId = usize;

/// Shape of one image's activation, channels x height x width. Flat feature
/// vectors use `h = w = 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Channels.
    pub c: usize,
    /// Height, in pixels.
    pub h: usize,
    /// Width, in pixels.
    pub w: usize,
}

impl Shape {
    /// `c x h x w`.
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w }
    }
    /// Elements per image, `c * h * w` (unchecked: shapes within
    /// [`crate::limits`] cannot overflow).
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Whether some dimension is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `[c, h, w]`.
    pub fn dims(&self) -> Vec<usize> {
        vec![self.c, self.h, self.w]
    }
}

/// One operation: the registry of [`crate::ops`], one variant per operator
/// (also its serialised form, tagged by `"type"`). Parameterised ops take
/// their parameters from the model's parameter map under `<node name>.<param>`
/// (PyTorch naming).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// The network input (always node 0).
    Input,
    /// 2-D convolution ([`ops::Conv2d`]).
    Conv2d(ops::Conv2d),
    /// Inference batch norm ([`ops::BatchNorm`]), folded before secure runs.
    BatchNorm(ops::BatchNorm),
    /// ReLU; the node name is the ReLU *site* that per-layer bounds refer to.
    Relu,
    /// Element-wise sum of two values of the same shape (residual add).
    Add,
    /// The option-A shortcut of the CIFAR ResNets ([`ops::ShortcutA`]).
    ShortcutA(ops::ShortcutA),
    /// Average pooling without padding ([`ops::AvgPool`]).
    AvgPool(ops::AvgPool),
    /// Mean over each channel plane; output `c x 1 x 1`.
    GlobalAvgPool,
    /// Max pooling, an activation site ([`ops::MaxPool`]).
    MaxPool(ops::MaxPool),
    /// Concatenation of all inputs along channels (same height and width).
    Concat,
    /// Zero padding of channels, rows and columns ([`ops::Pad`]).
    Pad(ops::Pad),
    /// Every `stride`-th row and column ([`ops::Subsample`]).
    Subsample(ops::Subsample),
    /// Per-channel scale and shift ([`ops::Affine`]).
    Affine(ops::Affine),
    /// Fully connected layer ([`ops::Linear`]).
    Linear(ops::Linear),
}

impl Op {
    /// The operator's definition.
    pub fn operator(&self) -> &dyn Operator {
        match self {
            Op::Input => &ops::Input,
            Op::Conv2d(o) => o,
            Op::BatchNorm(o) => o,
            Op::Relu => &ops::Relu,
            Op::Add => &ops::Add,
            Op::ShortcutA(o) => o,
            Op::AvgPool(o) => o,
            Op::GlobalAvgPool => &ops::GlobalAvgPool,
            Op::MaxPool(o) => o,
            Op::Concat => &ops::Concat,
            Op::Pad(o) => o,
            Op::Subsample(o) => o,
            Op::Affine(o) => o,
            Op::Linear(o) => o,
        }
    }

    /// The op's name as in a serialised network (`"conv2d"`, `"max_pool"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv2d(_) => "conv2d",
            Op::BatchNorm(_) => "batch_norm",
            Op::Relu => "relu",
            Op::Add => "add",
            Op::ShortcutA(_) => "shortcut_a",
            Op::AvgPool(_) => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::MaxPool(_) => "max_pool",
            Op::Concat => "concat",
            Op::Pad(_) => "pad",
            Op::Subsample(_) => "subsample",
            Op::Affine(_) => "affine",
            Op::Linear(_) => "linear",
        }
    }

    /// Whether the op is an activation site (ReLU, max pooling): evaluated
    /// with the sign polynomial in a PANN, with its own bound and alpha.
    pub fn is_activation(&self) -> bool {
        matches!(self.operator().lowering(&[Shape::new(1, 1, 1)]), Lowering::Relu | Lowering::MaxPool { .. })
    }
}

/// A named node: an op applied to earlier values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique name: the PyTorch module name (parameter prefix), and for a
    /// ReLU its site name.
    pub name: String,
    /// What the node computes.
    pub op: Op,
    /// The values it reads, all of earlier nodes (two for [`Op::Add`], none
    /// for [`Op::Input`], one otherwise).
    pub inputs: Vec<ValueId>,
    /// Output shape (per image).
    pub shape: Shape,
}

/// A network: nodes in topological order; node 0 is the input, `output` the logits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// The nodes, in topological (execution) order.
    pub nodes: Vec<Node>,
    /// The node whose value is the logits.
    pub output: ValueId,
}

/// Shape and name of one parameter tensor expected by a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// PyTorch name, `<node name>.<param>`.
    pub name: String,
    /// Expected shape.
    pub shape: Vec<usize>,
}

impl Network {
    /// Shape of one input image (node 0).
    pub fn input_shape(&self) -> Shape {
        self.nodes[0].shape
    }

    /// Shape of one image's output value (the logits).
    pub fn output_shape(&self) -> Shape {
        self.nodes[self.output].shape
    }

    /// Activation site names in execution order: the ReLUs and the max
    /// poolings, each with its own bound and alpha (cards, calibration and the
    /// planner key on them).
    pub fn activation_sites(&self) -> Vec<&str> {
        self.nodes.iter().filter(|n| n.op.is_activation()).map(|n| n.name.as_str()).collect()
    }

    /// Activation sites whose outputs are moved into one value (by a
    /// concatenation, possibly through padding or subsampling), in groups
    /// of two or more. The secure executor moves values only between equal
    /// fixed-point factors, and an activation's output factor is `2 / B`, so
    /// each group must share one bound ([`crate::calibrate::max_abs_per_site`]
    /// gives the sites of a group the same maximum).
    pub fn shared_bound_groups(&self) -> Vec<Vec<&str>> {
        let lowering = |n: &Node| n.op.operator().lowering(&n.inputs.iter().map(|&j| self.nodes[j].shape).collect::<Vec<_>>());
        // The node that made value v, looking through single-input data movement.
        let source = |mut v: ValueId| loop {
            let n = &self.nodes[v];
            if n.inputs.len() == 1 && lowering(n) == Lowering::Gather {
                v = n.inputs[0];
            } else {
                return v;
            }
        };
        let mut groups: Vec<Vec<ValueId>> = Vec::new();
        for n in self.nodes.iter().filter(|n| n.inputs.len() > 1 && lowering(n) == Lowering::Gather) {
            let mut group: Vec<ValueId> = n.inputs.iter().map(|&j| source(j)).filter(|&j| self.nodes[j].op.is_activation()).collect();
            // Merge with every earlier group that shares a site.
            groups.retain(|g| {
                let shares = g.iter().any(|v| group.contains(v));
                if shares {
                    group.extend(g);
                }
                !shares
            });
            group.sort_unstable();
            group.dedup();
            if group.len() > 1 {
                groups.push(group);
            }
        }
        groups.iter().map(|g| g.iter().map(|&v| self.nodes[v].name.as_str()).collect()).collect()
    }

    /// Every parameter the network needs, with its shape, in node order.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let mut out = Vec::new();
        for n in &self.nodes {
            out.extend(n.op.operator().params().into_iter().map(|(p, shape)| ParamSpec { name: format!("{}.{p}", n.name), shape }));
        }
        out
    }

    /// Check the structure: every size within [`crate::limits`] (checked
    /// before any shape is computed), node 0 is the only input, inputs point
    /// backwards, names are unique, and every stored shape is what the op produces.
    /// Run on every deserialised network, since it may come from a peer.
    pub fn validate(&self) -> Result<()> {
        crate::limits::check_network(self)?;
        let first = self.nodes.first().ok_or_else(|| ModelError::Config("network has no nodes".into()))?;
        if first.op != Op::Input || !first.inputs.is_empty() {
            return Err(ModelError::Config("node 0 must be the input".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if !names.insert(n.name.as_str()) {
                return Err(ModelError::Config(format!("duplicate node name {:?}", n.name)));
            }
            if i == 0 {
                continue;
            }
            if let Some(&bad) = n.inputs.iter().find(|&&j| j >= i) {
                return Err(ModelError::Config(format!("node {:?} reads value {bad}, which is not computed before it", n.name)));
            }
            let ins: Vec<Shape> = n.inputs.iter().map(|&j| self.nodes[j].shape).collect();
            let shape = infer_shape(&n.name, &n.op, &ins)?;
            if shape != n.shape {
                return Err(ModelError::Config(format!("node {:?}: stored shape {:?}, op gives {:?}", n.name, n.shape, shape)));
            }
        }
        if self.output >= self.nodes.len() {
            return Err(ModelError::Config(format!("output {} is not a node", self.output)));
        }
        Ok(())
    }

    /// Index of the node with this name.
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

/// The output shape of `op` applied to inputs of shapes `ins`.
pub fn infer_shape(name: &str, op: &Op, ins: &[Shape]) -> Result<Shape> {
    op.operator().infer_shape(ins).map_err(|why| ModelError::Config(format!("node {name:?}: {why}")))
}

/// Builds a [`Network`] node by node, inferring shapes as it goes; used by the
/// architecture configs so that no network is written out by hand.
#[derive(Debug)]
pub struct NetworkBuilder {
    nodes: Vec<Node>,
}

impl NetworkBuilder {
    /// Start with an input of the given shape.
    pub fn new(input: Shape) -> Self {
        Self { nodes: vec![Node { name: "input".into(), op: Op::Input, inputs: vec![], shape: input }] }
    }

    /// The input value.
    pub fn input(&self) -> ValueId {
        0
    }

    /// Per-image shape of value `v` (panics if `v` is not a node yet).
    pub fn shape(&self, v: ValueId) -> Shape {
        self.nodes[v].shape
    }

    /// Append a node and return its value.
    pub fn push(&mut self, name: impl Into<String>, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        let name = name.into();
        if let Some(&bad) = inputs.iter().find(|&&j| j >= self.nodes.len()) {
            return Err(ModelError::Config(format!("node {name:?} reads unknown value {bad}")));
        }
        if self.nodes.len() >= crate::limits::MAX_NODES {
            return Err(ModelError::TooLarge {
                what: "number of nodes".into(),
                value: self.nodes.len() as u64 + 1,
                max: crate::limits::MAX_NODES as u64,
            });
        }
        crate::limits::check_op(&name, &op)?;
        let ins: Vec<Shape> = inputs.iter().map(|&j| self.nodes[j].shape).collect();
        for (&j, &s) in inputs.iter().zip(&ins) {
            crate::limits::check_shape(&self.nodes[j].name, s)?;
        }
        let shape = infer_shape(&name, &op, &ins)?;
        crate::limits::check_shape(&name, shape)?;
        self.nodes.push(Node { name, op, inputs: inputs.to_vec(), shape });
        Ok(self.nodes.len() - 1)
    }

    /// Convenience: a convolution with square kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        name: &str,
        x: ValueId,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<ValueId> {
        let in_channels = self.shape(x).c;
        self.push(name, Op::Conv2d(ops::Conv2d::dense(in_channels, out, kernel, stride, padding, bias)), &[x])
    }

    /// Append a batch norm over the channels of `x`.
    pub fn batch_norm(&mut self, name: &str, x: ValueId, eps: f64) -> Result<ValueId> {
        let channels = self.shape(x).c;
        self.push(name, Op::BatchNorm(ops::BatchNorm { channels, eps }), &[x])
    }

    /// Append a ReLU; `name` is its site name.
    pub fn relu(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        self.push(name, Op::Relu, &[x])
    }

    /// Append a fully connected layer of `out` features over the flattened `x`.
    pub fn linear(&mut self, name: &str, x: ValueId, out: usize, bias: bool) -> Result<ValueId> {
        let in_features = self.shape(x).len();
        self.push(name, Op::Linear(ops::Linear { in_features, out_features: out, bias }), &[x])
    }

    /// Node `v` (panics if `v` is not a node yet).
    pub fn node(&self, v: ValueId) -> &Node {
        &self.nodes[v]
    }

    /// Give the convolution or linear layer `v` a bias parameter (an importer
    /// folding a following constant add into it); other ops are left as they are.
    pub fn set_bias(&mut self, v: ValueId) {
        match &mut self.nodes[v].op {
            Op::Conv2d(c) => c.bias = true,
            Op::Linear(l) => l.bias = true,
            _ => {}
        }
    }

    /// Finish with `output` as the logits.
    pub fn finish(self, output: ValueId) -> Result<Network> {
        let net = Network { nodes: self.nodes, output };
        net.validate()?;
        Ok(net)
    }
}
