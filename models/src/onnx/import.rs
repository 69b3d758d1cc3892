//! From an ONNX graph (as `torch.onnx.export` writes it, TorchScript or
//! dynamo exporter, opset 13 to 20) to a [`Network`] and its [`Params`].
//!
//! The graph is walked once, in its (topological) node order. Each ONNX value
//! is either a value of the network (one image's `c x h x w` activation), a
//! constant (an initializer, a `Constant` node, or anything computed from
//! constants only: the exporters' shape arithmetic), or a partial pattern
//! waiting for its next node (a row-only `Slice`). Operators map onto the
//! network's ops; constants around them fold in (a `Gemm`'s bias, a `MatMul`
//! followed by `Add`, per-channel `Sub`/`Mul`/`Div`/`Add` into an
//! [`Op::Affine`], `Sub`/`Div` right after the input into the card's input
//! normalisation). Anything else fails with the node's name and operator.

use std::collections::{BTreeMap, HashMap};

use super::proto::{Dim, ModelProto, NodeProto, TensorProto};
use crate::card::InputSpec;
use crate::error::{ModelError, Result};
use crate::model::Model;
use crate::network::{Network, NetworkBuilder, Op, Shape, ValueId};
use crate::ops;
use crate::tensor::{Params, Tensor};

/// The ONNX operators the importer maps (the others fail by name).
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Relu",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Concat",
    "Flatten",
    "Reshape",
    "Gemm",
    "MatMul",
    "Identity",
    "Dropout",
    "Pad",
    "Slice",
    "Constant",
    "ConstantOfShape",
    "Shape",
    "Gather",
    "Unsqueeze",
    "Transpose",
    "Cast",
];

/// An imported network: the model (architecture and parameters with
/// PyTorch-style names `<node>.<param>`, checked against each other) and the
/// input normalisation, which absorbs the graph's own leading `Sub`/`Div` by
/// constants.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The model (batch norms not folded yet: loading a card folds them).
    pub model: Model,
    /// The card's input normalisation: `input` given to [`import`] composed
    /// with the graph's leading affine constants.
    pub input: InputSpec,
}

/// A constant: dims and values (integers are exact in f64 up to 2^53; larger
/// ones only serve as `Slice` "to the end" markers and stay saturated).
#[derive(Clone, Debug)]
struct Const {
    dims: Vec<usize>,
    data: Vec<f64>,
}

impl Const {
    fn scalar(v: f64) -> Const {
        Const { dims: vec![], data: vec![v] }
    }
    fn ints(v: &[i64]) -> Const {
        Const { dims: vec![v.len()], data: v.iter().map(|&x| x as f64).collect() }
    }
    fn as_ints(&self) -> Vec<i64> {
        self.data
            .iter()
            .map(|&x| {
                if x >= 9.2e18 {
                    i64::MAX
                } else if x <= -9.2e18 {
                    i64::MIN
                } else {
                    x as i64
                }
            })
            .collect()
    }
}

/// What an ONNX value name stands for.
#[derive(Clone, Debug)]
enum Val {
    /// A network value.
    Node(ValueId),
    /// A constant.
    Const(Const),
    /// A shape vector in which `None` is the (symbolic) batch size.
    Shape(Vec<Option<i64>>),
    /// A network value sliced `::stride` along its rows only: the columns' slice comes next.
    RowSliced(ValueId, usize),
}

/// The per-channel affine constants the input has been through, before any
/// other op: the card's normalisation absorbs them.
struct InputAffine {
    scale: Vec<f64>,
    shift: Vec<f64>,
}

struct Importer<'a> {
    b: NetworkBuilder,
    params: Params,
    vals: HashMap<&'a str, Val>,
    /// How many nodes read each ONNX value (graph outputs count as a reader).
    readers: HashMap<&'a str, usize>,
    names: BTreeMap<String, usize>,
    /// Affine constants folded into the input so far.
    input_affine: InputAffine,
    /// Whether more may fold: nothing but those constants has read the input yet.
    input_open: bool,
    /// Network values known under a second ONNX name (Identity, Flatten, ...):
    /// their readers are not counted by name, so nothing folds into them.
    aliased: std::collections::HashSet<ValueId>,
    /// The ONNX name each network value is read under now: the name it was
    /// made as ([`Importer::push`]), or the last node folded into it.
    value_names: HashMap<ValueId, &'a str>,
    /// Constant elements the import may still create (folded constants are
    /// copies): a file cannot make the import allocate far more than itself.
    budget: usize,
}

fn err(node: &NodeProto, why: impl std::fmt::Display) -> ModelError {
    ModelError::Config(format!("ONNX node {:?} ({}): {why}", node.name, node.op_type))
}

