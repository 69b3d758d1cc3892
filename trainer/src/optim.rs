//! SGD with momentum and decoupled-from-nothing (L2, PyTorch-style) weight
//! decay, written out instead of using tch's `nn::Optimizer`, because tch
//! cannot save or restore its optimizer state: resuming without the momentum
//! buffers is not "continuing" a run. Here the buffers are plain tensors
//! that go into the checkpoint.
//!
//! Update (as `torch.optim.SGD`, dampening 0):
//! `g = grad + wd * p; buf = m * buf + g; p -= lr * (nesterov ? g + m * buf : buf)`.

use tch::Tensor;

/// SGD over a var store's trainable variables (the update is in the module docs).
pub struct Sgd {
    /// (name, parameter, momentum buffer), sorted by name.
    pub params: Vec<(String, Tensor, Tensor)>,
    /// Momentum `m` (0: plain SGD).
    pub momentum: f64,
    /// L2 coefficient `wd` added to each gradient (0: none).
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl Sgd {
    /// All trainable variables of `vs`.
    pub fn new(vs: &tch::nn::VarStore, momentum: f64, weight_decay: f64, nesterov: bool) -> Self {
        let mut params: Vec<(String, Tensor, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, t)| {
                let buf = tch::no_grad(|| t.zeros_like());
                (n, t, buf)
            })
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Self { params, momentum, weight_decay, nesterov }
    }

    /// Zero every parameter's gradient (before the next backward pass).
    pub fn zero_grad(&mut self) {
        for (_, p, _) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// One update at learning rate `lr` from the current gradients; a
    /// parameter without a gradient is left alone.
    pub fn step(&mut self, lr: f64) {
        let (m, wd, nesterov) = (self.momentum, self.weight_decay, self.nesterov);
        tch::no_grad(|| {
            for (_, p, buf) in &mut self.params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let d = if wd != 0.0 { &g + &*p * wd } else { g };
                let _ = buf.g_mul_scalar_(m).g_add_(&d);
                let upd = if nesterov { d + &*buf * m } else { buf.shallow_clone() };
                let _ = p.g_sub_(&(upd * lr));
            }
        });
    }
}
