//! Compiling a network into secure steps with fixed-point scales.
//!
//! Every value carries a scale `s` (fractional bits) and a real factor `g`:
//! the ring value encodes `real * g * 2^s`. Factors let the bounds fold into
//! the linear layers at no online cost (ReLU is positively homogeneous):
//! a linear layer whose output feeds a ReLU with bound B produces `x / B`
//! (`g = 1/B`), and that ReLU returns `t (1 + p(t))` with `t = x / B`, i.e. the
//! real ReLU with `g = 2 / B`. Residual adds rescale the shortcut operand by a
//! public constant to the factor and scale of the other operand.
//!
//! Scales (defaults): activations after a ReLU at `fp + fq = 36` bits (the
//! ReLU program's output, see `pann_protocols::poly`), weights at
//! `weight_bits = 18`, so linear outputs are at 54 bits; the input image is
//! encoded at 36 bits too. The first opening of a ReLU admits |x / B| up to
//! 2^(62 - 54) = 256, but the polynomial's intermediates leave the ring much
//! sooner: past |x / B| = 1.007 (alpha 14) to 2.48 (alpha 4), measured per
//! alpha in docs/results/out-of-range.md (`pann_protocols::reference::headroom`).

use std::collections::BTreeMap;
use std::sync::Arc;

use pann_approx::{Alpha, Precision};
use pann_mpc_core::ring::R;
use pann_protocols::kernels::{ConvSpec, LinearSpec, MatmulSpec};
use pann_protocols::{PolyRelu, Program, ReluConfig, Request};
use serde::{Deserialize, Serialize};

use pann_models::card::{sha256_hex, InputSpec};
use pann_models::error::{ModelError, Result};
use pann_models::model::Model;
use pann_models::network::{Network, Op, Shape, ValueId};
use pann_models::ops::Lowering;
pub use pann_models::SecureConfig;

/// What the server reveals of its model: the BN-folded architecture, the
/// per-site bounds and the precisions. Its digest is what a client may pin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublicModel {
    /// The BN-folded architecture (no [`Op::BatchNorm`] node).
    pub network: Network,
    /// Input normalisation: the client normalises its own pixels.
    pub input: InputSpec,
    /// Bound B of every ReLU site (within [`pann_models::limits::MIN_BOUND`]
    /// and [`pann_models::limits::MAX_BOUND`]).
    pub bounds: BTreeMap<String, f64>,
    /// The default alpha and the weights' fractional bits.
    pub config: SecureConfig,
    /// Per-site precision (mixed precision); a site it does not name runs at
    /// `config.alpha`. Plain integers in JSON, checked to be in 4..=14 when read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alphas: BTreeMap<String, Alpha>,
    /// The card's calibrated logit range (`ModelCard::logit_range`), against
    /// which the client judges its logits ([`pann_models::range::check_logits`]).
    /// Absent from the JSON when unknown, so older descriptions keep their digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_range: Option<[f64; 2]>,
}

impl PublicModel {
    /// Describe `model` (BN already folded) for secure inference, checked
    /// ([`PublicModel::check`]); an error if a batch norm is left.
    pub fn new(model: &Model, input: &InputSpec, bounds: &BTreeMap<String, f64>, config: SecureConfig) -> Result<Self> {
        if model.network.nodes.iter().any(|n| matches!(n.op, Op::BatchNorm(_))) {
            return Err(ModelError::Config("secure inference needs every batch norm folded into its conv".into()));
        }
        let pm = Self {
            network: model.network.clone(),
            input: input.clone(),
            bounds: bounds.clone(),
            config,
            alphas: BTreeMap::new(),
            logit_range: None,
        };
        pm.check()?;
        Ok(pm)
    }

    /// The same model with a precision per site (sites not named keep `config.alpha`).
    pub fn with_alphas(mut self, alphas: BTreeMap<String, Alpha>) -> Result<Self> {
        self.alphas = alphas;
        self.check()?;
        Ok(self)
    }

    /// The same model with the card's calibrated logit range (if any).
    pub fn with_logit_range(mut self, range: Option<[f64; 2]>) -> Result<Self> {
        self.logit_range = range;
        self.check()?;
        Ok(self)
    }