/// Import `model` (decoded with [`super::proto::decode_model`]). `input` is
/// the normalisation that turns a client's pixels into the graph's input
/// (`(p / 255 - mean) / std` per channel; mean 0 and std 1 give the
/// `pixel / 255` that torchvision's `ToTensor` makes).
pub fn import(model: &ModelProto, input: &InputSpec) -> Result<Imported> {
    let g = &model.graph;
    let init: HashMap<&str, &TensorProto> = g.initializers.iter().map(|t| (t.name.as_str(), t)).collect();
    let real_inputs: Vec<_> = g.inputs.iter().filter(|v| !init.contains_key(v.name.as_str())).collect();
    let [graph_input] = real_inputs[..] else {
        return Err(ModelError::Config(format!(
            "the graph has {} inputs besides its weights; one image tensor is supported",
            real_inputs.len()
        )));
    };
    let dims: Vec<Option<usize>> = graph_input
        .dims
        .iter()
        .map(|d| match d {
            Dim::Value(v) if *v > 0 => Some(*v as usize),
            _ => None,
        })
        .collect();
    let shape = match dims[..] {
        [_, Some(c), Some(h), Some(w)] => Shape::new(c, h, w),
        _ => {
            return Err(ModelError::Config(format!(
                "the graph input {:?} has shape {:?}: [batch, channels, height, width] with fixed channels, height and width is supported",
                graph_input.name, graph_input.dims
            )))
        }
    };
    crate::limits::check_shape("input", shape)?;
    if input.mean.len() != shape.c || input.std.len() != shape.c {
        return Err(ModelError::Config(format!(
            "the input normalisation gives {} means and {} stds for {} channels",
            input.mean.len(),
            input.std.len(),
            shape.c
        )));
    }
    let [graph_output] = &g.outputs[..] else {
        return Err(ModelError::Config(format!("the graph has {} outputs; one (the logits) is supported", g.outputs.len())));
    };
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for n in &g.nodes {
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            *readers.entry(i.as_str()).or_default() += 1;
        }
    }
    *readers.entry(graph_output.name.as_str()).or_default() += 1;
    let mut im = Importer {
        b: NetworkBuilder::new(shape),
        params: Params::new(),
        vals: HashMap::new(),
        readers,
        names: BTreeMap::new(),
        input_affine: InputAffine { scale: vec![1.0; shape.c], shift: vec![0.0; shape.c] },
        input_open: true,
        aliased: Default::default(),
        value_names: HashMap::new(),
        budget: 8 * g.initializers.iter().map(|t| t.element_count().unwrap_or(0)).sum::<usize>() + (1 << 24),
    };
    for (name, t) in &init {
        let data = values(t).map_err(|e| ModelError::Config(format!("initializer {name:?}: {e}")))?;
        im.vals.insert(name, Val::Const(Const { dims: dims_of(&t.dims, name)?, data }));
    }
    im.vals.insert(graph_input.name.as_str(), Val::Node(0));
    for n in &g.nodes {
        im.node(n)?;
    }
    let out = match im.vals.get(graph_output.name.as_str()) {
        Some(Val::Node(v)) => *v,
        _ => return Err(ModelError::Config(format!("the graph output {:?} is not computed from the input", graph_output.name))),
    };
    let input = compose_input(input, &im.input_affine)?;
    let network = im.b.finish(out)?;
    let network = fuse_shortcuts(network);
    // Parameters of nodes the graph computes but never uses are dropped with them.
    let wanted: std::collections::BTreeSet<String> = network.param_specs().into_iter().map(|p| p.name).collect();
    let params: Params = im.params.into_iter().filter(|(k, _)| wanted.contains(k)).collect();
    Ok(Imported { model: Model::new(network, params)?, input })
}

/// The card's `(p/255 - m)/s` followed by `x * a + b` is `(p/255 - m')/s'`
/// with `s' = s / a` and `m' = m - b s / a` (per channel; `a` must be positive).
fn compose_input(input: &InputSpec, a: &InputAffine) -> Result<InputSpec> {
    let mut out = input.clone();
    for c in 0..input.mean.len() {
        if a.scale[c] <= 0.0 || !a.scale[c].is_finite() {
            return Err(ModelError::Config(format!(
                "the graph scales input channel {c} by {}: only positive scales fold into the input normalisation",
                a.scale[c]
            )));
        }
        out.std[c] = input.std[c] / a.scale[c];
        out.mean[c] = input.mean[c] - a.shift[c] * input.std[c] / a.scale[c];
    }
    Ok(out)
}

/// A tensor's values as f64, whether stored as floats or integers.
fn values(t: &TensorProto) -> std::result::Result<Vec<f64>, super::proto::OnnxError> {
    match t.to_f64() {
        Ok(v) => Ok(v),
        Err(e) => t.to_i64().map(|v| v.iter().map(|&x| x as f64).collect()).map_err(|_| e),
    }
}

fn dims_of(dims: &[i64], name: &str) -> Result<Vec<usize>> {
    dims.iter().map(|&d| usize::try_from(d).map_err(|_| ModelError::Config(format!("tensor {name:?} has dimension {d}")))).collect()
}

/// `Subsample(s)` read only by a channel `Pad` of equal sides and no spatial
/// padding is the option-A shortcut of the CIFAR ResNets, which the secure
/// executor runs as one step.
fn fuse_shortcuts(net: Network) -> Network {
    let mut readers = vec![0usize; net.nodes.len()];
    for n in &net.nodes {
        for &j in &n.inputs {
            readers[j] += 1;
        }
    }
    let mut nodes = net.nodes.clone();
    let mut fused = false;
    for i in 0..nodes.len() {
        let Op::Pad(ops::Pad { channels_before, channels_after, top: 0, bottom: 0, left: 0, right: 0 }) = nodes[i].op else { continue };
        let j = nodes[i].inputs[0];
        if let (Op::Subsample(sub), 1) = (&nodes[j].op, readers[j]) {
            if channels_before == channels_after {
                let stride = sub.stride;
                nodes[i].op = Op::ShortcutA(ops::ShortcutA { stride, pad_channels: channels_before });
                nodes[i].inputs = nodes[j].inputs.clone();
                fused = true;
            }
        }
    }
    if !fused {
        return net;
    }
    // Keep what the output still depends on (the subsample nodes the fusion
    // bypassed are gone), renumbering the rest: inputs point backwards, so one
    // pass from the output down finds them.
    let mut used = vec![false; nodes.len()];
    used[0] = true;
    used[net.output] = true;
    for i in (0..nodes.len()).rev() {
        if used[i] {
            for &j in &nodes[i].inputs {
                used[j] = true;
            }
        }
    }
    let mut new_id = vec![usize::MAX; nodes.len()];
    let mut kept = Vec::new();
    for (i, n) in nodes.into_iter().enumerate() {
        if used[i] {
            new_id[i] = kept.len();
            kept.push(n);
        }
    }
    for n in &mut kept {
        for j in &mut n.inputs {
            *j = new_id[*j];
        }
    }
    Network { nodes: kept, output: new_id[net.output] }
}

impl<'a> Importer<'a> {
    fn val(&self, node: &NodeProto, i: usize) -> Result<&Val> {
        let name = node.inputs.get(i).filter(|s| !s.is_empty()).ok_or_else(|| err(node, format!("input {i} is missing")))?;
        self.vals.get(name.as_str()).ok_or_else(|| err(node, format!("input {name:?} is not computed before this node")))
    }

