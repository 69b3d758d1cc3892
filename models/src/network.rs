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

/// One operation. Parameterised ops take their parameters from the model's
/// parameter map under `<node name>.<param>` (PyTorch naming).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// The network input (always node 0).
    Input,
    /// 2-D convolution, square kernel, zero padding. Params: `weight`
    /// `[out, in / groups, k, k]`, and `bias` `[out]` when `bias` is set.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel side k (the kernel is k x k).
        kernel: usize,
        /// Stride, both directions.
        stride: usize,
        /// Zero padding on each side.
        padding: usize,
        /// Whether the layer has a `bias` parameter.
        bias: bool,
        /// Spacing between kernel taps (1: dense); the kernel spans
        /// `dilation (k - 1) + 1` pixels. Not serialised when 1, so that
        /// descriptions (and their digests) of networks without it are unchanged.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        dilation: usize,
        /// Channel groups: input and output channels are split into `groups`
        /// equal parts, each convolved on its own (`groups == in_channels`:
        /// depthwise). Not serialised when 1.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        groups: usize,
    },
    /// Inference batch norm. Params: `weight`, `bias`, `running_mean`,
    /// `running_var`, each `[channels]`. Folded into the preceding conv by
    /// [`crate::fold::fold_batch_norm`] before execution.
    BatchNorm {
        /// Channels of the input (and of each parameter).
        channels: usize,
        /// Added to the variance before the square root.
        eps: f64,
    },
    /// ReLU; the node name is the ReLU *site* that per-layer bounds refer to.
    Relu,
    /// Element-wise sum of two values of the same shape (residual add).
    Add,
    /// The "option A" shortcut of the CIFAR ResNets: `x[:, :, ::stride, ::stride]`
    /// followed by `pad_channels` zero planes before and after the channels.
    ShortcutA {
        /// Subsampling step, both directions.
        stride: usize,
        /// Zero channel planes added on each side.
        pad_channels: usize,
    },
    /// Average pooling without padding.
    AvgPool {
        /// Window side (the window is k x k).
        kernel: usize,
        /// Stride, both directions.
        stride: usize,
    },
    /// Mean over each channel plane; output `c x 1 x 1`.
    GlobalAvgPool,
    /// Max pooling over `k x k` windows; positions in the padding are not
    /// part of a window (as if padded with -infinity). An *activation site*
    /// like a ReLU: a PANN evaluates `max(a, b) = b + relu(a - b)` with the
    /// sign polynomial, pairwise over each window (a balanced tree in
    /// row-major window order), with the site's bound on the differences.
    MaxPool {
        /// Window side (the window is k x k).
        kernel: usize,
        /// Stride, both directions.
        stride: usize,
        /// Padding on each side (excluded from the windows).
        padding: usize,
    },
    /// Concatenation of all inputs along channels (same height and width).
    Concat,
    /// Zero padding of channels, rows and columns.
    Pad {
        /// Zero channel planes before the channels.
        channels_before: usize,
        /// Zero channel planes after the channels.
        channels_after: usize,
        /// Zero rows above.
        top: usize,
        /// Zero rows below.
        bottom: usize,
        /// Zero columns on the left.
        left: usize,
        /// Zero columns on the right.
        right: usize,
    },
    /// `x[:, :, ::stride, ::stride]`: every `stride`-th row and column from the first.
    Subsample {
        /// Step, both directions.
        stride: usize,
    },
    /// Per-channel `x * weight[c] + bias[c]` (constants of an imported graph
    /// that could not be folded into a neighbour). Params: `weight`, `bias`,
    /// each `[channels]`.
    Affine {
        /// Channels of the input (and of each parameter).
        channels: usize,
    },
    /// Fully connected layer over the flattened input. Params: `weight`
    /// `[out, in]`, and `bias` `[out]` when `bias` is set.
    Linear {
        /// Input features (`c * h * w` of the input, flattened CHW).
        in_features: usize,
        /// Output features (logits, for the last layer).
        out_features: usize,
        /// Whether the layer has a `bias` parameter.
        bias: bool,
    },
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Op {
    /// The op's name as in a serialised network (`"conv2d"`, `"max_pool"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv2d { .. } => "conv2d",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Add => "add",
            Op::ShortcutA { .. } => "shortcut_a",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::MaxPool { .. } => "max_pool",
            Op::Concat => "concat",
            Op::Pad { .. } => "pad",
            Op::Subsample { .. } => "subsample",
            Op::Affine { .. } => "affine",
            Op::Linear { .. } => "linear",
        }
    }

    /// Whether the op is an activation site (ReLU, max pooling): evaluated
    /// with the sign polynomial in a PANN, with its own bound and alpha.
    pub fn is_activation(&self) -> bool {
        matches!(self, Op::Relu | Op::MaxPool { .. })
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
    pub fn relu_sites(&self) -> Vec<&str> {
        self.nodes.iter().filter(|n| n.op.is_activation()).map(|n| n.name.as_str()).collect()
    }

    /// Every parameter the network needs, with its shape, in node order.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let mut out = Vec::new();
        let mut push = |node: &str, p: &str, shape: Vec<usize>| out.push(ParamSpec { name: format!("{node}.{p}"), shape });
        for n in &self.nodes {
            match &n.op {
                Op::Conv2d { in_channels, out_channels, kernel, bias, groups, .. } => {
                    push(&n.name, "weight", vec![*out_channels, in_channels / groups.max(&1), *kernel, *kernel]);
                    if *bias {
                        push(&n.name, "bias", vec![*out_channels]);
                    }
                }
                Op::BatchNorm { channels, .. } => {
                    for p in ["weight", "bias", "running_mean", "running_var"] {
                        push(&n.name, p, vec![*channels]);
                    }
                }
                Op::Affine { channels } => {
                    for p in ["weight", "bias"] {
                        push(&n.name, p, vec![*channels]);
                    }
                }
                Op::Linear { in_features, out_features, bias } => {
                    push(&n.name, "weight", vec![*out_features, *in_features]);
                    if *bias {
                        push(&n.name, "bias", vec![*out_features]);
                    }
                }
                _ => {}
            }
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
    let bad = |why: String| ModelError::Config(format!("node {name:?}: {why}"));
    let want = |k: usize| -> Result<()> {
        if ins.len() == k {
            Ok(())
        } else {
            Err(bad(format!("takes {k} input(s), got {}", ins.len())))
        }
    };
    match *op {
        Op::Input => Err(bad("only node 0 may be an input".into())),
        Op::Conv2d { in_channels, out_channels, kernel, stride, padding, dilation, groups, .. } => {
            want(1)?;
            let s = ins[0];
            if s.c != in_channels {
                return Err(bad(format!("expects {in_channels} channels, input has {}", s.c)));
            }
            if kernel == 0 || stride == 0 || out_channels == 0 || dilation == 0 || groups == 0 {
                return Err(bad("kernel, stride, dilation, groups and out_channels must be positive".into()));
            }
            if in_channels % groups != 0 || out_channels % groups != 0 {
                return Err(bad(format!("{groups} groups do not divide {in_channels} input and {out_channels} output channels")));
            }
            let span = dilation * (kernel - 1) + 1;
            if s.h + 2 * padding < span || s.w + 2 * padding < span {
                return Err(bad("kernel larger than padded input".into()));
            }
            Ok(Shape::new(out_channels, (s.h + 2 * padding - span) / stride + 1, (s.w + 2 * padding - span) / stride + 1))
        }
        Op::BatchNorm { channels, eps } => {
            want(1)?;
            if ins[0].c != channels {
                return Err(bad(format!("expects {channels} channels, input has {}", ins[0].c)));
            }
            if !(eps > 0.0 && eps.is_finite()) {
                return Err(bad(format!("eps {eps} must be positive")));
            }
            Ok(ins[0])
        }
        Op::Relu => {
            want(1)?;
            Ok(ins[0])
        }
        Op::Add => {
            want(2)?;
            if ins[0] != ins[1] {
                return Err(bad(format!("adds shapes {:?} and {:?}", ins[0], ins[1])));
            }
            Ok(ins[0])
        }
        Op::ShortcutA { stride, pad_channels } => {
            want(1)?;
            if stride == 0 {
                return Err(bad("stride must be positive".into()));
            }
            let s = ins[0];
            Ok(Shape::new(s.c + 2 * pad_channels, s.h.div_ceil(stride), s.w.div_ceil(stride)))
        }
        Op::AvgPool { kernel, stride } => {
            want(1)?;
            let s = ins[0];
            if kernel == 0 || stride == 0 || s.h < kernel || s.w < kernel {
                return Err(bad("bad pooling window".into()));
            }
            Ok(Shape::new(s.c, (s.h - kernel) / stride + 1, (s.w - kernel) / stride + 1))
        }
        Op::GlobalAvgPool => {
            want(1)?;
            Ok(Shape::new(ins[0].c, 1, 1))
        }
        Op::MaxPool { kernel, stride, padding } => {
            want(1)?;
            let s = ins[0];
            if kernel == 0 || stride == 0 || s.h + 2 * padding < kernel || s.w + 2 * padding < kernel {
                return Err(bad("bad pooling window".into()));
            }
            if padding >= kernel {
                return Err(bad(format!("padding {padding} leaves windows with no input (kernel {kernel})")));
            }
            Ok(Shape::new(s.c, (s.h + 2 * padding - kernel) / stride + 1, (s.w + 2 * padding - kernel) / stride + 1))
        }
        Op::Concat => {
            if ins.is_empty() {
                return Err(bad("concatenates no inputs".into()));
            }
            if let Some(o) = ins.iter().find(|o| (o.h, o.w) != (ins[0].h, ins[0].w)) {
                return Err(bad(format!("concatenates planes of {}x{} and {}x{}", ins[0].h, ins[0].w, o.h, o.w)));
            }
            Ok(Shape::new(ins.iter().map(|s| s.c).sum(), ins[0].h, ins[0].w))
        }
        Op::Pad { channels_before, channels_after, top, bottom, left, right } => {
            want(1)?;
            let s = ins[0];
            Ok(Shape::new(s.c + channels_before + channels_after, s.h + top + bottom, s.w + left + right))
        }
        Op::Subsample { stride } => {
            want(1)?;
            if stride == 0 {
                return Err(bad("stride must be positive".into()));
            }
            Ok(Shape::new(ins[0].c, ins[0].h.div_ceil(stride), ins[0].w.div_ceil(stride)))
        }
        Op::Affine { channels } => {
            want(1)?;
            if ins[0].c != channels {
                return Err(bad(format!("expects {channels} channels, input has {}", ins[0].c)));
            }
            Ok(ins[0])
        }
        Op::Linear { in_features, out_features, .. } => {
            want(1)?;
            if ins[0].len() != in_features {
                return Err(bad(format!("expects {in_features} features, input has {}", ins[0].len())));
            }
            Ok(Shape::new(out_features, 1, 1))
        }
    }
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
        self.push(name, Op::Conv2d { in_channels, out_channels: out, kernel, stride, padding, bias, dilation: 1, groups: 1 }, &[x])
    }

    /// Append a batch norm over the channels of `x`.
    pub fn batch_norm(&mut self, name: &str, x: ValueId, eps: f64) -> Result<ValueId> {
        let channels = self.shape(x).c;
        self.push(name, Op::BatchNorm { channels, eps }, &[x])
    }

    /// Append a ReLU; `name` is its site name.
    pub fn relu(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        self.push(name, Op::Relu, &[x])
    }

    /// Append a fully connected layer of `out` features over the flattened `x`.
    pub fn linear(&mut self, name: &str, x: ValueId, out: usize, bias: bool) -> Result<ValueId> {
        let in_features = self.shape(x).len();
        self.push(name, Op::Linear { in_features, out_features: out, bias }, &[x])
    }

    /// Node `v` (panics if `v` is not a node yet).
    pub fn node(&self, v: ValueId) -> &Node {
        &self.nodes[v]
    }

    /// Give the convolution or linear layer `v` a bias parameter (an importer
    /// folding a following constant add into it); other ops are left as they are.
    pub fn set_bias(&mut self, v: ValueId) {
        if let Op::Conv2d { bias, .. } | Op::Linear { bias, .. } = &mut self.nodes[v].op {
            *bias = true;
        }
    }

    /// Finish with `output` as the logits.
    pub fn finish(self, output: ValueId) -> Result<Network> {
        let net = Network { nodes: self.nodes, output };
        net.validate()?;
        Ok(net)
    }
}