    /// Precision of ReLU site `site`.
    pub fn alpha_of(&self, site: &str) -> Alpha {
        self.alphas.get(site).copied().unwrap_or(self.config.alpha)
    }

    /// What both parties must agree on about precision: the alpha of every
    /// activation site in execution order, uniform when they are all equal.
    /// Its text form (`"9"`, or `"per-layer:4,4,5,..."`) is the session
    /// handshake's `alpha` parameter.
    pub fn precision(&self) -> Precision {
        let per_site: Vec<Alpha> = self.network.activation_sites().iter().map(|s| self.alpha_of(s)).collect();
        if per_site.is_empty() {
            Precision::Uniform(self.config.alpha)
        } else {
            Precision::per_site(per_site)
        }
    }

    /// Validate a description (it may come from a peer): the structure, and
    /// every size and parameter within [`pann_models::limits`].
    pub fn check(&self) -> Result<()> {
        self.network.validate()?;
        pann_models::limits::check_input_spec(&self.input, self.network.input_shape().c)?;
        for site in self.network.activation_sites() {
            match self.bounds.get(site) {
                None => return Err(ModelError::MissingBound { site: site.into() }),
                Some(&b) => pann_models::limits::check_bound(site, b)?,
            }
        }
        // Every alpha is in 4..=14 by its type (checked when the JSON is read).
        let sites = self.network.activation_sites();
        for site in self.alphas.keys() {
            if !sites.contains(&site.as_str()) {
                return Err(ModelError::Config(format!("alpha for unknown ReLU site {site:?}")));
            }
        }
        if let Some(r) = self.logit_range {
            pann_models::range::check_range(r).map_err(ModelError::Config)?;
        }
        if !(8..=24).contains(&self.config.weight_bits) {
            return Err(ModelError::Config(format!("weight_bits {} is outside 8..=24", self.config.weight_bits)));
        }
        Ok(())
    }