    fn node_in(&mut self, node: &NodeProto, i: usize) -> Result<ValueId> {
        match self.val(node, i)?.clone() {
            Val::Node(v) => {
                if v == 0 {
                    // The input is read by something else than its affine constants: they are final.
                    self.input_open = false;
                }
                Ok(v)
            }
            Val::RowSliced(..) => Err(err(node, "reads a value sliced along its rows only (x[:, :, ::s] without the columns)")),
            _ => Err(err(node, format!("input {i} must be computed from the image, not a constant"))),
        }
    }

    fn konst(&self, node: &NodeProto, i: usize) -> Result<Const> {
        match self.val(node, i)? {
            Val::Const(c) => Ok(c.clone()),
            Val::Shape(s) if s.iter().all(Option::is_some) => Ok(Const::ints(&s.iter().map(|v| v.unwrap_or(0)).collect::<Vec<_>>())),
            _ => Err(err(node, format!("input {i} must be a constant"))),
        }
    }

    fn opt_konst(&self, node: &NodeProto, i: usize) -> Result<Option<Const>> {
        if node.inputs.get(i).is_none_or(|s| s.is_empty()) {
            return Ok(None);
        }
        self.konst(node, i).map(Some)
    }

    /// A second name for `v`: see [`Importer::aliased`].
    fn alias(&mut self, v: &Val) {
        if let Val::Node(id) = v {
            self.aliased.insert(*id);
            if *id == 0 {
                self.input_open = false;
            }
        }
    }

    fn set(&mut self, node: &'a NodeProto, v: Val) -> Result<()> {
        if let Val::Const(c) = &v {
            self.budget = self
                .budget
                .checked_sub(c.data.len())
                .ok_or_else(|| err(node, "the graph's constants grow far beyond the file (constant folding budget spent)"))?;
        }
        let out = node.outputs.first().ok_or_else(|| err(node, "has no output"))?;
        self.vals.insert(out.as_str(), v);
        Ok(())
    }

