//! Helpers shared by the examples: deterministic weights for a network built
//! in code, and the three roles of a secure session over in-memory channels.

#![allow(dead_code)] // each example uses part of this module

use pann::arith::Prg;
use pann::nn::{Model, Network, Params, Tensor};
use pann::secure::{session_in_memory, ClientOutcome, PublicModel};

/// Every parameter `net` needs, uniform in [-scale/2, scale/2) from `seed`.
pub fn pseudo_random_model(net: Network, seed: u8, scale: f64) -> Result<Model, Box<dyn std::error::Error>> {
    let mut prg = Prg::from_seed([seed; 16]);
    let mut params = Params::new();
    for spec in net.param_specs() {
        let n: usize = spec.shape.iter().product();
        let values = prg.gen(n).iter().map(|&v| ((v >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * scale).collect();
        params.insert(spec.name.clone(), Tensor::new(spec.shape, values));
    }
    Ok(Model::new(net, params)?)
}

/// `n` raw images of `len` pixels (0..=255) from `seed`.
pub fn pseudo_random_images(n: usize, len: usize, seed: u8) -> Vec<Vec<u8>> {
    let mut prg = Prg::from_seed([seed; 16]);
    (0..n).map(|_| prg.gen(len).iter().map(|&v| v as u8).collect()).collect()
}

/// Server, client and dealer in this process over in-memory channels, as
/// `pann-party` runs them over TLS: the server serves `model` described by
/// `public`, the client sends `images` in batches of `batch` and pins the
/// public model's digest, the dealer pairs them and streams material.
pub async fn three_roles(
    model: &Model,
    public: &PublicModel,
    images: &[Vec<u8>],
    batch: usize,
) -> Result<ClientOutcome, Box<dyn std::error::Error>> {
    Ok(session_in_memory(model, public, images, batch).await?)
}