    /// The description as the server sends it (compact JSON); its SHA-256 is
    /// [`PublicModel::digest`].
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a public model always serialises")
    }

    /// Parse and check a description received from a peer. A parse error
    /// names only the line, column and kind, never the peer's text.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let pm: PublicModel = serde_json::from_slice(bytes)
            // serde's message may quote the peer's text unescaped: only where and what kind.
            .map_err(|e| {
                ModelError::Config(format!(
                    "malformed public model description ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            })?;
        pm.check()?;
        Ok(pm)
    }

    /// SHA-256 (hex) of the JSON description as the server sends it (peers
    /// hash the bytes they received, not a re-serialisation).
    pub fn digest(&self) -> String {
        sha256_hex(&self.to_json())
    }
}

/// One step of the secure computation. `out` is always the step's node id.
#[derive(Clone, Debug)]
pub enum Step {
    /// The client's input, the batch's images encoded at the input scale.
    Input {
        /// The input node (0).
        out: ValueId,
    },
    /// A conv or fully connected layer (server-held weights) plus bias.
    Linear {
        /// The layer's node.
        out: ValueId,
        /// The value it reads.
        input: ValueId,
        /// Its index in [`Plan::linears`] and [`ServerWeights`] (registration order).
        layer: usize,
        /// Its dimensions for the whole batch.
        spec: LinearSpec,
        /// Output elements per channel and image that share one bias value
        /// (`h * w` of the output for a conv, 1 for a fully connected layer).
        bias_plane: usize,
    },
    /// A polynomial ReLU on every element of `input`.
    Relu {
        /// The ReLU node (its name is the site).
        out: ValueId,
        /// The value it reads, holding `x / B`.
        input: ValueId,
        /// The ReLU program for the site's alpha and the input's scale
        /// (shared by every site with the same pair).
        program: Arc<Program>,
    },
    /// `ca * a + cb * b` with public multipliers.
    Add {
        /// The add node.
        out: ValueId,
        /// First operand.
        a: ValueId,
        /// Second operand.
        b: ValueId,
        /// Public multiplier of `a`: `2^(s_out - s_a) g_out / g_a`, rounded.
        ca: R,
        /// Public multiplier of `b`, likewise.
        cb: R,
    },
    /// Pure data movement (padding, subsampling, shortcut, concatenation):
    /// each input times a public power of two (to a common scale), then
    /// the operator's index map ([`pann_models::ops::Gather`]), image by image. The map is
    /// built when the step runs, so that a plan holds no per-element tables
    /// (a peer's network could otherwise make it hold one per node).
    Gather {
        /// The node.
        out: ValueId,
        /// The values it reads.
        inputs: Vec<ValueId>,
        /// Per input, its public multiplier `2^(s_out - s_in)` (1: none).
        mults: Vec<R>,
    },
    /// Sum over each `k x k` window (the division is folded into the factor).
    AvgPool {
        /// The pooling node.
        out: ValueId,
        /// The value it reads.
        input: ValueId,
        /// Per-image shape of the input.
        shape: Shape,
        /// Window side k.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Sum over each channel plane (the division is folded into the factor).
    GlobalPool {
        /// The pooling node.
        out: ValueId,
        /// The value it reads.
        input: ValueId,
        /// Per-image shape of the input.
        shape: Shape,
    },
    /// Max pooling, an activation site: each window is reduced pairwise in
    /// levels ([`max_pool_next_level`]), each pair by a max program
    /// (`max(a, b) = b + relu(a - b)` with the sign polynomial); the output
    /// holds `2 max / B` like a ReLU's.
    MaxPool {
        /// The pooling node (its name is the site).
        out: ValueId,
        /// The value it reads.
        input: ValueId,
        /// Per-image shape of the input.
        shape: Shape,
        /// Window side, stride and padding (padded positions are in no window).
        window: (usize, usize, usize),
        /// The first level's program (inputs at the input's scale and factor).
        first: Arc<Program>,
        /// The later levels' program (inputs already at `2 x / B`).
        rest: Arc<Program>,
        /// |a - b| beyond which a pair's difference exceeds the bound, in ring units: first level, later levels.
        bound_ring: (f64, f64),
    },
}

/// For each output position along one axis of length `len`: how many of the
/// window's `k` taps fall inside the input.
fn axis_counts(len: usize, (k, s, p): (usize, usize, usize)) -> Vec<usize> {
    let o = (len + 2 * p - k) / s + 1;
    (0..o).map(|i| (0..k).filter(|&t| (i * s + t).checked_sub(p).is_some_and(|x| x < len)).count()).collect()
}

/// Pairs computed at each level by one window of `size` values (see [`max_pool_next_level`]).
fn window_level_pairs(size: usize) -> Vec<usize> {
    let (mut c, mut out) = (size, Vec::new());
    loop {
        let pairs = c.div_ceil(2).max(1);
        out.push(pairs);
        c = pairs;
        if c <= 1 {
            return out;
        }
    }
}

/// Pairs per level of a max pooling over one `h x w` plane, from the
/// windows' sizes, which factor into rows times columns: computed from the
/// two axes' counts, without listing the windows (the shape may come from a
/// peer).
pub fn max_pool_level_pairs(h: usize, w: usize, window: (usize, usize, usize)) -> Vec<usize> {
    let hist = |counts: Vec<usize>| {
        let mut m = BTreeMap::new();
        for c in counts {
            *m.entry(c).or_insert(0usize) += 1;
        }
        m
    };
    let (rows, cols) = (hist(axis_counts(h, window)), hist(axis_counts(w, window)));
    let mut levels: Vec<usize> = Vec::new();
    for (&rc, &rn) in &rows {
        for (&cc, &cn) in &cols {
            for (l, pairs) in window_level_pairs(rc * cc).into_iter().enumerate() {
                if levels.len() <= l {
                    levels.push(0);
                }
                levels[l] = levels[l].saturating_add(pairs.saturating_mul(rn).saturating_mul(cn));
            }
        }
    }
    levels
}

/// The values a max pooling gathers from one plane (the windows' sizes
/// summed), over the plane's size.
fn max_pool_gather_ratio(h: usize, w: usize, window: (usize, usize, usize)) -> f64 {
    let (r, c) = (axis_counts(h, window).iter().sum::<usize>(), axis_counts(w, window).iter().sum::<usize>());
    r as f64 * c as f64 / (h * w).max(1) as f64
}

/// One level of a max pooling's pairwise reduction, given each window's
/// count of values: the pairs each window computes (0: it is done and
/// carries its value), or None when every window is done. Every window
/// takes part in the first level (a single value is paired with itself,
/// which brings it to the output's encoding); later, an odd value is paired
/// with itself too.
pub fn max_pool_next_level(counts: &[usize], first: bool) -> Option<Vec<usize>> {
    if !first && counts.iter().all(|&c| c <= 1) {
        return None;
    }
    Some(counts.iter().map(|&c| if c <= 1 && !first { 0 } else { c.div_ceil(2).max(1) }).collect())
}

impl Step {
    /// The node whose value the step produces.
    pub fn out(&self) -> ValueId {
        match *self {
            Step::Input { out }
            | Step::Linear { out, .. }
            | Step::Relu { out, .. }
            | Step::Add { out, .. }
            | Step::Gather { out, .. }
            | Step::AvgPool { out, .. }
            | Step::GlobalPool { out, .. }
            | Step::MaxPool { out, .. } => out,
        }
    }
}

/// Most values a secure max pooling gathers from its input's windows, as a
/// multiple of the input (3x3 windows with stride 2: about 2.25).
pub const MAX_POOL_GATHER: f64 = 4.0;

/// Most material, in bytes, one party holds for one request of a ReLU
/// layer. A layer whose material is larger is evaluated in chunks of
/// elements (one request, one run of the program each), so that what a
/// party holds at once stops growing with the batch: at alpha 9 a chunk
/// holds about 115,000 ReLUs, seven images of ResNet-20's widest layers.
pub const RELU_CHUNK_BYTES: u64 = 64 << 20;

/// Elements per chunk of a ReLU layer evaluated by `program` (see
/// [`RELU_CHUNK_BYTES`]); every party and the dealer cut the same chunks.
pub fn relu_chunk(program: &Program) -> usize {
    let per_element = 8 * (program.n_openings() as u64 + program.correction_len_per_element() as u64);
    usize::try_from(RELU_CHUNK_BYTES / per_element.max(1)).unwrap_or(usize::MAX).max(1)
}

/// A compiled secure computation for a batch of `batch` images.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The public model compiled.
    pub model: Arc<PublicModel>,
    /// Images per run (at least 1).
    pub batch: usize,
    /// One step per node, in node order.
    pub steps: Vec<Step>,
    /// Scale of every value (by node id), in fractional bits (at most 58).
    pub scale: Vec<u32>,
    /// Factor g of every value (by node id): its ring value encodes `real * g * 2^scale`.
    pub factor: Vec<f64>,
    /// The linear layers in registration order.
    pub linears: Vec<(ValueId, LinearSpec)>,
    /// The compiled ReLUs, one per (alpha, input scale) used.
    pub relus: Vec<Arc<PolyRelu>>,
}

/// Factor a value should have for its consumer: `1/B` when it feeds a ReLU
/// (directly or through a residual add), 1 otherwise.
fn target_factors(net: &Network, bounds: &BTreeMap<String, f64>) -> Vec<f64> {
    let mut readers: Vec<Vec<ValueId>> = vec![Vec::new(); net.nodes.len()];
    for (i, n) in net.nodes.iter().enumerate() {
        for &j in &n.inputs {
            readers[j].push(i);
        }
    }
    let mut target = vec![1.0; net.nodes.len()];
    for i in (0..net.nodes.len()).rev() {
        if let [r] = readers[i][..] {
            let rn = &net.nodes[r];
            let shapes: Vec<Shape> = rn.inputs.iter().map(|&j| net.nodes[j].shape).collect();
            target[i] = match rn.op.operator().lowering(&shapes) {
                Lowering::Relu => 1.0 / bounds[&rn.name],
                Lowering::Add | Lowering::Gather => target[r],
                _ => 1.0,
            };
        }
    }
    target
}

impl Plan {
    /// Compile `model` for runs of `batch` images: every value's scale and
    /// factor, the steps, the linear layers and one ReLU program per (alpha,
    /// input scale). Errors: a batch of 0; a batch norm left; a ReLU whose
    /// input cannot carry its bound (not produced by a linear layer or a
    /// residual add read by that ReLU alone); a residual rescaling constant
    /// out of range; a scale above 58 bits.
    pub fn compile(model: Arc<PublicModel>, batch: usize) -> Result<Plan> {
        if batch == 0 {
            return Err(ModelError::Config("batch size must be at least 1".into()));
        }
        let net = &model.network;
        let cfg = model.config;
        let act = cfg.act_bits();
        let target = target_factors(net, &model.bounds);
        let k = net.nodes.len();
        let (mut scale, mut factor) = (vec![0u32; k], vec![1.0f64; k]);
        let mut steps = Vec::with_capacity(k);
        let mut linears = Vec::new();
        let mut relus: Vec<Arc<PolyRelu>> = Vec::new();
        let bad = |name: &str, why: String| ModelError::Config(format!("node {name:?}: {why}"));
        for (i, node) in net.nodes.iter().enumerate() {
            let ins: Vec<ValueId> = node.inputs.clone();
            let shapes: Vec<Shape> = ins.iter().map(|&j| net.nodes[j].shape).collect();
            let in_shape = shapes.first().copied();
            let op = node.op.operator();
            let step = match op.lowering(&shapes) {
                Lowering::Input => {
                    scale[i] = act;
                    Step::Input { out: i }
                }
                Lowering::Linear(one) => {
                    let (spec, bias_plane) = match one {
                        LinearSpec::Conv(c) => (LinearSpec::Conv(ConvSpec { n: batch, ..c }), node.shape.h * node.shape.w),
                        LinearSpec::Matmul(m) => (LinearSpec::Matmul(MatmulSpec { m: batch, ..m }), 1),
                    };
                    scale[i] = scale[ins[0]] + cfg.weight_bits;
                    factor[i] = target[i];
                    linears.push((i, spec));
                    Step::Linear { out: i, input: ins[0], layer: linears.len() - 1, spec, bias_plane }
                }
                Lowering::Relu => {
                    let b = model.bounds[&node.name];
                    let j = ins[0];
                    if (factor[j] * b - 1.0).abs() > 1e-9 {
                        return Err(bad(
                            &node.name,
                            "the ReLU input is not produced by a linear layer or residual add that can fold its bound".into(),
                        ));
                    }
                    let alpha = model.alpha_of(&node.name);
                    let r = match relus.iter().find(|r| r.config.alpha == alpha && r.config.input_frac == scale[j]) {
                        Some(r) => Arc::clone(r),
                        None => {
                            let r = Arc::new(PolyRelu::new(ReluConfig::new(alpha, scale[j])).map_err(|e| bad(&node.name, e.to_string()))?);
                            relus.push(Arc::clone(&r));
                            r
                        }
                    };
                    scale[i] = r.config.output_frac();
                    factor[i] = 2.0 / b;
                    Step::Relu { out: i, input: j, program: Arc::clone(&r.program) }
                }
                Lowering::Add => {
                    let (a, b) = (ins[0], ins[1]);
                    let s = scale[a].max(scale[b]);
                    let g = target[i];
                    let mult = |j: usize| -> Result<R> {
                        let ratio = g / factor[j];
                        let ds = s - scale[j];
                        let c = ratio * (ds as f64).exp2();
                        if ds == 0 && (ratio - 1.0).abs() > 1e-12 {
                            return Err(bad(&node.name, "operands at the same scale with different factors".into()));
                        }
                        if !(c.is_finite() && c.abs() < 2f64.powi(40)) {
                            return Err(bad(&node.name, format!("rescaling constant {c} out of range")));
                        }
                        Ok(c.round() as i64 as u64)
                    };
                    let (ca, cb) = (mult(a)?, mult(b)?);
                    scale[i] = s;
                    factor[i] = g;
                    Step::Add { out: i, a, b, ca, cb }
                }
                Lowering::Gather => {
                    // Values are moved, not combined: every input must carry the
                    // same factor; scales are raised to the largest by exact shifts.
                    let g = factor[ins[0]];
                    if let Some(&j) = ins.iter().find(|&&j| (factor[j] / g - 1.0).abs() > 1e-12) {
                        return Err(bad(
                            &node.name,
                            format!(
                                "its inputs {:?} and {:?} carry different fixed-point factors: activation sites that feed one {} \
                                 must share one bound (`pann calibrate` writes such bounds)",
                                net.nodes[ins[0]].name,
                                net.nodes[j].name,
                                node.op.kind()
                            ),
                        ));
                    }
                    let s = ins.iter().map(|&j| scale[j]).max().expect("a gather reads at least one value");
                    let mults = ins.iter().map(|&j| 1u64 << (s - scale[j])).collect();
                    scale[i] = s;
                    factor[i] = g;
                    Step::Gather { out: i, inputs: ins.clone(), mults }
                }
                Lowering::AvgPool { kernel, stride } => {
                    scale[i] = scale[ins[0]];
                    factor[i] = factor[ins[0]] * (kernel * kernel) as f64;
                    Step::AvgPool { out: i, input: ins[0], shape: in_shape.expect("validated"), kernel, stride }
                }
                Lowering::GlobalAvgPool => {
                    let s = in_shape.expect("validated");
                    scale[i] = scale[ins[0]];
                    factor[i] = factor[ins[0]] * (s.h * s.w) as f64;
                    Step::GlobalPool { out: i, input: ins[0], shape: s }
                }
                Lowering::FoldedAway => return Err(bad(&node.name, "batch norm must be folded before secure inference".into())),
                Lowering::MaxPool { kernel, stride, padding } => {
                    let (j, b) = (ins[0], model.bounds[&node.name]);
                    if scale[j] > 40 {
                        return Err(bad(&node.name, "max pooling of a linear layer's output is not supported: pool after the ReLU".into()));
                    }
                    let s = in_shape.expect("validated");
                    // The executor gathers every window's values: bounded by a few times the input.
                    if max_pool_gather_ratio(s.h, s.w, (kernel, stride, padding)) > MAX_POOL_GATHER {
                        return Err(bad(
                            &node.name,
                            format!(
                                "max pooling whose windows overlap more than {MAX_POOL_GATHER}x is not supported by the secure executor"
                            ),
                        ));
                    }
                    let alpha = model.alpha_of(&node.name);
                    let poly = pann_approx::SignPoly::for_alpha(alpha);
                    // First level: inputs at (scale[j], factor[j]); later levels: at the output's (out_frac, 2 / B).
                    let first_cfg = ReluConfig { inv_bound: Some(1.0 / (b * factor[j])), ..ReluConfig::new(alpha, scale[j]) };
                    let out_frac = first_cfg.output_frac();
                    let rest_cfg = ReluConfig { inv_bound: Some(0.5), ..ReluConfig::new(alpha, out_frac) };
                    let program = |cfg: &ReluConfig, coef: f64| -> Result<Arc<Program>> {
                        pann_protocols::poly::max_program(&poly, cfg, coef).map(Arc::new).map_err(|e| bad(&node.name, e.to_string()))
                    };
                    let (first, rest) = (program(&first_cfg, 2.0 / (b * factor[j]))?, program(&rest_cfg, 1.0)?);
                    let bound_ring = (b * factor[j] * (scale[j] as f64).exp2(), 2.0 * (out_frac as f64).exp2());
                    scale[i] = out_frac;
                    factor[i] = 2.0 / b;
                    let window = (kernel, stride, padding);
                    Step::MaxPool { out: i, input: j, shape: s, window, first, rest, bound_ring }
                }
            };
            if scale[i] > 58 {
                return Err(bad(&node.name, format!("scale {} bits leaves no room below 2^62", scale[i])));
            }
            steps.push(step);
        }
        Ok(Plan { model, batch, steps, scale, factor, linears, relus })
    }

    /// The public network (BN folded).
    pub fn network(&self) -> &Network {
        &self.model.network
    }

    /// Elements of value `v` for the whole batch.
    pub fn len_of(&self, v: ValueId) -> usize {
        self.batch * self.network().nodes[v].shape.len()
    }

    /// The material requests of one run, in the order the online phase
    /// consumes them: one per linear layer, and one per chunk of each ReLU
    /// layer ([`relu_chunk`]).
    pub fn requests(&self) -> Vec<Request> {
        let mut out = Vec::new();
        for s in &self.steps {
            match s {
                Step::Linear { layer, spec, .. } => out.push(Request::Linear { layer: *layer, spec: *spec }),
                Step::Relu { input, program, .. } => {
                    let (n, c) = (self.len_of(*input), relu_chunk(program));
                    out.extend((0..n).step_by(c).map(|start| Request::program(program, c.min(n - start))));
                }
                Step::MaxPool { shape, window, first, rest, .. } => {
                    for (l, pairs) in max_pool_level_pairs(shape.h, shape.w, *window).into_iter().enumerate() {
                        let program = if l == 0 { first } else { rest };
                        let (n, c) = (pairs * shape.c * self.batch, relu_chunk(program));
                        out.extend((0..n).step_by(c).map(|start| Request::program(program, c.min(n - start))));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Encode the client's images (normalised, `[batch, c, h, w]` as f64) at
    /// the input scale. Secret: the error texts name no value.
    pub fn encode_input(&self, x: &[f64]) -> Result<Vec<R>> {
        let want = self.len_of(0);
        if x.len() != want {
            let s = self.network().input_shape();
            return Err(ModelError::InputShape { expected: vec![self.batch, s.c, s.h, s.w], found: vec![x.len()] });
        }
        let sc = (self.scale[0] as f64).exp2();
        x.iter()
            .map(|&v| {
                let e = v * sc;
                if e.is_finite() && e.abs() < 2f64.powi(62 - 8) {
                    Ok(e.round() as i64 as u64)
                } else {
                    // No value in the text: the input is the client's secret.
                    Err(ModelError::Config("an input value is outside the input encoding's range".into()))
                }
            })
            .collect()
    }

    /// Decode the output value (the logits, `[batch, classes]`) to reals:
    /// divide by `2^scale * factor` of the output.
    pub fn decode_output(&self, y: &[R]) -> Vec<f64> {
        let out = self.network().output;
        let d = (self.scale[out] as f64).exp2() * self.factor[out];
        y.iter().map(|&v| v as i64 as f64 / d).collect()
    }
}

/// The server's encoded weights and biases, per linear layer. Secret: only
/// the server holds them (the client receives `E = W - A`, masked by the
/// dealer's `A`).
#[derive(Clone, Debug)]
pub struct ServerWeights {
    /// Per linear layer ([`Plan::linears`] order), its weights times
    /// `g_out / g_in` at `weight_bits`, in the model's layout (`[out, in, k, k]`
    /// or `[out, in]`, row-major).
    pub weights: Vec<Vec<R>>,
    /// Per linear layer, its bias times `g_out` at the layer's output scale;
    /// `None` for a layer without bias.
    pub biases: Vec<Option<Vec<R>>>,
}

fn encode_checked(x: f64, bits: u32, what: &str) -> Result<R> {
    let e = x * (bits as f64).exp2();
    if e.is_finite() && e.abs() < 2f64.powi(61) {
        Ok(e.round() as i64 as u64)
    } else {
        Err(ModelError::Config(format!("{what}: value {x} does not fit at {bits} fractional bits")))
    }
}

impl ServerWeights {
    /// Fold the factors into `model`'s weights (`W g_out / g_in`) and encode
    /// them at `weight_bits`; biases at the layer's output scale.
    pub fn encode(plan: &Plan, model: &Model) -> Result<Self> {
        let (mut weights, mut biases) = (Vec::new(), Vec::new());
        for step in &plan.steps {
            if let Step::Linear { out, input, .. } = step {
                let name = &plan.network().nodes[*out].name;
                let ratio = plan.factor[*out] / plan.factor[*input];
                let w = &model
                    .params
                    .get(&format!("{name}.weight"))
                    .ok_or_else(|| ModelError::MissingTensor { name: format!("{name}.weight") })?;
                let wb = plan.model.config.weight_bits;
                weights.push(w.data.iter().map(|&x| encode_checked(x * ratio, wb, name)).collect::<Result<Vec<_>>>()?);
                biases.push(match model.params.get(&format!("{name}.bias")) {
                    Some(b) => Some(
                        b.data
                            .iter()
                            .map(|&x| encode_checked(x * plan.factor[*out], plan.scale[*out], name))
                            .collect::<Result<Vec<_>>>()?,
                    ),
                    None => None,
                });
            }
        }
        Ok(Self { weights, biases })
    }
}
