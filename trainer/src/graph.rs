//! Any network of the models crate as a tch module: the trainer's
//! registration of the operators (`pann_models::ops`), one forward rule
//! each, with every parameter under the models crate's name
//! (`<node>.<param>`, e.g. `layer2.0.conv1.weight`), so that the var store
//! *is* the safetensors file a card points to.
//!
//! ReLU sites call an [`Activation`] with their site index (the order of
//! `Network::activation_sites`), so a network trains with exact ReLU, with leakage
//! on negative inputs or with the PANN polynomial in the loop. Max-pooling
//! sites are evaluated exactly in training (the pairwise polynomial maximum
//! runs in the f64 and secure executors only); they keep their site index.

use crate::error::{Result, TrainerError};
use crate::net::Activation;
use pann_models::{Network, Op, Params};
use tch::nn::{self, Init};
use tch::Tensor;

/// The tch module of one node, if it has parameters.
enum Layer {
    None,
    Conv(nn::Conv2D),
    BatchNorm(nn::BatchNorm),
    Linear(nn::Linear),
    Affine { weight: Tensor, bias: Tensor },
}

/// A network of the models crate, its parameters in the var store it was built on.
pub struct GraphNet {
    network: Network,
    layers: Vec<Layer>,
    /// Per node: its activation-site index.
    site_of: Vec<Option<usize>>,
    sites: Vec<String>,
}

/// The var-store path of a node: its name's dot-separated parts.
fn node_path<'a>(root: &nn::Path<'a>, name: &str) -> nn::Path<'a> {
    let mut parts = name.split('.');
    let mut p = root / parts.next().unwrap_or(name);
    for part in parts {
        p = p / part;
    }
    p
}

impl GraphNet {
    /// Build the modules of `network` on `root` (no prefix: names are the
    /// models crate's). Initial values follow akamaster's ResNet: Kaiming
    /// normal convolution and linear weights, zero biases, batch norms at
    /// weight 1 and bias 0, affine ops at the identity.
    pub fn new(root: &nn::Path, network: &Network) -> Result<Self> {
        network.validate()?;
        let mut layers = Vec::with_capacity(network.nodes.len());
        let (mut site_of, mut sites) = (Vec::with_capacity(network.nodes.len()), Vec::new());
        for n in &network.nodes {
            let p = || node_path(root, &n.name);
            let i = |v: usize| v as i64;
            layers.push(match &n.op {
                Op::Conv2d(c) => {
                    let cfg = nn::ConvConfig {
                        stride: i(c.stride),
                        padding: i(c.padding),
                        dilation: i(c.dilation),
                        groups: i(c.groups),
                        bias: c.bias,
                        ws_init: nn::init::DEFAULT_KAIMING_NORMAL,
                        bs_init: Init::Const(0.0),
                        ..Default::default()
                    };
                    Layer::Conv(nn::conv2d(p(), i(c.in_channels), i(c.out_channels), i(c.kernel), cfg))
                }
                Op::BatchNorm(b) => {
                    // PyTorch initialises BN with weight 1, bias 0; tch's default weight is U(0, 1).
                    let cfg = nn::BatchNormConfig {
                        eps: b.eps,
                        momentum: 0.1,
                        ws_init: Init::Const(1.0),
                        bs_init: Init::Const(0.0),
                        ..Default::default()
                    };
                    Layer::BatchNorm(nn::batch_norm2d(p(), i(b.channels), cfg))
                }
                Op::Linear(l) => {
                    let cfg = nn::LinearConfig { ws_init: nn::init::DEFAULT_KAIMING_NORMAL, bs_init: Some(Init::Const(0.0)), bias: l.bias };
                    Layer::Linear(nn::linear(p(), i(l.in_features), i(l.out_features), cfg))
                }
                Op::Affine(a) => {
                    let p = p();
                    Layer::Affine {
                        weight: p.var("weight", &[i(a.channels)], Init::Const(1.0)),
                        bias: p.var("bias", &[i(a.channels)], Init::Const(0.0)),
                    }
                }
                _ => Layer::None,
            });
            site_of.push(n.op.is_activation().then(|| {
                sites.push(n.name.clone());
                sites.len() - 1
            }));
        }
        Ok(Self { network: network.clone(), layers, site_of, sites })
    }

    /// The network it runs.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Activation site names, in forward order (`Network::activation_sites`).
    pub fn sites(&self) -> &[String] {
        &self.sites
    }

