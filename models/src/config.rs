//! Architecture configs that build [`Network`]s, so no network is written out
//! by hand: the CIFAR ResNet family of He et al. as implemented by
//! akamaster/pytorch_resnet_cifar10 (whose PyTorch tensor names the node
//! names reproduce), and a small CNN for fast tests.

use crate::error::{ModelError, Result};
use crate::network::{Network, NetworkBuilder, Op, Shape, ValueId};
use crate::ops;
use serde::{Deserialize, Serialize};

fn default_in_channels() -> usize {
    3
}
fn default_image_size() -> usize {
    32
}
fn default_widths() -> [usize; 3] {
    [16, 32, 64]
}
fn default_eps() -> f64 {
    1e-5
}

/// A CIFAR ResNet (depth 6n+2: 20, 32, 44, 56, 110): 3x3 stem conv + BN + ReLU,
/// three stages of n basic blocks (widths 16/32/64, the first block of stages
/// 2 and 3 with stride 2), "option A" shortcuts, global average pool, linear.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Total depth, 6n + 2 with n >= 1.
    pub depth: usize,
    /// Logits per image.
    pub num_classes: usize,
    /// Input channels (default 3).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// Input height and width, in pixels (default 32).
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    /// Channels of the three stages (default 16, 32, 64). The option-A
    /// shortcut needs each later stage's width `w` to equal the previous
    /// width plus `2 * (w / 4)`.
    #[serde(default = "default_widths")]
    pub widths: [usize; 3],
    /// Batch norm epsilon (default 1e-5).
    #[serde(default = "default_eps")]
    pub bn_eps: f64,
}

impl ResNetConfig {
    /// The akamaster family member of the given depth for CIFAR-10.
    pub fn cifar10(depth: usize) -> Self {
        Self { depth, num_classes: 10, in_channels: 3, image_size: 32, widths: default_widths(), bn_eps: 1e-5 }
    }

    /// Blocks per stage, n = (depth - 2) / 6.
    pub fn blocks_per_stage(&self) -> Result<usize> {
        if self.depth < 8 || !(self.depth - 2).is_multiple_of(6) {
            return Err(ModelError::Config(format!("ResNet depth {} is not 6n+2 with n >= 1", self.depth)));
        }
        Ok((self.depth - 2) / 6)
    }

    /// Build the network. Node names follow the PyTorch module names:
    /// `conv1`, `bn1`, `relu` (stem), `layer{s}.{b}.{conv1,bn1,relu1,conv2,bn2,shortcut,add,relu2}`,
    /// `avgpool`, `linear`.
    pub fn build(&self) -> Result<Network> {
        let n = self.blocks_per_stage()?;
        if self.num_classes == 0 || self.widths.contains(&0) {
            return Err(ModelError::Config("num_classes and widths must be positive".into()));
        }
        let mut b = NetworkBuilder::new(Shape::new(self.in_channels, self.image_size, self.image_size));
        let x = b.input();
        let x = b.conv("conv1", x, self.widths[0], 3, 1, 1, false)?;
        let x = b.batch_norm("bn1", x, self.bn_eps)?;
        let mut x = b.relu("relu", x)?;
        for (stage, &planes) in self.widths.iter().enumerate() {
            for block in 0..n {
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                x = self.basic_block(&mut b, &format!("layer{}.{block}", stage + 1), x, planes, stride)?;
            }
        }
        let x = b.push("avgpool", Op::GlobalAvgPool, &[x])?;
        let x = b.linear("linear", x, self.num_classes, true)?;
        b.finish(x)
    }

    fn basic_block(&self, b: &mut NetworkBuilder, p: &str, x: ValueId, planes: usize, stride: usize) -> Result<ValueId> {
        let in_planes = b.shape(x).c;
        let y = b.conv(&format!("{p}.conv1"), x, planes, 3, stride, 1, false)?;
        let y = b.batch_norm(&format!("{p}.bn1"), y, self.bn_eps)?;
        let y = b.relu(&format!("{p}.relu1"), y)?;
        let y = b.conv(&format!("{p}.conv2"), y, planes, 3, 1, 1, false)?;
        let y = b.batch_norm(&format!("{p}.bn2"), y, self.bn_eps)?;
        let short = if stride != 1 || in_planes != planes {
            // akamaster option A: F.pad(x[:, :, ::2, ::2], (0,0,0,0, planes//4, planes//4)).
            if in_planes + 2 * (planes / 4) != planes {
                return Err(ModelError::Config(format!("{p}: option A shortcut cannot map {in_planes} to {planes} channels")));
            }
            b.push(format!("{p}.shortcut"), Op::ShortcutA(ops::ShortcutA { stride, pad_channels: planes / 4 }), &[x])?
        } else {
            x
        };
        let s = b.push(format!("{p}.add"), Op::Add, &[y, short])?;
        b.relu(&format!("{p}.relu2"), s)
    }
}

/// A small CNN: per entry of `channels`, conv3x3 (pad 1) [+ BN] + ReLU +
/// 2x2 average pool; then a linear layer over the flattened features.
/// Node names: `conv{i}`, `bn{i}`, `relu{i}`, `pool{i}` (i from 1), `linear`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmallCnnConfig {
    /// Output channels of each stage (at least one stage).
    pub channels: Vec<usize>,
    /// Logits per image.
    pub num_classes: usize,
    /// With a batch norm after each conv (the convs then have no bias).
    #[serde(default)]
    pub batch_norm: bool,
    /// Input channels (default 3).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// Input height and width, in pixels (default 32; each stage halves it).
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    /// Batch norm epsilon (default 1e-5).
    #[serde(default = "default_eps")]
    pub bn_eps: f64,
}

impl SmallCnnConfig {
    /// Build the network (names as above); an error if it has no stage or
    /// no class, or a size does not fit.
    pub fn build(&self) -> Result<Network> {
        if self.channels.is_empty() || self.num_classes == 0 {
            return Err(ModelError::Config("small CNN needs at least one stage and one class".into()));
        }
        let mut b = NetworkBuilder::new(Shape::new(self.in_channels, self.image_size, self.image_size));
        let mut x = b.input();
        for (i, &c) in self.channels.iter().enumerate() {
            let i = i + 1;
            x = b.conv(&format!("conv{i}"), x, c, 3, 1, 1, !self.batch_norm)?;
            if self.batch_norm {
                x = b.batch_norm(&format!("bn{i}"), x, self.bn_eps)?;
            }
            x = b.relu(&format!("relu{i}"), x)?;
            x = b.push(format!("pool{i}"), Op::AvgPool(ops::AvgPool { kernel: 2, stride: 2 }), &[x])?;
        }
        let x = b.linear("linear", x, self.num_classes, true)?;
        b.finish(x)
    }
}

/// Any supported architecture; what a model card records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    /// A CIFAR ResNet (`"kind": "resnet"`).
    Resnet(ResNetConfig),
    /// A small CNN (`"kind": "small_cnn"`).
    SmallCnn(SmallCnnConfig),
    /// Any network, node by node (`"kind": "graph"`), e.g. imported from
    /// ONNX by `pann import`; checked with [`Network::validate`] when built.
    Graph(Network),
}

impl Architecture {
    /// Build the network this architecture describes (with its batch norms).
    pub fn build(&self) -> Result<Network> {
        match self {
            Architecture::Resnet(c) => c.build(),
            Architecture::SmallCnn(c) => c.build(),
            Architecture::Graph(net) => {
                net.validate()?;
                Ok(net.clone())
            }
        }
    }
}