    /// A unique node name from the weight's name (`layer1.0.conv1.weight` ->
    /// `layer1.0.conv1`, so parameters keep their PyTorch names) or from the
    /// ONNX node's scope (`/layer1/layer1.0/relu/Relu` -> `layer1.0.relu`).
    fn name_for(&mut self, node: &NodeProto, weight: Option<&str>) -> String {
        let base = weight
            .and_then(|w| w.strip_suffix(".weight"))
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .map(str::to_string)
            .unwrap_or_else(|| {
                let parts: Vec<&str> = node.name.split('/').filter(|p| !p.is_empty()).collect();
                let scope = &parts[..parts.len().saturating_sub(1)];
                let from = scope.iter().rposition(|p| p.contains('.')).unwrap_or(0);
                let joined = scope[from.min(scope.len())..].join(".");
                if joined.is_empty() {
                    let s: String =
                        node.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '_' }).collect();
                    if s.trim_matches('_').is_empty() {
                        node.op_type.to_ascii_lowercase()
                    } else {
                        s.trim_matches('_').to_string()
                    }
                } else {
                    joined
                }
            });
        let base: String = base.chars().take(200).collect();
        let mut name = base.clone();
        let mut k = 0;
        while self.names.contains_key(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        self.names.insert(name.clone(), 1);
        name
    }

    fn push(&mut self, node: &'a NodeProto, name: String, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        let v = self.b.push(name, op, inputs).map_err(|e| err(node, e))?;
        if let Some(out) = node.outputs.first() {
            self.value_names.insert(v, out.as_str());
        }
        self.set(node, Val::Node(v))?;
        Ok(v)
    }

    fn param(&mut self, node: &str, p: &str, dims: Vec<usize>, data: Vec<f64>) {
        self.params.insert(format!("{node}.{p}"), Tensor::new(dims, data));
    }

    fn node(&mut self, n: &'a NodeProto) -> Result<()> {
        let domain_ok = n.domain.is_empty() || n.domain == "ai.onnx";
        if !domain_ok || !SUPPORTED_OPS.contains(&n.op_type.as_str()) {
            return Err(err(
                n,
                format!(
                    "unsupported operator{}; supported: {}",
                    if domain_ok { String::new() } else { format!(" (domain {:?})", n.domain) },
                    SUPPORTED_OPS.join(", ")
                ),
            ));
        }
        // Operators on constants only: fold.
        let all_const = !n.inputs.is_empty()
            && n.inputs
                .iter()
                .filter(|i| !i.is_empty())
                .all(|i| matches!(self.vals.get(i.as_str()), Some(Val::Const(_)) | Some(Val::Shape(_))));
        match n.op_type.as_str() {
            "Constant" => {
                let c = if let Some(t) = n.attr_tensor("value").map_err(|e| err(n, e))? {
                    Const { dims: dims_of(&t.dims, &n.name)?, data: values(t).map_err(|e| err(n, e))? }
                } else if let Some(f) = n.attr_float("value_float").map_err(|e| err(n, e))? {
                    Const::scalar(f as f64)
                } else if let Some(i) = n.attr_int("value_int").map_err(|e| err(n, e))? {
                    Const::scalar(i as f64)
                } else if let Some(v) = n.attr_ints("value_ints").map_err(|e| err(n, e))? {
                    Const::ints(v)
                } else if let Some(v) = n.attr_floats("value_floats").map_err(|e| err(n, e))? {
                    Const { dims: vec![v.len()], data: v.iter().map(|&x| x as f64).collect() }
                } else {
                    return Err(err(n, "a Constant without a value, value_float, value_int, value_ints or value_floats"));
                };
                self.set(n, Val::Const(c))
            }
            // Constants are f64 here, whatever their ONNX type.
            "Identity" | "Dropout" | "Cast" => {
                let v = self.val(n, 0)?.clone();
                self.alias(&v);
                self.set(n, v)
            }
            "Shape" => match self.val(n, 0)?.clone() {
                Val::Node(v) => {
                    let s = self.b.shape(v);
                    self.set(n, Val::Shape(vec![None, Some(s.c as i64), Some(s.h as i64), Some(s.w as i64)]))
                }
                Val::Const(c) => self.set(n, Val::Const(Const::ints(&c.dims.iter().map(|&d| d as i64).collect::<Vec<_>>()))),
                _ => Err(err(n, "the shape of this value is not known")),
            },
            "Gather" => {
                let axis = n.attr_int("axis").map_err(|e| err(n, e))?.unwrap_or(0);
                let idx = self.konst(n, 1)?;
                match self.val(n, 0)?.clone() {
                    Val::Shape(s) if axis == 0 => {
                        let pick = |i: i64| -> Result<Option<i64>> {
                            let i = if i < 0 { i + s.len() as i64 } else { i };
                            s.get(usize::try_from(i).map_err(|_| err(n, "index out of range"))?)
                                .copied()
                                .ok_or_else(|| err(n, "index out of range"))
                        };
                        let picked: Vec<Option<i64>> = idx.as_ints().into_iter().map(pick).collect::<Result<_>>()?;
                        // A scalar index stays a one-element shape, for the Unsqueeze that follows.
                        self.set(n, Val::Shape(picked))
                    }
                    Val::Const(c) if axis == 0 && c.dims.len() == 1 => {
                        let out: Vec<f64> = idx
                            .as_ints()
                            .iter()
                            .map(|&i| {
                                c.data
                                    .get(if i < 0 { (i + c.data.len() as i64) as usize } else { i as usize })
                                    .copied()
                                    .ok_or_else(|| err(n, "index out of range"))
                            })
                            .collect::<Result<_>>()?;
                        self.set(n, Val::Const(Const { dims: idx.dims.clone(), data: out }))
                    }
                    _ => Err(err(n, "Gather is supported on shapes and 1-D constants along axis 0")),
                }
            }
            "Unsqueeze" => match self.val(n, 0)?.clone() {
                Val::Shape(s) => self.set(n, Val::Shape(s)),
                Val::Const(c) => {
                    self.set(n, Val::Const(Const { dims: if c.dims.is_empty() { vec![1] } else { c.dims.clone() }, data: c.data }))
                }
                _ => Err(err(n, "Unsqueeze is supported on constants and shapes only")),
            },
            "ConstantOfShape" => {
                let shape = self.konst(n, 0)?.as_ints();
                let value = match n.attr_tensor("value").map_err(|e| err(n, e))? {
                    Some(t) => values(t).map_err(|e| err(n, e))?.first().copied().unwrap_or(0.0),
                    None => 0.0,
                };
                let dims: Vec<usize> =
                    shape.iter().map(|&d| usize::try_from(d).map_err(|_| err(n, "negative dimension"))).collect::<Result<_>>()?;
                let len = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
                if len > 1 << 20 {
                    return Err(err(n, "constant too large"));
                }
                self.set(n, Val::Const(Const { dims, data: vec![value; len] }))
            }
            "Concat" if all_const => {
                let mut shape: Vec<Option<i64>> = Vec::new();
                let mut data = Vec::new();
                let mut any_shape = false;
                for i in 0..n.inputs.len() {
                    match self.val(n, i)?.clone() {
                        Val::Shape(s) => {
                            any_shape = true;
                            shape.extend(s);
                        }
                        Val::Const(c) => {
                            if c.dims.len() > 1 {
                                return Err(err(n, "concatenation of constants is supported for 1-D constants"));
                            }
                            shape.extend(c.as_ints().into_iter().map(Some));
                            data.extend(c.data);
                        }
                        _ => unreachable!("all inputs are constants"),
                    }
                }
                if any_shape {
                    self.set(n, Val::Shape(shape))
                } else {
                    let len = data.len();
                    self.set(n, Val::Const(Const { dims: vec![len], data }))
                }
            }
            "Reshape" if all_const => {
                let c = self.konst(n, 0)?;
                let shape = self.konst(n, 1)?.as_ints();
                let total = c.data.len();
                let known = shape
                    .iter()
                    .filter(|&&d| d > 0)
                    .try_fold(1usize, |a, &d| a.checked_mul(usize::try_from(d).ok()?))
                    .ok_or_else(|| err(n, "reshape target too large"))?
                    .max(1);
                let dims: Vec<usize> = shape
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| match d {
                        -1 => total / known,
                        0 => c.dims.get(i).copied().unwrap_or(0),
                        d => d as usize,
                    })
                    .collect();
                if dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(total) {
                    return Err(err(n, "reshape of a constant to a different size"));
                }
                self.set(n, Val::Const(Const { dims, data: c.data }))
            }
            "Transpose" if all_const => {
                let c = self.konst(n, 0)?;
                let perm: Vec<usize> = match n.attr_ints("perm").map_err(|e| err(n, e))? {
                    Some(p) => p.iter().map(|&x| x as usize).collect(),
                    None => (0..c.dims.len()).rev().collect(),
                };
                let t = transpose(&c).filter(|_| perm == [1, 0]);
                let t = t.ok_or_else(|| err(n, "transposition of constants is supported for 2-D constants"))?;
                self.set(n, Val::Const(t))
            }
            "Slice" => self.slice(n, all_const),
            "Conv" => self.conv(n),
            "BatchNormalization" => {
                let x = self.node_in(n, 0)?;
                let (scale, bias, mean, var) = (self.konst(n, 1)?, self.konst(n, 2)?, self.konst(n, 3)?, self.konst(n, 4)?);
                let eps = n.attr_float("epsilon").map_err(|e| err(n, e))?.unwrap_or(1e-5) as f64;
                let channels = self.b.shape(x).c;
                if [&scale, &bias, &mean, &var].iter().any(|c| c.data.len() != channels) {
                    return Err(err(n, format!("parameters must have {channels} values")));
                }
                let name = self.name_for(n, n.inputs.get(1).map(String::as_str));
                for (p, c) in [("weight", scale), ("bias", bias), ("running_mean", mean), ("running_var", var)] {
                    self.param(&name, p, vec![channels], c.data);
                }
                self.push(n, name, Op::BatchNorm(ops::BatchNorm { channels, eps }), &[x]).map(|_| ())
            }
            "Relu" => {
                let x = self.node_in(n, 0)?;
                let name = self.name_for(n, None);
                self.push(n, name, Op::Relu, &[x]).map(|_| ())
            }
            "MaxPool" | "AveragePool" => self.pool(n),
            "GlobalAveragePool" => {
                let x = self.node_in(n, 0)?;
                let name = self.name_for(n, None);
                self.push(n, name, Op::GlobalAvgPool, &[x]).map(|_| ())
            }
            "ReduceMean" => {
                let x = self.node_in(n, 0)?;
                let axes = match n.attr_ints("axes").map_err(|e| err(n, e))? {
                    Some(a) => a.to_vec(),
                    None => self.opt_konst(n, 1)?.map(|c| c.as_ints()).unwrap_or_default(),
                };
                let mut axes: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + 4 } else { a }).collect();
                axes.sort();
                if axes != [2, 3] {
                    return Err(err(
                        n,
                        format!("ReduceMean is supported over the spatial axes [2, 3] (a global average pool), not {axes:?}"),
                    ));
                }
                let name = self.name_for(n, None);
                self.push(n, name, Op::GlobalAvgPool, &[x]).map(|_| ())
            }
            "Flatten" => {
                let axis = n.attr_int("axis").map_err(|e| err(n, e))?.unwrap_or(1);
                if axis != 1 {
                    return Err(err(n, format!("Flatten is supported from axis 1 (keeping the batch), not {axis}")));
                }
                let x = self.node_in(n, 0)?;
                self.alias(&Val::Node(x));
                self.set(n, Val::Node(x))
            }
            "Reshape" => {
                let x = self.node_in(n, 0)?;
                let len = self.b.shape(x).len() as i64;
                let target: Vec<Option<i64>> = match self.val(n, 1)?.clone() {
                    Val::Shape(s) => s,
                    Val::Const(c) => c.as_ints().into_iter().map(Some).collect(),
                    _ => return Err(err(n, "the target shape must be constant")),
                };
                let flat = match target[..] {
                    [first, Some(f)] => (f == -1 || f == len) && matches!(first, None | Some(-1) | Some(0)) || first == Some(1) && f == len,
                    _ => false,
                };
                if !flat {
                    return Err(err(n, format!("Reshape is supported to [batch, features] (a flatten), not {target:?}")));
                }
                self.alias(&Val::Node(x));
                self.set(n, Val::Node(x))
            }
            "Gemm" => {
                let x = self.node_in(n, 0)?;
                let w = self.konst(n, 1)?;
                let c = self.opt_konst(n, 2)?;
                let alpha = n.attr_float("alpha").map_err(|e| err(n, e))?.unwrap_or(1.0) as f64;
                let beta = n.attr_float("beta").map_err(|e| err(n, e))?.unwrap_or(1.0) as f64;
                if n.attr_int("transA").map_err(|e| err(n, e))?.unwrap_or(0) != 0 {
                    return Err(err(n, "transA = 1 is not supported"));
                }
                let trans_b = n.attr_int("transB").map_err(|e| err(n, e))?.unwrap_or(0) != 0;
                let weight = if trans_b { w } else { transpose(&w).ok_or_else(|| err(n, "the weight must be 2-D"))? };
                let bias = c.map(|c| Const { dims: c.dims, data: c.data.iter().map(|v| v * beta).collect() });
                self.linear(n, x, weight, alpha, bias)
            }
            "MatMul" => {
                let x = self.node_in(n, 0)?;
                let w = self.konst(n, 1)?;
                let weight = transpose(&w).ok_or_else(|| err(n, "the weight must be a 2-D constant"))?;
                self.linear(n, x, weight, 1.0, None)
            }
            "Add" | "Sub" | "Mul" | "Div" => self.arith(n),
            "Concat" => {
                let axis = n.attr_int("axis").map_err(|e| err(n, e))?.unwrap_or(0);
                if axis != 1 && axis != -3 {
                    return Err(err(n, format!("Concat of image values is supported along channels (axis 1), not {axis}")));
                }
                let xs: Vec<ValueId> = (0..n.inputs.len()).map(|i| self.node_in(n, i)).collect::<Result<_>>()?;
                let name = self.name_for(n, None);
                self.push(n, name, Op::Concat, &xs).map(|_| ())
            }
            "Pad" => {
                let x = self.node_in(n, 0)?;
                let mode = n.attr_string("mode").map_err(|e| err(n, e))?.unwrap_or("constant");
                if mode != "constant" {
                    return Err(err(n, format!("only zero (constant) padding is supported, not {mode:?}")));
                }
                let pads = match n.attr_ints("pads").map_err(|e| err(n, e))? {
                    Some(p) => p.to_vec(),
                    None => self.konst(n, 1)?.as_ints(),
                };
                if let Some(v) = self.opt_konst(n, 2)? {
                    if v.data.iter().any(|&x| x != 0.0) {
                        return Err(err(n, "only zero padding is supported"));
                    }
                }
                if self.opt_konst(n, 3)?.is_some() {
                    return Err(err(n, "padding selected axes (the axes input) is not supported"));
                }
                let [nb, cb, t, l, ne, ca, bo, r] = pads[..] else {
                    return Err(err(n, format!("expects 8 pads for a 4-D input, got {}", pads.len())));
                };
                if nb != 0 || ne != 0 || [cb, t, l, ca, bo, r].iter().any(|&p| p < 0) {
                    return Err(err(n, "padding the batch, or negative padding (cropping), is not supported"));
                }
                let u = |v: i64| v as usize;
                let op =
                    Op::Pad(ops::Pad { channels_before: u(cb), channels_after: u(ca), top: u(t), bottom: u(bo), left: u(l), right: u(r) });
                let name = self.name_for(n, None);
                self.push(n, name, op, &[x]).map(|_| ())
            }
            other => Err(err(n, format!("{other} on these inputs is not supported"))),
        }
    }

    fn conv(&mut self, n: &'a NodeProto) -> Result<()> {
        let x = self.node_in(n, 0)?;
        let w = self.konst(n, 1)?;
        let bias = self.opt_konst(n, 2)?;
        let [o, ig, kh, kw] = w.dims[..] else { return Err(err(n, "the weight must be a 4-D constant")) };
        if kh != kw {
            return Err(err(n, format!("kernel {kh}x{kw}: square kernels are supported")));
        }
        let same = |a: &str, default: i64| -> Result<i64> {
            match n.attr_ints(a).map_err(|e| err(n, e))? {
                None => Ok(default),
                Some(v) if !v.is_empty() && v.iter().all(|&x| x == v[0]) => Ok(v[0]),
                Some(v) => Err(err(n, format!("{a} {v:?}: equal values in both directions are supported"))),
            }
        };
        let (stride, dilation) = (same("strides", 1)?, same("dilations", 1)?);
        let groups = n.attr_int("group").map_err(|e| err(n, e))?.unwrap_or(1);
        if let Some(a) = n.attr_string("auto_pad").map_err(|e| err(n, e))? {
            if a != "NOTSET" {
                return Err(err(n, format!("auto_pad {a:?} is not supported: export with explicit pads")));
            }
        }
        let pads = n.attr_ints("pads").map_err(|e| err(n, e))?.map(<[i64]>::to_vec).unwrap_or_else(|| vec![0; 4]);
        let [t, l, b, r] = pads[..] else { return Err(err(n, "expects 4 pads")) };
        if stride <= 0 || dilation <= 0 || groups <= 0 || [t, l, b, r].iter().any(|&p| p < 0) {
            return Err(err(n, "strides, dilations and group must be positive and pads non-negative"));
        }
        let mut x = x;
        let padding = if t == l && l == b && b == r {
            t as usize
        } else {
            let name = self.name_for(n, None) + ".pad";
            let op = Op::Pad(ops::Pad {
                channels_before: 0,
                channels_after: 0,
                top: t as usize,
                bottom: b as usize,
                left: l as usize,
                right: r as usize,
            });
            x = self.b.push(name, op, &[x]).map_err(|e| err(n, e))?;
            0
        };
        let in_channels = self.b.shape(x).c;
        let groups = usize::try_from(groups).map_err(|_| err(n, "group out of range"))?;
        if ig.checked_mul(groups) != Some(in_channels) {
            return Err(err(n, format!("weight for {} input channels in {groups} groups, input has {in_channels}", ig * groups)));
        }
        let name = self.name_for(n, n.inputs.get(1).map(String::as_str));
        self.param(&name, "weight", w.dims.clone(), w.data);
        if let Some(bv) = &bias {
            if bv.data.len() != o {
                return Err(err(n, format!("bias has {} values for {o} output channels", bv.data.len())));
            }
            self.param(&name, "bias", vec![o], bv.data.clone());
        }
        let op = Op::Conv2d(ops::Conv2d {
            in_channels,
            out_channels: o,
            kernel: kh,
            stride: stride as usize,
            padding,
            bias: bias.is_some(),
            dilation: dilation as usize,
            groups,
        });
        self.push(n, name, op, &[x]).map(|_| ())
    }

    fn pool(&mut self, n: &'a NodeProto) -> Result<()> {
        let x = self.node_in(n, 0)?;
        let k = n.attr_ints("kernel_shape").map_err(|e| err(n, e))?.ok_or_else(|| err(n, "kernel_shape is missing"))?.to_vec();
        let s = n.attr_ints("strides").map_err(|e| err(n, e))?.map(<[i64]>::to_vec).unwrap_or_else(|| vec![1, 1]);
        let p = n.attr_ints("pads").map_err(|e| err(n, e))?.map(<[i64]>::to_vec).unwrap_or_else(|| vec![0; 4]);
        let d = n.attr_ints("dilations").map_err(|e| err(n, e))?.map(<[i64]>::to_vec).unwrap_or_else(|| vec![1, 1]);
        let ceil = n.attr_int("ceil_mode").map_err(|e| err(n, e))?.unwrap_or(0);
        let all_same = |v: &[i64]| !v.is_empty() && v.iter().all(|&x| x == v[0]);
        if !(all_same(&k) && all_same(&s) && all_same(&p) && k.len() == 2 && s.len() == 2 && p.len() == 4)
            || d.iter().any(|&x| x != 1)
            || ceil != 0
            || k[0] <= 0
            || s[0] <= 0
            || p[0] < 0
        {
            return Err(err(n, format!("pooling with kernel {k:?}, strides {s:?}, pads {p:?}, dilations {d:?}, ceil_mode {ceil}: square windows, equal strides and pads, no dilation and floor mode are supported")));
        }
        let (kernel, stride, padding) = (k[0] as usize, s[0] as usize, p[0] as usize);
        let op = if n.op_type == "MaxPool" {
            if n.outputs.len() > 1 && !n.outputs[1].is_empty() {
                return Err(err(n, "MaxPool's indices output is not supported"));
            }
            Op::MaxPool(ops::MaxPool { kernel, stride, padding })
        } else {
            if padding != 0 {
                return Err(err(n, "average pooling with padding is not supported"));
            }
            Op::AvgPool(ops::AvgPool { kernel, stride })
        };
        let name = self.name_for(n, None);
        self.push(n, name, op, &[x]).map(|_| ())
    }

    fn linear(&mut self, n: &'a NodeProto, x: ValueId, weight: Const, alpha: f64, bias: Option<Const>) -> Result<()> {
        let [out, inp] = weight.dims[..] else { return Err(err(n, "the weight must be 2-D")) };
        let have = self.b.shape(x).len();
        if inp != have {
            return Err(err(n, format!("weight for {inp} features, input has {have}")));
        }
        let name = self.name_for(n, n.inputs.get(1).map(String::as_str));
        self.param(&name, "weight", vec![out, inp], weight.data.iter().map(|v| v * alpha).collect());
        if let Some(b) = &bias {
            if b.data.len() != out {
                return Err(err(n, format!("bias has {} values for {out} outputs", b.data.len())));
            }
            self.param(&name, "bias", vec![out], b.data.clone());
        }
        self.push(n, name, Op::Linear(ops::Linear { in_features: inp, out_features: out, bias: bias.is_some() }), &[x]).map(|_| ())
    }

    /// Add, Sub, Mul, Div: two image values (Add only: a residual add), or an
    /// image value and a constant broadcast per channel (or per feature, or a
    /// scalar): folded into the previous linear layer's bias, into the input
    /// normalisation, or kept as an [`Op::Affine`].
    fn arith(&mut self, n: &'a NodeProto) -> Result<()> {
        let (a, b) = (self.val(n, 0)?.clone(), self.val(n, 1)?.clone());
        match (a, b) {
            (Val::Node(_), Val::Node(_)) => {
                if n.op_type != "Add" {
                    return Err(err(
                        n,
                        format!("{} of two values computed from the image is not supported (only Add: a residual)", n.op_type),
                    ));
                }
                let (x, y) = (self.node_in(n, 0)?, self.node_in(n, 1)?);
                let name = self.name_for(n, None);
                self.push(n, name, Op::Add, &[x, y]).map(|_| ())
            }
            (Val::Const(c), Val::Const(d)) => {
                let f = match n.op_type.as_str() {
                    "Add" => |a: f64, b: f64| a + b,
                    "Sub" => |a: f64, b: f64| a - b,
                    "Mul" => |a: f64, b: f64| a * b,
                    _ => |a: f64, b: f64| a / b,
                };
                if c.data.len() == d.data.len() {
                    let data = c.data.iter().zip(&d.data).map(|(&a, &b)| f(a, b)).collect();
                    self.set(n, Val::Const(Const { dims: c.dims, data }))
                } else if d.data.len() == 1 {
                    let data = c.data.iter().map(|&a| f(a, d.data[0])).collect();
                    self.set(n, Val::Const(Const { dims: c.dims, data }))
                } else {
                    Err(err(n, "broadcasting between constants of different sizes is not supported"))
                }
            }
            (Val::Node(v), Val::Const(c)) | (Val::Const(c), Val::Node(v)) => {
                let const_first = matches!(self.val(n, 0)?, Val::Const(_));
                let src = n.inputs[usize::from(const_first)].as_str();
                let shape = self.b.shape(v);
                let per = per_channel(&c, shape)
                    .ok_or_else(|| err(n, format!("a constant of shape {:?} does not broadcast per channel over {:?}", c.dims, shape)))?;
                let ones = vec![1.0; shape.c];
                let zeros = vec![0.0; shape.c];
                let (scale, shift) = match (n.op_type.as_str(), const_first) {
                    ("Add", _) => (ones, per),
                    ("Sub", false) => (ones, per.iter().map(|v| -v).collect()),
                    ("Sub", true) => (vec![-1.0; shape.c], per),
                    ("Mul", _) => (per, zeros),
                    ("Div", false) => {
                        if per.contains(&0.0) {
                            return Err(err(n, "division by zero"));
                        }
                        (per.iter().map(|v| 1.0 / v).collect(), zeros)
                    }
                    _ => return Err(err(n, "division of a constant by an image value is not supported")),
                };
                self.affine(n, src, v, scale, shift)
            }
            _ => Err(err(n, "operands of this kind are not supported")),
        }
    }

    /// `x * scale + shift` per channel on network value `v` (the ONNX value
    /// `src`): into the input normalisation when nothing else has read the
    /// input, into the bias of the linear layer that made `v` when this node
    /// alone reads it and it has none, else an [`Op::Affine`].
    fn affine(&mut self, n: &'a NodeProto, src: &str, v: ValueId, scale: Vec<f64>, shift: Vec<f64>) -> Result<()> {
        let only_reader = self.readers.get(src).copied() == Some(1) && !self.aliased.contains(&v);
        if v == 0 && self.input_open && only_reader {
            let a = &mut self.input_affine;
            for c in 0..scale.len() {
                a.scale[c] *= scale[c];
                a.shift[c] = a.shift[c] * scale[c] + shift[c];
            }
            return self.set(n, Val::Node(0));
        }
        if v == 0 {
            self.input_open = false;
        }
        if only_reader && scale.iter().all(|&s| s == 1.0) {
            if let Op::Linear(ops::Linear { out_features: out, bias: false, .. })
            | Op::Conv2d(ops::Conv2d { out_channels: out, bias: false, .. }) = self.b.node(v).op
            {
                if shift.len() == out {
                    let name = self.b.node(v).name.clone();
                    self.param(&name, "bias", vec![out], shift);
                    self.b.set_bias(v);
                    return self.fold_into(n, v);
                }
            }
        }
        if only_reader && self.fold_scale_through_relu(v, &scale, &shift) {
            return self.fold_into(n, v);
        }
        let name = self.name_for(n, None);
        let c = scale.len();
        self.param(&name, "weight", vec![c], scale);
        self.param(&name, "bias", vec![c], shift);
        self.push(n, name, Op::Affine(ops::Affine { channels: c }), &[v]).map(|_| ())
    }

    /// Node `n`, read as the only reader of network value `v`, was folded
    /// into it: `n`'s output is `v` from now on, under `n`'s name, whose
    /// readers are `v`'s readers (the old name's only reader was `n`).
    fn fold_into(&mut self, n: &'a NodeProto, v: ValueId) -> Result<()> {
        if let Some(out) = n.outputs.first() {
            self.value_names.insert(v, out.as_str());
        }
        self.set(n, Val::Node(v))
    }

    /// `relu(x) * s = relu(x * s)` for `s > 0`: a positive per-channel scale
    /// (no shift) after a ReLU moves into the convolution or linear layer that
    /// feeds the ReLU, if nothing else reads that layer. Whether it did.
    fn fold_scale_through_relu(&mut self, v: ValueId, scale: &[f64], shift: &[f64]) -> bool {
        if self.b.node(v).op != Op::Relu || !shift.iter().all(|&s| s == 0.0) || !scale.iter().all(|&s| s > 0.0 && s.is_finite()) {
            return false;
        }
        let u = self.b.node(v).inputs[0];
        let alone = self.value_names.get(&u).is_some_and(|name| self.readers.get(name).copied() == Some(1)) && !self.aliased.contains(&u);
        let out = match self.b.node(u).op {
            Op::Conv2d(c) => c.out_channels,
            Op::Linear(l) => l.out_features,
            _ => return false,
        };
        if !alone || out != scale.len() {
            return false;
        }
        let name = self.b.node(u).name.clone();
        for p in ["weight", "bias"] {
            if let Some(t) = self.params.get_mut(&format!("{name}.{p}")) {
                let per = t.data.len() / out;
                for (row, &s) in t.data.chunks_mut(per).zip(scale) {
                    row.iter_mut().for_each(|x| *x *= s);
                }
            }
        }
        true
    }

    /// Slices: of constants (the exporters' pad arithmetic; 1-D, any step),
    /// or `x[:, :, ::s, ::s]` of an image value (two nodes, rows then columns).
    fn slice(&mut self, n: &'a NodeProto, all_const: bool) -> Result<()> {
        let starts = self.konst(n, 1)?.as_ints();
        let ends = self.konst(n, 2)?.as_ints();
        let axes = self.opt_konst(n, 3)?.map(|c| c.as_ints());
        let steps = self.opt_konst(n, 4)?.map(|c| c.as_ints()).unwrap_or_else(|| vec![1; starts.len()]);
        if starts.len() != 1 || ends.len() != 1 || steps.len() != 1 || axes.as_ref().is_some_and(|a| a.len() != 1) {
            return Err(err(n, "slices along one axis are supported"));
        }
        let (start, end, step) = (starts[0], ends[0], steps[0]);
        let axis = axes.map_or(0, |a| a[0]);
        if all_const {
            // Rows of a constant (axis 0), any step: the exporters' pad arithmetic.
            let c = self.konst(n, 0)?;
            if axis != 0 || step == 0 || c.dims.is_empty() {
                return Err(err(n, "slices of constants are supported along axis 0"));
            }
            let rows = c.dims[0] as i64;
            let row_len: usize = c.dims[1..].iter().product();
            let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
            let norm = |v: i64| if v < 0 { v.saturating_add(rows) } else { v };
            let mut picked = Vec::new();
            if step > 0 {
                let (mut i, e) = (clamp(norm(start), 0, rows), clamp(norm(end), 0, rows));
                while i < e {
                    picked.push(i as usize);
                    let Some(next) = i.checked_add(step) else { break };
                    i = next;
                }
            } else {
                let (mut i, e) = (clamp(norm(start), -1, rows - 1), clamp(norm(end), -1, rows - 1));
                while i > e {
                    picked.push(i as usize);
                    let Some(next) = i.checked_add(step) else { break };
                    i = next;
                }
            }
            let data: Vec<f64> = picked.iter().flat_map(|&r| c.data[r * row_len..(r + 1) * row_len].iter().copied()).collect();
            let mut dims = c.dims.clone();
            dims[0] = picked.len();
            return self.set(n, Val::Const(Const { dims, data }));
        }
        let axis = if axis < 0 { axis + 4 } else { axis };
        let whole = start == 0 && end >= i32::MAX as i64 && step > 0;
        match (self.val(n, 0)?.clone(), axis) {
            (Val::Node(v), 2) if whole => {
                if v == 0 {
                    self.input_open = false;
                }
                self.set(n, Val::RowSliced(v, step as usize))
            }
            (Val::RowSliced(v, s), 3) if whole && step as usize == s => {
                let name = self.name_for(n, None);
                self.push(n, name, Op::Subsample(ops::Subsample { stride: s }), &[v]).map(|_| ())
            }
            _ => Err(err(
                n,
                format!("slice starts {start}, ends {end}, axis {axis}, step {step}: x[:, :, ::s, ::s] (rows, then columns) is supported"),
            )),
        }
    }
}