    /// Output for a batch `[n, c, h, w]` (the logits, `[n, classes]` when the
    /// network ends in a linear layer).
    pub fn forward(&self, x: &Tensor, train: bool, act: &mut dyn Activation) -> Tensor {
        let net = &self.network;
        let mut last_use = vec![0usize; net.nodes.len()];
        for (i, n) in net.nodes.iter().enumerate() {
            for &j in &n.inputs {
                last_use[j] = i;
            }
        }
        last_use[net.output] = usize::MAX;
        let mut values: Vec<Option<Tensor>> = (0..net.nodes.len()).map(|_| None).collect();
        values[0] = Some(x.shallow_clone());
        for (i, n) in net.nodes.iter().enumerate().skip(1) {
            let y = {
                let arg = |k: usize| values[n.inputs[k]].as_ref().expect("inputs are computed before their readers (validated)");
                let x = arg(0);
                let subsample = |x: &Tensor, s: usize| {
                    let (h, w) = (x.size()[2], x.size()[3]);
                    x.slice(2, 0, h, s as i64).slice(3, 0, w, s as i64)
                };
                match (&n.op, &self.layers[i]) {
                    (Op::Conv2d(_), Layer::Conv(c)) => x.apply(c),
                    (Op::BatchNorm(_), Layer::BatchNorm(b)) => x.apply_t(b, train),
                    (Op::Linear(_), Layer::Linear(l)) => x.flatten(1, -1).apply(l),
                    (Op::Affine(_), Layer::Affine { weight, bias }) => x * weight.view([1, -1, 1, 1]) + bias.view([1, -1, 1, 1]),
                    (Op::Relu, _) => act.apply(self.site_of[i].expect("a ReLU is a site"), x, train),
                    (Op::MaxPool(m), _) => {
                        let (k, s, p) = (m.kernel as i64, m.stride as i64, m.padding as i64);
                        x.max_pool2d([k, k], [s, s], [p, p], [1, 1], false)
                    }
                    (Op::Add, _) => x + arg(1),
                    (Op::ShortcutA(s), _) => {
                        let p = s.pad_channels as i64;
                        subsample(x, s.stride).constant_pad_nd([0, 0, 0, 0, p, p])
                    }
                    (Op::Subsample(s), _) => subsample(x, s.stride),
                    (Op::Pad(p), _) => {
                        let v = |u: usize| u as i64;
                        x.constant_pad_nd([v(p.left), v(p.right), v(p.top), v(p.bottom), v(p.channels_before), v(p.channels_after)])
                    }
                    (Op::AvgPool(a), _) => {
                        let (k, s) = (a.kernel as i64, a.stride as i64);
                        x.avg_pool2d([k, k], [s, s], [0, 0], false, true, None::<i64>)
                    }
                    (Op::GlobalAvgPool, _) => x.mean_dim(&[2i64, 3][..], true, x.kind()),
                    (Op::Concat, _) => Tensor::cat(&(0..n.inputs.len()).map(|k| arg(k).shallow_clone()).collect::<Vec<_>>(), 1),
                    (op, _) => unreachable!("node {:?} ({}) has no module of its kind", n.name, op.kind()),
                }
            };
            values[i] = Some(y);
            for &j in &n.inputs {
                if last_use[j] == i {
                    values[j] = None;
                }
            }
        }
        values[net.output].take().expect("the output is computed").flatten(1, -1)
    }
}

/// Copy `params` (the models crate's, f64) into the var store's variables of
/// the same names (converted to each variable's kind and device); every
/// variable must be given, with its shape.
pub fn load_params(vs: &nn::VarStore, params: &Params) -> Result<()> {
    for (name, mut var) in vs.variables() {
        let p = params.get(&name).ok_or_else(|| TrainerError::Config(format!("no parameter {name:?} for the network")))?;
        let shape: Vec<i64> = p.shape.iter().map(|&d| d as i64).collect();
        if shape != var.size() {
            return Err(TrainerError::Config(format!("parameter {name:?} has shape {:?}, the network wants {:?}", p.shape, var.size())));
        }
        let src = Tensor::from_slice(&p.data).view(shape.as_slice()).to_kind(var.kind()).to_device(var.device());
        tch::no_grad(|| var.copy_(&src));
    }
    Ok(())
}
