//! Folding inference batch norm into the preceding convolution.
//!
//! At inference BN is a per-channel affine map, so it can be absorbed into
//! the conv's weights and bias: with s = gamma / sqrt(var + eps),
//! W' = s * W and b' = s * (b - mean) + beta. After folding, the secure
//! executor has one linear layer fewer per conv and no division to compute.

use crate::error::Result;
use crate::model::Model;
use crate::network::{Network, Node, Op};
use crate::tensor::{Params, Tensor};

/// Fold every BN whose input is a conv read by nothing else. BN nodes that
/// cannot be folded are kept (the executors still run them). Node names and
/// the remaining parameter names are unchanged; folded convs gain a `bias`.
pub fn fold_batch_norm(model: &Model) -> Result<Model> {
    let net = &model.network;
    let mut readers = vec![0usize; net.nodes.len()];
    for n in &net.nodes {
        for &i in &n.inputs {
            readers[i] += 1;
        }
    }
    readers[net.output] += 1;

    let mut params: Params = model.params.clone();
    let mut nodes: Vec<Node> = Vec::with_capacity(net.nodes.len());
    // new_id[i] = index in `nodes` of the value that old node i produced.
    let mut new_id = vec![0usize; net.nodes.len()];
    for (i, n) in net.nodes.iter().enumerate() {
        if let Op::BatchNorm(bn) = n.op {
            let src = n.inputs[0];
            if let (Op::Conv2d(conv), 1) = (&net.nodes[src].op, readers[src]) {
                let conv_name = net.nodes[src].name.clone();
                fold_into(&mut params, &conv_name, conv.bias, &n.name, bn.channels, bn.eps);
                let j = new_id[src];
                if let Op::Conv2d(c) = &mut nodes[j].op {
                    c.bias = true;
                }
                new_id[i] = j;
                continue;
            }
        }
        let mut node = n.clone();
        node.inputs = n.inputs.iter().map(|&k| new_id[k]).collect();
        nodes.push(node);
        new_id[i] = nodes.len() - 1;
    }
    let network = Network { nodes, output: new_id[net.output] };
    Model::new(network, params)
}

fn fold_into(params: &mut Params, conv: &str, had_bias: bool, bn: &str, channels: usize, eps: f64) {
    let take = |params: &mut Params, p: &str| params.remove(&format!("{bn}.{p}")).map(|t| t.data).unwrap_or_default();
    let gamma = take(params, "weight");
    let beta = take(params, "bias");
    let mean = take(params, "running_mean");
    let var = take(params, "running_var");
    let bias_name = format!("{conv}.bias");
    let old_bias = if had_bias { params.remove(&bias_name).map(|t| t.data) } else { None }.unwrap_or_else(|| vec![0.0; channels]);
    let w = params.get_mut(&format!("{conv}.weight")).expect("conv weight checked by Model::new");
    let per_out = w.data.len() / channels;
    let mut bias = vec![0.0; channels];
    for c in 0..channels {
        let s = gamma[c] / (var[c] + eps).sqrt();
        for v in &mut w.data[c * per_out..(c + 1) * per_out] {
            *v *= s;
        }
        bias[c] = s * (old_bias[c] - mean[c]) + beta[c];
    }
    params.insert(bias_name, Tensor::new(vec![channels], bias));
}
