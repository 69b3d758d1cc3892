//! CIFAR ResNet-20/32/56 (option-A shortcuts) in tch: the network the
//! models crate builds from the config, run by [`GraphNet`] (one forward
//! rule per operator), with the variable names of akamaster's PyTorch model,
//! so that the var store *is* the safetensors export the `models` crate
//! imports (`conv1.weight`, `bn1.running_mean`, `layer2.0.conv1.weight`,
//! `linear.bias`, ...).
//!
//! The ReLUs are not hard-wired: every ReLU site calls an [`Activation`] with
//! its site index (the order of `Network::activation_sites` in the models crate), so
//! the same network trains with exact ReLU, with negative-input leakage
//! (NGNV) or with the PANN polynomial in the loop.

use crate::error::Result;
use crate::graph::GraphNet;
use pann_models::ResNetConfig;
use tch::nn;
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

/// A CIFAR ResNet: the network its config builds, as a [`GraphNet`]; its
/// parameters live in the [`nn::VarStore`] it was built on.
pub struct ResNet {
    /// The architecture it was built from.
    pub config: ResNetConfig,
    graph: GraphNet,
}

impl ResNet {
    /// Build on `vs.root()` so names carry no prefix.
    pub fn new(vs: &nn::Path, config: &ResNetConfig) -> Result<Self> {
        let network = config.build()?;
        Ok(Self { config: config.clone(), graph: GraphNet::new(vs, &network)? })
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
        self.graph.sites()
    }

    /// Logits for a batch `[n, c, h, w]`.
    pub fn forward(&self, x: &Tensor, train: bool, act: &mut dyn Activation) -> Tensor {
        self.graph.forward(x, train, act)
    }
}
