//! CIFAR ResNet-20/32/56 (option-A shortcuts) in tch, with the variable
//! names of akamaster's PyTorch model, so that the var store *is* the
//! safetensors export the `models` crate imports (`conv1.weight`,
//! `bn1.running_mean`, `layer2.0.conv1.weight`, `linear.bias`, ...).
//!
//! The ReLUs are not hard-wired: every ReLU site calls an [`Activation`] with
//! its site index (the order of `Network::relu_sites` in the models crate), so
//! the same network trains with exact ReLU, with negative-input leakage
//! (NGNV) or with the PANN polynomial in the loop.

use crate::error::{Result, TrainerError};
use pann_models::ResNetConfig;
use tch::nn::{self, Init, ModuleT};
use tch::Tensor;

/// What happens at each ReLU site.
pub trait Activation {
    /// `x` is the input of ReLU site `site`; `train` is the module mode.
    fn apply(&mut self, site: usize, x: &Tensor, train: bool) -> Tensor;

    /// State that must survive a resume (NGNV's running maxima), if any.
    fn running_max(&self) -> Option<Vec<f64>> {
        None
    }
}

/// Plain max(x, 0).
pub struct ExactRelu;

impl Activation for ExactRelu {
    fn apply(&mut self, _site: usize, x: &Tensor, _train: bool) -> Tensor {
        x.relu()
    }
}

struct Block {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    /// Option-A shortcut: (stride, zero channels on each side).
    shortcut: Option<(i64, i64)>,
}

/// The network; its parameters live in the [`nn::VarStore`] it was built on.
pub struct ResNet {
    /// The architecture it was built from.
    pub config: ResNetConfig,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    blocks: Vec<Block>,
    linear: nn::Linear,
    sites: Vec<String>,
}

fn conv(p: nn::Path, cin: i64, cout: i64, stride: i64) -> nn::Conv2D {
    // akamaster: kaiming_normal_ (fan_in, ReLU gain) on convs and the linear layer.
    let cfg = nn::ConvConfig { stride, padding: 1, bias: false, ws_init: nn::init::DEFAULT_KAIMING_NORMAL, ..Default::default() };
    nn::conv2d(p, cin, cout, 3, cfg)
}

fn bn(p: nn::Path, c: i64, eps: f64) -> nn::BatchNorm {
    // PyTorch initialises BN with weight 1, bias 0; tch's default weight is U(0, 1).
    let cfg = nn::BatchNormConfig { eps, momentum: 0.1, ws_init: Init::Const(1.0), bs_init: Init::Const(0.0), ..Default::default() };
    nn::batch_norm2d(p, c, cfg)
}

impl ResNet {
    /// Build on `vs.root()` so names carry no prefix.
    pub fn new(vs: &nn::Path, config: &ResNetConfig) -> Result<Self> {
        let network = config.build()?;
        let sites: Vec<String> = network.relu_sites().iter().map(|s| s.to_string()).collect();
        let n = config.blocks_per_stage()?;
        let w = config.widths.map(|v| v as i64);
        let eps = config.bn_eps;
        let conv1 = conv(vs / "conv1", config.in_channels as i64, w[0], 1);
        let bn1 = bn(vs / "bn1", w[0], eps);
        let mut blocks = Vec::new();
        let mut in_planes = w[0];
        for (s, &planes) in w.iter().enumerate() {
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let p = vs / format!("layer{}", s + 1) / b;
                let shortcut = if stride != 1 || in_planes != planes {
                    if in_planes + 2 * (planes / 4) != planes {
                        return Err(TrainerError::Config(format!("option-A shortcut cannot map {in_planes} to {planes} channels")));
                    }
                    Some((stride, planes / 4))
                } else {
                    None
                };
                blocks.push(Block {
                    conv1: conv(&p / "conv1", in_planes, planes, stride),
                    bn1: bn(&p / "bn1", planes, eps),
                    conv2: conv(&p / "conv2", planes, planes, 1),
                    bn2: bn(&p / "bn2", planes, eps),
                    shortcut,
                });
                in_planes = planes;
            }
        }
        let lin_cfg = nn::LinearConfig { ws_init: nn::init::DEFAULT_KAIMING_NORMAL, bs_init: Some(Init::Const(0.0)), bias: true };
        let linear = nn::linear(vs / "linear", w[2], config.num_classes as i64, lin_cfg);
        if sites.len() != 1 + 2 * blocks.len() {
            return Err(TrainerError::Config(format!("{} ReLU sites for {} blocks", sites.len(), blocks.len())));
        }
        Ok(Self { config: config.clone(), conv1, bn1, blocks, linear, sites })
    }

    /// Re-draw every conv and linear weight from N(0, 2 / fan_in) (Kaiming
    /// normal, as akamaster) with our own seeded generator. libtorch's
    /// generator is process-global, so two runs in one process (tests, or a
    /// library user) would otherwise not get reproducible initial weights.
    pub fn init_weights(vs: &nn::VarStore, seed: u64) {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut g = crate::rng::SplitMix64::for_epoch(seed, usize::MAX, 2);
        for (name, mut t) in vars {
            let size = t.size();
            let is_weight = name.ends_with(".weight") && (size.len() == 4 || size.len() == 2);
            if !is_weight {
                continue;
            }
            let fan_in: i64 = size[1..].iter().product();
            let std = (2.0 / fan_in as f64).sqrt();
            let data: Vec<f32> = (0..t.numel()).map(|_| (g.normal() * std) as f32).collect();
            let src = Tensor::from_slice(&data).view(size.as_slice()).to_kind(t.kind()).to_device(t.device());
            tch::no_grad(|| t.copy_(&src));
        }
    }

    /// ReLU site names, in forward order (same as the models crate).
    pub fn sites(&self) -> &[String] {
        &self.sites
    }

    /// Logits for a batch `[n, c, h, w]`.
    pub fn forward(&self, x: &Tensor, train: bool, act: &mut dyn Activation) -> Tensor {
        let mut x = act.apply(0, &self.conv1.forward_t(x, train).apply_t(&self.bn1, train), train);
        for (i, b) in self.blocks.iter().enumerate() {
            let y = x.apply_t(&b.conv1, train).apply_t(&b.bn1, train);
            let y = act.apply(1 + 2 * i, &y, train);
            let y = y.apply_t(&b.conv2, train).apply_t(&b.bn2, train);
            let short = match b.shortcut {
                Some((stride, pad)) => {
                    let (h, w) = (x.size()[2], x.size()[3]);
                    x.slice(2, 0, h, stride).slice(3, 0, w, stride).constant_pad_nd([0, 0, 0, 0, pad, pad])
                }
                None => x.shallow_clone(),
            };
            x = act.apply(2 + 2 * i, &(y + short), train);
        }
        {
            let k = x.kind();
            x.mean_dim(&[2i64, 3][..], false, k)
        }
        .apply_t(&self.linear, train)
    }
}