/// The constant's values per channel of `shape` (scalar, `[c]`, `[c,1,1]`,
/// `[1,c,1,1]`; for flat values, one per feature).
fn per_channel(c: &Const, shape: Shape) -> Option<Vec<f64>> {
    let squeezed: Vec<usize> = c.dims.iter().copied().filter(|&d| d != 1).collect();
    if c.data.len() == 1 {
        return Some(vec![c.data[0]; shape.c]);
    }
    let ok = squeezed.len() == 1 && squeezed[0] == shape.c && c.data.len() == shape.c;
    // The channel axis must be the one that varies: dims [c], [c,1,1] or [1,c,1,1] (or [1,c] for flat values).
    let trailing_ones = c.dims.iter().rev().take_while(|&&d| d == 1).count();
    // ONNX broadcasting aligns trailing axes: a 1-D constant runs along the
    // width, so it is per channel only for a flat value.
    let channel_axis_ok = match c.dims.len() {
        1 => shape.h == 1 && shape.w == 1,
        2 => c.dims[0] == 1 && shape.h == 1 && shape.w == 1,
        3 => trailing_ones == 2,
        4 => c.dims[0] == 1 && trailing_ones == 2,
        _ => false,
    };
    (ok && channel_axis_ok).then(|| c.data.clone())
}

fn transpose(c: &Const) -> Option<Const> {
    let [r, k] = c.dims[..] else { return None };
    let mut data = vec![0.0; r * k];
    for i in 0..r {
        for j in 0..k {
            data[j * r + i] = c.data[i * k + j];
        }
    }
    Some(Const { dims: vec![k, r], data })
}
